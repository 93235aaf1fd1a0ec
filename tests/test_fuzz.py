"""Fuzzing what the gate reads: random and mutated SQL, configurations, approvals files and
snapshots never end in a traceback or an exit code other than 0, 1 or 2; PostgreSQL's own
regression SQL runs through ``explain`` without a crash (issue 13).

CI runs a fixed number of examples with a fixed seed (``derandomize``), a few seconds in all;
``MIGRATION_GUARD_FUZZ_EXAMPLES=5000`` runs a longer, random search by hand."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migration_guard.approvals import ApprovalsError, apply_approvals, load_approvals
from migration_guard.cli import main
from migration_guard.config import ConfigError, load_config
from migration_guard.model import Finding, Severity, TableSize
from migration_guard.stats import StatsError, load_snapshot

_EXAMPLES = int(os.environ.get("MIGRATION_GUARD_FUZZ_EXAMPLES", "0") or 0)
FUZZ = settings(
    max_examples=_EXAMPLES or 150,
    derandomize=not _EXAMPLES,  # CI: the same examples every run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REPO = Path(__file__).resolve().parent.parent
REGRESS = Path(os.environ.get("MIGRATION_GUARD_PG_REGRESS") or REPO / ".cache" / "pg-regress")

SEED_SQL = [
    "ALTER TABLE shop_order ADD COLUMN note text DEFAULT 'x' NOT NULL;",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS order_idx ON shop_order (status, created_at) WHERE paid;",
    "ALTER TABLE shop_order ALTER COLUMN total TYPE bigint USING total::bigint;",
    "ALTER TABLE shop_order ADD CONSTRAINT c CHECK (total > 0) NOT VALID; ALTER TABLE shop_order VALIDATE CONSTRAINT c;",
    "BEGIN; SET LOCAL lock_timeout = '5s'; LOCK TABLE shop_order IN ACCESS EXCLUSIVE MODE; COMMIT;",
    "UPDATE shop_order SET note = $$a;b$$ WHERE id IN (SELECT id FROM shop_order LIMIT 10);",
    "CREATE ROLE app LOGIN PASSWORD 'hunter2'; ALTER TABLE \"Odd \"\"name\" RENAME TO x;",
    "DO $$BEGIN PERFORM 1; END$$; COPY shop_order FROM STDIN; \\set x 1\nVACUUM FULL shop_order;",
    "ALTER TABLE shop_order ADD FOREIGN KEY (customer_id) REFERENCES customer (id); -- comment\n/* block */",
    "REFRESH MATERIALIZED VIEW CONCURRENTLY mv; CLUSTER shop_order USING order_idx; REINDEX TABLE shop_order;",
]
SNAPSHOT = {"schema_version": 1, "pg_version": 16, "server_version_num": 160004,
            "taken_at": "2026-01-01T00:00:00+00:00", "database": "shop",
            "tables": {"shop_order": {"rows": 2_000_000, "total_bytes": 348_966_912}, "s.x": {"rows": None,
                                                                                           "total_bytes": None}}}
PYPROJECT = """[tool.migration_guard]
threshold_rows = 1_000_000
threshold_bytes = "10GB"
approvals_file = "migration-approvals.toml"
pg_version = 16
assume_rows = 0
disable = ["MG008"]
severity = { MG005 = "warning" }
preflight_max_age_seconds = 60
stats_max_age_days = 7
"""
APPROVALS = """[[approval]]
migration = "shop.0018_alter_total"
rule = "MG007"
fingerprint = "c45dea8b395ede5f"
reason = "window"
approved_by = "dba@example.com"
approved_on = 2026-11-22
expires = 2026-12-31
max_rows = 5000000
"""
# Characters that mean something to the parsers: quotes, dollar quotes, comments, escapes, NUL,
# brackets, numbers' edges, non-ASCII.
_NASTY = st.sampled_from(["'", '"', "$$", "$a$", "--", "/*", "*/", "\\", "\0", ";", "(", ")", "[", "]", "{", "}",
                          "e'", "U&'", "\n", "=", ",", "9" * 40, "-", "é", "\ud7ff", "\ufeff", "NaN", "1e999"])


def mutations(seeds: list[str]) -> st.SearchStrategy[str]:
    """A seed from ``seeds`` with pieces cut out, repeated, or replaced by random or meaningful text."""
    @st.composite
    def build(draw) -> str:
        text = draw(st.sampled_from(seeds))
        for _ in range(draw(st.integers(1, 6))):
            start = draw(st.integers(0, len(text)))
            end = draw(st.integers(start, min(len(text), start + 40)))
            how = draw(st.sampled_from(["cut", "insert", "repeat", "replace"]))
            piece = draw(st.one_of(_NASTY, st.text(max_size=12)))
            if how == "cut":
                text = text[:start] + text[end:]
            elif how == "insert":
                text = text[:start] + piece + text[start:]
            elif how == "repeat":
                text = text[:end] + text[start:end] * draw(st.integers(1, 50)) + text[end:]
            else:
                text = text[:start] + piece + text[end:]
        return text
    return build()


def _invoke(*args: str, stdin: bytes | None = None):
    result = CliRunner().invoke(main, list(args), input=stdin)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, result.exc_info
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result


# -- SQL ----------------------------------------------------------------------------------------------


@FUZZ
@given(sql=st.one_of(mutations(SEED_SQL), st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: b.decode("utf-8", "replace"))))
def test_explain_never_crashes_on_random_or_mutated_sql(tmp_path_factory, sql):
    path = tmp_path_factory.mktemp("sql") / "fuzz.sql"
    path.write_bytes(sql.encode("utf-8", "surrogatepass"))
    _invoke("explain", "--format", "json", str(path))


@FUZZ
@given(data=st.binary(max_size=400))
def test_explain_never_crashes_on_random_bytes_on_stdin(data):
    _invoke("explain", stdin=data)


# -- configuration ----------------------------------------------------------------------------------------

_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(0, 30).map(lambda k: 9 * 10 ** (200 * k)),
              st.floats(allow_nan=True), st.text(max_size=20), _NASTY),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children,
                                                                              max_size=4)),
    max_leaves=12,
)
_KEYS = st.one_of(st.sampled_from(["threshold_rows", "threshold_bytes", "approvals_file", "pg_version", "assume_rows",
                                   "disable", "severity", "preflight_max_age_seconds", "stats_max_age_days"]),
                  st.text(max_size=10), st.integers())


@FUZZ
@given(text=mutations([PYPROJECT, "tool = 5\n", "[tool]\nmigration_guard = 5\n"]))
def test_a_random_pyproject_is_a_config_or_a_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("config") / "pyproject.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_config(path, known_rules=frozenset({"MG005", "MG008"}))
    except ConfigError as exc:
        assert str(path) in str(exc)


@FUZZ
@given(setting=st.one_of(_VALUES, st.dictionaries(_KEYS, _VALUES, max_size=5)))
def test_a_random_settings_dict_is_a_config_or_a_config_error(setting):
    try:
        load_config(None, setting, known_rules=frozenset({"MG005", "MG008"}))
    except ConfigError as exc:
        assert "settings.MIGRATION_GUARD" in str(exc)


# -- approvals ------------------------------------------------------------------------------------------


@FUZZ
@given(text=mutations([APPROVALS, APPROVALS * 3]), rows=st.one_of(st.none(), st.integers(0, 2**63)))
def test_a_random_approvals_file_is_approvals_or_an_approvals_error(tmp_path_factory, text, rows):
    path = tmp_path_factory.mktemp("approvals") / "migration-approvals.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        approvals = load_approvals(path)
    except ApprovalsError as exc:
        assert str(path) in str(exc)
        return
    finding = Finding(rule="MG007", slug="alter-column-type-rewriting", severity=Severity.ERROR, message="m",
                      migration="shop.0018_alter_total", size=TableSize(rows), fingerprint="c45dea8b395ede5f")
    apply_approvals([finding], approvals, linted={"shop.0018_alter_total"}, today=dt.date(2026, 12, 1))


# -- snapshots ------------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
              st.floats(allow_nan=False), st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children,
                                                                              max_size=4)),
    max_leaves=15,
)


@st.composite
def snapshots(draw) -> str:
    """A valid snapshot with one part replaced by random JSON, or the text of one mutated."""
    if draw(st.booleans()):
        return draw(mutations([json.dumps(SNAPSHOT)]))
    document = json.loads(json.dumps(SNAPSHOT))
    where = draw(st.sampled_from(["top", "table", "figure"]))
    key = draw(st.one_of(st.sampled_from(list(SNAPSHOT) + ["rows", "total_bytes"]), st.text(max_size=6)))
    value = draw(_JSON)
    if where == "top":
        document[key] = value
    elif where == "table":
        document["tables"][key] = value
    else:
        document["tables"]["shop_order"][key] = value
    return json.dumps(document)


@FUZZ
@given(text=snapshots())
def test_a_random_snapshot_is_a_snapshot_or_a_stats_error_and_explain_copes(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("snapshot")
    path = folder / "prod-stats.json"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_snapshot(path)
    except StatsError as exc:
        assert str(path) in str(exc)
    sql = folder / "a.sql"
    sql.write_text("ALTER TABLE shop_order ALTER COLUMN total TYPE bigint;\nCREATE INDEX i ON s.x (a);\n")
    _invoke("explain", "--stats", str(path), str(sql))


# -- PostgreSQL's own regression SQL ----------------------------------------------------------------------


def _regression_files() -> list[Path]:
    return sorted(REGRESS.glob("*.sql"))


@pytest.mark.parametrize("path", _regression_files() or [None], ids=lambda p: p.name if p else "missing")
def test_postgresql_regression_sql_runs_through_explain(path):
    """The copy of PostgreSQL's regression suite inside pglast's sdist (``make test`` fetches it into
    .cache/pg-regress): hundreds of thousands of lines of every statement form, run through explain."""
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"no regression SQL in {REGRESS}: `make test` fetches it (pip download of pglast's sdist)")
        pytest.skip(f"no regression SQL in {REGRESS}: run `make test` (or `make pg-regress`) to fetch it")
    started = time.monotonic()
    result = _invoke("explain", "--format", "json", str(path))
    elapsed = time.monotonic() - started
    if result.exit_code == 2:  # only a file that is not UTF-8 (PostgreSQL tests other encodings too)
        assert "is not UTF-8 text" in result.output, result.output
    assert elapsed < 30, f"{path.name}: {elapsed:.1f} s"
