"""The rules added for "fail closed for real" (MG011-MG015, MG905) and the backstop MG010 on forms no
specific rule names, from SQL strings: the dangerous case, the safe alternative, the new-table exemption
and the size threshold. No server needed (the traced proof is tests/locks/test_traced.py)."""

from __future__ import annotations

import pytest

from migration_guard.config import Config
from migration_guard.locks import Catalog
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.stats import TableSizes
from tests.rules.test_rules import CREATE_NEW, SMALL, lint, rules


def test_backstop_speaks_for_forms_no_specific_rule_names():
    for sql in ("ALTER TABLE shop_order ADD CONSTRAINT x EXCLUDE USING btree (total WITH =)",
                "ALTER TABLE shop_order SET ACCESS METHOD heap2",
                "ALTER TABLE shop_order ADD CONSTRAINT pk PRIMARY KEY USING INDEX shop_order_uniq"):
        assert rules(sql) == [("MG010", "error")], sql
        assert rules(sql, rows=SMALL) == [("MG010", "warning")], sql


def test_backstop_stays_silent_where_a_specific_rule_speaks():
    # MG002 has the index build of shop_order: one finding, its own
    assert rules('CREATE INDEX "i" ON "shop_order" ("total")') == [("MG002", "error")]
    # MG006 now has ADD COLUMN ... UNIQUE (Django's AddField(unique=True))
    [finding] = lint("ALTER TABLE shop_order ADD COLUMN code varchar(255) NULL UNIQUE")
    assert finding.rule == "MG006" and '"code"' in finding.message and "CONCURRENTLY" in finding.recipe
    # MG004 has ADD COLUMN ... REFERENCES with a default
    [finding] = lint("ALTER TABLE shop_order ADD COLUMN c bigint DEFAULT 1 NOT NULL REFERENCES shop_customer(id)")
    assert finding.rule == "MG004" and "NOT VALID" in finding.recipe


def test_not_null_column_without_default_blocks_whatever_the_size():
    sql = "ALTER TABLE shop_order ADD COLUMN c integer NOT NULL"
    for rows in (BIG := 5_000_000, SMALL, 1, None):
        assert rules(sql, rows=rows) == [("MG012", "error")], rows
    assert rules("ALTER TABLE shop_order ADD COLUMN c integer DEFAULT 0 NOT NULL") == []
    assert rules("ALTER TABLE shop_order ADD COLUMN c bigint GENERATED ALWAYS AS IDENTITY") == [("MG001", "error")]
    assert "MG012" not in [r for r, _ in rules(CREATE_NEW + "\nALTER TABLE shop_new ADD COLUMN c integer NOT NULL")]
    assert BIG


@pytest.mark.parametrize("sql", [
    "BEGIN;\nCREATE INDEX CONCURRENTLY i ON shop_order (total);\nCOMMIT",
    "BEGIN;\nDROP INDEX CONCURRENTLY i;\nCOMMIT",
    "BEGIN;\nREINDEX TABLE CONCURRENTLY shop_order;\nCOMMIT",
    "BEGIN;\nVACUUM shop_order;\nCOMMIT",
])
def test_concurrently_inside_a_transaction_block_blocks_whatever_the_size(sql):
    for rows in (None, 1):
        assert ("MG013", "error") in rules(sql, rows=rows)
    assert "MG013" not in [r for r, _ in rules(sql.replace("BEGIN;\n", "").replace("\nCOMMIT", ""))]


def test_concurrently_in_an_atomic_migration_blocks():
    from migration_guard.model import Operation, RenderedMigration, Statement
    from migration_guard.pipeline import analyse_migrations

    operation = Operation(0, "RunSQL", "Raw SQL operation", 12)
    sql = 'CREATE INDEX CONCURRENTLY "i" ON "shop_order" ("total")'

    def findings(atomic: bool):
        statement = Statement(sql=sql, migration="shop.0002", operation=operation, in_transaction=atomic,
                              transaction=0 if atomic else None)
        rendered = RenderedMigration("shop", "0002", None, atomic, (statement,))
        [result] = analyse_migrations([rendered], sizes=TableSizes(assume_rows=1), pg_version=16, config=Config())
        return [(f.rule, f.severity.value) for f in result.findings]

    assert findings(True) == [("MG013", "error")]
    assert findings(False) == []


@pytest.mark.parametrize("sql, table", [
    ('UPDATE "shop_order" SET "note" = \'\' WHERE "note" IS NULL', "shop_order"),
    ("UPDATE shop_order SET note = ''", "shop_order"),
    ("DELETE FROM shop_order WHERE total < 0", "shop_order"),
    ("INSERT INTO shop_customer (name) SELECT note FROM shop_order", "shop_order"),
    # what an unbatched RunPython runs: QuerySet.filter(...).update(...) (recorded with --scratch)
    ('UPDATE "shop_order" SET "tax_cents" = (("shop_order"."total_cents" * 20) / 120) WHERE "shop_order"."tax_cents" '
     "IS NULL", "shop_order"),
])
def test_bulk_write_blocks_on_a_large_table(sql, table):
    [finding] = lint(sql)
    assert (finding.rule, finding.table, finding.blocking) == ("MG011", table, True)
    assert "atomic = False" in finding.recipe and "RunPython(backfill" in finding.recipe
    assert [f.severity.value for f in lint(sql, rows=SMALL)] == ["warning"]


@pytest.mark.parametrize("sql", [
    'UPDATE "shop_order" SET "note" = \'\' WHERE "note" IS NULL AND "id" BETWEEN 1 AND 10000',
    "UPDATE shop_order SET note = '' WHERE id >= 1 AND id < 10001",
    "DELETE FROM shop_order WHERE id IN (SELECT id FROM shop_order WHERE total < 0 LIMIT 1000)",
    "INSERT INTO shop_customer (name) SELECT note FROM shop_order WHERE id BETWEEN 1 AND 10000",
    "INSERT INTO shop_customer (name) VALUES ('x')",
    "UPDATE shop_order SET note = '' WHERE id = 5",
    # what the sample project's batched RunPython runs (recorded with --scratch)
    'UPDATE "shop_order" SET "net_cents" = (("shop_order"."total_cents" * 100) / 120) WHERE ("shop_order"."id" >= 1 '
    'AND "shop_order"."id" < 10001 AND "shop_order"."net_cents" IS NULL)',
    'UPDATE "shop_order" SET "note" = \'\' WHERE "shop_order"."id" IN (1, 2, 3)',
])
def test_batched_writes_pass(sql):
    assert rules(sql) == []


def test_bulk_write_recipe_runs_the_statement_one_key_range_at_a_time():
    [finding] = lint("UPDATE shop_order o SET note = 'x%' WHERE o.note IS NULL")
    line = next(line for line in finding.recipe.splitlines() if "cursor.execute(" in line and "%s" in line)
    assert "o.id >= %s AND o.id < %s" in line and "'x%%'" in line  # the alias, and % doubled for execute()


def test_a_statement_a_do_block_builds_at_run_time_gets_words_not_the_models_stand_in():
    """The lock model reads EXECUTE format(...) with a stand-in for the values the block computes; a recipe
    made from that SQL would print the stand-in as if it were the user's statement."""
    [finding] = lint("DO $$ DECLARE i int; BEGIN FOR i IN 1..2 LOOP EXECUTE format("
                     "'UPDATE shop_order SET note = %L WHERE qty = %L', 'x', i); END LOOP; END $$")
    assert finding.rule == "MG011"
    assert "mg_dynamic_value" not in finding.recipe and "RunPython" in finding.recipe
    assert "migration-guard rules MG011" in finding.recipe


def test_bulk_write_on_a_table_created_in_the_plan_is_exempt():
    assert rules(CREATE_NEW + "\nUPDATE shop_new SET note = ''") == []


@pytest.mark.parametrize("sql", ["SELECT my_function()", "CALL archive_orders()", "DO $$ BEGIN PERFORM my_function(); END $$",
                                 "SELECT create_hypertable('shop_order', 'created')"])
def test_opaque_function_calls_block_whatever_the_size(sql):
    for rows in (None, 1):
        assert rules(sql, rows=rows) == [("MG905", "error")]


@pytest.mark.parametrize("sql", ["SELECT set_config('lock_timeout', '2s', false)", "SELECT pg_sleep(0)",
                                 "SELECT setval('shop_order_id_seq', 5)", "SELECT count(*) FROM shop_order"])
def test_built_in_functions_pass(sql):
    assert rules(sql) == []


def _with_invalid(sql: str):
    catalog = (Catalog.empty().with_relations({"shop_order": "table"})
               .with_indexes({"order_total_uniq": "shop_order"}, {"order_total_uniq": ("total",)})
               .with_invalid_indexes(["order_total_uniq"]))
    result = analyse_statements(parse_sql_text(sql, "t.sql"), source="t.sql", sizes=TableSizes(assume_rows=1),
                                pg_version=16, config=Config(), catalog=catalog)
    return [(f.rule, f.severity.value) for f in result.findings]


def test_create_index_over_an_invalid_index():
    assert _with_invalid('CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "order_total_uniq" ON "shop_order" '
                         '("total")') == [("MG014", "error")]
    assert _with_invalid('CREATE UNIQUE INDEX CONCURRENTLY "order_total_uniq" ON "shop_order" ("total")') == [
        ("MG014", "error")]
    # the fix: drop it first, then build it again
    assert _with_invalid('DROP INDEX CONCURRENTLY IF EXISTS "order_total_uniq";\n'
                         'CREATE UNIQUE INDEX CONCURRENTLY "order_total_uniq" ON "shop_order" ("total")') == []


def test_invalid_index_on_a_table_the_migration_locks_is_reported_once():
    assert _with_invalid("ALTER TABLE shop_order ADD COLUMN a text;\nALTER TABLE shop_order ADD COLUMN b text") == [
        ("MG015", "warning")]
    assert _with_invalid("ALTER TABLE shop_customer ADD COLUMN a text") == []


def test_a_finding_about_something_else_does_not_silence_the_backstop():
    # MG015 warns about the invalid index of shop_order; the EXCLUDE's index build there still blocks
    assert _with_invalid("ALTER TABLE shop_order ADD CONSTRAINT x EXCLUDE USING btree (total WITH =)") == [
        ("MG015", "warning"), ("MG010", "warning")]  # every table has 1 row here: a warning, not silence


def test_a_column_of_a_constrained_domain_rewrites_the_table():
    domain = "CREATE DOMAIN shop_posint AS integer CHECK (VALUE > 0);\n"
    assert rules(domain + "ALTER TABLE shop_order ADD COLUMN p shop_posint") == [("MG001", "error")]
    assert rules("CREATE DOMAIN shop_int AS integer;\nALTER TABLE shop_order ADD COLUMN p shop_int") == []
    assert rules("CREATE TYPE shop_mood AS ENUM ('ok');\nALTER TABLE shop_order ADD COLUMN m shop_mood") == []
    assert rules("ALTER TABLE shop_order ADD COLUMN h hstore") == []  # an extension's base type
    # a type nobody knows (no database catalog): it may be such a domain, so fail closed
    [finding] = lint("ALTER TABLE shop_order ADD COLUMN p shop_posint")
    assert finding.rule == "MG001" and "not known without the database's catalog" in finding.message
    known = Catalog.empty().with_relations({"shop_order": "table"}).with_types({"shop_posint": False})
    result = analyse_statements(parse_sql_text("ALTER TABLE shop_order ADD COLUMN p shop_posint", "t.sql"),
                                source="t.sql", sizes=TableSizes(), pg_version=16, config=Config(), catalog=known)
    assert result.findings == ()
