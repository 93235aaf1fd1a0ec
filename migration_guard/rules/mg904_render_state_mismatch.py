"""MG904 render-state-mismatch: a migration rendered against a database that lacks earlier pending
migrations, where rendering read the catalog of a table those migrations change."""

from __future__ import annotations

import hashlib

from migration_guard.model import Finding, Severity
from migration_guard.rules.base import MigrationContext, Rule

DOC = """\
## What it does
When several migrations are pending, only the first sees the database at its own state. Django
reads the catalog to render some operations (the names of constraints an `AlterField` drops and
re-creates); if an earlier pending migration changes what was read, the SQL rendered may differ
from what will run. A lookup of the constraints on some columns (`RemoveField` of a foreign key,
`AlterField`) is stale when an earlier migration changed one of those columns, or the table as a
whole (created it, dropped or renamed a constraint or an index by name, ran a statement the gate
does not model); a change to other columns of the table leaves it as it is.

## Why is this bad?
The gate would judge SQL that is not what runs in production (fail closed: it blocks).

## Example
`0007` adds a foreign key to `shop_order`, `0008` alters it; both pending. Rendering `0008` reads
`shop_order`'s constraints as they are before `0007`.

## Use instead
Lint on a throwaway database that goes through each migration in turn:
`python manage.py lint_migrations --scratch`, or deploy the earlier migration first.
"""


def check_migration(ctx: MigrationContext):
    rendered = ctx.rendered
    if rendered.how != "collect_sql" or rendered.error is not None:
        return
    stale = {}
    for table, read in rendered.introspected:
        if table not in ctx.changed_earlier:
            continue
        changed = ctx.changed_earlier[table]
        if read is None or changed is None:
            stale[table] = ""
        elif read & changed:
            stale[table] = " (" + ", ".join(f'"{c}"' for c in sorted(read & changed)) + ")"
    if not stale:
        return
    names = ", ".join(f'"{t}"{columns}' for t, columns in sorted(stale.items()))
    yield Finding(
        rule=RULE.id,
        slug=RULE.slug,
        severity=ctx.config.severity.get(RULE.id, RULE.severity),
        message=f"Rendering read the catalog of {names}, which an earlier pending migration changes, "
        "so this SQL may not be what will run.",
        migration=rendered.label,
        table=min(stale),
        recipe="# lint with --scratch (a throwaway database that applies each migration in turn)",
        fingerprint=hashlib.sha256(",".join(sorted(stale)).encode()).hexdigest()[:16],
    )


RULE = Rule(
    id="MG904",
    slug="render-state-mismatch",
    severity=Severity.ERROR,
    summary="SQL rendered against a database without earlier pending migrations may be wrong",
    doc=DOC,
    check_migration=check_migration,
)
