"""MG008 lock-held-during-long-work: a traffic-blocking lock kept while later work in the same
transaction runs for a long time."""

from __future__ import annotations

from dataclasses import replace

from migration_guard.model import ActionKind, RelationLock, Severity
from migration_guard.rules.base import Rule, StatementContext, TransactionContext, claim_key
from migration_guard.rules.recipes import split_note

DOC = """\
## What it does
Finds the window from the first lock that blocks reads or writes on an existing table to the end
of its transaction, when long work runs inside it: a rewrite, full scan or index build of a large
table, an UPDATE/DELETE/INSERT ... SELECT backfill of a large table, or `RunPython` (whose
duration the gate cannot know; `RunPython.noop` and functions with an empty body do nothing and
are not work). One finding per transaction lists all that work. A lock is not reported again for
a statement whose own rule already blocks it on that table (MG002 for an index build, ...): that
rule's recipe takes the work out of the window.

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


def check_transaction(tx: TransactionContext):
    """One finding per transaction: the locks that block traffic from the first of them to the
    commit, and the long work that runs while they are held. A lock is left out for a statement
    whose own blocking finding already names its table (that rule's recipe removes the hazard)."""
    locks: dict[str, tuple[RelationLock, int]] = {}  # table -> (strongest lock held, statement taking it)
    work: list[tuple[StatementContext, str]] = []
    lockers: set[int] = set()  # every statement taking one of those locks
    for ctx, findings in tx.statements:
        held = _held_blocking(ctx, findings)
        described = _long_work(ctx) if held else None
        if described is None:
            continue
        description, work_table = described
        if work_table is not None and not ctx.is_large(work_table):
            continue  # the work is short, so the lock is not held long
        work.append((ctx, description))
        for lock, index in held:
            lockers.add(index)
            known = locks.get(lock.relation)
            if known is None or (lock.mode, -index) > (known[0].mode, -known[1]):
                locks[lock.relation] = (lock, index)
    if not work:
        return
    first = work[0][0]
    # Named: a large table before a small one (the size is what makes the window a hazard), then the
    # strongest lock, then the earliest.
    lock, index = max(locks.values(), key=lambda item: (first.is_large(item[0].relation), item[0].mode, -item[1]))
    others = sorted(set(locks) - {lock.relation})
    also = f" (and {_names(others)})" if others else ""
    doing = "; ".join(f"{description} ({ctx.place})" for ctx, description in work)
    taken = next((ctx.place for ctx, _ in tx.statements if ctx.index == index), "an earlier statement")
    finding = first.finding(
        RULE,
        table=lock.relation,
        lock=lock.mode,
        message=f'"{lock.relation}"{also} stays locked ({lock.mode.label} from {taken}, blocking '
        f"{lock.mode.blocks}) until the transaction commits, while long work runs: {doing}.",
        recipe="\n".join([
            split_note("move the long work into a migration of its own"),
            "# a batched backfill: a separate migration with atomic = False, committing each batch",
            "# DDL that must precede it: its own (atomic) migration, applied first",
        ]),
        sized=False,
    )
    # Approving it approves those locks and that work: a change to any of these statements makes it stale.
    related = lockers | {ctx.index for ctx, _ in work[1:]}
    finding = replace(finding, related=tuple(sorted(related)))
    if (RULE.id not in first.config.severity and all(ctx.is_python for ctx, _ in work)
            and not any(first.is_large(table) for table in locks)):
        # RunPython of unknown length behind locks on small tables only: probably short (a severity set in
        # the configuration wins, as it does over every rule's size).
        finding = replace(finding, severity=Severity.WARNING, below_threshold=True)
    yield finding


def _names(tables: list[str]) -> str:
    quoted = [f'"{table}"' for table in tables[:3]]
    return ", ".join(quoted) + (f" and {len(tables) - 3} more" if len(tables) > 3 else "")


def _held_blocking(ctx: StatementContext, findings):
    """Locks held from earlier statements that stop reads or writes on existing tables, where this
    statement does not itself take as strong a lock and no blocking finding of its own names the
    table (its own rules speak for those)."""
    spoken = {claim_key(f.table) for f in findings if f.table and f.severity is Severity.ERROR}
    result = []
    for lock, index in ctx.held:
        if not lock.mode.blocks_traffic or lock.relkind != "table" or ctx.is_new(lock.relation):
            continue
        own = ctx.effects.lock_on(lock.relation)
        if (own is not None and own >= lock.mode) or claim_key(lock.relation) in spoken:
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
    check_transaction=check_transaction,
)
