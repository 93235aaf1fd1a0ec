"""MG901 unrenderable-migration: a migration the gate could not render to SQL."""

from __future__ import annotations

import hashlib

from migration_guard.model import Finding, Severity
from migration_guard.rules.base import MigrationContext, Rule

DOC = """\
## What it does
Reports a migration whose SQL the gate could not produce: it failed to import, an operation raised
while rendering, or it failed to apply on the scratch database.

## Why is this bad?
The gate cannot judge what it cannot see, so it blocks (fail closed). A migration that does not
render here will usually not apply in production either.

## Example
An `AlterField` rendered against a database that does not have the constraint it expects:
`ValueError: Found wrong number (0) of constraints for shop_order(customer_id)`.

## Use instead
Fix the migration, or lint it on a throwaway database brought to the right state:
`python manage.py lint_migrations --scratch`.
"""


def check_migration(ctx: MigrationContext):
    rendered = ctx.rendered
    if rendered.error is None or rendered.failed_before is not None or rendered.missing_feature is not None:
        return  # not rendered because an earlier one failed (MG920), or the gate's server lacks a feature (MG921)
    if rendered.how == "collect_sql":
        step = "fix it, or lint on a throwaway database at the right state with --scratch"
    else:
        step = "fix it: it failed to apply on the scratch database, so it would fail in production too"
    yield Finding(
        rule=RULE.id,
        slug=RULE.slug,
        severity=ctx.config.severity.get(RULE.id, RULE.severity),
        message=f"Migration {rendered.label} could not be rendered: {rendered.error}",
        migration=rendered.label,
        recipe=f"# {step}",
        fingerprint=hashlib.sha256(rendered.error.encode()).hexdigest()[:16],
    )


RULE = Rule(
    id="MG901",
    slug="unrenderable-migration",
    severity=Severity.ERROR,
    summary="a migration could not be rendered to SQL, so it could not be checked",
    doc=DOC,
    check_migration=check_migration,
)
