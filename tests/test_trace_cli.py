"""``migration-guard trace`` and ``explain`` on scripts: the measured truth next to the model, on a
scratch database that is created and dropped; psql meta-commands."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from migration_guard.explain import parse_script
from migration_guard.scratch import ScratchError, scratch_dsn
from migration_guard.trace_command import trace_statements

ROOT = Path(__file__).parents[1]
SETUP = """
CREATE TABLE shop_order (id bigint PRIMARY KEY, total integer NOT NULL, note varchar(20));
INSERT INTO shop_order SELECT g, g, 'n' FROM generate_series(1, 200) g;
"""


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "migration_guard", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_trace_reports_each_statement_on_a_scratch_database_and_drops_it(pg_server, tmp_path):
    script = tmp_path / "change.sql"
    script.write_text("SET lock_timeout = '2s';\n"
                      "ALTER TABLE shop_order ADD COLUMN paid boolean DEFAULT false NOT NULL;\n"
                      "CREATE INDEX CONCURRENTLY order_paid_idx ON shop_order (paid);\n"
                      "ALTER TABLE shop_order ALTER COLUMN total TYPE bigint;\n"
                      "\\set ON_ERROR_STOP on\n")
    setup = tmp_path / "setup.sql"
    setup.write_text(SETUP)
    run = cli("trace", str(script), "--setup", str(setup), "--dsn", pg_server.dsn(), "--format", "json")
    assert run.returncode == 0, run.stderr + run.stdout
    report = json.loads(run.stdout)
    assert report["matches"] is True and len(report["statements"]) == 5
    alter, index, retype, meta = report["statements"][1:]
    assert alter["server"]["locks"][0] == {"relation": "shop_order", "relkind": "table", "mode": "AccessExclusiveLock",
                                           "of_table": None, "created": False}
    assert index["server"]["in_transaction"] is False and index["server"]["index_builds"] == ["shop_order"]
    assert retype["server"]["rewrites"] == ["shop_order"] and retype["model"]["rewrites"] == ["shop_order"]
    assert meta["skipped"].startswith("does not parse (psql meta-command \\set")
    with psycopg.connect(pg_server.dsn()) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'migration_guard_scratch_%'").fetchone()
    assert left[0] == 0


def test_trace_exits_1_when_the_model_differs_and_reads_stdin(pg_server):
    run = cli("trace", "--dsn", pg_server.dsn(), stdin="CREATE TABLE t (id int);\n"
              "CREATE PUBLICATION mg_pub FOR TABLE t;\n")
    assert run.returncode == 1, run.stderr
    assert "DIFFERS not modelled" in run.stdout and "DIFFERENT: 1 of 2 statement(s)" in run.stdout


def test_a_statement_the_server_refuses_exits_1(pg_server):
    run = cli("trace", "--dsn", pg_server.dsn(), stdin="ALTER TABLE no_such_table ADD COLUMN x int;\n")
    assert run.returncode == 1, run.stderr
    assert "not traced: statement failed" in run.stdout and "FAILED: 0 of 1" in run.stdout


def test_trace_refuses_a_database_it_did_not_create(pg_server, fresh_dsn):
    with pytest.raises(ScratchError, match="only in a scratch database it created"):
        trace_statements(parse_script("DROP TABLE t", "x.sql"), fresh_dsn)


def test_trace_cannot_run_without_createdb(pg_server):
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS mg_nocreatedb")
        conn.execute("CREATE ROLE mg_nocreatedb LOGIN")
    dsn = pg_server.dsn().replace(f"user={pg_server.user}", "user=mg_nocreatedb")
    with pytest.raises(ScratchError, match="CREATEDB"):
        with scratch_dsn(dsn):
            pass
    run = cli("trace", "--dsn", dsn, stdin="SELECT 1")
    assert run.returncode == 2 and "CREATEDB" in run.stderr


def test_trace_drops_the_scratch_databases_earlier_runs_left_behind(pg_server):
    """Trace's scratch databases are the gate's: named so that a later run can prove one is a leftover
    (a process of this machine that is gone) and drop it; a database with no such proof stays."""
    from psycopg.conninfo import conninfo_to_dict

    from migration_guard.scratch import _host_tag, is_scratch_name

    dead = 2**22 + 54321  # no such pid here
    leftover = f"migration_guard_scratch_{_host_tag()}_{dead}_1_{secrets.token_hex(4)}"
    unproven = f"migration_guard_scratch_{secrets.token_hex(4)}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{leftover}"')
        conn.execute(f'CREATE DATABASE "{unproven}"')
    try:
        with scratch_dsn(pg_server.dsn()) as dsn:
            assert is_scratch_name(conninfo_to_dict(dsn)["dbname"])
        with psycopg.connect(pg_server.dsn()) as conn:
            names = {n for (n,) in conn.execute("SELECT datname FROM pg_database")}
        assert leftover not in names and unproven in names
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            for name in (leftover, unproven):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_scratch_database_on_the_embedded_server_by_default():
    with scratch_dsn() as dsn:
        results = trace_statements(parse_script("CREATE TABLE t (id int); ALTER TABLE t ADD COLUMN x int;", "s.sql"),
                                   dsn)
    assert [r.matches for r in results] == [True, True]
    assert results[1].measured.modes == {"t": "AccessExclusiveLock"}


def test_explain_reports_psql_meta_commands_instead_of_failing():
    run = cli("explain", "--format", "json", stdin="\\set ON_ERROR_STOP on\nALTER TABLE t ADD COLUMN x int;\n"
              "\\i more.sql\n")
    report = json.loads(run.stdout)
    lines = [(s["line"], s["sql"], bool(s["parse_error"])) for s in report["statements"]]
    assert lines == [(1, "\\set ON_ERROR_STOP on", True), (2, "ALTER TABLE t ADD COLUMN x int", False),
                     (3, "\\i more.sql", True)]
    assert report["statements"][1]["locks"] == [{"relation": "t", "relkind": "table", "mode": "AccessExclusiveLock"}]


def test_explain_with_dsn_knows_the_database_catalog(pg_server, fresh_dsn):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(SETUP + "ALTER TABLE shop_order ADD CONSTRAINT note_nn CHECK (note IS NOT NULL);"
                     "CREATE INDEX order_note_idx ON shop_order (note);")
    sql = ("ALTER TABLE shop_order ALTER COLUMN note SET NOT NULL;\nALTER TABLE shop_order ALTER COLUMN note TYPE "
           "varchar(40);\nDROP INDEX order_note_idx;\n")
    with_dsn = json.loads(cli("explain", "--dsn", fresh_dsn, "--format", "json", stdin=sql).stdout)
    without = json.loads(cli("explain", "--format", "json", "--assume-rows", "10", stdin=sql).stdout)
    # SET NOT NULL is proven by the check; the type change checks the validated CHECK on note again (measured)
    assert [s["scans"] for s in with_dsn["statements"]] == [[], ["shop_order"], []]
    assert [s["rewrites"] for s in with_dsn["statements"]] == [[], [], []]
    assert with_dsn["statements"][2]["locks"][-1]["relation"] == "shop_order"  # the index's table, from the catalog
    assert without["statements"][0]["scans"] == ["shop_order"] and without["statements"][1]["rewrites"] == ["shop_order"]


def test_lint_migrations_trace_measures_the_pending_migrations(project):
    project.migrate("0001")
    project.fill_items(300)
    run = project.lint("--trace", "--format", "json")
    assert run.code == 0, run.err + run.out
    report = json.loads(run.out)
    traced = [s for s in report["statements"] if not s["skipped"]]
    assert traced and report["matches"] is True
    assert {s["file"] for s in traced} >= {"inventory.0002_item_created_idx"}
    assert any(lock["mode"] == "ShareLock" for s in traced for lock in s["server"]["locks"])
    with psycopg.connect(project.server.dsn()) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'migration_guard_%'").fetchone()
    assert left[0] == 0


def test_trace_text_snapshot(pg_server, tmp_path):
    """The exact text a user reads (review a diff of it like code; UPDATE_SNAPSHOTS=1 regenerates it)."""
    import re

    from tests.test_report_snapshot import check_snapshot

    script = tmp_path / "change.sql"
    script.write_text("ALTER TABLE shop_order ADD COLUMN paid boolean DEFAULT false NOT NULL;\n"
                      "CREATE INDEX CONCURRENTLY order_paid_idx ON shop_order (paid);\n"
                      "ALTER TABLE shop_order ALTER COLUMN note TYPE varchar(10);\n"
                      "CREATE PUBLICATION mg_snapshot_pub FOR TABLE shop_order;\n")
    setup = tmp_path / "setup.sql"
    setup.write_text(SETUP)
    run = cli("trace", str(script), "--setup", str(setup), "--dsn", pg_server.dsn())
    assert run.returncode == 1, run.stderr
    text = re.sub(r"pg_toast_\d+", "pg_toast_<oid>", run.stdout.replace(str(tmp_path), "<tmp>"))
    check_snapshot("trace_sql_file.txt", re.sub(r"PostgreSQL \d+", "PostgreSQL <n>", text))
