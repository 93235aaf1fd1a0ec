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
re-creates); if an earlier pending migration changes that table, the SQL rendered may differ from
what will run.

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
    stale = sorted(rendered.introspected_tables & ctx.tables_changed_earlier)
    if not stale:
        return
    names = ", ".join(f'"{t}"' for t in stale)
    yield Finding(
        rule=RULE.id,
        slug=RULE.slug,
        severity=ctx.config.severity.get(RULE.id, RULE.severity),
        message=f"Rendering read the catalog of {names}, which an earlier pending migration changes, "
        "so this SQL may not be what will run.",
        migration=rendered.label,
        table=stale[0],
        recipe="# lint with --scratch (a throwaway database that applies each migration in turn)",
        fingerprint=hashlib.sha256(",".join(stale).encode()).hexdigest()[:16],
    )


RULE = Rule(
    id="MG904",
    slug="render-state-mismatch",
    severity=Severity.ERROR,
    summary="SQL rendered against a database without earlier pending migrations may be wrong",
    doc=DOC,
    check_migration=check_migration,
)
