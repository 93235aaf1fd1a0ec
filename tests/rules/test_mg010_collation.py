"""MG010 on a type change that only adds a collation to an indexed column (NetBox dcim.0198): the
message says what happens (indexes rebuilt, no row rewritten), names the indexes the database has,
and each step of the recipe runs on a real server, a constraint-backed index included."""

from __future__ import annotations

import ast

import psycopg
import pytest

from migration_guard.config import Config
from migration_guard.locks.introspect import catalog_from_database
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.stats import TableSizes
from tests.rules.test_rules import BIG, Snapshot, TableSize

SCHEMA = """
CREATE COLLATION natural_sort (provider = libc, locale = 'C');
CREATE TABLE dcim_frontport (id serial PRIMARY KEY, device_id int NOT NULL, name varchar(64) NOT NULL);
INSERT INTO dcim_frontport (device_id, name) SELECT g % 100, 'port' || g FROM generate_series(1, 5000) g;
ALTER TABLE dcim_frontport ADD CONSTRAINT dcim_frontport_unique_device_name UNIQUE (device_id, name);
CREATE INDEX dcim_frontport_name_idx ON dcim_frontport (name);
"""
CHANGE = 'ALTER TABLE "dcim_frontport" ALTER COLUMN "name" TYPE varchar(64) COLLATE "natural_sort"'


def _lint(catalog):
    snapshot = Snapshot(pg_version=16, server_version_num=None, taken_at="2026-11-22T00:00:00+00:00",
                        database="prod", tables={"dcim_frontport": TableSize(BIG, BIG * 100, "snapshot")})
    findings = analyse_statements(parse_sql_text(CHANGE, "t.sql"), source="t.sql", sizes=TableSizes(snapshot=snapshot),
                                  pg_version=16, config=Config(), catalog=catalog).findings
    return [f for f in findings if f.rule < "MG030" or f.rule > "MG039"]  # advice (varchar(n) in raw SQL) aside


def _steps(recipe: str) -> list[str]:
    """The SQL of each RunSQL of the recipe, in order (the recipe is Python: it must parse)."""
    tree = ast.parse("[\n" + recipe + "\n]")
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "RunSQL"]


def _filenodes(conn) -> dict[str, int]:
    return dict(conn.execute("SELECT relname, relfilenode FROM pg_class WHERE relkind = 'i' "
                             "AND relname LIKE 'dcim_frontport%'").fetchall())


def test_a_collation_change_names_the_rebuilt_indexes_and_its_recipe_runs(fresh_dsn):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        [finding] = _lint(catalog_from_database(conn))
        assert finding.rule == "MG010" and finding.blocking
        assert finding.message == (
            'Changing the collation of "dcim_frontport"."name" rewrites no row but rebuilds its indexes '
            '"dcim_frontport_name_idx", "dcim_frontport_unique_device_name" while holding ACCESS EXCLUSIVE, which '
            "blocks reads and writes until they are built.")
        assert "<column>" not in finding.recipe and "DROP INDEX CONCURRENTLY \"dcim_frontport_unique" not in finding.recipe
        build, *concurrent, swap = _steps(finding.recipe)
        assert build == ('CREATE INDEX CONCURRENTLY "dcim_frontport_name_idx_new" ON "dcim_frontport" '
                         '("name" COLLATE "natural_sort")')
        assert concurrent == ['CREATE UNIQUE INDEX CONCURRENTLY "dcim_frontport_unique_device_name_new" ON '
                              '"dcim_frontport" ("device_id", "name" COLLATE "natural_sort")']
        # step 1, outside a transaction (atomic = False), as Django runs it
        for sql in (build, *concurrent):
            conn.execute(sql)
        built = _filenodes(conn)
        # step 2, in one transaction: nothing is built under its ACCESS EXCLUSIVE
        with conn.transaction():
            conn.execute(swap)
        after = _filenodes(conn)
        assert after["dcim_frontport_name_idx"] == built["dcim_frontport_name_idx_new"]
        assert after["dcim_frontport_unique_device_name"] == built["dcim_frontport_unique_device_name_new"]
        assert conn.execute("SELECT collation_name FROM information_schema.columns WHERE table_name = "
                            "'dcim_frontport' AND column_name = 'name'").fetchone() == ("natural_sort",)
        assert conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = "
                            "'dcim_frontport_unique_device_name'").fetchone() == ("UNIQUE (device_id, name)",)
        conn.execute("INSERT INTO dcim_frontport (device_id, name) VALUES (1, 'x')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO dcim_frontport (device_id, name) VALUES (1, 'x')")
