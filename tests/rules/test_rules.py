"""Every rule from SQL strings: the dangerous case, its safe alternative, and the new-table
exemption; plus the size threshold. No server needed: the lock model is pure."""

from __future__ import annotations

import re

import pytest

from migration_guard.config import Config
from migration_guard.locks import Catalog
from migration_guard.model import Severity, TableSize
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.rules import ALL_RULES, get_rule
from migration_guard.stats import Snapshot, TableSizes

BIG, SMALL = 5_000_000, 2_000
CREATE_NEW = "CREATE TABLE shop_new (id bigint PRIMARY KEY, customer_id bigint, note text, total int);"


# What the database already knows about shop_order's columns (Django passes it from the project state).
COLUMNS = {("shop_order", "note"): "varchar(100)", ("shop_order", "quantity"): "integer"}


ADVICE = re.compile(r"MG03\d")


def lint(sql: str, *, rows: int | None = BIG, pg_version: int = 16, config: Config | None = None):
    tables = {} if rows is None else {
        "shop_order": TableSize(rows, rows * 100, "snapshot"),
        "shop_customer": TableSize(rows, rows * 100, "snapshot"),
    }
    snapshot = Snapshot(pg_version=pg_version, server_version_num=None, taken_at="2026-11-22T00:00:00+00:00",
                        database="prod", tables=tables)
    result = analyse_statements(parse_sql_text(sql, "t.sql"), source="t.sql", sizes=TableSizes(snapshot=snapshot),
                                pg_version=pg_version, config=config or Config(),
                                catalog=Catalog.empty().with_column_types(COLUMNS))
    # The lock rules' findings: the schema advice (MG030-MG039) on the same SQL is tested in test_advice_rules.py.
    return tuple(f for f in result.findings if not ADVICE.fullmatch(f.rule))


def rules(sql: str, **kwargs) -> list[tuple[str, str]]:
    return [(f.rule, f.severity.value) for f in lint(sql, **kwargs)]


CASES = {
    # rule: (dangerous, safe, same thing on a table created in the plan)
    "MG001": (
        "ALTER TABLE shop_order ADD COLUMN token uuid DEFAULT gen_random_uuid() NOT NULL",
        "ALTER TABLE shop_order ADD COLUMN token uuid NULL",
        "ALTER TABLE shop_new ADD COLUMN token uuid DEFAULT gen_random_uuid() NOT NULL",
    ),
    "MG002": (
        'CREATE INDEX "order_created_idx" ON "shop_order" ("created_at")',
        'CREATE INDEX CONCURRENTLY "order_created_idx" ON "shop_order" ("created_at")',
        'CREATE INDEX "new_note_idx" ON "shop_new" ("note")',
    ),
    "MG003": (
        'ALTER TABLE "shop_order" ALTER COLUMN "note" SET NOT NULL',
        'ALTER TABLE "shop_order" ADD CONSTRAINT "note_nn" CHECK ("note" IS NOT NULL) NOT VALID;\n'
        'ALTER TABLE "shop_order" VALIDATE CONSTRAINT "note_nn";\n'
        'ALTER TABLE "shop_order" ALTER COLUMN "note" SET NOT NULL',
        'ALTER TABLE "shop_new" ALTER COLUMN "note" SET NOT NULL',
    ),
    "MG004": (
        'ALTER TABLE "shop_order" ADD CONSTRAINT "order_customer_fk" FOREIGN KEY ("customer_id") '
        'REFERENCES "shop_customer" ("id") DEFERRABLE INITIALLY DEFERRED',
        'ALTER TABLE "shop_order" ADD CONSTRAINT "order_customer_fk" FOREIGN KEY ("customer_id") '
        'REFERENCES "shop_customer" ("id") DEFERRABLE INITIALLY DEFERRED NOT VALID;\n'
        'ALTER TABLE "shop_order" VALIDATE CONSTRAINT "order_customer_fk"',
        'ALTER TABLE "shop_new" ADD CONSTRAINT "new_customer_fk" FOREIGN KEY ("customer_id") '
        'REFERENCES "shop_customer" ("id") DEFERRABLE INITIALLY DEFERRED',
    ),
    "MG005": (
        'ALTER TABLE "shop_order" ADD CONSTRAINT "total_gte_0" CHECK ("total" >= 0)',
        'ALTER TABLE "shop_order" ADD CONSTRAINT "total_gte_0" CHECK ("total" >= 0) NOT VALID;\n'
        'ALTER TABLE "shop_order" VALIDATE CONSTRAINT "total_gte_0"',
        'ALTER TABLE "shop_new" ADD CONSTRAINT "total_gte_0" CHECK ("total" >= 0)',
    ),
    "MG006": (
        'ALTER TABLE "shop_order" ADD CONSTRAINT "order_number_uniq" UNIQUE ("number")',
        'CREATE UNIQUE INDEX CONCURRENTLY "order_number_uniq" ON "shop_order" ("number");\n'
        'ALTER TABLE "shop_order" ADD CONSTRAINT "order_number_uniq" UNIQUE USING INDEX "order_number_uniq"',
        'ALTER TABLE "shop_new" ADD CONSTRAINT "new_total_uniq" UNIQUE ("total")',
    ),
    "MG007": (
        'ALTER TABLE "shop_order" ALTER COLUMN "quantity" TYPE bigint USING "quantity"::bigint',
        'ALTER TABLE "shop_order" ALTER COLUMN "note" TYPE text',
        'ALTER TABLE "shop_new" ALTER COLUMN "total" TYPE bigint',
    ),
    "MG008": (
        'BEGIN;\nALTER TABLE "shop_customer" ADD COLUMN "vip" boolean NULL;\n'
        'UPDATE "shop_order" SET "note" = \'\' WHERE "note" IS NULL;\nCOMMIT',
        'BEGIN;\nALTER TABLE "shop_customer" ADD COLUMN "vip" boolean NULL;\nCOMMIT;\n'
        'UPDATE "shop_order" SET "note" = \'\' WHERE "note" IS NULL AND "id" BETWEEN 1 AND 10000',
        'BEGIN;\nALTER TABLE "shop_new" ADD COLUMN "vip" boolean NULL;\n'
        'UPDATE "shop_order" SET "note" = \'\' WHERE "note" IS NULL;\nCOMMIT',
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_dangerous_case_blocks_on_a_large_table(rule):
    assert (rule, "error") in rules(CASES[rule][0])


@pytest.mark.parametrize("rule", sorted(CASES))
def test_safe_alternative_passes(rule):
    assert [r for r, _ in rules(CASES[rule][1])] == []


@pytest.mark.parametrize("rule", sorted(CASES))
def test_tables_created_in_the_plan_are_exempt(rule):
    assert rule not in [r for r, _ in rules(CREATE_NEW + "\n" + CASES[rule][2])]


@pytest.mark.parametrize("rule", sorted(set(CASES) - {"MG008"}))
def test_small_tables_only_warn(rule):
    assert (rule, "warning") in rules(CASES[rule][0], rows=SMALL)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_unknown_size_counts_as_large(rule):
    assert (rule, "error") in rules(CASES[rule][0], rows=None)


def test_threshold_in_bytes():
    sql = CASES["MG002"][0]
    assert rules(sql, rows=SMALL) == [("MG002", "warning")]
    assert rules(sql, rows=SMALL, config=Config(threshold_bytes=100_000)) == [("MG002", "error")]


def test_disabled_rule_and_changed_severity():
    sql = CASES["MG002"][0]
    # the backstop still speaks for the effect; disabling it too silences the statement
    assert rules(sql, config=Config(disable=frozenset({"MG002"}))) == [("MG010", "error")]
    assert rules(sql, config=Config(disable=frozenset({"MG002", "MG010"}))) == []
    assert rules(sql, config=Config(severity={"MG002": Severity.WARNING})) == [("MG002", "warning")]


def test_constant_default_does_not_rewrite_but_volatile_does():
    assert rules("ALTER TABLE shop_order ADD COLUMN n int DEFAULT 0 NOT NULL") == []
    assert rules("ALTER TABLE shop_order ADD COLUMN t timestamptz DEFAULT now() NOT NULL") == []
    assert ("MG001", "error") in rules("ALTER TABLE shop_order ADD COLUMN t timestamptz DEFAULT clock_timestamp()")
    assert ("MG001", "error") in rules("ALTER TABLE shop_order ADD COLUMN n bigserial")


def test_findings_carry_names_size_lock_duration_and_recipe():
    [finding] = lint(CASES["MG002"][0])
    assert finding.table == "shop_order" and finding.size.rows == BIG
    assert finding.lock.pg_name == "ShareLock"
    assert finding.duration and finding.duration.startswith("~")
    assert '"order_created_idx"' in finding.message and "CREATE INDEX CONCURRENTLY order_created_idx" in finding.recipe
    assert len(finding.fingerprint) == 16


def test_foreign_key_recipe_is_the_statement_not_valid():
    [finding] = lint(CASES["MG004"][0])
    assert 'DEFERRABLE INITIALLY DEFERRED NOT VALID' in finding.recipe
    assert 'VALIDATE CONSTRAINT "order_customer_fk"' in finding.recipe
    assert '"shop_customer"' in finding.message


def test_runpython_style_opaque_work_is_judged_by_the_locks_it_runs_behind():
    # In raw SQL an UPDATE after a lock stands for the backfill.
    [held] = [f for f in lint(CASES["MG008"][0]) if f.rule == "MG008"]
    assert held.table == "shop_customer" and "ACCESS EXCLUSIVE" in held.message


def test_type_change_with_unknown_old_type_is_assumed_to_rewrite():
    assert ("MG007", "error") in rules('ALTER TABLE "shop_customer" ALTER COLUMN "name" TYPE text')


def test_unparsable_and_unmodelled_statements_block():
    assert ("MG902", "error") in rules("ALTER TABEL shop_order ADD COLUMN x int")
    assert rules("SELEC 1; CREATE INDEX CONCURRENTLY i ON shop_order (a)")[0] == ("MG902", "error")


def test_unmodelled_statement_is_assumed_to_block_everything_it_names():
    [finding] = lint("CREATE PUBLICATION p FOR TABLE shop_order")
    assert (finding.rule, finding.severity) == ("MG903", Severity.ERROR)
    assert finding.table == "shop_order" and "ACCESS EXCLUSIVE" in finding.message
    assert [f.severity for f in lint("CREATE PUBLICATION p FOR TABLE shop_order", rows=SMALL)] == [Severity.WARNING]
    assert [f.rule for f in lint(CREATE_NEW + "\nCREATE PUBLICATION p FOR TABLE shop_new")] == []


# A statement each rule reports, on shop_order: what the rule's page says of its severity (Rule.sized) must be what
# it does on a small table.
SIZE_CASES = {
    **{rule: sqls[0] for rule, sqls in CASES.items() if rule != "MG008"},
    "MG010": 'VACUUM FULL "shop_order"',
    "MG011": 'UPDATE "shop_order" SET "note" = \'\'',
    "MG012": 'ALTER TABLE "shop_order" ADD COLUMN "currency" varchar(3) NOT NULL',
    "MG013": 'BEGIN;\nCREATE INDEX CONCURRENTLY "order_note_idx" ON "shop_order" ("note");\nCOMMIT',
    "MG902": "ALTER TABEL shop_order ADD COLUMN x int",
    "MG903": "CREATE PUBLICATION p FOR TABLE shop_order",
    "MG905": "SELECT shop_backfill_orders()",
    "MG912": "UPDATE shop_order SET note = '" + "x" * 1_000_001 + "' WHERE id = 1",
}


@pytest.mark.parametrize("rule_id", sorted(SIZE_CASES))
def test_a_rule_is_size_aware_exactly_when_its_page_says_so(rule_id):
    rule = get_rule(rule_id)
    assert (rule_id, "error") in rules(SIZE_CASES[rule_id])
    assert (rule_id, "warning" if rule.sized else "error") in rules(SIZE_CASES[rule_id], rows=SMALL)


def _example(rule) -> str:
    return rule.doc.split("## Example", 1)[1].split("## Use instead", 1)[0]


@pytest.mark.parametrize("rule", [rule for rule in ALL_RULES if "```sql" in _example(rule)], ids=lambda rule: rule.id)
def test_the_sql_example_on_a_rule_page_triggers_the_rule(rule):
    """The Example of a rule's documentation (its page in docs/rules, `migration-guard rules RULE`), where it is
    SQL, is reported by that rule on tables of unknown size; order_number_uniq is an INVALID index left by a failed
    concurrent build, as the database would say."""
    sql = re.search(r"```sql\n(.*?)```", _example(rule), re.S).group(1)
    catalog = (Catalog.empty().with_column_types(COLUMNS).with_indexes({"order_number_uniq": "shop_order"})
               .with_invalid_indexes(["order_number_uniq"]))
    sizes = TableSizes(snapshot=Snapshot(pg_version=16, server_version_num=None, taken_at=None, database="prod",
                                         tables={}))
    parsed = parse_sql_text(sql, "example.sql")
    findings = analyse_statements(parsed, source="example.sql", sizes=sizes, pg_version=16, config=Config(),
                                  catalog=catalog).findings
    reported = {finding.statement_index for finding in findings if finding.rule == rule.id}
    assert reported == set(range(len(parsed))), [(f.rule, f.statement_index) for f in findings]


def test_changes_noted_for_a_later_catalog_lookup():
    """MG904's input: what each statement changes of its table, by column where that is all it changes."""
    from migration_guard.pipeline import analyse_migrations
    from migration_guard.model import RenderedMigration, Statement

    def changed(*sql):
        seen = {}

        def check(ctx):
            seen.update(ctx.changed_earlier)
            return ()

        from migration_guard.rules.base import Rule
        probe = Rule(id="MG999", slug="probe", severity=None, summary="", doc="", check_migration=check)
        migrations = [RenderedMigration("a", f"{n:04d}", None, True, (Statement(sql=text, migration=f"a.{n:04d}"),))
                      for n, text in enumerate(sql)] + [RenderedMigration("a", "last", None, True, ())]
        catalog = Catalog.empty().with_indexes({"i": "t"}, {"i": ("a",)})
        analyse_migrations(migrations, sizes=TableSizes(), pg_version=16, config=Config(), rules=[probe], catalog=catalog)
        return seen

    assert changed("ALTER TABLE t ADD COLUMN x int", "ALTER TABLE t RENAME COLUMN a TO b",
                   "CREATE INDEX i ON t (c, d)", "COMMENT ON COLUMN t.e IS 'x'") == {"t": {"x", "a", "b", "c", "d", "e"}}
    for table_wide in ("CREATE INDEX i ON t (lower(name))", "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)",
                       "ALTER TABLE t DROP CONSTRAINT c", "ALTER TABLE t RENAME CONSTRAINT c TO d", "DROP INDEX i",
                       "ALTER TABLE t RENAME TO u", "CREATE TABLE t (a int)"):
        assert changed("ALTER TABLE t ADD COLUMN x int", table_wide).get("t", "absent") is None, table_wide
    assert changed("UPDATE t SET a = 1", "SELECT count(*) FROM t") == {}
