"""MG920 depends-on-failed-migration: a migration the gate did not analyse because an earlier
migration of the plan that it depends on could not be rendered."""

from __future__ import annotations

import hashlib

from migration_guard.model import Finding, Severity
from migration_guard.rules.base import MigrationContext, Rule

DOC = """\
## What it does
Reports, once each, the migrations that depend (directly or through others) on a migration that
could not be rendered (MG901): the database state they start from is unknown, so the gate did not
analyse them. Migrations that do not depend on the failed one (other apps) are analysed as usual.

## Why is this bad?
What the gate cannot see, it cannot pass (fail closed). This finding is a consequence: fix the
migration that failed and these are analysed again on the next run.

## Example
`billing.0007` fails to render; `billing.0008` and `reports.0003` (which depends on
`billing.0008`) each get one MG920 naming `billing.0007`; `shop.0012` is analysed normally.

## Use instead
Fix the failed migration (see its MG901). To let a deploy through meanwhile, approve each finding
(`migration-guard approve --all-blocking report.json --reason ...`): the approval goes stale when
the failure's message changes.
"""


def check_migration(ctx: MigrationContext):
    rendered = ctx.rendered
    if rendered.failed_before is None:
        return
    yield Finding(
        rule=RULE.id,
        slug=RULE.slug,
        severity=ctx.config.severity.get(RULE.id, RULE.severity),
        message=f"Migration {rendered.label} was not analysed because {rendered.failed_before}, which it depends "
        "on, failed to render.",
        migration=rendered.label,
        recipe=f"# fix {rendered.failed_before} (its MG901 says why it failed); this one is analysed again then",
        fingerprint=hashlib.sha256((rendered.error or "").encode()).hexdigest()[:16],
    )


RULE = Rule(
    id="MG920",
    slug="depends-on-failed-migration",
    severity=Severity.ERROR,
    summary="a migration was not analysed because one it depends on could not be rendered",
    doc=DOC,
    check_migration=check_migration,
)
