"""The release-pipeline gate against a live database: least privilege, never more than ACCESS
SHARE, pre-flight for sessions holding conflicting locks, deploy-time approvals, several
databases, and the embedded CI flow."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.test_lint_migrations import SMALL_THRESHOLD, _finding

RELEASE_DOC = Path(__file__).resolve().parent.parent / "docs" / "ci-and-release.md"


def _role_sql() -> str:
    """The least-privilege role SQL exactly as docs/ci-and-release.md documents it."""
    text = RELEASE_DOC.read_text()
    match = re.search(r"<!-- role-sql -->\n```sql\n(.*?)```", text, re.S)
    assert match, "docs/ci-and-release.md documents the read-only role between <!-- role-sql --> and a ```sql block"
    return match.group(1)


def test_the_documented_read_only_role_is_enough(project):
    project.migrate("0001")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    sql = _role_sql().replace("your_database", project.dbname).replace("CHANGE-ME", "secret")
    project.sql(sql)
    run = project.lint("--format", "json", env={"FIXTURE_DB_USER": "migration_guard"})
    assert run.code == 1, run.err
    assert _finding(run, "MG002")[0]["rows"] == 3000
    # The role cannot write, so the gate could not have either: read-only by default, and without
    # the privilege even when a transaction asks to write.
    dsn = project.server.dsn(project.dbname).replace("user=postgres", "user=migration_guard")
    with psycopg.connect(dsn) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO inventory_item (name, created) VALUES ('x', now())")
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TRANSACTION READ WRITE")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO inventory_item (name, created) VALUES ('x', now())")


def test_the_gate_takes_nothing_stronger_than_access_share(project):
    project.migrate("0001")
    project.fill_items(100)
    tables = [r[0] for r in project.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    holder = psycopg.connect(project.dsn)
    try:
        # EXCLUSIVE allows only ACCESS SHARE alongside it: any stronger lock the gate asked for would
        # wait and fail on its lock_timeout.
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE " + ", ".join(f'"{t}"' for t in tables) + " IN EXCLUSIVE MODE")
        started = time.monotonic()
        run = project.lint("--format", "json")
        assert run.code in (0, 1), run.err
        assert time.monotonic() - started < 30
    finally:
        holder.rollback()
        holder.close()


def test_preflight_reports_a_session_holding_a_conflicting_lock(project):
    project.migrate("0001")
    project.fill_items(100)
    idle = psycopg.connect(project.dsn, application_name="report-job")
    try:
        idle.execute("BEGIN")
        idle.execute("SELECT count(*) FROM inventory_item").fetchone()  # ACCESS SHARE, idle in transaction
        young = project.lint("inventory", "0003", "--format", "json")
        [finding] = _finding(young, "MG009")
        assert finding["severity"] == "warning" and young.code == 0
        assert "report-job" in finding["message"] and "idle in transaction" in finding["message"]
        assert finding["table"] == "inventory_item" and finding["lock"] == "AccessExclusiveLock"
        project.config("[tool.migration_guard]\npreflight_max_age_seconds = 0\n")
        old = project.lint("inventory", "0003", "--format", "json")
        assert old.code == 1 and _finding(old, "MG009")[0]["blocking"]
        # A SHARE UPDATE EXCLUSIVE migration would not wait for ACCESS SHARE: nothing to report.
        project.add_migration("0005_concurrently", '''
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [AddIndexConcurrently("item", models.Index(fields=["name"], name="item_name_idx"))]
''')
    finally:
        idle.close()
    project.migrate("0004")
    idle = psycopg.connect(project.dsn)
    try:
        idle.execute("BEGIN")
        idle.execute("SELECT count(*) FROM inventory_item").fetchone()
        concurrent = project.lint("--format", "json")
        assert _finding(concurrent, "MG009") == []
    finally:
        idle.close()


def test_operator_approval_for_this_run_only(project):
    project.migrate("0001")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    run = project.lint("inventory", "0002", "--approve", "inventory.0002_item_created_idx:MG002",
                       "--reason", "maintenance window", "--format", "json")
    assert run.code == 0, run.out + run.err
    finding = _finding(run, "MG002")[0]
    assert finding["approval"].startswith("approved for this run by") and "maintenance window" in finding["approval"]
    assert [a["status"] for a in run.json()["approvals"]] == ["used"]
    assert not (project.root / "migration-approvals.toml").exists()
    again = project.lint("inventory", "0002")
    assert again.code == 1
    missing_reason = project.lint("--approve", "inventory.0002_item_created_idx:MG002")
    assert missing_reason.code == 2 and "--reason" in missing_reason.err
    bad_rule = project.lint("--approve", "inventory.0002_item_created_idx:MG777", "--reason", "x")
    assert bad_rule.code == 2 and "MG777" in bad_rule.err


def test_several_databases_each_with_its_own_sizes_and_router(project, pg_server):
    analytics = f"{project.dbname}_analytics"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{analytics}"')
    try:
        env = {"FIXTURE_DB2_NAME": analytics}
        assert project.manage("migrate", "inventory", "0001", env=env).code == 0
        assert project.manage("migrate", "inventory", "0001", "--database", "analytics", env=env).code == 0
        project.config(SMALL_THRESHOLD)
        project.fill_items(3000)
        run = project.lint("--all-databases", "--format", "json", env=env)
        assert run.code == 1, run.err
        report = run.json()
        assert [d["alias"] for d in report["databases"]] == ["default", "analytics"]
        by_db = {(m["database"], m["migration"]): m for m in report["migrations"]}
        assert by_db[("default", "inventory.0002_item_created_idx")]["status"] == "blocked"
        # The router keeps Item off analytics: its AddIndex renders to nothing there.
        assert by_db[("analytics", "inventory.0002_item_created_idx")]["statements"] == []
        text = project.lint("--all-databases", env=env).out
        assert "inventory.0002_item_created_idx [default]  BLOCKED" in text
        assert "inventory.0002_item_created_idx [analytics]  OK" in text
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{analytics}" WITH (FORCE)')


def test_embedded_ci_flow_needs_no_database_service(project):
    git = lambda *a: subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *a],
                                    cwd=project.root, check=True, capture_output=True, text=True)
    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "base")
    project.add_migration("0005_item_quantity_big", '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AlterField("item", "quantity", models.BigIntegerField(null=True))]
''')
    # The configured database does not exist: --embedded must not need it.
    run = project.lint("--since", "main", "--embedded", "--format", "json",
                       env={"FIXTURE_DB_HOST": "/nonexistent-socket-dir"})
    assert run.code == 1, run.out + run.err
    assert [m["migration"] for m in run.json()["migrations"]] == ["inventory.0005_item_quantity_big"]
    assert _finding(run, "MG007")[0]["size_source"] == "unknown"


def test_an_old_snapshot_is_reported(project, tmp_path):
    project.migrate("0001")
    dump = project.cli("stats", "dump", "--dsn", project.dsn, "--output", str(tmp_path / "s.json"))
    assert dump.code == 0, dump.err
    path = tmp_path / "s.json"
    path.write_text(re.sub(r'"taken_at": "[^"]+"', '"taken_at": "2020-01-01T00:00:00+00:00"', path.read_text()))
    run = project.lint("--stats", str(path), "--format", "json")
    assert any("days old" in note and "stats dump" in note for note in run.json()["notes"]), run.out


def test_a_pending_create_model_with_a_foreign_key_to_a_busy_table(project):
    project.migrate("0004")
    project.fill_items(100)
    project.add_migration("0005_shelf", '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.CreateModel(
            name="Shelf",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("item", models.ForeignKey(on_delete=models.CASCADE, to="inventory.item")),
            ],
        ),
    ]
''')
    idle = psycopg.connect(project.dsn, application_name="writer")
    try:
        idle.execute("BEGIN")
        idle.execute("UPDATE inventory_item SET note = 'x' WHERE id = 1")  # ROW EXCLUSIVE, idle in transaction
        run = project.lint("--format", "json")
    finally:
        idle.close()
    assert run.code == 0, run.out + run.err
    [migration] = run.json()["migrations"]
    locks = {(l["relation"], l["mode"]) for s in migration["statements"] for l in s["locks"]}
    assert ("inventory_item", "ShareRowExclusiveLock") in locks  # the FK reaches the busy table
    # The new table is nobody's concern; the writer on inventory_item is: SHARE ROW EXCLUSIVE waits for it.
    [finding] = _finding(run, "MG009")
    assert finding["table"] == "inventory_item" and finding["severity"] == "warning"


def test_a_lock_timeout_set_by_the_migration_bounds_the_wait(project):
    project.migrate("0004")
    project.config("[tool.migration_guard]\npreflight_max_age_seconds = 0\n")
    project.add_migration("0005_with_lock_timeout", '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.RunSQL("SET LOCAL lock_timeout = '3s'", migrations.RunSQL.noop),
        migrations.AddField("item", "sku", models.TextField(null=True)),
    ]
''')
    idle = psycopg.connect(project.dsn)
    try:
        idle.execute("BEGIN")
        idle.execute("SELECT count(*) FROM inventory_item").fetchone()
        run = project.lint("--format", "json")
    finally:
        idle.close()
    [finding] = _finding(run, "MG009")
    assert finding["severity"] == "warning"
    assert re.search(r"lock_timeout of '?3s'?, then the migration fails", finding["message"]), finding["message"]
    assert run.code == 0, run.out
