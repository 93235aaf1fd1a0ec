"""A third-party database backend whose schema editor hands Django statement objects of its own:
django-pg-zero-downtime-migrations (from PyPI, the ``test`` extra), on a real server. Its editor
turns one statement into several (``NOT VALID`` then ``VALIDATE``, ``CREATE INDEX CONCURRENTLY``
then ``USING INDEX``), wraps the ACCESS EXCLUSIVE ones in ``SET lock_timeout``/``statement_timeout``
and back to ``'0ms'``, runs every migration outside a transaction, and takes a duplicate back out
of ``collected_sql``. The gate must judge exactly the SQL that backend runs."""

from __future__ import annotations

import json
import re

# the test extra installs the backend: without it these tests fail, never skip
import django_zero_downtime_migrations  # noqa: F401
import psycopg
import pytest

from tests.test_lint_migrations import _finding

SETTINGS = {"ZERO_DOWNTIME_MIGRATIONS_LOCK_TIMEOUT": "2s", "ZERO_DOWNTIME_MIGRATIONS_STATEMENT_TIMEOUT": "5s"}

CODE_AND_FOREIGN_KEY = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.AddField("item", "code", models.CharField(max_length=20, null=True, unique=True)),
        migrations.AlterField("item", "warehouse", models.ForeignKey(null=True, on_delete=models.CASCADE,
                                                                     to="inventory.warehouse")),
    ]
'''

DROP_FOREIGN_KEY = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_code_and_foreign_key")]
    operations = [migrations.RemoveField("item", "warehouse")]
'''


@pytest.fixture
def zero_downtime(project):
    project.env["FIXTURE_DB_ENGINE"] = "django_zero_downtime_migrations.backends.postgres"
    project.env["FIXTURE_SETTINGS"] = json.dumps(SETTINGS)
    project.add_migration("0005_code_and_foreign_key", CODE_AND_FOREIGN_KEY)
    return project


def _statements(run, migration: str) -> list[dict]:
    [found] = [m for m in run.json()["migrations"] if m["migration"] == migration]
    assert found["error"] is None, found["error"]
    return found["statements"]


def _sqlmigrate(project, name: str) -> list[str]:
    """What ``sqlmigrate`` prints (the backend's own collect_sql), one statement each."""
    run = project.manage("sqlmigrate", "inventory", name)
    assert run.code == 0, run.err
    text = "\n".join(line for line in run.out.splitlines()
                     if line.strip() and not line.startswith("--") and line not in ("BEGIN;", "COMMIT;"))
    return [s.strip() for s in re.split(r";\s*", text) if s.strip()]


def test_the_gate_judges_the_sql_the_backend_runs(zero_downtime):
    zero_downtime.migrate("0004")
    collect = zero_downtime.lint("--format", "json")
    scratch = zero_downtime.lint("--scratch", "--format", "json")
    for run in (collect, scratch):
        assert not _finding(run, "MG901"), run.out
        [migration] = run.json()["migrations"]
        assert migration["atomic"] is False  # the backend runs it without a transaction, whatever the file says
    statements = _statements(collect, "inventory.0005_code_and_foreign_key")
    sql = [s["sql"] for s in statements]
    assert sql == [s["sql"] for s in _statements(scratch, "inventory.0005_code_and_foreign_key")]
    assert sql == _sqlmigrate(zero_downtime, "0005")
    assert not any(s["in_transaction"] for s in statements)
    # one AddField(unique=True): a column, then a unique index built concurrently and attached to it
    add = sql.index('ALTER TABLE "inventory_item" ADD COLUMN "code" varchar(20) NULL')
    assert sql[add - 2:add] == ["SET statement_timeout TO '5s'", "SET lock_timeout TO '2s'"]
    unique = next(s for s in statements if s["sql"].startswith("CREATE UNIQUE INDEX CONCURRENTLY"))
    assert unique["locks"] == [{"relation": "inventory_item", "relkind": "table", "mode": "ShareUpdateExclusiveLock"}]
    assert any(s.endswith("UNIQUE USING INDEX \"" + unique["sql"].split('"')[1] + '"') for s in sql)
    # a foreign key added NOT VALID, then validated without blocking writes
    validate = next(s for s in statements if "VALIDATE CONSTRAINT" in s["sql"])
    assert validate["scans"] == ["inventory_item"]
    assert {lock["mode"] for lock in validate["locks"]} == {"ShareUpdateExclusiveLock", "RowShareLock"}


RAW_ALTER = """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_code_and_foreign_key")]
    operations = [
        migrations.RunSQL("ALTER TABLE inventory_item ADD COLUMN raw integer NULL", migrations.RunSQL.noop),
    ]
"""

WRAPPED_THEN_RAW = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_raw_alter")]
    operations = [
        migrations.AddField("item", "wrapped", models.IntegerField(null=True)),
        migrations.RunSQL("ALTER TABLE inventory_item ADD COLUMN raw_too integer NULL", migrations.RunSQL.noop),
    ]
"""


def test_the_backends_lock_timeouts_bound_only_the_statements_they_wrap(zero_downtime):
    zero_downtime.add_migration("0006_raw_alter", RAW_ALTER)
    zero_downtime.add_migration("0007_wrapped_then_raw", WRAPPED_THEN_RAW)
    zero_downtime.migrate("0004")
    zero_downtime.config("[tool.migration_guard]\npreflight_max_age_seconds = 0\n")
    holder = psycopg.connect(zero_downtime.dsn)
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE inventory_item IN SHARE MODE")  # an old transaction every ALTER waits for
        run = zero_downtime.lint("--format", "json", "--assume-rows", "0")
    finally:
        holder.close()
    waits = {f["migration"]: f for f in _finding(run, "MG009")}
    # The backend sets lock_timeout just before each ALTER TABLE it issues: that wait is bounded.
    assert waits["inventory.0005_code_and_foreign_key"]["severity"] == "warning"
    assert "lock_timeout of 2s" in waits["inventory.0005_code_and_foreign_key"]["message"]
    # Then it sets lock_timeout back to '0ms', which is no limit at all: a RunSQL after it would queue
    # every query on the table behind the holder for as long as the holder lives.
    assert waits["inventory.0006_raw_alter"]["severity"] == "error"
    # A migration with both: its worst wait decides.
    assert waits["inventory.0007_wrapped_then_raw"]["severity"] == "error"
    statements = _statements(run, "inventory.0007_wrapped_then_raw")
    worst = statements[waits["inventory.0007_wrapped_then_raw"]["statement_index"]]["sql"]
    assert worst == "ALTER TABLE inventory_item ADD COLUMN raw_too integer NULL"
    assert run.code == 1


def test_a_constraint_dropped_twice_while_collecting_is_judged_once(zero_downtime):
    zero_downtime.add_migration("0006_drop_foreign_key", DROP_FOREIGN_KEY)
    zero_downtime.migrate("0005")
    collect = zero_downtime.lint("--format", "json")
    scratch = zero_downtime.lint("--scratch", "--format", "json")
    sql = [s["sql"] for s in _statements(collect, "inventory.0006_drop_foreign_key")]
    assert sql == [s["sql"] for s in _statements(scratch, "inventory.0006_drop_foreign_key")]
    assert sql == _sqlmigrate(zero_downtime, "0006")
    assert sum("DROP CONSTRAINT" in s for s in sql) == 1, sql
