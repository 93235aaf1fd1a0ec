"""``bench/each_traced.py``'s sorting of statements (the bench itself runs outside CI): what counts
as dangerous from a trace, and how the gate's blocking findings are set next to it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "bench" / "each_traced.py"
_spec = importlib.util.spec_from_file_location("each_traced", _PATH)
each_traced = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(each_traced)


def _server(locks, rewrites=(), index_builds=(), scans=None):
    return {"locks": [{"relation": r, "mode": m, "created": c} for r, m, c in locks], "rewrites": list(rewrites),
            "index_builds": list(index_builds), "seq_scans": scans or {}}


STATEMENTS = [
    # sql, server, blocking rules, in the migration's transaction
    ("CREATE TABLE t (id int)", _server([("t", "AccessExclusiveLock", True)]), [], True),
    ("CREATE INDEX t_idx ON t (id)", _server([("t", "ShareLock", False)], index_builds=["t"], scans={"t": 1}), [],
     True),
    ("CREATE INDEX o_idx ON o (id)", _server([("o", "ShareLock", False)], index_builds=["o"]), ["MG002"], True),
    ("ALTER TABLE o ALTER a TYPE bigint", _server([("o", "AccessExclusiveLock", False)], rewrites=["o"]), [], True),
    ("CREATE INDEX CONCURRENTLY c ON p (a)", _server([("p", "ShareUpdateExclusiveLock", False)],
                                                     index_builds=["p"]), ["MG901"], False),
    # a backfill of o while the transaction still holds ACCESS EXCLUSIVE on it from the ALTER above
    ("UPDATE o SET a = 1", _server([("o", "RowExclusiveLock", False)], scans={"o": 1}), ["MG008"], True),
    # the same on p, outside any transaction: its own ROW EXCLUSIVE blocks neither reads nor writes
    ("UPDATE p SET a = 1", _server([("p", "RowExclusiveLock", False)], scans={"p": 1}), ["MG008"], False),
    ("-- RunPython f", None, ["MG008"], True),
]


def test_dangerous_statements_blocked_passed_and_false_alarms():
    lint = {"migrations": [{"migration": "a.0001", "atomic": True, "statements": [
                {"index": i, "sql": sql, "in_transaction": in_transaction}
                for i, (sql, _, _, in_transaction) in enumerate(STATEMENTS)]}],
            "findings": [{"migration": "a.0001", "statement_index": i, "rule": rule, "blocking": True}
                         for i, (_, _, rules, _) in enumerate(STATEMENTS) for rule in rules]
            + [{"migration": "a.0001", "statement_index": None, "rule": "MG904", "blocking": True},
               {"migration": "a.0001", "statement_index": 2, "rule": "MG010", "blocking": False}]}
    trace = {"statements": [{"file": "a.0001", "sql": sql, "server": server,
                             "skipped": None if server else "Python code"} for sql, server, _, _ in STATEMENTS]}
    figures = each_traced.classify(lint, trace)
    assert figures["statements"] == 8 and figures["untraced"] == 1
    # t was created by the same migration: indexing it is not dangerous; o existed before it
    assert figures["dangerous"] == 3 and figures["dangerous_blocked"] == 2
    assert [p["sql"] for p in figures["silent_passes"]] == ["ALTER TABLE o ALTER a TYPE bigint"]
    # neither SHARE UPDATE EXCLUSIVE nor ROW EXCLUSIVE blocks reads or writes
    assert figures["false_alarms_by_rule"] == {"MG008": 1, "MG901": 1}
    assert figures["blocking_on_dangerous_by_rule"] == {"MG002": 1, "MG008": 1}
    assert figures["blocking_on_untraced_by_rule"] == {"MG008": 1}
    assert figures["migration_level_blocking_by_rule"] == {"MG904": 1}
    assert figures["not_compared"] == []


def test_migrations_rendered_differently_are_not_compared_but_constants_may_differ():
    lint = {"migrations": [{"migration": "a.0001", "statements": [{"index": 0, "sql": "SELECT 1 FROM t"}]},
                           {"migration": "a.0002", "statements": [{"index": 0, "sql": "SELECT 1 FROM t"}]}],
            "findings": []}
    trace = {"statements": [{"file": "a.0001", "sql": "SELECT 1 FROM u", "server": _server([]), "skipped": None},
                            {"file": "a.0002", "sql": "SELECT 2 FROM t", "server": _server([]), "skipped": None}]}
    figures = each_traced.classify(lint, trace)
    assert figures["not_compared"] == ["a.0001"] and figures["statements"] == 1
