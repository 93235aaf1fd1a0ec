"""MG008 lock-held-during-long-work: a traffic-blocking lock kept while later work in the same
transaction runs for a long time."""

from __future__ import annotations

from dataclasses import replace

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import split_note

DOC = """\
## What it does
Finds statements that do long work — rewrite, full scan or index build of a large table, an
UPDATE/DELETE/INSERT ... SELECT backfill of a large table, or `RunPython` (whose duration the gate
cannot know) — after an earlier statement *of the same transaction* took a lock that blocks reads
or writes on an existing table.

## Why is this bad?
Django runs each migration in one transaction unless `atomic = False`, and PostgreSQL keeps every
lock until the transaction ends. An instant `ALTER TABLE` followed by a ten-minute backfill keeps
its ACCESS EXCLUSIVE lock for ten minutes.

## Example
```python
operations = [
    migrations.AddField("order", "note", models.TextField(null=True)),   # ACCESS EXCLUSIVE on shop_order
    migrations.RunPython(backfill_notes),                                 # ... held while this runs
]
```

## Use instead
Put the long work in a migration of its own; a batched backfill in one with `atomic = False`,
so that each batch commits and no lock outlives it.
"""


def check(ctx: StatementContext):
    held = _held_blocking(ctx)
    work = _long_work(ctx) if held else None
    if work is None:
        return
    description, work_table = work
    if work_table is not None and not ctx.is_large(work_table):
        return  # the work is short, so the lock is not held long
    lock, index = max(held, key=lambda item: (item[0].mode, -item[1]))
    finding = ctx.finding(
        RULE,
        table=lock.relation,
        lock=lock.mode,
        message=f'"{lock.relation}" stays locked ({lock.mode.label} from statement {index + 1}, blocking '
        f"{lock.mode.blocks}) while {description} runs, until the transaction commits.",
        recipe="\n".join([
            split_note("move the long work into a migration of its own"),
            "# a batched backfill: a separate migration with atomic = False, committing each batch",
            "# DDL that must precede it: its own (atomic) migration, applied first",
        ]),
        sized=False,
    )
    # Approving it approves those locks: any change to a statement that takes one makes it stale.
    finding = replace(finding, related=tuple(sorted({i for _, i in held})))
    if ctx.is_python and not any(ctx.is_large(entry.relation) for entry, _ in held):
        # RunPython of unknown length behind a lock on small tables only: probably short.
        finding = replace(finding, severity=Severity.WARNING)
    yield finding


def _held_blocking(ctx: StatementContext):
    """Locks held from earlier statements that stop reads or writes on existing tables, where this
    statement does not itself take as strong a lock (its own rules speak for those)."""
    result = []
    for lock, index in ctx.held:
        if not lock.mode.blocks_traffic or lock.relkind != "table" or ctx.is_new(lock.relation):
            continue
        own = ctx.effects.lock_on(lock.relation)
        if own is not None and own >= lock.mode:
            continue
        result.append((lock, index))
    return result


def _long_work(ctx: StatementContext):
    """(description, table) when this statement does long work, else None."""
    if ctx.is_python:
        return ctx.operation.description if ctx.operation else "RunPython", None
    for action in ctx.effects.actions:
        table = action.table
        if table is None or ctx.is_new(table):
            continue
        if action.rewrites:
            return f'a rewrite of "{table}"', table
        if action.builds_index:
            return f'an index build on "{table}"', table
        if action.scans:
            return f'a full scan of "{table}"', table
        if action.kind is ActionKind.DML:
            return f'{action.detail.get("verb", "a write").upper()} on "{table}"', table
    return None


RULE = Rule(
    id="MG008",
    slug="lock-held-during-long-work",
    severity=Severity.ERROR,
    summary="a lock that blocks traffic is held while later work in the same transaction runs long",
    doc=DOC,
    check=check,
)
