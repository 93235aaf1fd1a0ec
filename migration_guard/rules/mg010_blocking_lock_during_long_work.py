"""MG010 blocking-lock-during-long-work: the backstop. Any statement that rewrites, scans or builds an
index on an existing table while itself holding a lock that blocks its reads or writes, whatever its
form, on every table where no more specific rule (MG001-MG007, ...) already spoke."""

from __future__ import annotations

from pglast import ast

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import run_sql, split_note

DOC = """\
## What it does
Finds every statement whose own lock blocks reads or writes of an existing table while it reads
every row of it, copies it or builds an index on it, whatever the statement looks like: the lock
model's effects decide, not the statement's form. It speaks for a table only where no more
specific rule (MG001-MG007, MG012) already did, so each problem is reported once, with the best
message and recipe there is. Among what it catches: `VACUUM FULL`, `CLUSTER`, `ALTER TABLE ... SET
TABLESPACE / SET LOGGED / SET UNLOGGED / SET ACCESS METHOD / SET EXPRESSION`, `REINDEX` and
`REFRESH MATERIALIZED VIEW` without `CONCURRENTLY`, `ALTER DOMAIN ... ADD CONSTRAINT`, `ATTACH
PARTITION` without a CHECK constraint that proves the bound, a new partition next to a DEFAULT one,
`ADD CONSTRAINT ... EXCLUDE`, `ADD PRIMARY KEY USING INDEX` on a nullable column, a type change
that adds a collation to an indexed column or re-checks a CHECK constraint.

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


def check(ctx: StatementContext):
    strongest = max((lock.mode for lock in ctx.effects.locks), default=None)
    seen: set[str] = set()
    for action in ctx.effects.actions:
        table = action.table
        if not (action.rewrites or action.scans or action.builds_index) or table is None or table in seen:
            continue
        if ctx.is_new(table) or ctx.is_claimed(table):
            continue
        # The lock held during the work: the strongest this statement takes on the table (a statement holds
        # every lock to its end), or, for work on an index alone (ALTER INDEX ... SET TABLESPACE), that lock.
        own = [mode for mode in (action.mode, ctx.effects.lock_on(table)) if mode is not None]
        mode = max(own) if own else strongest
        if mode is None or not mode.blocks_traffic:
            continue
        seen.add(table)
        work = "rewrite" if action.rewrites else "index" if action.builds_index else "scan"
        reindex = isinstance(ctx.parsed.node, ast.ReindexStmt)
        doing = {"rewrite": "copies every row of", "index": "rebuilds indexes of" if reindex else "builds an index on",
                 "scan": "reads every row of"}[work]
        maybe = "may read every row of" if action.detail.get("assumed_default") else doing
        yield ctx.finding(
            RULE,
            table=table,
            lock=mode,
            work=work,
            message=f'This statement {maybe} "{table}" while holding {mode.label}, which blocks {mode.blocks} '
            f"until it ends ({action.reason}).",
            recipe=_recipe(ctx, action),
        )


def _recipe(ctx: StatementContext, action) -> str:
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
        case ast.AlterTableStmt() if action.kind is ActionKind.ADD_CONSTRAINT and action.detail.get("contype") in (
                "primary_key", "not_null"):
            column = ", ".join(action.detail.get("columns") or ()) or "<column>"
            return "\n".join([split_note(f"first prove {column} NOT NULL without blocking: ADD CONSTRAINT ... CHECK "
                                          f"({column} IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT in a later "
                                          "migration"),
                               split_note("then SET NOT NULL (it skips the scan) and this statement reads nothing")])
        case ast.AlterTableStmt() if action.kind is ActionKind.ALTER_COLUMN_TYPE and action.detail.get("collation"):
            return "\n".join([split_note("change the collation without rebuilding the index under the lock"),
                               "# 1. create a new index with the new collation CONCURRENTLY (atomic = False):",
                               f"#    CREATE INDEX CONCURRENTLY ... ON {action.table} (<column> COLLATE "
                               f"\"{action.detail['collation']}\")",
                               "# 2. drop the old index CONCURRENTLY; 3. the AlterField then rebuilds nothing"])
        case ast.AlterTableStmt() if action.kind is ActionKind.ALTER_COLUMN_TYPE:
            return "\n".join([split_note("the column's CHECK constraint is checked again under ACCESS EXCLUSIVE"),
                               "# drop the CHECK first, change the type, then add the CHECK back NOT VALID and",
                               "# VALIDATE CONSTRAINT it in a later migration (reads and writes continue)"])
    return ("# rebuild without holding ACCESS EXCLUSIVE for the copy: pg_repack or pg_squeeze;\n"
            "# otherwise run it in a maintenance window and approve it")


RULE = Rule(
    id="MG010",
    slug="blocking-lock-during-long-work",
    severity=Severity.ERROR,
    summary="any statement that rewrites, scans or builds an index on an existing table while its own lock blocks "
            "reads or writes, where no specific rule speaks",
    doc=DOC,
    check=check,
    backstop=True,
)
