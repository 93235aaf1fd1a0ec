"""What a ``DO`` block can run, as SQL the lock model reads like any other statement.

A ``DO`` block is code: PostgreSQL's own PL/pgSQL parser (pglast's ``parse_plpgsql``) gives its
statements, and :func:`block_statements` lists every SQL statement the block may send, whether or
not a condition or a loop lets it run, and how often: static SQL as written; queries of ``FOR``,
``IF``, assignments, ``RAISE`` and ``PERFORM`` as the SELECTs they are; ``EXECUTE`` of a constant
string or of ``format('constant template', ...)`` as that template, each ``%I``/``%s``/``%L`` filled
with :data:`MARKER` (a value only known at run time). The lock model then reads each one; the caller
keeps the block opaque unless every one is modelled and no marker reaches what the model keeps of it
(a lock, a table, a column or a name the catalog follows): a dynamic name may then only be one that
changes no verdict, such as the constraint renamed by ``ALTER TABLE t RENAME CONSTRAINT %I TO %I``.

Anything else fails closed (:class:`Opaque`): another language, a statement kind not listed here
(cursors, ``COMMIT``, ``CALL``, ``RETURN QUERY``), ``EXECUTE`` of a string built any other way, a
body PL/pgSQL does not compile.
"""

from __future__ import annotations

import re
from typing import Any

import pglast
from pglast import ast
from pglast.enums import ObjectType
from pglast.parser import ParseError

__all__ = ["MARKER", "Opaque", "block_statements", "names_run_time_value"]

# Stands for a value an EXECUTE'd template gets at run time: an identifier and a string at once.
MARKER = "mg_dynamic_value"


class Opaque(Exception):
    """The block runs something the model cannot list; the message says what."""


# PL/pgSQL nodes whose expressions are all the block runs (each walked for its PLpgSQL_expr), and
# the declarations they refer to. Any other node makes the block opaque.
_NODES = frozenset({
    "PLpgSQL_function", "PLpgSQL_stmt_block", "PLpgSQL_exception_block", "PLpgSQL_exception", "PLpgSQL_condition",
    "PLpgSQL_stmt_if", "PLpgSQL_if_elsif", "PLpgSQL_stmt_case", "PLpgSQL_case_when", "PLpgSQL_stmt_loop",
    "PLpgSQL_stmt_while", "PLpgSQL_stmt_fori", "PLpgSQL_stmt_fors", "PLpgSQL_stmt_foreach_a", "PLpgSQL_stmt_exit",
    "PLpgSQL_stmt_return", "PLpgSQL_stmt_raise", "PLpgSQL_raise_option", "PLpgSQL_stmt_assert",
    "PLpgSQL_stmt_assign", "PLpgSQL_stmt_perform", "PLpgSQL_stmt_execsql", "PLpgSQL_stmt_dynexecute",
    "PLpgSQL_stmt_dynfors", "PLpgSQL_stmt_getdiag", "PLpgSQL_diag_item", "PLpgSQL_stmt_call",
    "PLpgSQL_var", "PLpgSQL_rec", "PLpgSQL_row", "PLpgSQL_recfield", "PLpgSQL_type",
})
# Whose "query" expression is SQL built at run time (EXECUTE, FOR ... IN EXECUTE).
_DYNAMIC = frozenset({"PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors"})
# format()'s specifiers: %[argument$][flags][width]type (PostgreSQL's "format" documentation).
_SPECIFIER = re.compile(r"%(?:\d+\$)?-?(?:\d+|\*(?:\d+\$)?)?([sIL%])")
# PLpgSQL_expr.parseMode: 0 a whole statement, 2 an expression, 3-5 an assignment ("x := expr", "r.f := expr").
_STATEMENT, _EXPRESSION, _ASSIGNMENTS = 0, 2, (3, 4, 5)


def block_statements(node: ast.DoStmt) -> list[str]:
    """The SQL statements the ``DO`` block ``node`` may send, in the order they are written; raises
    :class:`Opaque` when that cannot be known."""
    body, language = None, "plpgsql"
    for option in node.args or ():
        if option.defname == "as":
            body = option.arg.sval
        elif option.defname == "language":
            language = option.arg.sval
    if language.lower() != "plpgsql" or body is None:
        raise Opaque(f"a DO block in {language}, not PL/pgSQL")
    tag = "mg"
    while f"${tag}$" in body:
        tag += "_"
    try:
        tree = pglast.parse_plpgsql(f"DO ${tag}${body}${tag}$")
    except ParseError as exc:
        raise Opaque(f"PL/pgSQL does not compile the block ({exc})") from None
    found: list[str] = []
    _walk(tree, found, dynamic=False)
    return found


def _walk(value: Any, found: list[str], *, dynamic: bool) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, found, dynamic=dynamic)
        return
    if not isinstance(value, dict):
        return
    if len(value) == 1:
        [(kind, fields)] = value.items()
        if kind == "PLpgSQL_expr":
            found.extend(_expression(fields, dynamic=dynamic))
            return
        if kind.startswith("PLpgSQL_"):
            if kind not in _NODES:
                raise Opaque(f"the block runs {kind.removeprefix('PLpgSQL_stmt_').removeprefix('PLpgSQL_')}, "
                             "which the lock model does not follow")
            for key, field in fields.items():
                _walk(field, found, dynamic=kind in _DYNAMIC and key == "query")
            return
    for field in value.values():
        _walk(field, found, dynamic=dynamic)


def _expression(fields: dict, *, dynamic: bool) -> list[str]:
    """The SQL one PL/pgSQL expression sends: itself as a SELECT, and for EXECUTE its template."""
    text = fields.get("query", "")
    mode = fields.get("parseMode", _STATEMENT)
    if mode in _ASSIGNMENTS:
        target, assign, value = text.partition(":=")
        text = value if assign else text.partition("=")[2]
        mode = _EXPRESSION
    if mode == _STATEMENT:
        return [text]
    if mode != _EXPRESSION:
        raise Opaque(f"an expression the lock model does not follow ({text[:60]!r})")
    select = f"SELECT {text}"
    return [select, _template(select)] if dynamic else [select]


def _template(select: str) -> str:
    """The statement ``EXECUTE <expression>`` runs: a constant string, or format() of a constant
    template with every specifier filled with :data:`MARKER`."""
    try:
        [raw] = pglast.parse_sql(select)
    except (ParseError, ValueError) as exc:
        raise Opaque(f"EXECUTE of an expression that does not parse ({exc})") from None
    targets = raw.stmt.targetList or ()
    value = targets[0].val if len(targets) == 1 else None
    if isinstance(value, ast.A_Const) and isinstance(value.val, ast.String):
        return value.val.sval
    if (isinstance(value, ast.FuncCall) and [n.sval for n in value.funcname][-1] == "format"
            and [n.sval for n in value.funcname][:-1] in ([], ["pg_catalog"]) and value.args
            and isinstance(value.args[0], ast.A_Const) and isinstance(value.args[0].val, ast.String)):
        return _SPECIFIER.sub(_fill, value.args[0].val.sval)
    raise Opaque("EXECUTE of a string built at run time (not a constant, nor format() of a constant template)")


def _fill(match: re.Match) -> str:
    kind = match.group(1)
    return "%" if kind == "%" else f"'{MARKER}'" if kind == "L" else MARKER



def names_run_time_value(node: ast.Node) -> bool:
    """Whether a value known only at run time (:data:`MARKER`, from a template) is anything in the
    statement ``node`` but a constant or the old or new name of a constraint it renames: any other
    identifier (a table, a column, an index, a type) may change which locks the statement takes."""
    renames_constraint = isinstance(node, ast.RenameStmt) and node.renameType is ObjectType.OBJECT_TABCONSTRAINT
    for name in node:
        value = getattr(node, name)
        if isinstance(value, ast.A_Const):
            continue  # a constant: a value, never a name
        if isinstance(value, str):
            if MARKER in value and not (renames_constraint and name in ("subname", "newname")):
                return True
        elif isinstance(value, ast.Node):
            if names_run_time_value(value):
                return True
        elif isinstance(value, tuple | list):
            if any(isinstance(item, ast.Node) and not isinstance(item, ast.A_Const) and names_run_time_value(item)
                   for item in value):
                return True
    return False
