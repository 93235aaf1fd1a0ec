"""MG031 json-type-instead-of-jsonb: a column of type ``json`` (raw SQL), where ``jsonb`` is what
Django's JSONField and every JSON operator and index expect."""

from __future__ import annotations

from migration_guard.model import ActionKind, Severity
from migration_guard.rules.advice import columns_with_fields, django_app, model_name
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.recipes import q, run_sql

DOC = """\
## What it does
Finds a column created or retyped as `json` (not `jsonb`), in raw SQL. Django's `JSONField` is
always `jsonb`, so this comes from `RunSQL` or a SQL file.

## Why is this bad?
`json` stores the text as written and parses it again on every access; it has no equality operator
(`DISTINCT`, `GROUP BY`, `UNION` fail on it), no containment or key-exists operators and no GIN index
support. Converting it to `jsonb` later rewrites the table under ACCESS EXCLUSIVE.

## Example
```sql
ALTER TABLE "shop_order" ADD COLUMN "extra" json NULL;
```

## Use instead
```python
migrations.AddField("order", "extra", models.JSONField(null=True)),
```
or, in SQL, `jsonb`:
```sql
ALTER TABLE "shop_order" ADD COLUMN "extra" jsonb NULL;
```
"""


def check(ctx: StatementContext):
    for definition, field in columns_with_fields(ctx):
        if definition.type.name != "json" or django_app(ctx):
            continue
        table, column = definition.table, definition.column
        array = "[]" if definition.type.array else ""
        if definition.how == "alter":
            sql = f"ALTER TABLE {q(table)} ALTER COLUMN {q(column)} TYPE jsonb{array} USING {q(column)}::jsonb{array}"
        elif definition.how == "add":
            sql = f"ALTER TABLE {q(table)} ADD COLUMN {q(column)} jsonb{array} NULL"
        else:
            sql = None
        lines = ["# jsonb: indexable, comparable, parsed once on write (Django's JSONField is jsonb)"]
        model = model_name(ctx, table)
        if not array and model is not None and definition.how == "add":
            lines += [f'migrations.AddField({model}, "{field.name if field else column}", models.JSONField(null=True)),',
                      "# or in SQL:"]
        if sql is not None:
            lines.append(run_sql(sql, None, indent=""))
        else:
            lines.append(f"-- in the CREATE TABLE: {q(column)} jsonb{array}")
        yield ctx.finding(
            RULE, table=table, sized=False,
            message=f'"{column}" of "{table}" is json, not jsonb: it cannot be indexed with GIN, compared '
            "with = (DISTINCT, GROUP BY) or searched with @> and ?, and is parsed again on every read.",
            recipe="\n".join(lines),
        )


RULE = Rule(
    id="MG031",
    slug="json-type-instead-of-jsonb",
    severity=Severity.WARNING,
    summary="a column of type json, where jsonb is indexable and comparable",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_TABLE, ActionKind.ADD_COLUMN, ActionKind.ALTER_COLUMN_TYPE}),
    claims=False,
)
