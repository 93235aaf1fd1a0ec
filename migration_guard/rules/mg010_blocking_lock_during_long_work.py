"""MG010 blocking-lock-during-long-work: the backstop. Any statement that rewrites, scans or builds an
index on an existing table while itself holding a lock that blocks its reads or writes, whatever its
form, on every table where no more specific rule (MG001-MG007, ...) already spoke."""

from __future__ import annotations

from pglast import ast

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import deparse, model_ref, q, reparse, run_sql, separate, split_note

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
that adds a collation to an indexed column (or to a column of a table whose indexes are not known:
the linting database does not have it, or `explain` has no `--dsn`) or re-checks a CHECK constraint.

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
        if ctx.is_materialized_view(table) and not mode.blocks_reads:
            continue
        seen.add(table)
        work = "rewrite" if action.rewrites else "index" if action.builds_index else "scan"
        reindex = isinstance(ctx.node_of(action), ast.ReindexStmt)
        doing = {"rewrite": "copies every row of", "index": "rebuilds indexes of" if reindex else "builds an index on",
                 "scan": "reads every row of"}[work]
        maybe = "may read every row of" if action.detail.get("assumed_default") else doing
        message = (f'This statement {maybe} "{table}" while holding {mode.label}, which blocks {mode.blocks} '
                   f"until it ends ({action.reason}).")
        if action.detail.get("rebuilt"):
            names = [f'"{index}"' for index, _columns, _constraint in action.detail["rebuilt"]]
            its = f"its index {names[0]}" if len(names) == 1 else f"its indexes {', '.join(names)}"
            message = (f'Changing the collation of "{table}"."{action.column}" rewrites no row but rebuilds {its} '
                       f"while holding {mode.label}, which blocks {mode.blocks} until {'it is' if len(names) == 1 else 'they are'} built.")
        elif action.detail.get("assumed_indexes"):
            message = (f'Changing the collation of "{table}"."{action.column}" rewrites no row but rebuilds every index '
                       f"on it while holding {mode.label}, which blocks {mode.blocks} until they are built; its "
                       f'indexes are not known here, so they are assumed (lint against a database that has "{table}", '
                       "or give explain --dsn).")
        yield ctx.finding(RULE, table=table, lock=mode, work=work, message=message, recipe=_recipe(ctx, action))


def _recipe(ctx: StatementContext, action) -> str:
    node = ctx.node_of(action)
    match node:
        case ast.IndexStmt() if action.detail.get("partition_of") and node.idxname:
            return _partitions_recipe(ctx, node, action)
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
        case ast.AlterTableStmt() if action.kind is ActionKind.ALTER_COLUMN_TYPE and action.detail.get("rebuilt"):
            return _collation_recipe(action)
        case ast.AlterTableStmt() if action.kind is ActionKind.ALTER_COLUMN_TYPE and action.detail.get("assumed_indexes"):
            return "\n".join([
                f"# the indexes on {q(action.column)} are not known here: lint against a database that has "
                f"{q(action.table)} for this recipe",
                "# with their names; its shape, for each index <index> on the column (one with an expression or a",
                "# WHERE is rebuilt by the change whatever is built beforehand: drop it CONCURRENTLY before, create",
                "# it again CONCURRENTLY after):",
                _collation_recipe(action, (("<index>", (action.column,), False),))])
        case ast.AlterTableStmt() if action.kind is ActionKind.ALTER_COLUMN_TYPE:
            return "\n".join([split_note("the column's CHECK constraint is checked again under ACCESS EXCLUSIVE"),
                               "# drop the CHECK first, change the type, then add the CHECK back NOT VALID and",
                               "# VALIDATE CONSTRAINT it in a later migration (reads and writes continue)"])
    return ("# rebuild without holding ACCESS EXCLUSIVE for the copy: pg_repack or pg_squeeze;\n"
            "# otherwise run it in a maintenance window and approve it")


def _partitions_recipe(ctx: StatementContext, node, action) -> str:
    """An index of a partitioned table without building it under SHARE: the parent's ON ONLY (it builds
    nothing and stays invalid), each partition's built CONCURRENTLY and attached (the parent's is valid once
    every partition's is), as PostgreSQL names them."""
    partitions = [a.table for a in ctx.effects.actions
                  if a.detail.get("partition_of") and a.detail.get("index") == action.detail.get("index")]
    if any((ctx.catalog.relkind(p) if ctx.catalog is not None else None) == "partitioned table" for p in partitions):
        return ("# partitions that are partitioned in turn: create the index ON ONLY each level, build the leaves' "
                "CONCURRENTLY\n# and ALTER INDEX ... ATTACH PARTITION each level's to the one above")
    parent = node.idxname
    only = reparse(ctx.sql_of(action))
    only.relation.inh = False
    columns = "_".join(e.name if e.name else "expr" for e in node.indexParams)
    steps = []
    for partition in partitions:
        each = reparse(ctx.sql_of(action))
        each.relation.schemaname, _, each.relation.relname = partition.rpartition(".")
        each.relation.schemaname = each.relation.schemaname or None
        each.idxname, each.concurrent = f"{partition.rpartition('.')[2]}_{columns}_idx"[:63], True
        steps += [run_sql(deparse(each), f"DROP INDEX CONCURRENTLY IF EXISTS {q(each.idxname)}", indent=""),
                  run_sql(f"ALTER INDEX {q(parent)} ATTACH PARTITION {q(each.idxname)}", None, indent="")]
    first = run_sql(deparse(only), f"DROP INDEX IF EXISTS {q(parent)}", indent="")
    operation = ctx.operation
    if operation is not None and operation.name == "AddIndex" and operation.definition:
        first = "\n".join([*operation.definition_imports, separate(
            state=[f"migrations.AddIndex({model_ref(ctx, action.detail['partition_of'])}, {operation.definition}),"],
            database=[first])])
    return "\n".join([
        split_note("migration 1: the index of the partitioned table alone (ON ONLY: it builds nothing, and is "
                   "invalid until each partition's is attached)"),
        first,
        split_note("migration 2, with atomic = False: each partition's index, built concurrently, then attached"),
        *steps,
    ])


def _collation_recipe(action, rebuilt=None) -> str:
    """Build each index with the new collation CONCURRENTLY, then swap them in one short step: the
    type change keeps an index whose columns already have the collation (measured: its relfilenode
    stays), and ``UNIQUE USING INDEX`` takes an index only once the column has the index's collation. An
    index with expressions or a WHERE is rebuilt whatever was built beforehand (measured): it is dropped
    before and built again after instead.
    ``rebuilt``: ``(index, columns, backs a constraint)`` of each index (default: the action's)."""
    table, column, collation = q(action.table), q(action.column), q(action.detail["collation"])
    rebuilt = action.detail["rebuilt"] if rebuilt is None else rebuilt
    anyway = set(action.detail.get("rebuilt_anyway", ()))
    computed = []
    for name, _columns, backs in rebuilt:
        if name not in anyway:
            continue
        computed += ([f"# {q(name)} backs a constraint and has an expression or a WHERE: the change rebuilds it "
                      "whatever is built", "# beforehand; run it in a maintenance window and approve it"] if backs
                     else [f"# {q(name)} has an expression or a WHERE: the change rebuilds it whatever is built "
                           "beforehand; drop it", "# CONCURRENTLY before the change and create it again "
                           "CONCURRENTLY after (queries go without it meanwhile)"])
    rebuilt = tuple(entry for entry in rebuilt if entry[0] not in anyway)
    if not rebuilt:
        return "\n".join(computed)
    if any(name.endswith("_pkey") for name, _columns, backs in rebuilt if backs):
        return "\n".join([
            "# the column is in the primary key: foreign keys to it depend on the constraint, which cannot be",
            "# swapped for an index built beforehand without dropping them too; run the change in a maintenance",
            "# window and approve it"])
    others = action.detail.get("other_tables")
    note = ([f"# foreign keys to or from this column ({', '.join(others)}): if one depends on a constraint below,",
             "# the swap cannot drop it; then run the change in a maintenance window and approve it"]
            if others and any(backs for _name, _columns, backs in rebuilt) else [])
    build, swap = [], []
    for name, columns, backs in rebuilt:
        new = q(f"{name[:59]}_new")
        keys = ", ".join(f"{q(c)} COLLATE {collation}" if q(c) == column else q(c) for c in columns)
        build.append(run_sql(f"CREATE {'UNIQUE ' if backs else ''}INDEX CONCURRENTLY {new} ON {table} ({keys})",
                             f"DROP INDEX CONCURRENTLY IF EXISTS {new}"))
        if not backs:
            build.append(f"        # as {q(name)} is: copy its UNIQUE, USING, INCLUDE from SELECT pg_get_indexdef('{name}'::regclass)")
        swap.append(f"ALTER TABLE {table} DROP CONSTRAINT {q(name)}" if backs else f"DROP INDEX {q(name)}")
    swap.append(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {action.detail['new_type']} COLLATE {collation}")
    for name, _columns, backs in rebuilt:
        new = q(f"{name[:59]}_new")
        swap.append(f"ALTER TABLE {table} ADD CONSTRAINT {q(name)} UNIQUE USING INDEX {new}" if backs
                    else f"ALTER INDEX {new} RENAME TO {q(name)}")
    return "\n".join([
        *note,
        *computed,
        split_note("a migration of its own, with atomic = False: the indexes with the new collation, built "
                   "CONCURRENTLY (reads and writes go on)"),
        *build,
        split_note("then, in place of the AlterField: one short ACCESS EXCLUSIVE step that builds nothing (the type "
                   "change keeps indexes that already have the collation)"),
        "        migrations.SeparateDatabaseAndState(",
        "            state_operations=[],  # move your AlterField here",
        "            database_operations=[",
        run_sql("; ".join(swap), None, indent="                "),
        "            ],",
        "        ),",
    ])


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
