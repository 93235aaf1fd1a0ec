"""MG033 password-literal-in-sql: a password written as a string literal in a migration's SQL
(``CREATE ROLE ... PASSWORD '...'``, a user mapping's ``password`` option)."""

from __future__ import annotations

from pglast import ast

from migration_guard.model import Severity
from migration_guard.redact import MASK
from migration_guard.rules.base import Rule, StatementContext

DOC = """\
## What it does
Finds a password given as a string literal in SQL: `CREATE ROLE` / `ALTER ROLE` / `CREATE USER` /
`ALTER USER ... PASSWORD '...'`, and the `password` option of `CREATE`/`ALTER USER MAPPING` or
`CREATE`/`ALTER SERVER`. The report never shows the value: migration_guard masks it (`'***'`) in
every statement it prints, in every format.

## Why is this bad?
The migration file is in the repository: the password is in its history for good, readable by
everyone who can clone it, and every environment that runs the migration gets the same one. It also
lands in the server log when statement logging is on.

## Example
```python
migrations.RunSQL("CREATE ROLE reporting LOGIN PASSWORD 's3cret'"),
```

## Use instead
Create the role without a password, and set it where secrets live, at deploy time:
```python
migrations.RunSQL("CREATE ROLE reporting LOGIN", reverse_sql="DROP ROLE reporting"),
```
```sh
psql -c "ALTER ROLE reporting PASSWORD '$REPORTING_PASSWORD'"   # from the deploy's secrets, or \\password
```
A password already committed is compromised: change it.
"""

_ROLE = (ast.CreateRoleStmt, ast.AlterRoleStmt)
_OPTIONS = (ast.CreateUserMappingStmt, ast.AlterUserMappingStmt, ast.CreateForeignServerStmt,
            ast.AlterForeignServerStmt)


def _literal_password(node) -> str | None:
    """What the statement gives a password to (a role, a user mapping, a server), if a literal."""
    if isinstance(node, _ROLE + _OPTIONS):
        for option in node.options or ():
            if isinstance(option, ast.DefElem) and option.defname == "password" and isinstance(option.arg, ast.String):
                if isinstance(node, _ROLE):
                    role = node.role if isinstance(node.role, str) else getattr(node.role, "rolename", None)
                    return f'role "{role}"' if role else "the role"
                if isinstance(node, (ast.CreateUserMappingStmt, ast.AlterUserMappingStmt)):
                    return f'the user mapping for server "{node.servername}"'
                return f'server "{node.servername}"'
    return None


def _setter(node) -> str:
    """The statement that sets the password at deploy time, from the environment."""
    if isinstance(node, _ROLE):
        role = node.role if isinstance(node.role, str) else getattr(node.role, "rolename", None) or "<role>"
        return f"ALTER ROLE {role} PASSWORD '$PASSWORD_FROM_THE_ENVIRONMENT'"
    if isinstance(node, (ast.CreateUserMappingStmt, ast.AlterUserMappingStmt)):
        user = getattr(node.user, "rolename", None) or "CURRENT_USER"
        return f"ALTER USER MAPPING FOR {user} SERVER {node.servername} OPTIONS (SET password '$PASSWORD_FROM_THE_ENVIRONMENT')"
    return f"ALTER SERVER {node.servername} OPTIONS (SET password '$PASSWORD_FROM_THE_ENVIRONMENT')"


def check(ctx: StatementContext):
    target = _literal_password(ctx.parsed.node)
    if target is None:
        return
    yield ctx.finding(
        RULE, table=None, sized=False,
        message=f"The migration sets the password of {target} to a string literal ('{MASK}' here), which is "
        "then in the repository's history for good.",
        recipe="\n".join([
            "# no password in the migration; set it at deploy time, from where secrets live",
            "migrations.RunSQL(<the same statement without PASSWORD '...'>, reverse_sql=...),",
            f"# e.g. psql -c \"{_setter(ctx.parsed.node)}\"",
            "# the committed password is compromised: change it",
        ]),
    )


RULE = Rule(
    id="MG033",
    slug="password-literal-in-sql",
    severity=Severity.WARNING,
    summary="a password written as a string literal in a migration's SQL",
    doc=DOC,
    check=check,
    claims=False,
)
