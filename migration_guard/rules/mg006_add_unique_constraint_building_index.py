"""MG006 add-unique-constraint-building-index: UNIQUE / PRIMARY KEY that builds its index under ACCESS EXCLUSIVE."""

from __future__ import annotations

from pglast import ast

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext, lock_label
from migration_guard.rules.compat import column_operation
from migration_guard.rules.recipes import (
    added_constraint,
    column_constraint,
    model_ref,
    not_null_steps,
    q,
    run_sql,
    separate,
    set_not_null,
    split_note,
    without_constraints,
)

DOC = """\
## What it does
Finds `ADD CONSTRAINT ... UNIQUE` / `PRIMARY KEY` (Django's `AddConstraint(UniqueConstraint)`,
`unique=True`, `unique_together`) on an existing table when it is not `USING INDEX`, and `ADD COLUMN
... UNIQUE` (Django's `AddField(..., unique=True)`).

## Why is this bad?
The constraint builds its unique index while holding ACCESS EXCLUSIVE: reads and writes wait for
the whole build. A PRIMARY KEY on nullable columns also sets them NOT NULL, which scans.

## Example
```python
migrations.AddConstraint("order", models.UniqueConstraint(fields=["number"], name="order_number_uniq")),
```

## Use instead
```python
# migration 1, with atomic = False: build the index without blocking writes
migrations.RunSQL('CREATE UNIQUE INDEX CONCURRENTLY "order_number_uniq" ON "shop_order" ("number")',
                  reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "order_number_uniq"'),
# migration 2: attach it (brief lock, no build); keep Django's state in step
migrations.SeparateDatabaseAndState(
    state_operations=[migrations.AddConstraint("order", models.UniqueConstraint(fields=["number"], name="order_number_uniq"))],
    database_operations=[migrations.RunSQL(
        'ALTER TABLE "shop_order" ADD CONSTRAINT "order_number_uniq" UNIQUE USING INDEX "order_number_uniq"',
        reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "order_number_uniq"')],
),
```
"""


def check(ctx: StatementContext):
    for action in ctx.actions(ActionKind.ADD_COLUMN, ActionKind.ADD_CONSTRAINT):
        if action.kind is ActionKind.ADD_COLUMN and action.builds_index:
            yield _new_column(ctx, action)
            continue
        contype = action.detail.get("contype")
        if action.kind is not ActionKind.ADD_CONSTRAINT or contype not in {"unique", "primary_key"}:
            continue
        if action.detail.get("using_index"):
            continue
        table, name = action.table, action.detail.get("name") or "<constraint>"
        kind = "primary key" if contype == "primary_key" else "unique constraint"
        yield ctx.action_finding(
            RULE,
            action,
            work="index",
            message=f'Adding {kind} "{name}" builds its index on "{table}" under {lock_label(action)}, blocking reads '
            "and writes.",
            recipe=_recipe(ctx, action, table, name, contype),
        )


def _new_column(ctx: StatementContext, action):
    table, column = action.table, action.column or "?"
    kind = action.detail.get("unique") or "UNIQUE"
    contype = "primary_key" if kind == "PRIMARY KEY" else "unique"
    bare = table.strip('"').split(".")[-1]
    # PostgreSQL's own name for it, as the statement would have made it
    name = action.detail.get("unique_name") or (f"{bare}_pkey" if contype == "primary_key" else f"{bare}_{column}_key")
    constraint = column_constraint(ctx.sql_of(action), column, "PRIMARY" if contype == "primary_key" else "UNIQUE")
    if constraint is not None:
        constraint.keys = (ast.String(sval=column),)
    without = column_operation(ctx, table, column, unique=None, primary_key=None)
    state = column_operation(ctx, table, column, as_operation="AlterField")
    if without is None:
        without = [run_sql(without_constraints(ctx.sql_of(action), column, {"UNIQUE", "PRIMARY"}),
                           f"ALTER TABLE {q(table)} DROP COLUMN {q(column)}", indent="")]
    return ctx.action_finding(
        RULE,
        action,
        work="index",
        message=f'Adding column "{column}" with {kind} builds its index on "{table}" under {lock_label(action)}, '
        "blocking reads and writes.",
        recipe="\n".join([
            split_note(f"migration 1: the column without {kind} (instant)"),
            *without,
            *_steps(table, name, contype, constraint, (column,), 2, state=state),
        ]),
    )


def _recipe(ctx: StatementContext, action, table: str, name: str, contype: str) -> str:
    operation = ctx.operation
    state = None
    if operation is not None and operation.name == "AddConstraint" and operation.definition:
        state = [*operation.definition_imports,
                 f"migrations.AddConstraint({model_ref(ctx, table)}, {operation.definition}),"]
    # a primary key on columns that may hold NULL sets them NOT NULL, which scans: proved first, without one
    nullable = action.detail.get("columns") or () if contype == "primary_key" and action.scans else ()
    return "\n".join(_steps(table, name, contype, added_constraint(ctx.sql_of(action), name), action.detail.get("columns") or (),
                             1, state=state, nullable=nullable))


def _steps(table: str, name: str, contype: str, constraint, columns, first: int, *, state: list[str] | None,
           nullable=()) -> list[str]:
    """The unique index built CONCURRENTLY (with the constraint's INCLUDE and NULLS NOT DISTINCT), NOT NULL
    proved for ``nullable`` columns, then the constraint attached to it (with its DEFERRABLE); Django's
    state, if ``state``, gets those operations."""
    keys = [k.sval for k in constraint.keys] if constraint is not None and constraint.keys else list(columns)
    cols = ", ".join(q(c) for c in keys) or "..."
    include = (f" INCLUDE ({', '.join(q(k.sval) for k in constraint.including)})"
               if constraint is not None and constraint.including else "")
    distinct = " NULLS NOT DISTINCT" if constraint is not None and constraint.nulls_not_distinct else ""
    deferrable = (" DEFERRABLE" if constraint is not None and constraint.deferrable else "") + (
        " INITIALLY DEFERRED" if constraint is not None and constraint.initdeferred else "")
    keyword = "PRIMARY KEY" if contype == "primary_key" else "UNIQUE"
    lines = [
        split_note(f"migration {first}, with atomic = False: build the index concurrently"),
        run_sql(f"CREATE UNIQUE INDEX CONCURRENTLY {q(name)} ON {q(table)} ({cols}){include}{distinct}",
                f"DROP INDEX CONCURRENTLY IF EXISTS {q(name)}", indent=""),
    ]
    number = first + 1
    for column in nullable:
        lines += not_null_steps(table, column, number, [set_not_null(table, column)])
        number += 3
    attach = run_sql(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} {keyword} USING INDEX {q(name)}{deferrable}",
                     f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}", indent="")
    if state is not None:
        attach = "\n".join([*state[:-1], separate(state=state[-1:], database=[attach])])
    return [*lines, split_note(f"migration {number}: attach it (no build; brief lock)"
                               + ("; Django's state gets the migration's own" if state is not None else "")), attach]


RULE = Rule(
    id="MG006",
    slug="add-unique-constraint-building-index",
    severity=Severity.ERROR,
    summary="UNIQUE or PRIMARY KEY without USING INDEX builds an index while blocking reads and writes",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.ADD_CONSTRAINT, ActionKind.ADD_COLUMN}),
)
