"""MG008: one finding per transaction for the window from the first blocking lock to the commit,
listing the long work inside it, and never for a lock the statement's own rule already blocks."""

from __future__ import annotations

from tests.rules.test_rules import lint

ADD_CUSTOMER = 'ALTER TABLE "shop_customer" ADD COLUMN "vip" boolean NULL;'
BACKFILL = 'UPDATE "shop_order" SET "note" = \'\' WHERE "note" IS NULL;'
INDEX_ORDER = 'CREATE INDEX "order_note_idx" ON "shop_order" ("note");'


def mg008(sql: str, **kwargs):
    return [f for f in lint(sql, **kwargs) if f.rule == "MG008"]


def test_one_finding_per_transaction_lists_all_the_long_work():
    sql = f"BEGIN;\n{ADD_CUSTOMER}\n{BACKFILL}\n{BACKFILL}\nDELETE FROM shop_order WHERE note = '';\nCOMMIT"
    [finding] = mg008(sql)
    assert finding.table == "shop_customer" and finding.statement_index == 2
    # Placed by the line of the SQL file, as explain shows each statement (the JSON's statement_index
    # counts from 0 and is not in the message).
    assert "(line 3)" in finding.message and "(line 4)" in finding.message and "(line 5)" in finding.message
    assert "DELETE" in finding.message and "from line 2" in finding.message
    # Its approval covers every statement of the window: the lock and all the work.
    assert finding.related == (1, 3, 4)


def test_each_transaction_is_its_own_window():
    sql = f"BEGIN;\n{ADD_CUSTOMER}\n{BACKFILL}\nCOMMIT;\nBEGIN;\n{ADD_CUSTOMER}\n{BACKFILL}\nCOMMIT"
    assert [f.statement_index for f in mg008(sql)] == [2, 6]


def test_a_lock_the_statements_own_rule_already_blocks_is_not_repeated():
    # ACCESS EXCLUSIVE on shop_order from the ADD COLUMN, then an index build on shop_order: MG002
    # blocks the build on that table, and its recipe (CONCURRENTLY, own migration) ends the window.
    sql = f'BEGIN;\nALTER TABLE "shop_order" ADD COLUMN "x" int NULL;\n{INDEX_ORDER}\nCOMMIT'
    assert [f.rule for f in lint(sql)] == ["MG002"]


def test_a_lock_on_another_table_is_still_reported_next_to_the_own_rule():
    sql = f"BEGIN;\n{ADD_CUSTOMER}\n{INDEX_ORDER}\nCOMMIT"
    assert sorted(f.rule for f in lint(sql)) == ["MG002", "MG008"]
    [finding] = mg008(sql)
    assert finding.table == "shop_customer" and 'an index build on "shop_order"' in finding.message


def test_several_locked_tables_are_named_in_one_finding():
    sql = (f"BEGIN;\n{ADD_CUSTOMER}\nALTER TABLE shop_order ADD COLUMN y int NULL;\n"
           "UPDATE shop_item SET n = 1;\nUPDATE shop_item SET n = 2;\nCOMMIT")
    [finding] = mg008(sql)
    assert finding.message.startswith('"shop_customer" (and "shop_order") stays locked'), finding.message
    assert finding.related == (1, 2, 4)


def test_the_finding_names_the_large_locked_table_not_the_first_small_one():
    # NetBox ipam.0073: a small table locked first, then the 2M-row one; the finding named the small
    # table ("0 rows"), so its reader took a real hazard for a false alarm.
    from migration_guard.config import Config
    from migration_guard.locks import Catalog
    from migration_guard.model import TableSize
    from migration_guard.parse import parse_sql_text
    from migration_guard.pipeline import analyse_statements
    from migration_guard.stats import Snapshot, TableSizes

    snapshot = Snapshot(pg_version=16, server_version_num=None, taken_at="2026-11-22T00:00:00+00:00",
                        database="prod", tables={"shop_customer": TableSize(10, 8192, "snapshot"),
                                                 "shop_order": TableSize(5_000_000, 500_000_000, "snapshot")})
    sql = (f"BEGIN;\n{ADD_CUSTOMER}\nALTER TABLE shop_order ADD COLUMN y int NULL;\n"
           "UPDATE shop_item SET n = 1;\nCOMMIT")
    result = analyse_statements(parse_sql_text(sql, "t.sql"), source="t.sql", sizes=TableSizes(snapshot=snapshot),
                                pg_version=16, config=Config(), catalog=Catalog.empty())
    [finding] = [f for f in result.findings if f.rule == "MG008"]
    assert finding.table == "shop_order" and finding.message.startswith('"shop_order" (and "shop_customer")')
