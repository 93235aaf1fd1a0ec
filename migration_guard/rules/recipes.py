"""Pieces of the pasteable safe alternatives, filled with the user's own names. Shared by rules so
that every recipe writes Django code the same way."""

from __future__ import annotations

from migration_guard.rules.base import StatementContext

__all__ = ["model_ref", "q", "run_sql", "split_note"]


def q(identifier: str) -> str:
    """``shop_order`` -> ``"shop_order"`` (schema-qualified names quoted part by part)."""
    return ".".join(f'"{part.strip(chr(34))}"' for part in identifier.split("."))


def model_ref(ctx: StatementContext, table: str) -> str:
    """How the recipe names the model: the operation's own model name when the statement came from
    a Django operation on it, else the table's name without its app prefix (``shop_order`` ->
    ``"order"``). No comment: the name sits inside a call, where one would swallow the rest of the line."""
    operation = ctx.operation
    if operation is not None and operation.model_name:
        return f'"{operation.model_name.lower()}"'
    bare = table.strip('"').split(".")[-1]
    return f'"{bare.split("_", 1)[-1]}"'


def run_sql(sql: str, reverse: str | None, indent: str = "        ") -> str:
    """A ``migrations.RunSQL(...)`` call, one statement, with its reverse."""
    reverse_text = "migrations.RunSQL.noop" if reverse is None else _literal(reverse)
    return (
        f"{indent}migrations.RunSQL(\n"
        f"{indent}    {_literal(sql)},\n"
        f"{indent}    reverse_sql={reverse_text},\n"
        f"{indent}),"
    )


def split_note(what: str) -> str:
    """The comment heading each migration of a multi-migration recipe."""
    return f"# --- {what} ---"


def _literal(sql: str) -> str:
    if "'" not in sql and "\n" not in sql:
        return f"'{sql}'"
    return repr(sql)
