"""MG011's recipe, run: the statement one key range at a time, on a real server, with as many
placeholders as values whatever parameters the statement recorded from RunPython had ($1, $2, ...)."""

from __future__ import annotations

import ast

import psycopg
import pytest

from tests.rules.test_rules import lint

ROWS = 25_000  # three batches of 10,000

SCHEMA = f"""
CREATE TABLE shop_order (id serial PRIMARY KEY, note text, total int NOT NULL, tz text);
CREATE TABLE shop_customer (id serial PRIMARY KEY, name text, total int);
INSERT INTO shop_order (note, total, tz)
SELECT CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END, g % 100, (ARRAY['legacy', 'UTC', 'Europe/Rome'])[g % 3 + 1]
FROM generate_series(1, {ROWS}) g;
"""

CASES = {
    "no parameters": ("UPDATE shop_order SET note = 'x%' WHERE note IS NULL", []),
    # healthchecks accounts.0050: the ORM's UPDATE, recorded with --scratch
    "two parameters": ('UPDATE "shop_order" SET "tz" = $1 WHERE "shop_order"."tz" = $2', ["UTC", "legacy"]),
    "five, in the SELECT list and the WHERE": (
        "INSERT INTO shop_customer (name, total) SELECT note || $1, total + $2 FROM shop_order "
        "WHERE total > $3 AND note <> $4 AND tz IN ($5, 'UTC')", ["-copy", 7, 10, "n5", "legacy"]),
    "'$1' literals that are not parameters": (
        "UPDATE shop_order o SET note = '$1 %' || $1 WHERE o.tz = $2 AND o.note IS DISTINCT FROM '$2'",
        ["set", "Europe/Rome"]),
    "repeated and out of order": ("DELETE FROM shop_order WHERE tz = $2 OR note = $1 OR tz = $2", ["n4", "legacy"]),
}


def _recipe_call(recipe: str):
    """The recipe's SQL and the expression it passes as parameters (the module compiles), with the
    parameters it asks the user to fill."""
    tree = ast.parse(compile(recipe, "recipe.py", "exec", ast.PyCF_ONLY_AST))
    compile(recipe, "recipe.py", "exec")
    # the batch's execute (the other one reads the key range)
    [call] = [n for n in ast.walk(tree)
              if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "execute" and len(n.args) == 2]
    filled = [n.value for n in ast.walk(tree)
              if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id == "params"]
    names = [key.value for key in filled[0].keys] if filled else []
    return call.args[0].value, ast.unparse(call.args[1]), names


def _table(conn, table):
    if table == "shop_customer":  # its ids come from a sequence a rollback does not undo
        return conn.execute("SELECT name, total FROM shop_customer ORDER BY name, total").fetchall()
    return conn.execute("SELECT * FROM shop_order ORDER BY id").fetchall()


@pytest.mark.parametrize("case", CASES)
def test_the_recipe_compiles_and_its_batches_do_what_the_statement_does(case, fresh_dsn):
    statement, values = CASES[case]
    [finding] = lint(statement)
    assert finding.rule == "MG011"
    sql, bounds, names = _recipe_call(finding.recipe)
    assert names == [f"p{n}" for n in range(1, len(values) + 1)]
    if values:
        assert "$1, $2" in finding.recipe and "the gate does not record them" in finding.recipe
    table = "shop_customer" if statement.startswith("INSERT") else "shop_order"
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute(SCHEMA)
        conn.commit()
        # the statement in one go, its parameters bound by the server as RunPython's were; rolled back
        before = _table(conn, table)  # (opens the transaction the low-level call runs in)
        result = conn.pgconn.exec_params(statement.encode(), [str(v).encode() for v in values])
        assert result.status == psycopg.pq.ExecStatus.COMMAND_OK, result.error_message
        expected = _table(conn, table)
        conn.rollback()
        assert _table(conn, table) == before
        params = {f"p{n}": v for n, v in enumerate(values, 1)}
        batches = 0
        for start in range(0, ROWS + 1, 10_000):  # the recipe's loop
            conn.execute(sql, eval(bounds, {"params": params, "start": start}))
            batches += 1
        assert batches == 3 and _table(conn, table) == expected != before
