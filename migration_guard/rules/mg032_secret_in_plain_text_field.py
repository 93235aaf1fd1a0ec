"""MG032 secret-in-plain-text-field: a column whose name says it holds a password, secret, token or
key, stored as plain text or bytes."""

from __future__ import annotations

import re

from migration_guard.model import ActionKind, FieldFacts, Severity
from migration_guard.redact import MASK
from migration_guard.rules.advice import columns_with_fields, django_app, model_name
from migration_guard.rules.base import Rule, StatementContext
from migration_guard.rules.compat import field_call

DOC = """\
## What it does
Finds a new field (or raw SQL column) whose name says it holds a secret (`password`, `secret`,
`token`, `api_key`, `private_key`, ...) stored as `CharField`, `TextField` or `BinaryField`
(`varchar`, `text`, `bytea`). Names that say the value is already derived (`password_hash`,
`token_digest`, `token_prefix`, `token_expires`) are not reported, nor is Django's password-hash
pattern: a `CharField(max_length=128)` (`varchar(128)`), the length of `make_password()`'s hashes
(`AbstractBaseUser.password`), which the schema cannot tell from a plain value; nor are fields of
other classes (an encrypted field stores ciphertext).

## Why is this bad?
Whoever reads the table — a replica, a backup, a log of slow queries, a support engineer with read
access, an SQL injection — reads every user's secret, usable as it is. A secret the application only
checks (a password, an API token it issued) needs only a hash; one it must send elsewhere (a
third-party API key) needs encryption with a key kept outside the database.

## Example
```python
migrations.AddField("integration", "api_key", models.CharField(max_length=64)),
```

## Use instead
A secret the application only checks: store its hash, compare with `check_password`:
```python
migrations.AddField("integration", "api_key_hash", models.CharField(max_length=128)),
# integration.api_key_hash = make_password(key)        (django.contrib.auth.hashers)
# check_password(presented, integration.api_key_hash)
```
A secret the application must read back: an encrypted field (ciphertext in the column, the key in
the environment or a secrets manager), e.g. a Fernet-encrypted field.
"""

_SECRET = re.compile(r"password|passwd|passphrase|secret|token|api_?key|private_?key|access_?key", re.IGNORECASE)
# Words that say the column holds something derived from the secret, or about it, not the secret.
_DERIVED = frozenset({"hash", "hashed", "digest", "salt", "prefix", "suffix", "hint", "last4", "mask", "masked",
                      "expires", "expiry", "expiration", "type", "kind", "name", "length", "url", "scope", "sent",
                      "count", "version", "id", "encrypted", "enc", "fingerprint", "label"})
_PLAIN_FIELDS = frozenset({"django.db.models.CharField", "django.db.models.TextField", "django.db.models.BinaryField"})
_PLAIN_TYPES = frozenset({"varchar", "text", "bpchar", "bytea"})


def holds_secret(name: str) -> bool:
    """Whether a field or column name says it holds a secret as it is."""
    if not _SECRET.search(name):
        return False
    words = set(re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", name.lower()))
    return not words & _DERIVED


def _password_hash(field: FieldFacts | None, max_length: int | None) -> bool:
    """Django's password pattern: a ``CharField(max_length=128)``, the column ``make_password()``'s hashes
    are stored in (``AbstractBaseUser.password``); the schema cannot tell a hash from the value, so the
    pattern is taken as a hash."""
    return max_length == 128 and (field is None or field.path == "django.db.models.CharField")


def check(ctx: StatementContext):
    for definition, field in columns_with_fields(ctx):
        if definition.how == "alter" or django_app(ctx):
            continue
        name = field.name if field is not None else definition.column
        if not holds_secret(name) or definition.type.name not in _PLAIN_TYPES:
            continue
        if field is not None and field.path not in _PLAIN_FIELDS:
            continue  # an encrypted or hashing field class
        length = field.max_length if field is not None else (definition.type.mods[0] if definition.type.mods else None)
        if _password_hash(field, length):
            continue
        table = definition.table
        kind = field.path.rsplit(".", 1)[-1] if field is not None else definition.type.text
        yield ctx.finding(
            RULE, table=table, sized=False,
            message=f'"{name}" of "{table}" looks like a secret stored as plain {kind}: anyone who can read the '
            "table, a replica or a backup can use it as it is.",
            recipe=_recipe(ctx, table, name, field),
        )


def _masked(field: FieldFacts) -> FieldFacts:
    """The field with its default values masked: a default secret is a secret too."""
    kwargs = tuple((key, f"'{MASK}'" if key in ("default", "db_default") else value) for key, value in field.kwargs)
    return FieldFacts(name=field.name, path=field.path, args=field.args, kwargs=kwargs)


def _recipe(ctx: StatementContext, table: str, name: str, field: FieldFacts | None) -> str:
    model = model_name(ctx, table)
    store = (f'migrations.AddField({model}, "{name}_hash", models.CharField(max_length=128)),' if model is not None
             else f'-- "{name}_hash" varchar(128) instead of "{name}"')
    lines = ["# a secret the application only checks (a password, a token it issued): keep only its hash",
             store,
             f"# obj.{name}_hash = make_password(value); check_password(presented, obj.{name}_hash)"
             "  (django.contrib.auth.hashers)",
             "# a secret it must read back (a third-party key): an encrypted field instead of "
             + (field_call(_masked(field)) if field is not None else "this column") + ",",
             "# its key outside the database (environment, secrets manager)"]
    return "\n".join(lines)


RULE = Rule(
    id="MG032",
    slug="secret-in-plain-text-field",
    severity=Severity.WARNING,
    summary="a field named like a password, secret, token or key stored as plain text",
    doc=DOC,
    check=check,
    actions=frozenset({ActionKind.CREATE_TABLE, ActionKind.ADD_COLUMN}),
    claims=False,
)
