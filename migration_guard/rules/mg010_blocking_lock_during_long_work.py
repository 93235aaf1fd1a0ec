"""MG010 blocking-lock-during-long-work: a statement that rewrites, scans or rebuilds indexes of an
existing table while itself holding a lock that blocks its reads or writes (VACUUM FULL, CLUSTER,
SET TABLESPACE, REINDEX, REFRESH MATERIALIZED VIEW, ...), where no more specific rule speaks."""

from __future__ import annotations

from pglast import ast

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import run_sql, split_note

DOC = """\
## What it does
Finds statements whose own lock blocks reads or writes of an existing table while they read
every row of it, copy it or rebuild its indexes: `VACUUM FULL`, `CLUSTER`, `ALTER TABLE ... SET
TABLESPACE / SET LOGGED / SET UNLOGGED / SET EXPRESSION`, `REINDEX` without `CONCURRENTLY`,
`REFRESH MATERIALIZED VIEW` without `CONCURRENTLY`, `ALTER DOMAIN ... ADD CONSTRAINT`, `ATTACH
PARTITION` without a CHECK constraint that proves the bound, a new partition next to a DEFAULT
one. (Adding columns, indexes, constraints and type changes have rules of their own, MG001-MG007.)

## Why is this bad?
The lock is held for the whole copy or scan: on a large table, every query that needs what the
lock blocks waits, for as long as the work takes.

## Example
```sql
VACUUM FULL shop_order;
REINDEX TABLE shop_order;
REFRESH MATERIALIZED VIEW shop_sales;
```

## Use instead
```sql
-- rebuild a bloated table without ACCESS EXCLUSIVE for the copy: pg_repack (or pg_squeeze)
REINDEX TABLE CONCURRENTLY shop_order;                 -- outside a transaction (atomic = False)
REFRESH MATERIALIZED VIEW CONCURRENTLY shop_sales;     -- needs a unique index on the view
ALTER DOMAIN d ADD CONSTRAINT c CHECK (...) NOT VALID; -- then VALIDATE CONSTRAINT c, later
```
"""

# Actions MG001-MG007 judge (their own rules give the specific recipe).
_COVERED = {ActionKind.ADD_COLUMN, ActionKind.CREATE_INDEX, ActionKind.SET_NOT_NULL, ActionKind.ADD_CONSTRAINT,
            ActionKind.ALTER_COLUMN_TYPE, ActionKind.VALIDATE_CONSTRAINT, ActionKind.DML, ActionKind.UNKNOWN}


def check(ctx: StatementContext):
    strongest = max((lock.mode for lock in ctx.effects.locks), default=None)
    seen: set[str] = set()
    for action in ctx.effects.actions:
        if action.kind in _COVERED or not (action.rewrites or action.scans or action.builds_index):
            continue
        table = action.table
        mode = action.mode or strongest  # a lock on an index (ALTER INDEX ... SET TABLESPACE)
        if table is None or table in seen or ctx.is_new(table) or mode is None or not mode.blocks_traffic:
            continue
        seen.add(table)
        work = "rewrite" if action.rewrites else "index" if action.builds_index else "scan"
        doing = {"rewrite": "copies every row of", "index": "rebuilds indexes of", "scan": "reads every row of"}[work]
        yield ctx.finding(
            RULE,
            table=table,
            lock=mode,
            work=work,
            message=f'This statement {doing} "{table}" while holding {mode.label}, which blocks {mode.blocks} '
            "until it ends.",
            recipe=_recipe(ctx),
        )


def _recipe(ctx: StatementContext) -> str:
    node = ctx.parsed.node
    match node:
        case ast.ReindexStmt():
            what = "INDEX" if node.kind.name.endswith("INDEX") else "TABLE"
            name = node.relation.relname if node.relation is not None else "<name>"
            return "\n".join([split_note("a migration of its own, with atomic = False"),
                              run_sql(f"REINDEX {what} CONCURRENTLY {name}", None)])
        case ast.RefreshMatViewStmt():
            return "\n".join(["# needs a unique index on the view (create it CONCURRENTLY first)",
                              run_sql(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {node.relation.relname}", None)])
        case ast.AlterDomainStmt():
            return "\n".join([split_note("add the constraint NOT VALID (instant), then VALIDATE CONSTRAINT in a "
                                         "later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on)")])
        case ast.AlterTableStmt() if any(cmd.subtype.name == "AT_AttachPartition" for cmd in node.cmds):
            return "\n".join([split_note("before attaching: ADD CONSTRAINT ... CHECK (<the partition bound>) NOT "
                                         "VALID, VALIDATE CONSTRAINT, and create the parent's indexes on it "
                                         "CONCURRENTLY; ATTACH PARTITION then reads nothing")])
    return ("# rebuild without holding ACCESS EXCLUSIVE for the copy: pg_repack or pg_squeeze;\n"
            "# otherwise run it in a maintenance window and approve it")


RULE = Rule(
    id="MG010",
    slug="blocking-lock-during-long-work",
    severity=Severity.ERROR,
    summary="a statement rewrites, scans or reindexes an existing table while its own lock blocks reads or writes",
    doc=DOC,
    check=check,
)
