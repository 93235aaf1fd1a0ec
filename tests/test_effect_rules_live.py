"""End to end on a real PostgreSQL: the rules that need the live database (invalid indexes, MG014/MG015)
and those the default collect mode must catch without running anything (MG013)."""

from __future__ import annotations

import psycopg
import pytest

CIC_IF_NOT_EXISTS = '''
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunSQL(
        'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "inventory_item_name_uniq" ON "inventory_item" ("name")',
        reverse_sql=migrations.RunSQL.noop)]
'''

ADD_INDEX_CONCURRENTLY = '''
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [AddIndexConcurrently("item", models.Index(fields=["name"], name="inventory_item_name_uniq"))]
'''

CIC_ATOMIC = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunSQL('CREATE INDEX CONCURRENTLY "inventory_item_qty_idx" ON "inventory_item" ("quantity")',
                                    reverse_sql=migrations.RunSQL.noop)]
'''


def _findings(run, rule):
    return [f for f in run.json()["findings"] if f["rule"] == rule]


def test_an_invalid_index_left_by_a_failed_concurrent_build_is_found(project):
    project.migrate("0004")
    project.sql("INSERT INTO inventory_item (name, quantity, created) VALUES ('dup', 1, now()), ('dup', 2, now())")
    with pytest.raises(psycopg.errors.UniqueViolation):  # leaves the index behind, INVALID
        project.sql('CREATE UNIQUE INDEX CONCURRENTLY "inventory_item_name_uniq" ON "inventory_item" ("name")')
    assert project.sql("SELECT indisvalid FROM pg_index WHERE indexrelid = 'inventory_item_name_uniq'::regclass") == [
        (False,)]
    project.add_migration("0005_item_name_uniq", CIC_IF_NOT_EXISTS)
    run = project.lint("--format", "json")
    assert run.code == 1, run.out + run.err
    [again] = _findings(run, "MG014")
    assert again["blocking"] and "INVALID" in again["message"] and "inventory_item_name_uniq" in again["message"]
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "inventory_item_name_uniq"' in again["recipe"]
    assert not _findings(run, "MG015")  # the only statement on the table is about that index (MG014 says it)

    # AddIndexConcurrently renders CREATE INDEX CONCURRENTLY without IF NOT EXISTS: it would fail at deploy
    project.add_migration("0005_item_name_uniq", ADD_INDEX_CONCURRENTLY)
    run = project.lint("--format", "json")
    assert run.code == 1, run.out + run.err
    [again] = _findings(run, "MG014")
    assert again["blocking"] and "fails at deploy" in again["message"]

    # a migration that only locks the table is told about the invalid index (a warning)
    project.add_migration("0005_item_name_uniq", CIC_IF_NOT_EXISTS.replace(
        'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "inventory_item_name_uniq" ON "inventory_item" ("name")',
        'ALTER TABLE "inventory_item" ADD COLUMN "memo" text NULL'))
    run = project.lint("--format", "json")
    assert run.code == 0, run.out + run.err
    [reported] = _findings(run, "MG015")
    assert reported["severity"] == "warning" and reported["table"] == "inventory_item"


def test_create_index_concurrently_in_an_atomic_migration_blocks_in_collect_mode(project):
    project.migrate("0004")
    project.add_migration("0005_item_qty_idx", CIC_ATOMIC)
    run = project.lint("--format", "json", "--assume-rows", "0")
    assert run.code == 1, run.out + run.err
    [finding] = _findings(run, "MG013")
    assert finding["blocking"] and "transaction block" in finding["message"]


def test_the_sql_runpython_runs_is_judged_with_scratch(project):
    project.migrate("0003")
    project.config("[tool.migration_guard]\nthreshold_rows = 1000\n")
    project.fill_items(3000)
    run = project.lint("--scratch", "--format", "json")
    assert run.code == 1, run.out + run.err
    [bulk] = _findings(run, "MG011")  # fill_notes: Item.objects.filter(note__isnull=True).update(note="")
    assert bulk["blocking"] and bulk["table"] == "inventory_item" and bulk["rows"] == 3000
    assert "atomic = False" in bulk["recipe"] and "inventory_item.id >= %(start)s" in bulk["recipe"]
