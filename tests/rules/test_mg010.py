"""MG010 blocking-lock-during-long-work: the dangerous case, its safe alternative, the new-table
exemption and the size threshold, from SQL strings (the lock model is pure)."""

from __future__ import annotations

import pytest

from tests.rules.test_rules import SMALL, lint, rules


@pytest.mark.parametrize("sql", [
    "VACUUM FULL shop_order",
    "CLUSTER shop_order USING shop_order_pkey",
    "REINDEX TABLE shop_order",
    "ALTER TABLE shop_order SET TABLESPACE fast",
    "ALTER TABLE shop_order SET UNLOGGED",
])
def test_long_work_under_a_blocking_lock_blocks_on_a_large_table(sql):
    assert rules(sql) == [("MG010", "error")]


def test_the_message_names_the_table_the_lock_and_what_it_blocks():
    (finding,) = lint("REINDEX TABLE shop_order")
    assert finding.message.startswith('This statement rebuilds indexes of "shop_order" while holding SHARE, which '
                                      "blocks writes until it ends (REINDEX rebuilds every index of")
    assert "REINDEX TABLE CONCURRENTLY shop_order" in finding.recipe


@pytest.mark.parametrize("sql", [
    "REINDEX TABLE CONCURRENTLY shop_order",
    "VACUUM shop_order",
    "ANALYZE shop_order",
    "TRUNCATE shop_order",
])
def test_the_safe_alternatives_pass(sql):
    assert rules(sql) == []


def test_a_table_created_in_the_plan_is_exempt():
    assert rules("CREATE TABLE shop_new (id bigint); ALTER TABLE shop_new SET TABLESPACE fast") == []


def test_a_small_table_gets_a_warning():
    assert rules("VACUUM FULL shop_order", rows=SMALL) == [("MG010", "warning")]


def test_reindex_of_an_index_whose_table_is_unknown_fails_closed():
    assert rules("REINDEX INDEX shop_order_pkey") == [("MG903", "error")]
    assert rules("REINDEX INDEX CONCURRENTLY shop_order_pkey") == []


def test_specific_rules_keep_their_own_statements():
    # a rewriting type change is MG007's, not MG010's too
    assert rules('ALTER TABLE shop_order ALTER COLUMN quantity TYPE bigint') == [("MG007", "error")]
