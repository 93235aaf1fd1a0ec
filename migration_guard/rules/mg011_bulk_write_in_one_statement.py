"""MG011 bulk-write-in-one-statement: one UPDATE / DELETE / INSERT ... SELECT over a whole large table."""

from __future__ import annotations

from pglast import ast
from pglast.parser import scan
from pglast.enums import BoolExprType

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import BATCH, batched, deparse, q, reparse, split_note

DOC = """\
## What it does
Finds a single `UPDATE` or `DELETE` on an existing table whose `WHERE` does not bound it to a range
of keys (`id BETWEEN a AND b`, `id >= a AND id < b`, `id IN (...)`, `id IN (SELECT ... LIMIT n)`),
and an `INSERT ... SELECT` that copies a whole existing table (no `LIMIT`, no key range), in a
`RunSQL`, in raw SQL, or run by `RunPython` (recorded with `--scratch`).

## Why is this bad?
One statement is one transaction: it locks every row it changes until it commits, so any other
writer of those rows waits for the whole statement, and in an atomic migration every lock taken
earlier is held as long too. It writes the whole table to the WAL at once (replicas fall behind,
the disk fills) and leaves as many dead rows for VACUUM. A failure at the last row undoes all of it.

## Example
```sql
UPDATE "shop_order" SET "tax_cents" = 0 WHERE "tax_cents" IS NULL;
```

## Use instead
```python
def backfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute('SELECT min("id"), max("id") FROM "shop_order"')
        low, high = cursor.fetchone()
        for start in range(low or 0, (high or 0) + 1, 10_000):  # each batch commits on its own
            cursor.execute('UPDATE "shop_order" SET "tax_cents" = 0 WHERE "tax_cents" IS NULL '
                           'AND "id" >= %s AND "id" < %s', [start, start + 10_000])

class Migration(migrations.Migration):
    atomic = False  # no transaction around the batches
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
```
"""

def check(ctx: StatementContext):
    for action in ctx.effects.actions:
        if action.kind is not ActionKind.DML or action.detail.get("partition_of"):
            continue
        verb = action.detail.get("verb")
        if verb in ("update", "delete") and not action.detail.get("bounded"):
            table = action.table
            if ctx.is_new(table):
                continue
            what = "" if not action.detail.get("where") else " that its WHERE matches (no key range bounds it)"
            message = (f'{verb.upper()} writes every row of "{table}"{what} in one transaction, locking each row it '
                       "changes until it commits.")
        elif verb == "insert" and action.detail.get("source") and not action.detail.get("bounded"):
            existing = [t for t in action.detail["source"] if not ctx.is_new(t)]
            if not existing:
                continue
            table = next((t for t in existing if ctx.is_large(t)), existing[0])
            message = (f'INSERT ... SELECT copies every row of "{table}" into "{action.table}" in one transaction, '
                       "holding its locks until it commits.")
        else:
            continue
        yield ctx.finding(RULE, table=table, lock=action.mode, work="scan", message=message,
                          recipe=_recipe(ctx, action, table))
        return  # one finding per statement (a partitioned table's partitions are the same statement)


def _recipe(ctx: StatementContext, action, source: str) -> str:
    key = (action.detail.get("key") or "id") if source == action.table else "id"
    sql, column, given = _batched(ctx.sql_of(action), source, key)
    if given:  # parameters RunPython passed: recorded as $1, $2, ... without their values (they can be secrets)
        names = ", ".join(f"${n}" for n in range(1, given + 1))
        values = ", ".join(f'"p{n}": ...' for n in range(1, given + 1))
        params = [f"    # the values your RunPython passed for {names} (the gate does not record them):",
                  f"    params = {{{values}}}"]
        bounds = f'{{**params, "start": start, "stop": start + {BATCH:_}}}'
    else:
        params, bounds = [], None
    return "\n".join([
        split_note("a migration of its own, with atomic = False: each batch commits on its own"),
        *batched(source, sql, key=key, params=params, bounds=bounds,
                 comment=f"your statement, one range of {column} at a time:"),
    ])


def _batched(sql: str, table: str, key: str) -> tuple[str, str, int]:
    """(``sql`` with ``key >= %s AND key < %s`` of ``table`` added to its WHERE (an INSERT's: its SELECT's),
    for ``cursor.execute`` (``%`` doubled); the key column as the statement names it; how many parameters
    ``$1 ... $n`` the statement has of its own). With parameters of its own, every placeholder is named:
    ``$k`` is ``%(pk)s``, the bounds ``%(start)s`` and ``%(stop)s`` (a ``$k`` may come twice, or out of order)."""
    given = max((int(sql[t.start + 1:t.end + 1]) for t in scan(sql) if t.name == "PARAM"), default=0)
    node = reparse(sql)
    target = node.selectStmt if isinstance(node, ast.InsertStmt) else node
    relations = [node.relation] if target is node else list(_range_vars(target.fromClause or ()))
    named = next((r for r in relations if table in (r.relname, f"{r.schemaname}.{r.relname}")), None)
    qualifier = (named.alias.aliasname if named is not None and named.alias else table)
    column = f"{q(qualifier)}.{q(key)}"
    bound = reparse(f"SELECT 1 WHERE {column} >= ${given + 1} AND {column} < ${given + 2}").whereClause
    if target.whereClause is None:
        target.whereClause = bound
    else:
        target.whereClause = ast.BoolExpr(boolop=BoolExprType.AND_EXPR, args=(target.whereClause, *bound.args))
    text = deparse(node)
    pieces, last = [], 0
    for token in scan(text):
        if token.name == "PARAM":  # a placeholder, not a '$1' in a string literal
            number = int(text[token.start + 1:token.end + 1])
            pieces += [text[last:token.start].replace("%", "%%"),
                       "%s" if not given else f"%(p{number})s" if number <= given
                       else "%(start)s" if number == given + 1 else "%(stop)s"]
            last = token.end + 1
    pieces.append(text[last:].replace("%", "%%"))
    return "".join(pieces), column, given


def _range_vars(items):
    """The tables of a FROM list, inside its joins too."""
    for item in items:
        if isinstance(item, ast.RangeVar):
            yield item
        elif isinstance(item, ast.JoinExpr):
            yield from _range_vars((item.larg, item.rarg))


RULE = Rule(
    id="MG011",
    slug="bulk-write-in-one-statement",
    severity=Severity.ERROR,
    summary="one UPDATE, DELETE or INSERT ... SELECT writes a whole large table in one transaction",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.DML}),
)
