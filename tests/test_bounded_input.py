"""Bad input of every kind the gate reads ends as exit 2 with a message naming the file, or a
blocking finding: never a traceback, never a silent default (issue 13)."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from migration_guard import state_cache
from migration_guard.approvals import ApprovalsError, load_approvals
from migration_guard.cli import main
from migration_guard.config import ConfigError, load_config
from migration_guard.stats import StatsError, load_snapshot

SNAPSHOT = {"schema_version": 1, "pg_version": 16, "server_version_num": None, "taken_at": "2026-01-01T00:00:00+00:00",
            "database": "shop", "tables": {"shop_order": {"rows": 2_000_000, "total_bytes": 1}}}


def _cli(*args: str, input: str | None = None):
    result = CliRunner().invoke(main, list(args), input=input)
    # A command's own exit (0, 1, 2) raises SystemExit inside CliRunner; anything else is a crash.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


# -- configuration and approvals -----------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (b"[tool.migration_guard]\nthreshold_rows = 5\n# caf\xe9\n", "not UTF-8"),
    (b"tool = 5\n", "'tool' must be a table"),
    (b'[tool.migration_guard]\nthreshold_bytes = "' + b"9" * 400 + b'GB"\n', "too large for a size"),
    (b'[tool.migration_guard]\nthreshold_bytes = "1' + b"0" * 30 + b'"\n', "too large for a size"),
    (b"[tool.migration_guard]\nthreshold_rows = " + b"9" * 5000 + b"\n", "not valid TOML"),
    (b"[tool.migration_guard]\nthreshold_rows = 9223372036854775807\nassume_rows = 1e3\n", "whole number"),
    (b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "not valid TOML"),
    (b'[tool.migration_guard]\nseverity = { MG002 = 5 }\n', "use \"error\""),
    (b'[tool.migration_guard]\ndisable = ["MG002", 5]\n', "list of rule ids"),
])
def test_a_bad_pyproject_is_a_config_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "pyproject.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        load_config(path, known_rules=frozenset({"MG002"}))
    assert str(path) in str(raised.value) and message in str(raised.value)


def test_settings_values_no_toml_can_hold_are_errors_too():
    for setting in ({"threshold_rows": 10**5000}, {"severity": {10**5000: "error"}}, {"severity": {"MG002": 10**5000}},
                    {"approvals_file": "a\0b"}, {10**5000: 1}):
        with pytest.raises(ConfigError):
            load_config(None, setting, known_rules=frozenset({"MG002"}))


@pytest.mark.parametrize("content", [
    b'[[approval]]\nmigration = "shop.0001"\nreason = "caf\xe9"\n',
    b"[[approval]]\nmax_rows = " + b"9" * 5000 + b"\n",
    b'[[approval]]\nmigration = "a.b"\nrule = "MG002"\nfingerprint = "x"\nreason = "r"\napproved_by = "me"\n'
    b"max_rows = 99999999999999999999\n",
])
def test_a_bad_approvals_file_is_an_error_naming_it(tmp_path, content):
    path = tmp_path / "migration-approvals.toml"
    path.write_bytes(content)
    with pytest.raises(ApprovalsError, match=str(path)):
        load_approvals(path)


@pytest.mark.parametrize("dangling", [False, True], ids=["to a file", "dangling"])
def test_approve_refuses_a_symbolic_link(tmp_path, dangling):
    outside = tmp_path / "outside" / "approvals.toml"
    outside.parent.mkdir()
    if not dangling:
        outside.write_text("")
    repo = tmp_path / "repo"
    repo.mkdir()
    link = repo / "migration-approvals.toml"
    link.symlink_to(outside)
    result = _cli("approve", "shop.0001_x", "MG002", "--fingerprint", "0123456789abcdef", "--reason", "r",
                  "--by", "me", "--file", str(link))
    assert result.exit_code == 2 and "symbolic link" in result.output
    assert outside.exists() is not dangling or outside.read_text() == ""
    assert not dangling or not outside.exists()


# -- snapshots -------------------------------------------------------------------------------------------


def _snapshot(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prod-stats.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    (json.dumps(SNAPSHOT).replace("2000000", "9" * 5000), "invalid JSON"),
    (json.dumps(SNAPSHOT).replace("2000000", "9" * 30), "at most"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (json.dumps(SNAPSHOT).replace('"shop_order": {', '"shop_order": {"rows": 1, "total_bytes": 1}, "shop_order": {'),
     "appears twice"),
    (json.dumps(SNAPSHOT).replace('"rows": 2000000', '"rows": 1, "rows": 2000000'), "appears twice"),
    (json.dumps({**SNAPSHOT, "pg_version": 13}), "models PostgreSQL 14 to 18"),
])
def test_a_bad_snapshot_is_an_error_naming_the_file(tmp_path, text, message):
    path = _snapshot(tmp_path, text)
    with pytest.raises(StatsError) as raised:
        load_snapshot(path)
    assert str(path) in str(raised.value) and message in str(raised.value)


def test_explain_with_a_snapshot_of_an_unsupported_version_exits_2(tmp_path):
    stats = _snapshot(tmp_path, json.dumps({**SNAPSHOT, "pg_version": 13}))
    sql = tmp_path / "a.sql"
    sql.write_text("ALTER TABLE shop_order ADD COLUMN note text;\n")
    result = _cli("explain", "--stats", str(stats), str(sql))
    assert result.exit_code == 2 and "14 to 18" in result.output


def test_a_non_utf8_snapshot_is_an_error(tmp_path):
    path = tmp_path / "prod-stats.json"
    path.write_bytes(json.dumps(SNAPSHOT).encode().replace(b"shop", b"sh\xe9p"))
    with pytest.raises(StatsError, match="cannot be read"):
        load_snapshot(path)


# -- SQL -------------------------------------------------------------------------------------------------


def test_a_nul_byte_is_an_error_naming_its_line(tmp_path):
    sql = tmp_path / "evil.sql"
    sql.write_bytes(b"SELECT 1;\nSELECT 2;\x00\nALTER TABLE shop_order ALTER COLUMN id TYPE bigint;\n")
    result = _cli("explain", str(sql))
    assert result.exit_code == 2 and f"{sql}:2: a NUL byte" in result.output


@pytest.mark.parametrize("sql, rules", [
    ("SELECT " + "+".join(["1"] * 500) + ";", {"MG912"}),
    ("ALTER TABLE shop_order ADD CONSTRAINT c CHECK (" + " OR ".join(f"status = {i}" for i in range(1000)) + ");",
     {"MG005", "MG912"}),
    ("SELECT " + "(" * 1000 + "1" + ")" * 1000 + ";", {"MG912", None}),
    ("ALTER TABLE shop_order ALTER COLUMN id TYPE bigint USING " + "-(" * 1000 + "id" + ")" * 1000 + ";",
     {"MG007", "MG912"}),
], ids=["500 operators", "CHECK of 1,000 terms", "1,000 parentheses", "1,000 nested minus"])
def test_deep_statements_are_analysed_or_a_blocking_finding_not_a_crash(tmp_path, sql, rules):
    script = tmp_path / "deep.sql"
    script.write_text(sql + "\nALTER TABLE shop_order ALTER COLUMN id TYPE bigint;\n")
    result = _cli("explain", "--format", "json", str(script))
    assert result.exit_code == 1, result.output
    statements = json.loads(result.output)["statements"]
    assert len(statements) == 2 and statements[1]["findings"][0]["rule"] == "MG007"
    found = statements[0]["findings"]
    assert (found[0]["rule"] if found else None) in rules, found
    assert all(f["blocking"] for f in found)


@pytest.mark.parametrize("wrap", ["SELECT ({})", "SELECT a FROM t WHERE a IN ({})", "SELECT 1 WHERE EXISTS ({})"],
                         ids=["scalar", "IN", "EXISTS"])
def test_nested_subselects_are_a_blocking_finding_not_a_crash(tmp_path, wrap):
    sql = "SELECT 1"
    for _ in range(100 if wrap == "SELECT ({})" else 300):
        sql = wrap.format(sql)
    script = tmp_path / "nested.sql"
    script.write_text(f"UPDATE shop_order SET note = ({sql});\n")
    result = _cli("explain", "--format", "json", str(script))
    [statement] = json.loads(result.output)["statements"]
    # Python 3.11 runs out of stack at this depth (MG912); 3.12's deeper C stack analyses it, and then
    # the unfiltered UPDATE of the large shop_order is what blocks (MG011). Either way: blocked, no crash.
    assert result.exit_code == 1, result.output
    rules = [f["rule"] for f in statement["findings"]]
    if rules != ["MG912"]:
        assert rules == ["MG011"] and statement["locks"] == [{"relation": "shop_order", "relkind": "table",
                                                              "mode": "RowExclusiveLock"}]


def test_a_10_mb_statement_is_a_finding_in_seconds(tmp_path):
    values = ",".join(f"({i}, 'item {i:08d}')" for i in range(500_000))
    script = tmp_path / "bulk.sql"
    script.write_text(f"INSERT INTO shop_order (id, note) VALUES {values};\nALTER TABLE shop_order ADD COLUMN x int;\n")
    assert script.stat().st_size > 10_000_000
    started = time.monotonic()
    result = _cli("explain", "--format", "json", str(script))
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    first, second = json.loads(result.output)["statements"]
    assert [f["rule"] for f in first["findings"]] == ["MG912"] and "bytes" in first["findings"][0]["message"]
    assert second["sql"] == "ALTER TABLE shop_order ADD COLUMN x int" and second["line"] == 2
    print(f"10 MB statement: {elapsed:.1f} s")
    assert elapsed < 60  # it took 344 s before; measured ~5 s here


# -- secrets in explain and trace ------------------------------------------------------------------------


@pytest.mark.parametrize("dsn", [
    "postgresql://u:hunter2@127.0.0.1:1/db",
    "postgresql://u:hunter2@[::1",
    "postgresql://u:hun%zzter2@127.0.0.1:1/db",
    "host=127.0.0.1 port=1 user=u password=hunter 2",
    "host=127.0.0.1 port=1 user=u password='hunter 2'",
    "postgresql://u@127.0.0.1:1/db?password=hunter2&sslmode=bogus",
])
@pytest.mark.parametrize("command", [["explain", "--stats", "{stats}"], ["trace"]], ids=["explain", "trace"])
def test_a_dsn_password_is_never_printed(tmp_path, dsn, command):
    stats = _snapshot(tmp_path, json.dumps(SNAPSHOT))
    sql = tmp_path / "a.sql"
    sql.write_text("SELECT 1;\n")
    result = _cli(*[part.format(stats=stats) for part in command], "--dsn", dsn, str(sql))
    assert result.exit_code == 2, result.output
    assert "hunter" not in result.output and "zzter" not in result.output and " 2" not in result.output


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_explain_masks_passwords_and_credentials(tmp_path, fmt):
    sql = tmp_path / "roles.sql"
    sql.write_text("CREATE ROLE app LOGIN PASSWORD 'hunter2';\n"
                   "ALTER ROLE app WITH ENCRYPTED PASSWORD E'hunter\\'2';\n"
                   "SET my.api_token = 'tok-hunter2';\n"
                   "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password 'hunter2');\n"
                   "CREATE SUBSCRIPTION sub CONNECTION 'host=db password=hunter2' PUBLICATION p;\n"
                   "ALTER TABLE shop_order ADD COLUMN note text;\n")
    result = _cli("explain", "--format", fmt, str(sql))
    assert result.exit_code == 1
    assert "hunter" not in result.output and "'***'" in result.output
    if fmt == "json":
        assert json.loads(result.output)["statements"][5]["line"] == 6


# -- the state cache -------------------------------------------------------------------------------------


class _Marker:
    """A pickle that, when loaded, creates a file: whether the cache read an entry."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _private_folder(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def test_the_state_cache_never_reads_through_a_symbolic_link(tmp_path):
    cache = _private_folder(tmp_path / "cache")
    elsewhere = _private_folder(tmp_path / "elsewhere")
    marker = tmp_path / "loaded"
    target = elsewhere / "entry.pickle"
    target.write_bytes(pickle.dumps(_Marker(str(marker))))
    target.chmod(0o600)
    entry = cache / "entry.pickle"
    entry.symlink_to(target)
    assert state_cache._load(entry, "key") is None
    assert not marker.exists()
    folder = tmp_path / "linked"
    folder.symlink_to(cache)
    (cache / "direct.pickle").write_bytes(pickle.dumps(_Marker(str(marker))))
    (cache / "direct.pickle").chmod(0o600)
    assert state_cache._load(folder / "direct.pickle", "key") is None
    assert not marker.exists()
    assert state_cache._load(cache / "direct.pickle", "key") is None and marker.exists()  # the control


def test_the_state_cache_never_writes_through_a_symbolic_link(tmp_path):
    real = _private_folder(tmp_path / "real")
    linked = tmp_path / "linked"
    linked.symlink_to(real)
    with pytest.raises(OSError):
        state_cache._write_private(linked / "entry.pickle", b"payload")
    dangling = real / "entry.pickle"
    dangling.symlink_to(tmp_path / "outside.pickle")
    with pytest.raises(OSError):
        state_cache._write_private(dangling, b"payload")
    assert os.listdir(real) == ["entry.pickle"] and not (tmp_path / "outside.pickle").exists()


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from migration_guard import cli

    monkeypatch.setattr(cli, "MAX_FILE_BYTES", 1000)
    script = tmp_path / "big.sql"
    script.write_text("SELECT 1;\n" * 200)
    result = _cli("explain", str(script))
    assert result.exit_code == 2 and "larger than" in result.output


def test_a_huge_run_sql_leaves_out_only_its_huge_statement():
    from migration_guard.model import Statement
    from migration_guard.parse import parse_statement

    bulk = "INSERT INTO shop_order (id) VALUES " + ",".join(f"({i})" for i in range(200_000))
    sql = f"ALTER TABLE shop_order ADD COLUMN x int; {bulk}; CREATE INDEX i ON shop_order (x);"
    parsed = parse_statement(Statement(sql=sql, migration="shop.0002_bulk"))
    assert [type(p.node).__name__ for p in parsed] == ["AlterTableStmt", "NoneType", "IndexStmt"]
    assert parsed[1].limit and "bytes" in parsed[1].limit


def test_a_large_file_that_does_not_parse_loses_no_statement(tmp_path):
    values = ",".join(f"({i})" for i in range(200_000))
    script = tmp_path / "big.sql"
    script.write_text(f"SELEC 1;\nINSERT INTO shop_order (id) VALUES {values};\nCREATE INDEX i ON shop_order (a);\n")
    result = _cli("explain", "--format", "json", str(script))
    assert result.exit_code == 1
    statements = json.loads(result.output)["statements"]
    assert [s["line"] for s in statements] == [1, 2, 3]
    assert [[f["rule"] for f in s["findings"]] for s in statements] == [["MG902"], ["MG912"], ["MG002"]]


@pytest.mark.parametrize("column", ["stripe_apiKey", "ACCESS_KEY", "gpg_private_key", "user_passphrase", "auth_header",
                                    "refresh_token", "client_secret", "db_pwd", "conninfo", "upstream_connstr"])
def test_a_credential_column_default_is_masked_whatever_else_the_script_holds(column):
    """mask_sql's quick test (no credential word: the text as it is) must let through every name _CREDENTIAL
    matches; "key" alone is not one (PRIMARY KEY is in almost every script), but api_key and its kin are."""
    from migration_guard.redact import mask_sql

    sql = (f'CREATE TABLE t (id bigint PRIMARY KEY, "{column}" text DEFAULT \'s3cr3t-value\');\n'
           "ALTER TABLE u ADD CONSTRAINT u_fk FOREIGN KEY (t_id) REFERENCES t (id);\n")
    assert "s3cr3t" not in mask_sql(sql) and "'***'" in mask_sql(sql)
    plain = "CREATE TABLE t (id bigint PRIMARY KEY, note text DEFAULT 'hello');"
    assert mask_sql(plain) is plain
