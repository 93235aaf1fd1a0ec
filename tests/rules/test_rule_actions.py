"""A rule that declares the action kinds it looks at is skipped for statements with none of them:
it must find exactly what it finds when called on every statement."""

from __future__ import annotations

from dataclasses import replace

import pytest

from migration_guard.config import Config
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.rules import ALL_RULES
from migration_guard.stats import TableSizes
from tests.locks.cases import CASES

# MG024-MG027 judge only statements of a Django migration (they need its code): raw SQL gives them
# nothing to find; tests/rules/test_compat_rules.py holds them to the same comparison on such statements.
# The lock cases hold little the schema advice (MG030-MG039) speaks of: tests/rules/test_advice_rules.py
# holds it to the same comparison on its own SQL.
DECLARING = [rule for rule in ALL_RULES if rule.actions is not None
             and rule.id not in {"MG024", "MG025", "MG026", "MG027"} and not rule.id.startswith("MG03")]


def _findings(rule, sql: str):
    parsed = parse_sql_text(sql, "cases.sql")
    result = analyse_statements(parsed, source="cases.sql", sizes=TableSizes(), pg_version=18, config=Config(),
                                rules=[rule])
    return [(f.rule, f.statement_index, f.message) for f in result.findings]


@pytest.mark.parametrize("rule", DECLARING, ids=lambda rule: rule.id)
def test_declared_actions_skip_only_statements_it_finds_nothing_in(rule):
    found = 0
    for case in CASES:
        sql = case.sql  # alone: its tables are not created in the script, so nothing is exempt as new
        try:
            declared = _findings(rule, sql)
        except Exception:  # SQL of a version pglast's parser does not take: the same either way
            continue
        assert declared == _findings(replace(rule, actions=None), sql), case.sql
        found += bool(declared)
    assert found  # the rule found something in the cases, so the comparison says something


def test_most_rules_declare_their_actions():
    assert len(DECLARING) >= 7
