"""What the lock model's statement handlers share: the :class:`_Context` effects are collected in,
relation names as written, SQL printed back (once per shape), and fast AST searches.

The handlers live in one module per statement family; :mod:`migration_guard.locks.analyze` dispatches
to them and documents the conventions they follow.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ConstrType
from pglast.visitors import Visitor

from migration_guard.locks.catalog import Catalog
from migration_guard.locks.facts import Fact, fact
from migration_guard.locks.modes import LockMode
from migration_guard.model import Action, ActionKind, Effects, RelationLock
from migration_guard.parse import deparse


_AT = AlterTableType


_CT = ConstrType


# -- collecting effects ------------------------------------------------------------------------


@dataclass
class _Context:
    pg_version: int
    catalog: Catalog
    locks: dict[str, tuple[str, LockMode]] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    known: bool = True
    needs_no_transaction: bool = False

    def fact(self, key: str) -> Fact:
        found = fact(key, self.pg_version)
        if found is None:
            raise LookupError(f"no fact {key!r} for PostgreSQL {self.pg_version}")
        return found

    def holds(self, key: str) -> bool:
        return fact(key, self.pg_version) is not None

    def lock(self, relation: str | None, mode: LockMode | None, relkind: str = "table") -> None:
        if not relation or mode is None:
            return
        current = self.locks.get(relation)
        if current is None or mode > current[1]:
            self.locks[relation] = (relkind, mode)

    def act(self, kind: ActionKind, table: str | None, fact_: Fact | None, reason: str, *,
            column: str | None = None, rewrites: bool | None = None, scans: bool | None = None,
            builds_index: bool | None = None, mode: LockMode | None = None, **detail: Any) -> None:
        if table and self.catalog.is_created(table):
            detail["new_table"] = True
        self.actions.append(Action(
            kind=kind,
            table=table,
            mode=mode if mode is not None else (fact_.mode if fact_ else None),
            column=column,
            rewrites=fact_.rewrites if rewrites is None and fact_ else bool(rewrites),
            scans=fact_.scans if scans is None and fact_ else bool(scans),
            builds_index=fact_.builds_index if builds_index is None and fact_ else bool(builds_index),
            reason=reason,
            detail=detail,
        ))

    def effects(self) -> Effects:
        return Effects(
            locks=tuple(RelationLock(name, relkind, mode) for name, (relkind, mode) in self.locks.items()),
            actions=tuple(self.actions),
            known=self.known,
            needs_no_transaction=self.needs_no_transaction,
        )


def _q(name: str | None) -> str:
    return f'"{name}"'


def _name(rangevar: ast.RangeVar) -> str:
    """A relation's name as written: schema-qualified only when the SQL qualifies it."""
    return f"{rangevar.schemaname}.{rangevar.relname}" if rangevar.schemaname else rangevar.relname


def _dotted(names) -> str:
    return ".".join(n.sval for n in names)


def _sql(node: Any) -> str:
    """``node`` printed back as SQL. The same small nodes (type names, constants, ``x IS NOT NULL``)
    come back over and over in a long script and a RawStream costs much more than its output, so
    those are printed once per shape (the same output as RawStream's, which reads nothing else)."""
    try:
        shape = _shape(node)
    except _NoShape:
        return deparse(node)
    sql = _PRINTED.get(shape)
    if sql is None:
        if len(_PRINTED) >= 20_000:
            _PRINTED.clear()
        sql = _PRINTED[shape] = deparse(node)
    return sql


class _NoShape(Exception):
    """A node outside :data:`_SHAPED`: printed each time."""


# Node classes _sql prints once per shape; what they print depends only on their attributes below.
_SHAPED = frozenset({ast.A_Const, ast.A_Expr, ast.BitString, ast.Boolean, ast.ColumnRef, ast.Float, ast.Integer,
                     ast.NullTest, ast.String, ast.TypeCast, ast.TypeName})


_PRINTED: dict[tuple, str] = {}


def _shape(value: Any) -> tuple:
    """An exact key of what a node prints (its class and attributes, not where it was written)."""
    if isinstance(value, ast.Node):
        cls = type(value)
        if cls not in _SHAPED:
            raise _NoShape
        return (cls, *[_shape(getattr(value, name, None)) for name in cls.__slots__ if name != "location"])
    if isinstance(value, tuple):
        return (tuple, *[_shape(item) for item in value])
    if value is None or type(value) in (str, int, float, bool) or isinstance(value, enum.Enum):
        return (type(value), value)
    raise _NoShape


# -- searching the AST -------------------------------------------------------------------------


class _Search(Visitor):
    """A Visitor that only collects (its ``visit_*`` methods return nothing and read no ancestors):
    the same breadth-first walk as pglast's, without the ancestry chain pglast builds for every
    node and the method lookup it makes on every call (together most of a short statement's cost)."""

    _by_class: dict[type, dict[type, Any]] = {}

    def __call__(self, node):
        if not isinstance(node, (tuple, ast.Node)):
            raise ValueError("Bad argument, expected a ast.Node instance or a tuple")
        methods = self._by_class.get(type(self))
        if methods is None:
            methods = self._by_class[type(self)] = {
                getattr(ast, name[6:]): getattr(type(self), name)
                for name in dir(type(self)) if name.startswith("visit_") and hasattr(ast, name[6:])
            }
        todo = deque([node])
        while todo:
            value = todo.popleft()
            for sub in value if isinstance(value, tuple) else (value,):
                if isinstance(sub, ast.Node):
                    method = methods.get(type(sub))
                    if method is not None:
                        method(self, None, sub)
                    todo.extend(child for child in map(sub.__getattribute__, sub)
                                if isinstance(child, (tuple, ast.Node)))
                elif isinstance(sub, tuple):
                    todo.extend(item for item in sub if isinstance(item, (tuple, ast.Node)))
        return node


class _RangeVars(_Search):
    """Relations a statement names, in order (not the names of its WITH queries)."""

    def __init__(self) -> None:
        super().__init__()
        self._names: list[str] = []
        self._ctes: set[str] = set()

    @property
    def names(self) -> list[str]:
        return [n for n in self._names if n not in self._ctes]

    def visit_RangeVar(self, ancestors, node) -> None:
        self._names.append(_name(node))

    def visit_CommonTableExpr(self, ancestors, node) -> None:
        self._ctes.add(node.ctename)


# -- relations the catalog knows ---------------------------------------------------------------


def _missing(ctx: _Context, relation: str) -> bool:
    """Whether the catalog (read from a database) knows ``relation`` does not exist. A catalog that knows
    only what the plan created knows nothing of the rest."""
    return ctx.catalog.knows_absent(relation)


class _ColumnRefs(_Search):
    """Column names an expression reads, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def visit_ColumnRef(self, ancestors, node) -> None:
        if isinstance(node.fields[-1], ast.String):
            self.names.append(node.fields[-1].sval)


class _Functions(_Search):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[tuple[str | None, str]] = []

    def visit_FuncCall(self, ancestors, node) -> None:
        parts = [n.sval for n in node.funcname]
        self.names.append((parts[0] if len(parts) > 1 else None, parts[-1].lower()))


def _relations_read(node: Any) -> list[str]:
    collector = _RangeVars()
    collector(node)
    return list(dict.fromkeys(collector.names))


class _SequenceCalls(_Functions):
    """Sequences changed by setval()/nextval() in an expression (and, as :class:`_Functions`, every function
    it calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.sequences: list[str] = []

    def visit_FuncCall(self, ancestors, node) -> None:
        super().visit_FuncCall(ancestors, node)
        name = node.funcname[-1].sval.lower()
        if name not in ("setval", "nextval") or not node.args:
            return
        match node.args[0]:
            case ast.A_Const(val=ast.String(sval=text)):
                self.sequences.append(".".join(part.strip('"') for part in text.split(".")))
            case ast.TypeCast(arg=ast.A_Const(val=ast.String(sval=text))):
                self.sequences.append(".".join(part.strip('"') for part in text.split(".")))
            case ast.FuncCall(
                funcname=fn, args=(ast.A_Const(val=ast.String(sval=t)), ast.A_Const(val=ast.String(sval=c)))
            ) if fn[-1].sval.lower() == "pg_get_serial_sequence":
                # PostgreSQL names a serial/identity sequence <table>_<column>_seq
                self.sequences.append(f"{t.strip(chr(34)).split('.')[-1]}_{c.strip(chr(34))}_seq")
