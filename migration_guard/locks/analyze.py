"""pglast AST -> :class:`~migration_guard.model.Effects`: which locks a statement takes and what it does.

One function per statement form, dispatched with ``match`` on the top-level node. Every lock mode
and every rewrite/scan/index-build flag comes from :mod:`migration_guard.locks.facts`; this module
only decides *which* fact applies, using the statement itself and what the
:class:`~migration_guard.locks.catalog.Catalog` knows (old column types, validated NOT NULL
checks, foreign keys, index owners).

Conventions:

- ``Effects.locks`` lists relations that exist before the statement, with the strongest mode over
  all its subcommands. Relations the statement creates are not listed: no other session can see
  them before commit (the CREATE TABLE action still says ACCESS EXCLUSIVE on the new table).
  Indexes, toast tables and owned sequences locked along with their table are not listed either.
- ``Action.scans`` means a read-only pass over every row (a validation). A rewrite or an index
  build reads every row too, but is flagged as ``rewrites``/``builds_index`` instead.
- Extra ``Action.detail`` keys, beyond those documented on :class:`~migration_guard.model.Action`
  (read by :func:`~migration_guard.locks.catalog.advance`): CREATE_TABLE ``columns`` ((name, type)
  pairs), ``not_null_columns``, ``foreign_keys`` (:class:`ForeignKey`), ``references`` (tables);
  RENAME_TABLE / RENAME_COLUMN / RENAME_INDEX ``new_name``; ADD_CONSTRAINT ``not_null_columns``
  (columns a CHECK proves NOT NULL), ``not_enforced``; ADD_COLUMN ``constraint_name``; DROP_TABLE /
  DROP_COLUMN / DROP_CONSTRAINT / ALTER_COLUMN_TYPE ``other_tables`` (tables reached through foreign
  keys); OTHER ``sequence``; every action on a table created earlier in the plan ``new_table``.
"""

from __future__ import annotations

import enum
import functools
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from pglast import ast
from pglast.enums import (
    A_Expr_Kind,
    AlterTableType,
    BoolExprType,
    ConstrType,
    DropBehavior,
    NullTestType,
    ObjectType,
    SubLinkType,
    TransactionStmtKind,
    VariableSetKind,
)
from pglast.stream import RawStream
from pglast.visitors import Visitor

from migration_guard.locks.catalog import Catalog, ForeignKey
from migration_guard.locks.facts import Fact, fact
from migration_guard.locks.modes import LockMode
from migration_guard.locks.pgcatalog import (
    BINARY_COERCIBLE,
    BUILTIN_TYPES,
    NON_VOLATILE_FUNCTIONS,
    PLAIN_EXTENSION_TYPES,
    VOLATILE_FUNCTIONS,
)
from migration_guard.model import Action, ActionKind, Effects, RelationLock

__all__ = ["analyse", "not_null_columns"]

_AT = AlterTableType
_CT = ConstrType


def analyse(node: Any, pg_version: int = 16, catalog: Catalog | None = None) -> Effects:
    """The effects of one parsed statement (a pglast ``RawStmt.stmt``) on PostgreSQL ``pg_version``.

    Never raises: a statement form that is not modelled (or that the model fails on) gives
    ``Effects(known=False)`` with ACCESS EXCLUSIVE on every relation it names.
    """
    ctx = _Context(pg_version, catalog or Catalog.empty())
    try:
        _dispatch(node, ctx)
    except Exception as exc:  # fail closed: a bug here must not let a statement pass
        unknown = _unknown(node, ctx.pg_version, f"the lock model could not analyse it ({type(exc).__name__}: {exc})")
        return replace(unknown, needs_no_transaction=_outside_transaction_only(node))
    return ctx.effects()


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
        return RawStream()(node)
    sql = _PRINTED.get(shape)
    if sql is None:
        if len(_PRINTED) >= 20_000:
            _PRINTED.clear()
        sql = _PRINTED[shape] = RawStream()(node)
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


# -- dispatch ----------------------------------------------------------------------------------


def _dispatch(node: Any, ctx: _Context) -> None:
    match node:
        case ast.CreateStmt():
            _create_table(node, ctx)
        case ast.DropStmt(removeType=ObjectType.OBJECT_TABLE):
            _drop_tables(node, ctx)
        case ast.DropStmt(removeType=ObjectType.OBJECT_INDEX):
            _drop_indexes(node, ctx)
        case ast.DropStmt(removeType=ObjectType.OBJECT_SEQUENCE):
            _drop_sequences(node, ctx)
        case ast.AlterTableStmt(objtype=ObjectType.OBJECT_TABLE | ObjectType.OBJECT_FOREIGN_TABLE):
            _alter_table(node, ctx)
        case ast.AlterTableStmt(objtype=ObjectType.OBJECT_INDEX):
            _alter_index(node, ctx)
        case ast.AlterTableStmt(objtype=ObjectType.OBJECT_VIEW | ObjectType.OBJECT_MATVIEW):
            _alter_view(node, ctx)
        case ast.RenameStmt(renameType=ObjectType.OBJECT_TABLE):
            _rename_table(node, ctx)
        case ast.RenameStmt(renameType=ObjectType.OBJECT_TABCONSTRAINT):
            _on_table("rename_constraint", _name(node.relation), f"RENAME CONSTRAINT {_q(node.subname)}", ctx)
        case ast.RenameStmt(renameType=ObjectType.OBJECT_TRIGGER):
            _on_table("rename_trigger", _name(node.relation), f"renaming the trigger {_q(node.subname)}", ctx)
        case ast.RenameStmt(renameType=ObjectType.OBJECT_VIEW | ObjectType.OBJECT_MATVIEW):
            kind = "view" if node.renameType is ObjectType.OBJECT_VIEW else "materialized view"
            f = ctx.fact("alter_view")
            ctx.lock(_name(node.relation), f.mode, kind)
            ctx.act(ActionKind.OTHER, _name(node.relation), f, f"renaming the {kind} {_q(_name(node.relation))} takes "
                    "ACCESS EXCLUSIVE on it: every query using it waits", relkind=kind)
        case ast.RenameStmt(renameType=ObjectType.OBJECT_SEQUENCE):
            f = ctx.fact("rename_sequence")
            ctx.lock(_name(node.relation), f.mode, "sequence")
            ctx.act(ActionKind.OTHER, None, f, f"renaming the sequence {_q(_name(node.relation))} takes ACCESS "
                    "EXCLUSIVE on it: nextval() waits briefly", sequence=_name(node.relation))
        case ast.RenameStmt(renameType=ObjectType.OBJECT_TYPE | ObjectType.OBJECT_DOMAIN | ObjectType.OBJECT_SCHEMA
                            | ObjectType.OBJECT_FUNCTION):
            f = ctx.fact("alter_enum" if node.renameType is ObjectType.OBJECT_TYPE else "catalog_object")
            ctx.act(ActionKind.OTHER, None, f, f"renaming a {node.renameType.name.removeprefix('OBJECT_').lower()} "
                    "takes no lock on any table")
        case ast.AlterObjectSchemaStmt(objectType=ObjectType.OBJECT_TABLE):
            _on_table("set_schema", _name(node.relation), f"SET SCHEMA {_q(node.newschema)}", ctx)
        case ast.ReindexStmt():
            _reindex(node, ctx)
        case ast.VacuumStmt():
            _vacuum(node, ctx)
        case ast.ClusterStmt():
            _cluster(node, ctx)
        case ast.CreateTrigStmt():
            _on_table("create_trigger", _name(node.relation), f"creating the trigger {_q(node.trigname)}", ctx)
        case ast.DropStmt(removeType=ObjectType.OBJECT_TRIGGER):
            _drop_on_table(node, "drop_trigger", "dropping the trigger", ctx)
        case ast.RuleStmt():
            _on_table("rule", _name(node.relation), f"creating the rule {_q(node.rulename)}", ctx)
        case ast.DropStmt(removeType=ObjectType.OBJECT_RULE):
            _drop_on_table(node, "rule", "dropping the rule", ctx)
        case ast.CreatePolicyStmt():
            _on_table("policy", _name(node.table), f"creating the policy {_q(node.policy_name)}", ctx)
        case ast.AlterPolicyStmt():
            _on_table("policy", _name(node.table), f"altering the policy {_q(node.policy_name)}", ctx)
        case ast.DropStmt(removeType=ObjectType.OBJECT_POLICY):
            _drop_on_table(node, "policy", "dropping the policy", ctx)
        case ast.CreateStatsStmt(relations=(ast.RangeVar() as rel,)):
            _on_table("statistics", _name(rel), "creating extended statistics", ctx)
        case ast.ViewStmt():
            _create_view(node, ctx)
        case ast.CreateTableAsStmt(into=ast.IntoClause()):
            _create_table_as(node, ctx)
        case ast.RefreshMatViewStmt():
            _refresh_matview(node, ctx)
        case ast.DropStmt(removeType=ObjectType.OBJECT_VIEW | ObjectType.OBJECT_MATVIEW,
                          behavior=DropBehavior.DROP_RESTRICT):
            kind = "view" if node.removeType is ObjectType.OBJECT_VIEW else "materialized view"
            f = ctx.fact("alter_view")
            for obj in node.objects:
                view = _dotted(obj)
                ctx.lock(view, f.mode, kind)
                ctx.act(ActionKind.OTHER, view, f, f"dropping the {kind} {_q(view)} takes ACCESS EXCLUSIVE on it",
                        relkind=kind)
        case ast.DropStmt(removeType=ObjectType.OBJECT_TYPE | ObjectType.OBJECT_DOMAIN):
            _drop_types(node, ctx)
        case ast.AlterEnumStmt():
            f = ctx.fact("alter_enum")
            what = f"RENAME VALUE {node.oldVal!r}" if node.oldVal else f"ADD VALUE {node.newVal!r}"
            ctx.act(ActionKind.OTHER, None, f, f"ALTER TYPE {_q(_dotted(node.typeName))} {what} locks no table"
                    + ("" if node.oldVal else "; the new value cannot be used before the transaction commits"))
        case ast.AlterDomainStmt():
            _alter_domain(node, ctx)
        case ast.GrantStmt():
            _grant(node, ctx)
        case ast.TruncateStmt():
            _truncate(node, ctx)
        case ast.LockStmt():
            _lock_table(node, ctx)
        case (ast.CreateEnumStmt() | ast.CreateDomainStmt() | ast.CompositeTypeStmt() | ast.CreateSeqStmt()
              | ast.CreateFunctionStmt() | ast.CreateSchemaStmt() | ast.AlterDefaultPrivilegesStmt()
              | ast.CreateRoleStmt() | ast.DefineStmt()):
            f = ctx.fact("catalog_object")
            ctx.act(ActionKind.OTHER, None, f, f"{_statement_label(node)} creates a catalog object and locks no table",
                    **_new_type(node))
        case ast.CallStmt():
            name = _dotted(node.funccall.funcname)
            ctx.act(ActionKind.CALL, None, ctx.fact("call"), f"CALL {name}() runs a procedure the lock model cannot see "
                    "into: it may take any lock and run DDL", function=name, mode=None)
        case ast.DoStmt():
            ctx.act(ActionKind.CALL, None, ctx.fact("call"), "DO runs an anonymous code block the lock model cannot "
                    "see into: it may take any lock and run DDL", function="DO", mode=None)
        case ast.DropStmt(removeType=ObjectType.OBJECT_FUNCTION | ObjectType.OBJECT_PROCEDURE
                          | ObjectType.OBJECT_SCHEMA | ObjectType.OBJECT_ROUTINE, behavior=DropBehavior.DROP_RESTRICT):
            f = ctx.fact("catalog_object")
            ctx.act(ActionKind.OTHER, None, f, f"{_statement_label(node)} without CASCADE drops nothing a table uses "
                    "and locks no table")
        case ast.RenameStmt(renameType=ObjectType.OBJECT_COLUMN, relationType=ObjectType.OBJECT_TABLE):
            _rename_column(node, ctx)
        case ast.RenameStmt(renameType=ObjectType.OBJECT_INDEX):
            _rename_index(node, ctx)
        case ast.IndexStmt():
            _create_index(node, ctx)
        case ast.CommentStmt(objtype=ObjectType.OBJECT_TABLE | ObjectType.OBJECT_COLUMN):
            _comment(node, ctx)
        case ast.CommentStmt():
            _comment_other(node, ctx)
        case ast.AlterSeqStmt():
            _alter_sequence(node, ctx)
        case ast.SelectStmt():
            _select(node, ctx)
        case ast.UpdateStmt() | ast.DeleteStmt() | ast.InsertStmt() | ast.MergeStmt():
            _dml(node, ctx)
        case ast.VariableSetStmt():
            _set(node, ctx)
        case ast.TransactionStmt():
            _transaction(node, ctx)
        case ast.CreateExtensionStmt():
            f = ctx.fact("catalog_object")
            ctx.act(ActionKind.OTHER, None, f, f"CREATE EXTENSION {_q(node.extname)} takes no lock on any table",
                    extension=node.extname)
        case ast.DropStmt(removeType=ObjectType.OBJECT_EXTENSION | ObjectType.OBJECT_COLLATION,
                          behavior=DropBehavior.DROP_RESTRICT):
            # without CASCADE nothing that uses the object can be dropped with it
            f = ctx.fact("catalog_object")
            ctx.act(ActionKind.OTHER, None, f,
                    "dropping an extension or a collation without CASCADE takes no lock on any table")
        case ast.ConstraintsSetStmt():
            f = ctx.fact("set_constraints")
            ctx.act(ActionKind.OTHER, None, f, "SET CONSTRAINTS " + f.summary.removeprefix("SET CONSTRAINTS "))
        case _:
            unknown = _unknown(node, ctx.pg_version, f"{type(node).__name__} statements are not modelled")
            ctx.known = False
            ctx.needs_no_transaction = _outside_transaction_only(node)
            ctx.actions.extend(unknown.actions)
            for lock in unknown.locks:
                ctx.lock(lock.relation, lock.mode, lock.relkind)


# -- unknown statements ------------------------------------------------------------------------


def _statement_label(node: Any) -> str:
    """``CREATE TYPE``-like words for a statement node, for reasons."""
    import re

    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(node).__name__.removesuffix("Stmt")).upper()
    return words.replace("CREATE ENUM", "CREATE TYPE ... AS ENUM").replace("COMPOSITE TYPE", "CREATE TYPE")


def _new_type(node: Any) -> dict[str, Any]:
    """``user_type`` / ``constrained`` details for a statement creating a type (the catalog learns it)."""
    match node:
        case ast.CreateDomainStmt():
            constrained = any(c.contype in (_CT.CONSTR_CHECK, _CT.CONSTR_NOTNULL) for c in node.constraints or ())
            return {"user_type": _dotted(node.domainname), "constrained": constrained}
        case ast.CreateEnumStmt():
            return {"user_type": _dotted(node.typeName), "constrained": False}
        case ast.CompositeTypeStmt():
            return {"user_type": _name(node.typevar), "constrained": False}
        case ast.DefineStmt(kind=ObjectType.OBJECT_TYPE, defnames=names):
            return {"user_type": _dotted(names), "constrained": False}
    return {}


def _outside_transaction_only(node: Any) -> bool:
    """Whether an unmodelled statement cannot run inside a transaction block (the pipeline needs to know)."""
    match node:
        case ast.VacuumStmt(is_vacuumcmd=True):
            return True
        case ast.ReindexStmt(params=params, kind=kind):
            # REINDEX SCHEMA / DATABASE / SYSTEM run one transaction per table
            return any(p.defname == "concurrently" for p in params or ()) or kind.name not in (
                "REINDEX_OBJECT_INDEX", "REINDEX_OBJECT_TABLE")
    return False


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


def _unknown(node: Any, pg_version: int, why: str) -> Effects:
    """ACCESS EXCLUSIVE on every relation the statement names: the cautious assumption."""
    f = fact("unknown", pg_version)
    names: list[str] = []
    try:
        collector = _RangeVars()
        collector(node)
        names = list(dict.fromkeys(collector.names))
        if isinstance(node, ast.DropStmt):  # DROP names its objects as name lists, not RangeVars
            names += [_dotted(obj) for obj in node.objects or () if isinstance(obj, tuple)]
    except Exception:  # the names are a best effort; the verdict stays "unknown"
        pass
    if not names:
        action = Action(kind=ActionKind.UNKNOWN, table=None, mode=f.mode,
                        reason=f"{why}; it names no table, so nothing is known about its locks")
        return Effects(actions=(action,), known=False)
    actions = tuple(
        Action(kind=ActionKind.UNKNOWN, table=name, mode=f.mode,
               reason=f"{why}, so it is assumed to take ACCESS EXCLUSIVE on {_q(name)}")
        for name in names
    )
    locks = tuple(RelationLock(name, "table", f.mode) for name in names)
    return Effects(locks=locks, actions=actions, known=False)


# -- CREATE / DROP / RENAME TABLE --------------------------------------------------------------


def _create_table(node: ast.CreateStmt, ctx: _Context) -> None:
    table = _name(node.relation)
    columns: list[tuple[str, str]] = []
    not_null: list[str] = []
    fks: list[ForeignKey] = []
    for element in node.tableElts or ():
        match element:
            case ast.ColumnDef():
                columns.append((element.colname, _sql(element.typeName)))
                for con in element.constraints or ():
                    if con.contype in (_CT.CONSTR_NOTNULL, _CT.CONSTR_PRIMARY):
                        not_null.append(element.colname)
                    elif con.contype is _CT.CONSTR_FOREIGN:
                        fks.append(_foreign_key(table, (element.colname,), con))
            case ast.Constraint(contype=_CT.CONSTR_FOREIGN):
                fks.append(_foreign_key(table, tuple(a.sval for a in element.fk_attrs or ()), element))
            case ast.Constraint(contype=_CT.CONSTR_PRIMARY):
                not_null.extend(k.sval for k in element.keys or ())
            case ast.TableLikeClause():
                ctx.lock(_name(element.relation), ctx.fact("dml.read").mode)
    parents = _create_child(table, node, ctx)
    referenced = tuple(dict.fromkeys(fk.referenced for fk in fks))
    f = ctx.fact("create_table.references" if referenced else "create_table")
    for other in referenced:
        ctx.lock(other, f.other_mode)
    if referenced:
        reason = (f"creating {_q(table)} with a foreign key to {', '.join(map(_q, referenced))} takes "
                  f"SHARE ROW EXCLUSIVE there, blocking its writes until the transaction ends")
    else:
        reason = f"creating {_q(table)} locks only the new table, which no other session can see yet"
    if parents:
        reason += f"; it is a {'partition' if node.partbound is not None else 'child'} of {', '.join(map(_q, parents))}"
    ctx.act(ActionKind.CREATE_TABLE, table, f, reason, columns=tuple(columns),
            not_null_columns=tuple(dict.fromkeys(not_null)), foreign_keys=tuple(fks), references=referenced,
            parents=parents, default_partition=bool(node.partbound is not None and node.partbound.is_default),
            relkind="partitioned table" if node.partspec is not None else "table")


def _foreign_key(table: str, columns: tuple[str, ...], con: ast.Constraint) -> ForeignKey:
    return ForeignKey(table=table, columns=columns, referenced=_name(con.pktable), name=con.conname,
                      referenced_columns=tuple(a.sval for a in con.pk_attrs or ()), deferred=bool(con.initdeferred))


def _drop_tables(node: ast.DropStmt, ctx: _Context) -> None:
    for obj in node.objects:
        table = _dotted(obj)
        if node.missing_ok and _missing(ctx, table):
            f = ctx.fact("missing_table")
            ctx.act(ActionKind.OTHER, None, f, f"{_q(table)} does not exist, so DROP TABLE IF EXISTS does nothing")
            continue
        partitions = ctx.catalog.descendants(table)
        parent = ctx.catalog.parent_of(table)
        others = tuple(t for t in _linked_tables(ctx.catalog, table) + partitions + ((parent,) if parent else ())
                       if t != table)
        f = ctx.fact("drop_table.foreign_key" if others else "drop_table")
        ctx.lock(table, f.mode)
        for other in others:
            ctx.lock(other, f.other_mode)
        reason = f"dropping {_q(table)} takes ACCESS EXCLUSIVE on it"
        linked = [t for t in others if t not in partitions and t != parent]
        if linked:
            reason += f" and, through its foreign keys, on {', '.join(map(_q, linked))}"
        if partitions:
            reason += f"; its partitions {', '.join(map(_q, partitions))} are dropped with it"
        if parent:
            reason += f"; its parent {_q(parent)} is locked ACCESS EXCLUSIVE too"
        ctx.act(ActionKind.DROP_TABLE, table, f, reason, other_tables=others,
                cascade=node.behavior is DropBehavior.DROP_CASCADE)


def _linked_tables(catalog: Catalog, table: str) -> tuple[str, ...]:
    """Tables at the other end of foreign keys from or to ``table``."""
    ends = [fk.referenced for fk in catalog.foreign_keys_from(table)]
    ends += [fk.table for fk in catalog.foreign_keys_to(table)]
    return tuple(dict.fromkeys(t for t in ends if t != table))


def _rename_table(node: ast.RenameStmt, ctx: _Context) -> None:
    table = _name(node.relation)
    f = ctx.fact("rename_table")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.RENAME_TABLE, table, f,
            f"renaming {_q(table)} to {_q(node.newname)} takes ACCESS EXCLUSIVE, and code still using "
            f"the old name fails", new_name=node.newname)


def _rename_column(node: ast.RenameStmt, ctx: _Context) -> None:
    table = _name(node.relation)
    f = ctx.fact("rename_column")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.RENAME_COLUMN, table, f,
            f"renaming {_q(table)}.{_q(node.subname)} to {_q(node.newname)} takes ACCESS EXCLUSIVE, and code "
            f"still using the old name fails", column=node.subname, new_name=node.newname)


def _comment(node: ast.CommentStmt, ctx: _Context) -> None:
    names = [n.sval for n in node.object] if isinstance(node.object, tuple) else []
    if node.objtype is ObjectType.OBJECT_COLUMN:
        table, column = ".".join(names[:-1]), names[-1]
    else:
        table, column = ".".join(names), None
    f = ctx.fact("comment")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.OTHER, table, f, f"COMMENT ON takes SHARE UPDATE EXCLUSIVE on {_q(table)}, which "
            f"lets reads and writes continue", column=column)


# -- ALTER TABLE -------------------------------------------------------------------------------


def _alter_table(node: ast.AlterTableStmt, ctx: _Context) -> None:
    table = _name(node.relation)
    if node.missing_ok and _missing(ctx, table):
        f = ctx.fact("missing_table")
        ctx.act(ActionKind.OTHER, None, f, f"{_q(table)} does not exist, so ALTER TABLE IF EXISTS does nothing")
        return
    for cmd in node.cmds:
        handler = _ALTER_TABLE_COMMANDS.get(cmd.subtype)
        if handler is None:
            f = ctx.fact("unknown")
            ctx.known = False
            ctx.lock(table, f.mode)
            ctx.act(ActionKind.UNKNOWN, table, f,
                    f"ALTER TABLE subcommand {cmd.subtype.name} is not modelled, so it is assumed to take "
                    f"ACCESS EXCLUSIVE on {_q(table)}", column=cmd.name)
            continue
        first = len(ctx.actions)
        handler(table, cmd, ctx)
        if node.relation.inh and cmd.subtype not in _NOT_RECURSING:
            _recurse(table, first, ctx)


def _missing(ctx: _Context, relation: str) -> bool:
    """Whether the catalog (read from a database) knows ``relation`` does not exist."""
    return bool(ctx.catalog.relkinds) and ctx.catalog.relkind(relation) is None


def _recurse(table: str, first: int, ctx: _Context) -> None:
    """Apply the actions a subcommand took on ``table`` to its partitions (or inheritance children) too.

    A partitioned table has no storage: what would be rewritten, scanned or built happens on its
    partitions, each under the same lock.
    """
    children = ctx.catalog.descendants(table)
    if not children:
        return
    partitioned = ctx.catalog.relkind(table) == "partitioned table"
    mode = ctx.locks.get(table, (None, None))[1]
    f = ctx.fact("partition.recurse")
    own = [(i, a) for i, a in enumerate(ctx.actions) if i >= first and a.table == table]
    for child in children:
        ctx.lock(child, mode)
        for _, action in own:
            ctx.actions.append(replace(
                action, table=child, detail={**action.detail, "partition_of": table},
                reason=f"{action.reason} (on the partition {_q(child)}, because {f.summary.split(' applies')[0]} "
                       "applies to every partition)" if partitioned else f"{action.reason} (on the child {_q(child)})"))
    if partitioned:
        for i, action in own:
            ctx.actions[i] = replace(action, rewrites=False, scans=False, builds_index=False)


def _add_column(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    col: ast.ColumnDef = cmd.def_
    column, type_text = col.colname, _sql(col.typeName)
    type_name = col.typeName.names[-1].sval.lower()
    constraints = col.constraints or ()
    default = next((c.raw_expr for c in constraints if c.contype is _CT.CONSTR_DEFAULT), None)
    if isinstance(default, ast.A_Const) and default.isnull:
        default = None  # DEFAULT NULL is no default
    by_type = {c.contype: c for c in constraints}
    generated = by_type.get(_CT.CONSTR_GENERATED)
    identity = by_type.get(_CT.CONSTR_IDENTITY)
    check = by_type.get(_CT.CONSTR_CHECK)
    fk = by_type.get(_CT.CONSTR_FOREIGN)
    unique = by_type.get(_CT.CONSTR_UNIQUE) or by_type.get(_CT.CONSTR_PRIMARY)
    not_null = col.is_not_null or _CT.CONSTR_NOTNULL in by_type or _CT.CONSTR_PRIMARY in by_type
    serial = type_name in _SERIAL_TYPES
    volatile, volatile_fn = _volatility(default) if default is not None else (False, None)
    virtual = generated is not None and generated.generated_kind == "v" and ctx.holds("add_column.generated_virtual")
    references = _name(fk.pktable) if fk is not None else None
    domain = _constrained_domain(col.typeName, ctx.catalog)

    # What happens to existing rows decides the fact: a rewrite dominates a scan.
    q_col = f"{_q(table)}.{_q(column)}"
    if serial:
        f = ctx.fact("add_column.serial")
        reason = (f"{q_col} is {type_name}: its default nextval() is volatile, so PostgreSQL rewrites every row of "
                  f"{_q(table)}")
    elif identity is not None:
        f = ctx.fact("add_column.identity")
        reason = (f"{q_col} is an identity column, filled from its sequence row by row, so PostgreSQL rewrites every "
                  f"row of {_q(table)}")
    elif generated is not None and not virtual:
        f = ctx.fact("add_column.generated_stored")
        reason = (f"{q_col} is a stored generated column, computed for every row, so PostgreSQL rewrites every row of "
                  f"{_q(table)}")
    elif volatile:
        known_volatile = volatile_fn in VOLATILE_FUNCTIONS
        f = ctx.fact("add_column.volatile_default" if known_volatile else "add_column.unknown_function")
        if known_volatile:
            reason = f"the default {volatile_fn}() is volatile, so PostgreSQL rewrites every row of {_q(table)}"
        else:
            reason = (f"the default calls {volatile_fn}(), which is not a built-in known to be non-volatile, so it is "
                      f"assumed volatile and PostgreSQL rewrites every row of {_q(table)}")
    elif domain == "known":
        f = ctx.fact("add_column.domain_constraint")
        reason = (f"{q_col} is of the domain {_q(type_text)}, which has constraints: every existing row is checked "
                  f"against it, so PostgreSQL rewrites every row of {_q(table)}")
    elif domain == "assumed":
        f = ctx.fact("add_column.unknown_type")
        reason = (f"the type {_q(type_text)} of {q_col} is not a built-in and not known without the database's "
                  f"catalog: if it is a domain with a CHECK or NOT NULL, PostgreSQL rewrites every row of {_q(table)}")
    elif check is not None:
        f = ctx.fact("add_column.check")
        reason = (f"the inline CHECK on {q_col} is verified against every existing row of {_q(table)} under ACCESS "
                  "EXCLUSIVE")
    elif fk is not None and default is not None:
        f = ctx.fact("add_column.references_with_default")
        reason = (f"the default of {q_col} is checked against {_q(references)} for every existing row, under "
                  f"ACCESS EXCLUSIVE on {_q(table)} and SHARE ROW EXCLUSIVE on {_q(references)}")
    elif not_null and default is None and generated is None:
        f = ctx.fact("add_column.not_null_no_default")
        reason = f"{q_col} is NOT NULL without a default, so every existing row of {_q(table)} is checked (and fails)"
    elif fk is not None:
        f = ctx.fact("add_column.references")
        reason = (f"adding {q_col} with no default only changes the catalog, but its foreign key takes SHARE ROW "
                  f"EXCLUSIVE on {_q(references)}")
    else:
        f = ctx.fact("add_column.generated_virtual" if virtual else "add_column")
        what = "as a virtual generated column" if virtual else (
            "with a non-volatile default" if default is not None else "with no default")
        reason = f"adding {q_col} {what} only changes the catalog, under a brief ACCESS EXCLUSIVE on {_q(table)}"
    ctx.lock(table, f.mode)
    builds = False
    kind = None
    if unique is not None:
        builds = ctx.fact("add_column.unique").builds_index
        kind = "PRIMARY KEY" if unique.contype is _CT.CONSTR_PRIMARY else "UNIQUE"
        reason += f"; its {kind} index is built under ACCESS EXCLUSIVE"
    if references:
        ctx.lock(references, ctx.fact("add_column.references").other_mode)
    if f.rewrites and default is not None:
        # evaluating nextval() for every row writes its sequence
        calls = _SequenceCalls()
        calls(default)
        for sequence in calls.sequences:
            ctx.lock(sequence, ctx.fact("setval").mode, "sequence")
    ctx.act(
        ActionKind.ADD_COLUMN, table, f, reason, column=column,
        rewrites=f.rewrites, scans=f.scans and not f.rewrites, builds_index=builds,
        type=type_text, default=_sql(default) if default is not None else None,
        volatile_default=bool(volatile or serial), not_null=bool(not_null), identity=identity is not None,
        serial=serial, generated_stored=generated is not None and not virtual, check=check is not None,
        references=references, constraint_name=fk.conname if fk is not None else None,
        deferred=bool(fk is not None and fk.initdeferred), unique=kind,
        unique_name=unique.conname if unique is not None else None,
        fails_with_rows=f.key == "add_column.not_null_no_default",
    )


_SERIAL_TYPES = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})


def _constrained_domain(type_name: ast.TypeName, catalog: Catalog) -> str | None:
    """``"known"`` when the type is a domain with constraints, ``"assumed"`` when it may be one (a type neither
    built in nor known, with no database catalog to tell), else ``None``."""
    if type_name.arrayBounds:
        return None  # an array of a domain is not itself a domain
    names = [n.sval for n in type_name.names]
    if names[0] == "pg_catalog" and len(names) > 1:
        return None
    constrained = catalog.types.get(".".join(names).removeprefix("public."))
    bare = names[-1].lower()
    plain = len(names) == 1 and (bare in BUILTIN_TYPES or bare in PLAIN_EXTENSION_TYPES or bare in _TYPE_ALIASES)
    if constrained:
        return "known"
    if constrained is None and not plain and not catalog.from_database:
        return "assumed"
    return None


class _Functions(_Search):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[tuple[str | None, str]] = []

    def visit_FuncCall(self, ancestors, node) -> None:
        parts = [n.sval for n in node.funcname]
        self.names.append((parts[0] if len(parts) > 1 else None, parts[-1].lower()))


def _volatility(expr: Any) -> tuple[bool, str | None]:
    """(whether ``expr`` may be volatile, the first function that makes it so)."""
    finder = _Functions()
    finder(expr)
    for schema, name in finder.names:
        if schema not in (None, "pg_catalog") or name in VOLATILE_FUNCTIONS or name not in NON_VOLATILE_FUNCTIONS:
            return True, name if schema in (None, "pg_catalog") else f"{schema}.{name}"
    return False, None


def _drop_column(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    column = cmd.name
    others = [fk.referenced for fk in ctx.catalog.foreign_keys_from(table, column)]
    others += [fk.table for fk in ctx.catalog.foreign_keys_to(table) if column in _referenced_columns(fk)]
    others = tuple(dict.fromkeys(t for t in others if t != table))
    f = ctx.fact("drop_column.foreign_key" if others else "drop_column")
    ctx.lock(table, f.mode)
    for other in others:
        ctx.lock(other, f.other_mode)
    reason = f"dropping {_q(table)}.{_q(column)} is instant but takes ACCESS EXCLUSIVE"
    if others:
        reason += f", also on {', '.join(map(_q, others))} because its foreign key is dropped"
    reason += ", and code still selecting the column fails"
    views = ctx.catalog.views_using_column(table, column) if cmd.behavior is DropBehavior.DROP_CASCADE else ()
    if views:
        v = ctx.fact("drop_column.views")
        for view in views:
            ctx.lock(view, v.other_mode, ctx.catalog.relkind(view) or "view")
        reason += f"; CASCADE drops {', '.join(map(_q, views))}, which read it, under ACCESS EXCLUSIVE"
    ctx.act(ActionKind.DROP_COLUMN, table, f, reason, column=column, other_tables=others,
            cascade=cmd.behavior is DropBehavior.DROP_CASCADE, views=views)


def _referenced_columns(fk: ForeignKey, catalog: Catalog | None = None) -> tuple[str, ...]:
    # REFERENCES t without a column list means t's primary key, which Django names "id".
    if fk.referenced_columns:
        return fk.referenced_columns
    if catalog is not None:
        for (table, name), columns in sorted(catalog.unique_constraints.items()):
            if table == fk.referenced.removeprefix("public.") and name.endswith("_pkey"):
                return columns
    return ("id",)


def _column_default(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    if cmd.def_ is None:
        f = ctx.fact("drop_default")
        ctx.lock(table, f.mode)
        ctx.act(ActionKind.DROP_DEFAULT, table, f, f"dropping the default of {_q(table)}.{_q(cmd.name)} only "
                f"changes the catalog, under a brief ACCESS EXCLUSIVE", column=cmd.name)
    else:
        f = ctx.fact("set_default")
        ctx.lock(table, f.mode)
        ctx.act(ActionKind.SET_DEFAULT, table, f, f"setting the default of {_q(table)}.{_q(cmd.name)} only "
                f"changes the catalog (existing rows keep their values), under a brief ACCESS EXCLUSIVE",
                column=cmd.name, default=_sql(cmd.def_))


def _set_not_null(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    column = cmd.name
    proof = ctx.catalog.proves_not_null(table, column)
    if proof and ctx.holds("set_not_null.proven"):
        f = ctx.fact("set_not_null.proven")
        reason = (f"the validated CHECK constraint {_q(proof)} proves {_q(table)}.{_q(column)} has no NULL, so "
                  f"SET NOT NULL skips its scan and holds ACCESS EXCLUSIVE only briefly")
    else:
        f = ctx.fact("set_not_null")
        reason = (f"SET NOT NULL reads every row of {_q(table)} to check {_q(column)} for NULLs while holding "
                  f"ACCESS EXCLUSIVE")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.SET_NOT_NULL, table, f, reason, column=column, proven_by=proof)


def _drop_not_null(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    f = ctx.fact("drop_not_null")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.DROP_NOT_NULL, table, f, f"DROP NOT NULL on {_q(table)}.{_q(cmd.name)} only changes the "
            f"catalog, under a brief ACCESS EXCLUSIVE", column=cmd.name)


def _identity(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    adding = cmd.subtype is _AT.AT_AddIdentity
    f = ctx.fact("add_identity" if adding else "drop_identity")
    ctx.lock(table, f.mode)
    what = "adding an identity to" if adding else "dropping the identity of"
    ctx.act(ActionKind.OTHER, table, f, f"{what} {_q(table)}.{_q(cmd.name)} only changes the catalog and its "
            f"sequence, under ACCESS EXCLUSIVE", column=cmd.name)


def _set_statistics(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    f = ctx.fact("set_statistics")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.OTHER, table, f, f"SET STATISTICS on {_q(table)}.{_q(cmd.name)} only changes the catalog, "
            f"under SHARE UPDATE EXCLUSIVE", column=cmd.name)


# -- ALTER COLUMN TYPE -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Type:
    name: str  # pg_type.typname, e.g. "varchar", "int4", "timestamptz"
    mods: tuple[int, ...]  # typmods as written, e.g. (20,) or (8, 2)
    array: bool

    @classmethod
    def of(cls, type_name: ast.TypeName) -> _Type:
        name = type_name.names[-1].sval.lower()
        name = _SERIAL_BASE.get(name, _TYPE_ALIASES.get(name, name))
        mods = tuple(m.val.ival for m in type_name.typmods or ()
                     if isinstance(m, ast.A_Const) and isinstance(m.val, ast.Integer))
        return cls(name, mods, bool(type_name.arrayBounds))

    @classmethod
    def parse(cls, text: str) -> _Type | None:
        """The type named by ``text`` (a column's old type); the same few names come back over
        and over in a long plan, and a _Type is immutable, so each is parsed once."""
        return _parse_type(cls, text)


@functools.lru_cache(maxsize=4096)
def _parse_type(cls: type[_Type], text: str) -> _Type | None:
    from pglast import parse_sql  # local: only needed for types known as text

    try:
        stmt = parse_sql(f"SELECT NULL::{text}")[0].stmt
        return cls.of(stmt.targetList[0].val.typeName)
    except Exception:
        return None


_SERIAL_BASE = {"serial": "int4", "serial4": "int4", "bigserial": "int8", "serial8": "int8",
                "smallserial": "int2", "serial2": "int2"}
# Spellings pglast leaves alone (it already maps SQL keywords such as "integer" to pg_catalog.int4).
_TYPE_ALIASES = {"int": "int4", "integer": "int4", "bigint": "int8", "smallint": "int2", "boolean": "bool",
                 "real": "float4", "decimal": "numeric", "character varying": "varchar"}
_LENGTH_LIMITED = frozenset({"varchar", "varbit"})  # limit may grow (or go) without a rewrite
_PRECISION_TYPES = frozenset({"timestamp", "timestamptz", "time", "interval"})  # default precision 6


def _coercion(old: _Type, new: _Type, ctx: _Context) -> tuple[str, str]:
    """(fact key, why) for changing a column from ``old`` to ``new`` with no USING expression."""
    if old.array or new.array:
        if old == new:
            return "alter_column_type.coercible", "the type does not change"
        return "alter_column_type", "array element types are converted one by one"
    if old.name == new.name:
        if old.mods == new.mods:
            return "alter_column_type.coercible", "the type does not change"
        if old.name in _LENGTH_LIMITED:
            if not new.mods or (old.mods and new.mods[0] >= old.mods[0]):
                return "alter_column_type.coercible", "the length limit only grows"
            return "alter_column_type", "the length limit shrinks (or appears), so every value is checked and rewritten"
        if old.name == "numeric":
            if not new.mods:
                return "alter_column_type.coercible", "the precision limit is removed"
            if old.mods and _numeric_scale(old) == _numeric_scale(new) and new.mods[0] >= old.mods[0]:
                return "alter_column_type.coercible", "the precision grows with the same scale"
            return "alter_column_type", "the numeric precision or scale changes"
        if old.name == "interval":
            # an interval typmod packs the fields and the precision: only dropping it is known to be free
            if not new.mods:
                return "alter_column_type.coercible", "the interval loses its fields/precision limit"
            return "alter_column_type", "the interval fields or precision change"
        if old.name in _PRECISION_TYPES:
            old_p = old.mods[0] if old.mods else 6
            new_p = new.mods[0] if new.mods else 6
            if new_p >= old_p:
                return "alter_column_type.coercible", "the fractional-second precision only grows"
            return "alter_column_type", "the fractional-second precision shrinks"
        return "alter_column_type", f"the {old.name} type modifier changes"
    if {old.name, new.name} == {"timestamp", "timestamptz"}:
        old_p = old.mods[0] if old.mods else 6
        new_p = new.mods[0] if new.mods else 6
        if ctx.catalog.timezone_is_utc and ctx.holds("alter_column_type.timestamptz_utc") and new_p >= old_p:
            return "alter_column_type.timestamptz_utc", "the session TimeZone is UTC"
        if ctx.catalog.timezone is None:
            return "alter_column_type", "the session TimeZone is not known to be UTC"
        return "alter_column_type", f"the session TimeZone is {ctx.catalog.timezone}, not UTC"
    if (old.name, new.name) in BINARY_COERCIBLE:
        if not new.mods:
            return "alter_column_type.coercible", f"{old.name} is binary coercible to {new.name}"
        return "alter_column_type", (f"{old.name} is binary coercible to {new.name} but the new length limit must be "
                                     "checked")
    return "alter_column_type", f"{old.name} is not binary coercible to {new.name}"


def _numeric_scale(t: _Type) -> int:
    return t.mods[1] if len(t.mods) > 1 else 0


def _alter_column_type(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    column = cmd.name
    col: ast.ColumnDef = cmd.def_
    new = _Type.of(col.typeName)
    new_text = _sql(col.typeName)
    old_text = ctx.catalog.column_type(table, column)
    old = _Type.parse(old_text) if old_text else None
    using = col.raw_default
    q_col = f"{_q(table)}.{_q(column)}"
    if using is not None and not _is_plain_cast(using, column, col.typeName):
        key, why = "alter_column_type", f"the USING expression {_sql(using)} computes every value anew"
    elif old is None:
        key = "alter_column_type"
        why = ("its old type is unknown" if not old_text else f"its old type {old_text!r} is not understood")
    else:
        key, why = _coercion(old, new, ctx)
    f = ctx.fact(key)
    collation = ".".join(n.sval for n in col.collClause.collname) if col.collClause is not None else None
    rebuilt: tuple[str, ...] = ()
    if f.rewrites:
        reason = (f"changing {q_col} to {new_text}: {why}, so PostgreSQL rewrites every row of {_q(table)} and "
                  "rebuilds its indexes")
    else:
        reason = f"changing {q_col} to {new_text}: {why}, so no row is rewritten (ACCESS EXCLUSIVE is held briefly)"
        if collation:
            rebuilt = ctx.catalog.indexes_on(table, column)
            on = f"{', '.join(map(_q, rebuilt))}" if rebuilt else "any index on the column (none is known)"
            reason += f"; the collation {_q(collation)} rebuilds {on}"
    checked = () if f.rewrites else _checks_using(ctx.catalog, table, column)
    if checked:
        reason += (f"; the validated CHECK {', '.join(map(_q, checked))} is checked again against every row of "
                   f"{_q(table)}, a full scan under ACCESS EXCLUSIVE")
    ctx.lock(table, f.mode)
    # Foreign keys on this column, at either end, are dropped and re-created.
    fk_fact = ctx.fact("alter_column_type.foreign_key")
    outgoing = [fk for fk in ctx.catalog.foreign_keys_from(table, column)]
    incoming = [fk for fk in ctx.catalog.foreign_keys_to(table) if column in _referenced_columns(fk)]
    others = tuple(dict.fromkeys([fk.referenced for fk in outgoing] + [fk.table for fk in incoming]))
    for other in others:
        ctx.lock(other, fk_fact.other_mode)
    if others:
        reason += f"; its foreign keys are re-created, taking ACCESS EXCLUSIVE on {', '.join(map(_q, others))}"
        if f.rewrites:
            reason += " and checking them again"
    ctx.act(ActionKind.ALTER_COLUMN_TYPE, table, f, reason, column=column, new_type=new_text, old_type=old_text,
            builds_index=bool(rebuilt) and ctx.fact("alter_column_type.collation").builds_index, collation=collation,
            scans=bool(checked) and ctx.fact("alter_column_type.check").scans, checks=checked,
            using=_sql(using) if using is not None else None, other_tables=others,
            references=outgoing[0].referenced if outgoing and f.rewrites else None)
    if f.rewrites:
        # Re-validating a foreign key whose referencing column is on another table reads that table.
        for fk in incoming:
            ctx.act(ActionKind.OTHER, fk.table, fk_fact,
                    f"the foreign key from {_q(fk.table)} to the rewritten {q_col} is checked again, reading every "
                    f"row of {_q(fk.table)} under ACCESS EXCLUSIVE", mode=fk_fact.other_mode, scans=True,
                    rewrites=False, references=table, cause="foreign_key_recheck")


def _checks_using(catalog: Catalog, table: str, column: str) -> tuple[str, ...]:
    """The validated CHECK constraints of ``table`` whose expression reads ``column``."""
    key = table.removeprefix("public.")
    return tuple(sorted(name for (owner, name), (expression, validated) in catalog.checks.items()
                        if owner == key and validated and column in _expression_columns(expression)))


@functools.lru_cache(maxsize=4096)
def _expression_columns(expression: str) -> frozenset[str]:
    """The column names an SQL expression (a CHECK's, as text) reads; every name when it does not parse."""
    from pglast import parse_sql

    class _Columns(_Search):
        def __init__(self) -> None:
            super().__init__()
            self.names: set[str] = set()

        def visit_ColumnRef(self, ancestors, node) -> None:
            if isinstance(node.fields[-1], ast.String):
                self.names.add(node.fields[-1].sval)

    try:
        found = _Columns()
        found(parse_sql(f"SELECT {expression}")[0].stmt)
    except Exception:
        return _EVERY_COLUMN
    return frozenset(found.names)


class _Every(frozenset):
    def __contains__(self, item) -> bool:
        return True


_EVERY_COLUMN = _Every()


def _is_plain_cast(using: Any, column: str, type_name: ast.TypeName) -> bool:
    """Whether USING is just the column (optionally cast to the new type), like the default conversion."""
    match using:
        case ast.ColumnRef(fields=fields):
            return fields[-1].sval == column
        case ast.TypeCast(arg=ast.ColumnRef(fields=fields), typeName=cast_type):
            return fields[-1].sval == column and _Type.of(cast_type) == _Type.of(type_name)
    return False


# -- constraints -------------------------------------------------------------------------------


_CONTYPES = {
    _CT.CONSTR_CHECK: "check", _CT.CONSTR_FOREIGN: "foreign_key", _CT.CONSTR_UNIQUE: "unique",
    _CT.CONSTR_PRIMARY: "primary_key", _CT.CONSTR_EXCLUSION: "exclusion", _CT.CONSTR_NOTNULL: "not_null",
}


def _add_constraint(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    con: ast.Constraint = cmd.def_
    contype = _CONTYPES.get(con.contype)
    name = con.conname
    label = _q(name) if name else "the constraint"
    not_valid = bool(con.skip_validation)
    not_enforced = con.contype in (_CT.CONSTR_CHECK, _CT.CONSTR_FOREIGN) and not con.is_enforced
    columns: tuple[str, ...] = ()
    references = None
    expression = None
    other_mode = None
    scans_override = None
    if contype == "check":
        expression = _sql(con.raw_expr)
        if not_enforced and ctx.holds("add_constraint.not_enforced"):
            f, why = ctx.fact("add_constraint.not_enforced"), "NOT ENFORCED: no row is checked"
        elif not_valid:
            f, why = ctx.fact("add_constraint.check.not_valid"), "NOT VALID skips the check of existing rows"
        else:
            f = ctx.fact("add_constraint.check")
            why = f"every row of {_q(table)} is checked while holding ACCESS EXCLUSIVE"
        reason = f"adding CHECK {label} on {_q(table)}: {why}"
    elif contype == "foreign_key":
        columns = tuple(a.sval for a in con.fk_attrs or ())
        references = _name(con.pktable)
        if not_enforced and ctx.holds("add_constraint.not_enforced"):
            f = ctx.fact("add_constraint.foreign_key.not_valid")
            reason = (f"adding the NOT ENFORCED foreign key {label} checks no row but takes SHARE ROW EXCLUSIVE on "
                      f"{_q(table)} and {_q(references)}")
        elif not_valid and ctx.catalog.relkind(table) == "partitioned table" and not ctx.holds(
                "add_constraint.foreign_key.partitioned_not_valid"):
            raise LookupError(f"PostgreSQL {ctx.pg_version} refuses a NOT VALID foreign key on a partitioned table")
        elif not_valid:
            f = ctx.fact("add_constraint.foreign_key.not_valid")
            reason = (f"adding the foreign key {label} NOT VALID checks no row, but takes SHARE ROW EXCLUSIVE on "
                      f"{_q(table)} and {_q(references)} (blocking their writes) until the transaction ends")
        else:
            f = ctx.fact("add_constraint.foreign_key")
            reason = (f"adding the foreign key {label} checks every row of {_q(table)} against {_q(references)} "
                      f"while holding SHARE ROW EXCLUSIVE on both, which blocks their writes")
        other_mode = f.other_mode
    elif contype in ("unique", "primary_key"):
        columns = tuple(k.sval for k in con.keys or ())
        kind = "PRIMARY KEY" if contype == "primary_key" else "UNIQUE"
        nullable = [c for c in columns if not ctx.catalog.is_not_null(table, c)] if contype == "primary_key" else []
        if con.indexname:
            f = ctx.fact("add_constraint.using_index")
            reason = (f"adding {kind} {label} USING INDEX {_q(con.indexname)} builds nothing, under a brief ACCESS "
                      f"EXCLUSIVE on {_q(table)}")
            if contype == "primary_key" and not columns:
                # USING INDEX names no columns: the index's, when the catalog knows them
                known = ctx.catalog.index_columns.get(con.indexname)
                columns = tuple(known or ())
                nullable = [c for c in columns if not ctx.catalog.is_not_null(table, c)] if known else ["?"]
        else:
            f = ctx.fact("add_constraint.unique")
            reason = (f"adding {kind} {label} builds its index on {_q(table)} while holding ACCESS EXCLUSIVE, "
                      "blocking reads and writes")
        if nullable:
            scans_override = ctx.fact("add_constraint.primary_key.nullable").scans
            reason += ("; the primary key also reads every row to check for NULLs (its columns are not known to be "
                       "NOT NULL)")
    elif contype == "exclusion":
        f = ctx.fact("add_constraint.exclusion")
        reason = f"adding EXCLUDE {label} builds its index on {_q(table)} while holding ACCESS EXCLUSIVE"
    elif contype == "not_null" and ctx.holds("add_constraint.not_null"):
        columns = tuple(k.sval for k in con.keys or ())
        f = ctx.fact("add_constraint.not_null.not_valid" if not_valid else "add_constraint.not_null")
        why = ("NOT VALID skips the check of existing rows" if not_valid else f"every row of {_q(table)} is checked "
               "for NULLs under ACCESS EXCLUSIVE")
        reason = f"adding NOT NULL {label} on {_q(table)}: {why}"
    else:
        f = ctx.fact("unknown")
        ctx.known = False
        reason = (f"this kind of constraint is not modelled on PostgreSQL {ctx.pg_version}, so ACCESS EXCLUSIVE is "
                  f"assumed on {_q(table)}")
    ctx.lock(table, f.mode)
    referenced_partitions = ctx.catalog.descendants(references) if references else ()
    if references:
        ctx.lock(references, other_mode, ctx.catalog.relkind(references) or "table")
        for partition in referenced_partitions:  # the key is checked against each partition
            ctx.lock(partition, other_mode)
    ctx.act(
        ActionKind.ADD_CONSTRAINT, table, f, reason, scans=scans_override if scans_override is not None else f.scans,
        contype=contype, name=name, not_valid=not_valid, using_index=con.indexname, columns=columns,
        references=references, expression=expression, not_enforced=not_enforced, reads=referenced_partitions,
        not_null_columns=not_null_columns(con.raw_expr) if contype == "check" else (),
        deferrable=bool(con.deferrable), deferred=bool(con.initdeferred),
    )


def not_null_columns(expr: Any) -> tuple[str, ...]:
    """Columns a CHECK expression (a pglast node) proves NOT NULL: ``col IS NOT NULL``, possibly ANDed with more."""
    match expr:
        case ast.NullTest(nulltesttype=NullTestType.IS_NOT_NULL, arg=ast.ColumnRef(fields=fields)):
            return (fields[-1].sval,)
        case ast.BoolExpr(boolop=BoolExprType.AND_EXPR, args=args):
            return tuple(c for arg in args for c in not_null_columns(arg))
    return ()


def _validate_constraint(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    name = cmd.name
    fk = ctx.catalog.foreign_key_named(table, name)
    if fk is not None:
        f = ctx.fact("validate_constraint.foreign_key")
        ctx.lock(fk.referenced, f.other_mode)
        reason = (f"validating the foreign key {_q(name)} reads every row of {_q(table)} under SHARE UPDATE EXCLUSIVE "
                  f"(reads and writes continue) and takes ROW SHARE on {_q(fk.referenced)}")
    else:
        f = ctx.fact("validate_constraint")
        reason = (f"validating {_q(name)} reads every row of {_q(table)} under SHARE UPDATE EXCLUSIVE, so reads and "
                  "writes continue")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.VALIDATE_CONSTRAINT, table, f, reason, name=name,
            references=fk.referenced if fk is not None else None)


def _drop_constraint(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    name = cmd.name
    fk = ctx.catalog.foreign_key_named(table, name)
    f = ctx.fact("drop_constraint.foreign_key" if fk else "drop_constraint")
    ctx.lock(table, f.mode)
    reason = f"dropping the constraint {_q(name)} of {_q(table)} takes ACCESS EXCLUSIVE briefly"
    others: tuple[str, ...] = ()
    if fk is not None:
        others = (fk.referenced,)
        ctx.lock(fk.referenced, f.other_mode)
        reason = (f"dropping the foreign key {_q(name)} takes ACCESS EXCLUSIVE briefly on {_q(table)} and on "
                  f"{_q(fk.referenced)}")
    key_columns = ctx.catalog.unique_constraint(table, name)
    if key_columns is not None and cmd.behavior is DropBehavior.DROP_CASCADE:
        # the foreign keys that depend on this key's index are dropped with it
        c = ctx.fact("drop_constraint.foreign_key")
        dependants = [fk.table for fk in ctx.catalog.foreign_keys_to(table)
                      if tuple(sorted(_referenced_columns(fk, ctx.catalog))) == tuple(sorted(key_columns))]
        others = tuple(dict.fromkeys(t for t in dependants if t != table))
        for other in others:
            ctx.lock(other, c.other_mode)
        if others:
            reason += f"; CASCADE drops the foreign keys of {', '.join(map(_q, others))} too, under ACCESS EXCLUSIVE"
    ctx.act(ActionKind.DROP_CONSTRAINT, table, f, reason, name=name, other_tables=others)


# -- other ALTER TABLE subcommands ---------------------------------------------------------------


def _simple(key: str, what: str):
    """A subcommand that only takes the lock of fact ``key`` on the table (``what`` names it in the reason)."""

    def handler(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
        f = ctx.fact(key)
        ctx.lock(table, f.mode)
        subject = f"{_q(table)}.{_q(cmd.name)}" if cmd.name else _q(table)
        effect = "rewrites every row of" if f.rewrites else "only changes the catalog of"
        ctx.act(ActionKind.OTHER, table, f, f"{what} {effect} {_q(table)}, under {f.mode.label}"
                + (f" ({subject})" if cmd.name else ""), column=cmd.name, subcommand=cmd.subtype.name)

    return handler


# Storage parameters whose change takes only SHARE UPDATE EXCLUSIVE (reloptions.c lock levels).
_WEAK_RELOPTIONS = frozenset({
    "fillfactor", "parallel_workers", "toast_tuple_target", "vacuum_truncate", "vacuum_index_cleanup",
    "log_autovacuum_min_duration", "autovacuum_enabled",
})


def _reloptions(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    names = [d.defname.lower() for d in cmd.def_ or ()]
    strong = [n for n in names if not (n in _WEAK_RELOPTIONS or n.startswith(("autovacuum_", "toast.")))]
    f = ctx.fact("set_reloptions.other" if strong else "set_reloptions")
    ctx.lock(table, f.mode, ctx.catalog.relkind(table) or "table")
    verb = "RESET" if cmd.subtype is _AT.AT_ResetRelOptions else "SET"
    why = (f"{', '.join(strong)} takes ACCESS EXCLUSIVE" if strong else "these parameters take SHARE UPDATE EXCLUSIVE, "
           "so reads and writes continue")
    ctx.act(ActionKind.OTHER, table, f, f"{verb} ({', '.join(names)}) on {_q(table)} rewrites nothing; {why}",
            options=tuple(names))


def _set_access_method(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    method = (cmd.name or "heap").lower()  # None: DEFAULT, i.e. default_table_access_method (heap)
    f = ctx.fact("set_access_method.same" if method == "heap" else "set_access_method")
    ctx.lock(table, f.mode)
    why = ("tables use heap unless created otherwise, so nothing changes" if method == "heap"
           else f"moving to {method} rewrites every row")
    ctx.act(ActionKind.OTHER, table, f, f"SET ACCESS METHOD {method} on {_q(table)}: {why}", method=method)


def _set_tablespace(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    f = ctx.fact("set_tablespace")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.OTHER, table, f, f"SET TABLESPACE {_q(cmd.name)} copies every block of {_q(table)} under ACCESS "
            "EXCLUSIVE, blocking reads and writes for the whole copy", tablespace=cmd.name, copies=True)


def _set_logged(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    f = ctx.fact("set_logged")
    ctx.lock(table, f.mode)
    what = "SET LOGGED" if cmd.subtype is _AT.AT_SetLogged else "SET UNLOGGED"
    ctx.act(ActionKind.OTHER, table, f, f"{what} copies every row of {_q(table)} to new storage and rebuilds its "
            "indexes under ACCESS EXCLUSIVE")


def _inherit(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    adding = cmd.subtype is _AT.AT_AddInherit
    f = ctx.fact("inherit" if adding else "no_inherit")
    parent = _name(cmd.def_)
    ctx.lock(table, f.mode)
    ctx.lock(parent, f.other_mode)
    ctx.act(ActionKind.OTHER, table, f, f"{'INHERIT' if adding else 'NO INHERIT'} {_q(parent)} takes ACCESS EXCLUSIVE "
            f"on {_q(table)} and {f.other_mode.label} on {_q(parent)}", parent=parent)


def _of_type(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    if cmd.subtype is _AT.AT_AddOf:
        f = ctx.fact("of_type")
        type_name = _dotted(cmd.def_.names)
        ctx.lock(type_name, f.other_mode, "type")
        reason = f"OF {_q(type_name)} takes ACCESS EXCLUSIVE on {_q(table)} and ACCESS SHARE on the type"
    else:
        f = ctx.fact("not_of")
        reason = f"NOT OF takes ACCESS EXCLUSIVE on {_q(table)}"
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.OTHER, table, f, reason)


def _set_expression(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    if not ctx.holds("set_expression"):
        raise LookupError(f"SET EXPRESSION does not exist before PostgreSQL 17 (modelling {ctx.pg_version})")
    f = ctx.fact("set_expression")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.OTHER, table, f, f"SET EXPRESSION recomputes {_q(table)}.{_q(cmd.name)} for every row, "
            "rewriting the table under ACCESS EXCLUSIVE", column=cmd.name)


def _alter_constraint(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    spec = cmd.def_
    name = getattr(spec, "conname", None)
    if getattr(spec, "alterEnforceability", False):
        fk = ctx.catalog.foreign_key_named(table, name)
        if spec.is_enforced or fk is None or not ctx.holds("alter_constraint.not_enforced"):
            raise LookupError("ALTER CONSTRAINT ... ENFORCED (or on a constraint not known) is not modelled")
        f = ctx.fact("alter_constraint.not_enforced")
        ctx.lock(table, f.mode)
        ctx.lock(fk.referenced, f.other_mode)
        ctx.act(ActionKind.OTHER, table, f, f"making the foreign key {_q(name)} NOT ENFORCED takes ACCESS EXCLUSIVE on "
                f"{_q(table)} and {_q(fk.referenced)}", name=name, other_tables=(fk.referenced,))
        return
    f = ctx.fact("alter_constraint")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.OTHER, table, f, f"ALTER CONSTRAINT {_q(name)} changes its deferrability in the catalog, under "
            f"ACCESS EXCLUSIVE on {_q(table)}", name=name)


def _attach_partition(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    partition = _name(cmd.def_.name)
    bound = cmd.def_.bound
    f = ctx.fact("attach_partition")
    ctx.lock(table, f.mode, "partitioned table")
    ctx.lock(partition, f.other_mode)
    proof = _bound_proven(ctx.catalog, partition, table, bound)
    missing = _indexes_to_build(ctx.catalog, table, partition)
    reason = (f"ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on {_q(table)} (reads and writes continue) and ACCESS "
              f"EXCLUSIVE on {_q(partition)}; ")
    reason += (f"the CHECK constraint {_q(proof)} proves the bound, so no row is read" if proof else
               f"every row of {_q(partition)} is read to check the partition bound")
    if missing:
        reason += f"; {', '.join(map(_q, missing))} of the parent must be built on it"
    ctx.act(ActionKind.OTHER, partition, f, reason, mode=f.other_mode, scans=not proof, builds_index=bool(missing),
            attach=None, partition_of=table)
    # for the catalog: the parent now has this child
    ctx.act(ActionKind.OTHER, table, f, f"{_q(partition)} becomes a partition of {_q(table)}", scans=False,
            attach=partition, default_partition=bool(bound is not None and bound.is_default))
    default = ctx.catalog.default_partition(table)
    if default and not (bound is not None and bound.is_default):
        d = ctx.fact("attach_partition.default")
        ctx.lock(default, d.mode)
        ctx.act(ActionKind.OTHER, default, d, f"the DEFAULT partition {_q(default)} is locked ACCESS EXCLUSIVE and "
                "read in full for rows that belong to the new partition", partition_of=table)


def _indexes_to_build(catalog: Catalog, parent: str, partition: str) -> tuple[str, ...]:
    """Indexes of ``parent`` that ``partition`` has no index on the same columns for."""
    own = {catalog.index_columns.get(i) for i, t in catalog.indexes.items() if t == partition or t == f"public.{partition}"}
    return tuple(sorted(
        i for i, t in catalog.indexes.items()
        if (t == parent or t == f"public.{parent}") and catalog.index_columns.get(i) not in own
    ))


def _bound_proven(catalog: Catalog, partition: str, parent: str, bound) -> str | None:
    """A validated CHECK of ``partition`` that implies a FROM .. TO range bound (the documented recipe)."""
    if bound is None or bound.strategy != "r" or len(bound.lowerdatums or ()) != 1:
        return None
    lower, upper = (_literal(bound.lowerdatums[0]), _literal(bound.upperdatums[0]))
    for (table, name), (expression, validated) in sorted(catalog.checks.items()):
        if table != partition or not validated:
            continue
        terms = _range_terms(expression)
        for column, (low, high) in terms.items():
            if low == lower and high == upper and catalog.is_not_null(partition, column):
                return name
    return None


def _literal(node: Any) -> str | None:
    match node:
        case ast.A_Const(val=ast.String(sval=text)):
            return text
        case ast.A_Const(val=ast.Integer(ival=number)):
            return str(number)
        case ast.TypeCast(arg=arg):
            return _literal(arg)
    return None


def _range_terms(expression: str) -> dict[str, tuple[str | None, str | None]]:
    """``{column: (lower, upper)}`` from a CHECK of the form ``col >= low AND col < high``."""
    from pglast import parse_sql

    try:
        expr = parse_sql(f"SELECT {expression}")[0].stmt.targetList[0].val
    except Exception:
        return {}
    args = expr.args if isinstance(expr, ast.BoolExpr) and expr.boolop is BoolExprType.AND_EXPR else (expr,)
    found: dict[str, list] = {}
    for arg in args:
        if isinstance(arg, ast.A_Expr) and isinstance(arg.lexpr, ast.ColumnRef) and len(arg.name) == 1:
            column, op, value = arg.lexpr.fields[-1].sval, arg.name[0].sval, _literal(arg.rexpr)
            slot = found.setdefault(column, [None, None])
            if op == ">=":
                slot[0] = value
            elif op == "<":
                slot[1] = value
    return {c: (low, high) for c, (low, high) in found.items()}


def _detach_partition(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    partition = _name(cmd.def_.name)
    finalize = cmd.subtype is _AT.AT_DetachPartitionFinalize
    concurrently = bool(cmd.def_.concurrent)
    key = "detach_partition.finalize" if finalize else (
        "detach_partition.concurrently" if concurrently else "detach_partition")
    f = ctx.fact(key)
    ctx.needs_no_transaction = ctx.needs_no_transaction or concurrently
    ctx.lock(table, f.mode, "partitioned table")
    ctx.lock(partition, f.other_mode)
    how = ("CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on the parent (reads and writes continue) and ACCESS EXCLUSIVE "
           f"on {_q(partition)}; it cannot run inside a transaction" if concurrently or finalize else
           f"takes ACCESS EXCLUSIVE on {_q(table)} and {_q(partition)}, blocking reads and writes of both")
    ctx.act(ActionKind.OTHER, table, f, f"DETACH PARTITION {_q(partition)} {how}", detach=partition,
            concurrently=concurrently)


_NOT_RECURSING = frozenset({
    _AT.AT_SetRelOptions, _AT.AT_ResetRelOptions, _AT.AT_ReplaceRelOptions, _AT.AT_ChangeOwner, _AT.AT_ClusterOn,
    _AT.AT_DropCluster, _AT.AT_SetTableSpace, _AT.AT_ReplicaIdentity, _AT.AT_EnableRowSecurity,
    _AT.AT_DisableRowSecurity, _AT.AT_ForceRowSecurity, _AT.AT_NoForceRowSecurity, _AT.AT_EnableRule,
    _AT.AT_EnableAlwaysRule, _AT.AT_EnableReplicaRule, _AT.AT_DisableRule, _AT.AT_AddInherit, _AT.AT_DropInherit,
    _AT.AT_AddOf, _AT.AT_DropOf, _AT.AT_AttachPartition, _AT.AT_DetachPartition, _AT.AT_DetachPartitionFinalize,
    _AT.AT_SetLogged, _AT.AT_SetUnLogged, _AT.AT_SetAccessMethod, _AT.AT_GenericOptions, _AT.AT_DropOids,
})


_ALTER_TABLE_COMMANDS = {
    _AT.AT_AddColumn: _add_column,
    _AT.AT_DropColumn: _drop_column,
    _AT.AT_ColumnDefault: _column_default,
    _AT.AT_SetNotNull: _set_not_null,
    _AT.AT_DropNotNull: _drop_not_null,
    _AT.AT_AlterColumnType: _alter_column_type,
    _AT.AT_AddConstraint: _add_constraint,
    _AT.AT_ValidateConstraint: _validate_constraint,
    _AT.AT_DropConstraint: _drop_constraint,
    _AT.AT_SetStatistics: _set_statistics,
    _AT.AT_AddIdentity: _identity,
    _AT.AT_DropIdentity: _identity,
    _AT.AT_SetStorage: _simple("set_storage", "SET STORAGE"),
    _AT.AT_SetCompression: _simple("set_compression", "SET COMPRESSION"),
    _AT.AT_SetOptions: _simple("set_column_options", "SET (column options)"),
    _AT.AT_ResetOptions: _simple("set_column_options", "RESET (column options)"),
    _AT.AT_SetRelOptions: _reloptions,
    _AT.AT_ResetRelOptions: _reloptions,
    _AT.AT_ClusterOn: _simple("cluster_on", "CLUSTER ON"),
    _AT.AT_DropCluster: _simple("cluster_on", "SET WITHOUT CLUSTER"),
    _AT.AT_SetLogged: _set_logged,
    _AT.AT_SetUnLogged: _set_logged,
    _AT.AT_SetAccessMethod: _set_access_method,
    _AT.AT_SetTableSpace: _set_tablespace,
    _AT.AT_ChangeOwner: _simple("owner", "OWNER TO"),
    _AT.AT_ReplicaIdentity: _simple("replica_identity", "REPLICA IDENTITY"),
    _AT.AT_EnableRowSecurity: _simple("row_security", "ENABLE ROW LEVEL SECURITY"),
    _AT.AT_DisableRowSecurity: _simple("row_security", "DISABLE ROW LEVEL SECURITY"),
    _AT.AT_ForceRowSecurity: _simple("row_security", "FORCE ROW LEVEL SECURITY"),
    _AT.AT_NoForceRowSecurity: _simple("row_security", "NO FORCE ROW LEVEL SECURITY"),
    _AT.AT_EnableTrig: _simple("trigger_enable", "ENABLE TRIGGER"),
    _AT.AT_EnableAlwaysTrig: _simple("trigger_enable", "ENABLE ALWAYS TRIGGER"),
    _AT.AT_EnableReplicaTrig: _simple("trigger_enable", "ENABLE REPLICA TRIGGER"),
    _AT.AT_DisableTrig: _simple("trigger_enable", "DISABLE TRIGGER"),
    _AT.AT_EnableTrigAll: _simple("trigger_enable", "ENABLE TRIGGER ALL"),
    _AT.AT_DisableTrigAll: _simple("trigger_enable", "DISABLE TRIGGER ALL"),
    _AT.AT_EnableTrigUser: _simple("trigger_enable", "ENABLE TRIGGER USER"),
    _AT.AT_DisableTrigUser: _simple("trigger_enable", "DISABLE TRIGGER USER"),
    _AT.AT_EnableRule: _simple("rule_enable", "ENABLE RULE"),
    _AT.AT_EnableAlwaysRule: _simple("rule_enable", "ENABLE ALWAYS RULE"),
    _AT.AT_EnableReplicaRule: _simple("rule_enable", "ENABLE REPLICA RULE"),
    _AT.AT_DisableRule: _simple("rule_enable", "DISABLE RULE"),
    _AT.AT_AddInherit: _inherit,
    _AT.AT_DropInherit: _inherit,
    _AT.AT_AddOf: _of_type,
    _AT.AT_DropOf: _of_type,
    _AT.AT_SetIdentity: _simple("set_identity", "changing the identity of a column"),
    _AT.AT_DropExpression: _simple("drop_expression", "DROP EXPRESSION"),
    _AT.AT_SetExpression: _set_expression,
    _AT.AT_AlterConstraint: _alter_constraint,
    _AT.AT_DropOids: _simple("drop_oids", "SET WITHOUT OIDS"),
    _AT.AT_GenericOptions: _simple("foreign_table_options", "OPTIONS"),
    _AT.AT_AlterColumnGenericOptions: _simple("foreign_table_options", "column OPTIONS"),
    _AT.AT_AttachPartition: _attach_partition,
    _AT.AT_DetachPartition: _detach_partition,
    _AT.AT_DetachPartitionFinalize: _detach_partition,
}
# Subcommands PostgreSQL only makes internally (they never appear in SQL) stay unmodelled:
# AT_AddColumnToView, AT_CookedColumnDefault, AT_AddIndex, AT_ReAddIndex, AT_ReAddConstraint,
# AT_ReAddDomainConstraint, AT_AddIndexConstraint, AT_ReAddComment, AT_ReplaceRelOptions, AT_ReAddStatistics.


# -- indexes -----------------------------------------------------------------------------------


def _create_index(node: ast.IndexStmt, ctx: _Context) -> None:
    table = _name(node.relation)
    name = node.idxname
    concurrently = bool(node.concurrent)
    f = ctx.fact("create_index.concurrently" if concurrently else "create_index")
    ctx.needs_no_transaction = ctx.needs_no_transaction or concurrently
    ctx.lock(table, f.mode)
    columns = tuple(
        p.name if p.name else _sql(p.expr) for p in node.indexParams or ()
    )
    exists = bool(node.if_not_exists and name and ctx.catalog.index_table(name))
    invalid = bool(name and ctx.catalog.is_invalid_index(name))
    kind = "unique index" if node.unique else "index"
    label = f"{kind} {_q(name)}" if name else kind
    if exists:
        reason = f"{_q(name)} already exists, so IF NOT EXISTS builds nothing (the lock on {_q(table)} is still taken)"
        if invalid:
            reason += "; that index is INVALID (a failed concurrent build left it) and stays so"
    elif concurrently:
        reason = (f"building {label} CONCURRENTLY on {_q(table)} takes SHARE UPDATE EXCLUSIVE, so reads and writes "
                  f"continue; it cannot run inside a transaction")
    else:
        reason = f"building {label} on {_q(table)} holds SHARE, blocking writes for the whole build"
    partitioned = ctx.catalog.relkind(table) == "partitioned table"
    detail = dict(name=name, concurrently=concurrently, unique=bool(node.unique), columns=columns,
                  method=node.accessMethod, partial=node.whereClause is not None,
                  include=tuple(p.name for p in node.indexIncludingParams or ()),
                  if_not_exists=bool(node.if_not_exists), existing_invalid=invalid,
                  name_taken=bool(name and not node.if_not_exists and ctx.catalog.index_table(name)))
    if partitioned and not exists:
        p = ctx.fact("create_index.partitioned" if node.relation.inh else "create_index.only")
        if not node.relation.inh:
            reason = (f"CREATE INDEX ON ONLY {_q(table)} creates an invalid index on the partitioned table alone, "
                      "building nothing; attach each partition's index to it")
        else:
            reason = f"{reason}; on a partitioned table it is built on every partition, each locked SHARE"
        ctx.act(ActionKind.CREATE_INDEX, table, p, reason, builds_index=False, **detail)
        for child in ctx.catalog.descendants(table) if node.relation.inh else ():
            ctx.lock(child, p.mode)
            if ctx.catalog.relkind(child) != "partitioned table":
                ctx.act(ActionKind.OTHER, child, p, f"the index is built on the partition {_q(child)} under SHARE, "
                        "blocking its writes", partition_of=table, index=name)
        return
    ctx.act(ActionKind.CREATE_INDEX, table, f, reason, builds_index=not exists and f.builds_index, **detail)


def _drop_indexes(node: ast.DropStmt, ctx: _Context) -> None:
    concurrently = bool(node.concurrent)
    f = ctx.fact("drop_index.concurrently" if concurrently else "drop_index")
    ctx.needs_no_transaction = ctx.needs_no_transaction or concurrently
    for obj in node.objects:
        index = _dotted(obj)
        table = ctx.catalog.index_table(index)
        if node.missing_ok and ctx.catalog.relkinds and table is None:
            ctx.act(ActionKind.OTHER, None, ctx.fact("missing_table"), f"{_q(index)} does not exist, so DROP INDEX IF "
                    "EXISTS does nothing")
            continue
        ctx.lock(index, f.mode, "index")
        ctx.lock(table, f.other_mode)
        on = _q(table) if table else "its table (not known here)"
        partitions = ctx.catalog.descendants(table) if table and ctx.catalog.relkind(table) == "partitioned table" \
            else ()
        if concurrently:
            reason = (f"dropping {_q(index)} CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on {on}, so reads and writes "
                      f"continue; it cannot run inside a transaction")
        else:
            reason = f"dropping {_q(index)} takes ACCESS EXCLUSIVE on it and on {on}, briefly"
            if partitions:
                p = ctx.fact("drop_index.partitioned")
                for partition in partitions:
                    ctx.lock(partition, p.other_mode, ctx.catalog.relkind(partition) or "table")
                reason += (f"; it is a partitioned index, so the index of every partition is dropped too, under "
                           f"ACCESS EXCLUSIVE on {', '.join(map(_q, partitions))}")
        ctx.act(ActionKind.DROP_INDEX, table, f, reason, mode=f.other_mode, name=index, concurrently=concurrently,
                unique=None, columns=())


def _rename_index(node: ast.RenameStmt, ctx: _Context) -> None:
    index = _name(node.relation)
    f = ctx.fact("rename_index")
    ctx.lock(index, f.mode, "index")
    table = ctx.catalog.index_table(index)
    ctx.act(ActionKind.RENAME_INDEX, table, f,
            f"renaming the index {_q(index)} to {_q(node.newname)} takes SHARE UPDATE EXCLUSIVE on the index "
            f"only; reads and writes of its table continue", mode=None, name=index, new_name=node.newname)


# -- ALTER INDEX / VIEW / MATERIALIZED VIEW (AlterTableStmt on other relations) -----------------


def _alter_index(node: ast.AlterTableStmt, ctx: _Context) -> None:
    index = _name(node.relation)
    table = ctx.catalog.index_table(index)
    for cmd in node.cmds:
        if cmd.subtype in (_AT.AT_SetRelOptions, _AT.AT_ResetRelOptions, _AT.AT_SetStatistics):
            f = ctx.fact("alter_index_options")
            ctx.lock(index, f.mode, "index")
            ctx.act(ActionKind.OTHER, table, f, f"changing options of the index {_q(index)} takes SHARE UPDATE EXCLUSIVE "
                    "on the index only; its table is not locked", mode=None, index=index)
        elif cmd.subtype is _AT.AT_SetTableSpace:
            if table is None:
                raise LookupError(f"the table of the index {index} is not known (no database catalog), so whose "
                                  "queries wait for the copy cannot be judged")
            f = ctx.fact("alter_index_tablespace")
            ctx.lock(index, f.mode, "index")
            ctx.act(ActionKind.OTHER, table, f, f"moving the index {_q(index)} copies it under ACCESS EXCLUSIVE on the "
                    "index: queries that would use it wait", mode=None, index=index, copies=True)
        elif cmd.subtype is _AT.AT_AttachPartition:
            f = ctx.fact("attach_index")
            child = _name(cmd.def_.name)
            child_table = ctx.catalog.index_table(child)
            read = ctx.fact("dml.read").mode
            ctx.lock(index, f.mode, "index")
            ctx.lock(child, f.other_mode, "index")
            ctx.lock(table, read)
            ctx.lock(child_table, read)
            ctx.act(ActionKind.OTHER, table, f, f"attaching the index {_q(child)} to {_q(index)} takes ACCESS EXCLUSIVE "
                    f"on {_q(child)} and ACCESS SHARE on the tables", mode=read, index=index)
        else:
            raise LookupError(f"ALTER INDEX subcommand {cmd.subtype.name} is not modelled")


def _alter_view(node: ast.AlterTableStmt, ctx: _Context) -> None:
    view = _name(node.relation)
    kind = "materialized view" if node.objtype is ObjectType.OBJECT_MATVIEW else "view"
    for cmd in node.cmds:
        if kind == "materialized view" and cmd.subtype is _AT.AT_SetAccessMethod:
            method = (cmd.name or "heap").lower()
            f = ctx.fact("set_access_method.same" if method == "heap" else "set_access_method")
            why = "a materialized view uses heap unless created otherwise, so nothing changes" if method == "heap" \
                else f"moving to {method} copies every row of it into new storage and rebuilds its indexes"
            ctx.lock(view, f.mode, kind)
            ctx.act(ActionKind.OTHER, view, f, f"SET ACCESS METHOD {method} on {_q(view)}: {why}", relkind=kind,
                    method=method)
        elif kind == "materialized view" and cmd.subtype is _AT.AT_SetTableSpace:
            f = ctx.fact("set_tablespace")
            ctx.lock(view, f.mode, kind)
            ctx.act(ActionKind.OTHER, view, f, f"SET TABLESPACE {_q(cmd.name)} copies every block of {_q(view)} under "
                    "ACCESS EXCLUSIVE, blocking reads of it for the whole copy", relkind=kind, tablespace=cmd.name,
                    copies=True)
        else:
            f = ctx.fact("alter_view")
            ctx.lock(view, f.mode, kind)
            ctx.act(ActionKind.OTHER, view, f, f"ALTER {kind.upper()} {_q(view)} takes ACCESS EXCLUSIVE on it: every "
                    "query using it waits", relkind=kind)


# -- CREATE TABLE ... PARTITION OF / INHERITS ----------------------------------------------------


def _create_child(table: str, node: ast.CreateStmt, ctx: _Context) -> tuple[str, ...]:
    """Locks on the parents of a new partition or child table; returns the parents."""
    parents = tuple(_name(p) for p in node.inhRelations or ())
    if node.partbound is not None:
        f = ctx.fact("create_table.partition_of")
        for parent in parents:
            ctx.lock(parent, f.other_mode, "partitioned table")
            ctx.act(ActionKind.OTHER, parent, f, f"creating the partition {_q(table)} takes ACCESS EXCLUSIVE on "
                    f"{_q(parent)}: every query on it waits", mode=f.other_mode)
            default = ctx.catalog.default_partition(parent)
            if default and not node.partbound.is_default:
                d = ctx.fact("create_table.partition_of.default")
                ctx.lock(default, d.other_mode)
                ctx.act(ActionKind.OTHER, default, d, f"the DEFAULT partition {_q(default)} is locked ACCESS EXCLUSIVE "
                        "and read in full for rows that would belong to the new partition", mode=d.other_mode)
            elif not node.partbound.is_default and not ctx.catalog.from_database and not ctx.catalog.is_created(parent):
                # Whether the parent has a DEFAULT partition is not known: assume it has (fail closed).
                d = ctx.fact("create_table.partition_of.default")
                ctx.act(ActionKind.OTHER, parent, d, f"whether {_q(parent)} has a DEFAULT partition is not known without "
                        "the database's catalog: if it has one, it is locked ACCESS EXCLUSIVE and read in full for "
                        "rows that would belong to the new partition", mode=d.other_mode, assumed_default=True)
    else:
        f = ctx.fact("create_table.inherits")
        for parent in parents:
            ctx.lock(parent, f.other_mode)
            ctx.act(ActionKind.OTHER, parent, f, f"creating {_q(table)} as a child of {_q(parent)} takes SHARE UPDATE "
                    f"EXCLUSIVE on {_q(parent)}", mode=f.other_mode)
    return parents


# -- REINDEX, VACUUM, ANALYZE, CLUSTER -----------------------------------------------------------


def _reindex(node: ast.ReindexStmt, ctx: _Context) -> None:
    concurrently = any(p.defname == "concurrently" for p in node.params or ())
    kind = node.kind.name.removeprefix("REINDEX_OBJECT_")
    if kind not in ("INDEX", "TABLE") or node.relation is None:
        raise LookupError(f"REINDEX {kind} is not modelled")
    f = ctx.fact("reindex.concurrently" if concurrently else "reindex")
    ctx.needs_no_transaction = ctx.needs_no_transaction or concurrently
    if kind == "INDEX":
        index = _name(node.relation)
        table = ctx.catalog.index_table(index)
        if table is None and not concurrently:
            raise LookupError(f"the table of the index {index} is not known (no database catalog), so how long "
                              "its writes are blocked cannot be judged")
        ctx.lock(index, f.other_mode or f.mode, "index")
        what = f"the index {_q(index)}"
    else:
        table = _name(node.relation)
        what = f"every index of {_q(table)}"
        for index, owner in sorted(ctx.catalog.indexes.items()):
            if owner in (table, f"public.{table}", table.removeprefix("public.")):
                ctx.lock(index, f.other_mode or f.mode, "index")
    ctx.lock(table, f.mode)
    on = _q(table) if table else "its table (not known here)"
    if concurrently:
        reason = (f"REINDEX CONCURRENTLY builds a new copy of {what} under SHARE UPDATE EXCLUSIVE on {on}, so reads and "
                  "writes continue; it cannot run inside a transaction")
    else:
        reason = (f"REINDEX rebuilds {what} holding SHARE on {on} (writes wait) and ACCESS EXCLUSIVE on the index "
                  "(queries that would use it wait)")
    ctx.act(ActionKind.OTHER, table, f, reason, concurrently=concurrently)


def _vacuum(node: ast.VacuumStmt, ctx: _Context) -> None:
    options = {o.defname.lower() for o in node.options or ()}
    if not node.rels:
        raise LookupError("VACUUM/ANALYZE of every table is not modelled")
    if not node.is_vacuumcmd:
        f = ctx.fact("analyze")
        verb = "ANALYZE samples"
    elif "full" in options:
        f = ctx.fact("vacuum_full")
        verb = "VACUUM FULL copies every row of"
    else:
        f = ctx.fact("vacuum")
        verb = "VACUUM cleans"
    ctx.needs_no_transaction = ctx.needs_no_transaction or bool(node.is_vacuumcmd)
    for rel in node.rels:
        table = _name(rel.relation)
        ctx.lock(table, f.mode)
        ctx.act(ActionKind.OTHER, table, f, f"{verb} {_q(table)} under {f.mode.label}"
                + (", blocking reads and writes" if f.mode.blocks_reads else ", so reads and writes continue"))
        for child in ctx.catalog.descendants(table) if rel.relation.inh else ():
            ctx.lock(child, f.mode)
            ctx.act(ActionKind.OTHER, child, f, f"{verb} the partition {_q(child)} too", partition_of=table)


def _cluster(node: ast.ClusterStmt, ctx: _Context) -> None:
    if node.relation is None:
        raise LookupError("CLUSTER of every clustered table is not modelled")
    table = _name(node.relation)
    f = ctx.fact("cluster")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.OTHER, table, f, f"CLUSTER copies every row of {_q(table)} in index order and rebuilds its "
            "indexes under ACCESS EXCLUSIVE, blocking reads and writes")


# -- triggers, rules, policies, statistics --------------------------------------------------------


def _on_table(key: str, table: str, what: str, ctx: _Context, **detail: Any) -> None:
    f = ctx.fact(key)
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.OTHER, table, f, f"{what} takes {f.mode.label} on {_q(table)}, blocking {f.mode.blocks}",
            **detail)


def _drop_on_table(node: ast.DropStmt, key: str, what: str, ctx: _Context) -> None:
    for obj in node.objects:
        names = [n.sval for n in obj]
        table = ".".join(names[:-1])
        if node.missing_ok and _missing(ctx, table):
            continue
        _on_table(key, table, f"{what} {_q(names[-1])}", ctx, name=names[-1])


# -- views and materialized views -------------------------------------------------------------------


def _relations_read(node: Any) -> list[str]:
    collector = _RangeVars()
    collector(node)
    return list(dict.fromkeys(collector.names))


def _create_view(node: ast.ViewStmt, ctx: _Context) -> None:
    view = _name(node.view)
    read = ctx.fact("create_view")
    for table in _relations_read(node.query):
        ctx.lock(table, read.mode, ctx.catalog.relkind(table) or "table")
    exists = node.replace and (ctx.catalog.relkind(view) == "view" or not ctx.catalog.relkinds)
    if exists:
        f = ctx.fact("replace_view")
        ctx.lock(view, f.mode, "view")
        ctx.act(ActionKind.OTHER, view, f, f"CREATE OR REPLACE VIEW takes ACCESS EXCLUSIVE on {_q(view)}: queries using "
                "it wait", relkind="view")
    else:
        ctx.act(ActionKind.OTHER, None, read, f"creating the view {_q(view)} only reads the definitions of the tables "
                "it selects from (ACCESS SHARE)", view=view)


def _create_table_as(node: ast.CreateTableAsStmt, ctx: _Context) -> None:
    target = _name(node.into.rel)
    f = ctx.fact("create_matview")
    for table in _relations_read(node.query):
        ctx.lock(table, f.mode, ctx.catalog.relkind(table) or "table")
    matview = node.objtype is ObjectType.OBJECT_MATVIEW
    kind = "materialized view" if matview else "table"
    ctx.act(ActionKind.CREATE_TABLE, target, f, f"creating the {kind} {_q(target)} runs its query"
            + (" later (WITH NO DATA)" if node.into.skipData else "") + ", reading its tables under ACCESS SHARE",
            mode=ctx.fact("create_table").mode, relkind=kind, columns=())


def _refresh_matview(node: ast.RefreshMatViewStmt, ctx: _Context) -> None:
    view = _name(node.relation)
    if node.concurrent:
        f = ctx.fact("refresh_matview.concurrently")
        reason = (f"REFRESH CONCURRENTLY takes EXCLUSIVE on {_q(view)} (reads continue, writes and other refreshes "
                  "wait) and compares the new result with every row of it")
    elif node.skipData:
        f = ctx.fact("refresh_matview.no_data")
        reason = f"REFRESH ... WITH NO DATA empties {_q(view)} under ACCESS EXCLUSIVE"
    else:
        f = ctx.fact("refresh_matview")
        reason = (f"REFRESH runs the query of {_q(view)} into new storage under ACCESS EXCLUSIVE: every query using the "
                  "view waits until the transaction ends")
    ctx.lock(view, f.mode, "materialized view")
    for table in ctx.catalog.tables_of_view(view) if not node.skipData else ():
        ctx.lock(table, f.other_mode)
    ctx.act(ActionKind.OTHER, view, f, reason, relkind="materialized view", truncates=bool(node.skipData),
            reads=ctx.catalog.tables_of_view(view))


# -- types, domains ---------------------------------------------------------------------------------


def _drop_types(node: ast.DropStmt, ctx: _Context) -> None:
    for obj in node.objects:
        type_name = _dotted(obj.names) if isinstance(obj, ast.TypeName) else _dotted(obj)
        tables = tuple(dict.fromkeys(t for t, _ in ctx.catalog.columns_of_type(type_name)))
        if node.behavior is DropBehavior.DROP_CASCADE and not tables and not ctx.catalog.relkinds:
            raise LookupError(f"which columns DROP TYPE {type_name} CASCADE drops is not known (no database catalog)")
        if node.behavior is DropBehavior.DROP_CASCADE and tables:
            f = ctx.fact("drop_type.cascade")
            for table in tables:
                ctx.lock(table, f.mode)
                columns = [c for t, c in ctx.catalog.columns_of_type(type_name) if t == table]
                for column in columns:
                    ctx.act(ActionKind.DROP_COLUMN, table, f, f"DROP TYPE {_q(type_name)} CASCADE drops "
                            f"{_q(table)}.{_q(column)} under ACCESS EXCLUSIVE", column=column, other_tables=(),
                            cascade=True)
        else:
            f = ctx.fact("catalog_object")
            ctx.act(ActionKind.OTHER, None, f, f"dropping the type {_q(type_name)} takes no lock on any table"
                    + ("" if node.behavior is DropBehavior.DROP_CASCADE else " (it fails if a column uses it)"))


def _alter_domain(node: ast.AlterDomainStmt, ctx: _Context) -> None:
    domain = _dotted(node.typeName)
    adding_check = node.subtype == "C" and isinstance(node.def_, ast.Constraint)
    if adding_check and node.def_.skip_validation:
        f = ctx.fact("alter_domain.not_valid")
        ctx.act(ActionKind.OTHER, None, f, f"adding a NOT VALID constraint to the domain {_q(domain)} checks no row",
                user_type=domain, constrained=True)
        return
    if not (adding_check or node.subtype == "O"):
        raise LookupError(f"ALTER DOMAIN subcommand {node.subtype!r} is not modelled")
    if not ctx.catalog.columns_of_type(domain) and not ctx.catalog.relkinds:
        raise LookupError(f"which tables use the domain {domain} is not known (no database catalog)")
    f = ctx.fact("alter_domain.check")
    what = "SET NOT NULL" if node.subtype == "O" else "ADD CONSTRAINT"
    for table, column in ctx.catalog.columns_of_type(domain):
        ctx.lock(table, f.mode)
        ctx.act(ActionKind.OTHER, table, f, f"ALTER DOMAIN {_q(domain)} {what} checks every row of {_q(table)}."
                f"{_q(column)} under SHARE, blocking writes", column=column)
    if not ctx.catalog.columns_of_type(domain):
        ctx.act(ActionKind.OTHER, None, f, f"ALTER DOMAIN {_q(domain)} {what}: no column of the database uses the "
                "domain, so no table is locked or read", mode=None, scans=False, user_type=domain, constrained=True)
    else:
        ctx.act(ActionKind.OTHER, None, f, f"the domain {_q(domain)} now has a constraint", mode=None, scans=False,
                user_type=domain, constrained=True)


# -- comments, privileges, sequences ----------------------------------------------------------------

_COMMENT_RELKINDS = {
    ObjectType.OBJECT_INDEX: "index", ObjectType.OBJECT_VIEW: "view",
    ObjectType.OBJECT_MATVIEW: "materialized view", ObjectType.OBJECT_SEQUENCE: "sequence",
}


def _comment_other(node: ast.CommentStmt, ctx: _Context) -> None:
    names = [n.sval for n in node.object] if isinstance(node.object, tuple) else []
    if node.objtype in _COMMENT_RELKINDS:
        relation, kind = ".".join(names), _COMMENT_RELKINDS[node.objtype]
        f = ctx.fact("comment.relation")
        ctx.lock(relation, f.mode, kind)
        table = ctx.catalog.index_table(relation) if kind == "index" else None
        ctx.act(ActionKind.OTHER, table if kind == "index" else relation if kind != "sequence" else None, f,
                f"COMMENT ON {kind.upper()} takes SHARE UPDATE EXCLUSIVE on {_q(relation)} only", mode=None)
    elif node.objtype in (ObjectType.OBJECT_TABCONSTRAINT, ObjectType.OBJECT_TRIGGER, ObjectType.OBJECT_POLICY,
                          ObjectType.OBJECT_RULE):
        table = ".".join(names[:-1])
        f = ctx.fact("comment.table_object")
        ctx.lock(table, f.mode)
        ctx.act(ActionKind.OTHER, table, f, f"COMMENT ON {node.objtype.name.removeprefix('OBJECT_')} takes ACCESS SHARE "
                f"on {_q(table)}")
    else:
        f = ctx.fact("catalog_object")
        ctx.act(ActionKind.OTHER, None, f, f"COMMENT ON {node.objtype.name.removeprefix('OBJECT_')} takes no lock on any "
                "table")


def _grant(node: ast.GrantStmt, ctx: _Context) -> None:
    f = ctx.fact("grant")
    verb = "GRANT" if node.is_grant else "REVOKE"
    named = (node.targtype.name == "ACL_TARGET_OBJECT"
             and node.objtype in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_SEQUENCE))
    if not named or f.mode is None:
        ctx.act(ActionKind.OTHER, None, f, f"{verb} changes privileges in the catalog and locks no table")
        return
    kind = {ObjectType.OBJECT_SEQUENCE: "sequence"}.get(node.objtype, "table")
    for rel in node.objects:
        relation = _name(rel)
        ctx.lock(relation, f.mode, ctx.catalog.relkind(relation) or kind)
        ctx.act(ActionKind.OTHER, relation if kind == "table" else None, f, f"{verb} on {_q(relation)} takes ACCESS "
                f"SHARE on it from PostgreSQL 18 (only ACCESS EXCLUSIVE DDL waits)", mode=f.mode if kind == "table" else None)


# -- TRUNCATE, LOCK ----------------------------------------------------------------------------------


def _truncate(node: ast.TruncateStmt, ctx: _Context) -> None:
    f = ctx.fact("truncate")
    named = [(_name(r), r.inh) for r in node.relations]
    tables = list(dict.fromkeys(t for t, _ in named))
    for table, inh in named:
        if inh:
            tables += [c for c in ctx.catalog.descendants(table) if c not in tables]
    if node.behavior is DropBehavior.DROP_CASCADE:
        queue = list(tables)
        while queue:
            for fk in ctx.catalog.foreign_keys_to(queue.pop(0)):
                if fk.table not in tables:
                    tables.append(fk.table)
                    queue.append(fk.table)
    first = {t for t, _ in named}
    for table in tables:
        ctx.lock(table, f.mode)
        why = "" if table in first else (" (a partition of a truncated table)" if ctx.catalog.parent_of(table) in tables
                                         else " (it references a truncated table: CASCADE)")
        ctx.act(ActionKind.OTHER, table, f, f"TRUNCATE replaces the storage of {_q(table)}{why} with new, empty files "
                "under ACCESS EXCLUSIVE: instant (no row is read), but it blocks reads and writes until the "
                "transaction ends, and a transaction that started earlier then sees the table empty",
                truncates=ctx.catalog.relkind(table) != "partitioned table",
                restart_identity=bool(node.restart_seqs))


_LOCK_MODES = {1: LockMode.ACCESS_SHARE, 2: LockMode.ROW_SHARE, 3: LockMode.ROW_EXCLUSIVE,
               4: LockMode.SHARE_UPDATE_EXCLUSIVE, 5: LockMode.SHARE, 6: LockMode.SHARE_ROW_EXCLUSIVE,
               7: LockMode.EXCLUSIVE, 8: LockMode.ACCESS_EXCLUSIVE}


def _lock_table(node: ast.LockStmt, ctx: _Context) -> None:
    f = ctx.fact("lock_table")
    mode = _LOCK_MODES[node.mode]
    for rel in node.relations:
        relation = _name(rel)
        reached = [relation]
        if rel.inh:
            reached += list(ctx.catalog.descendants(relation))
        queue = [relation]
        while queue:  # a view locks the relations it reads, recursively
            for inner in ctx.catalog.tables_of_view(queue.pop(0)):
                if inner not in reached:
                    reached.append(inner)
                    queue.append(inner)
        for target in reached:
            ctx.lock(target, mode, ctx.catalog.relkind(target) or "table")
            ctx.act(ActionKind.OTHER, target, f, f"LOCK TABLE takes {mode.label} on {_q(target)}"
                    + (f" (through {_q(relation)})" if target != relation else "")
                    + f", blocking {mode.blocks} until the transaction ends", mode=mode, nowait=bool(node.nowait))


# -- sequences ---------------------------------------------------------------------------------


def _alter_sequence(node: ast.AlterSeqStmt, ctx: _Context) -> None:
    sequence = _name(node.sequence)
    owned_by = next((o.arg for o in node.options or () if o.defname == "owned_by"), None)
    owner = None
    if owned_by and len(owned_by) > 1:  # ("table", "column") or ("none",)
        owner = ".".join(n.sval for n in owned_by[:-1])
    f = ctx.fact("alter_sequence.owned_by" if owner else "alter_sequence")
    ctx.lock(sequence, f.mode, "sequence")
    ctx.lock(owner, f.other_mode)
    ctx.act(ActionKind.OTHER, None, f, f"ALTER SEQUENCE {_q(sequence)} takes SHARE ROW EXCLUSIVE on the sequence "
            f"only, blocking nextval() on it briefly", sequence=sequence, owned_by=owner)


def _drop_sequences(node: ast.DropStmt, ctx: _Context) -> None:
    f = ctx.fact("drop_sequence")
    for obj in node.objects:
        sequence = _dotted(obj)
        ctx.lock(sequence, f.mode, "sequence")
        owner = _sequence_owner(ctx.catalog, sequence) if node.behavior is DropBehavior.DROP_CASCADE else None
        reason = f"dropping the sequence {_q(sequence)} takes ACCESS EXCLUSIVE on it"
        if owner:
            ctx.lock(owner, f.other_mode)
            reason += f" and, to drop the column default using it, on {_q(owner)}"
        ctx.act(ActionKind.OTHER, owner, f, reason, mode=f.other_mode if owner else None, sequence=sequence)


def _sequence_owner(catalog: Catalog, sequence: str) -> str | None:
    """The table whose column default uses ``sequence``, by PostgreSQL's ``<table>_<column>_seq`` naming."""
    bare = sequence.split(".")[-1]
    for table, column in catalog.column_types:
        if f"{table.split('.')[-1]}_{column}_seq" == bare:
            return table
    return None


# -- SELECT / DML ------------------------------------------------------------------------------


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


def _select(node: ast.SelectStmt, ctx: _Context) -> None:
    tables = _RangeVars()
    tables(node)
    read = ctx.fact("select")
    into = _name(node.intoClause.rel) if node.intoClause is not None else None
    locking = ctx.fact("select.for_update") if node.lockingClause else None
    for table in dict.fromkeys(tables.names):
        if table != into:
            ctx.lock(table, (locking or read).mode)
    if locking is not None:
        ctx.act(ActionKind.OTHER, None, locking, "SELECT ... FOR UPDATE/SHARE takes ROW SHARE and locks the rows it "
                "returns until the transaction ends")
    if into is not None:
        ctx.act(ActionKind.CREATE_TABLE, into, ctx.fact("create_matview"), f"SELECT ... INTO creates {_q(into)} from "
                "its query, reading its tables under ACCESS SHARE", mode=ctx.fact("create_table").mode, columns=())
        return
    calls = _SequenceCalls()
    calls(node)
    setval = ctx.fact("setval")
    for sequence in dict.fromkeys(calls.sequences):
        ctx.lock(sequence, setval.mode, "sequence")
        ctx.act(ActionKind.OTHER, None, setval, f"setval()/nextval() on {_q(sequence)} takes ROW EXCLUSIVE on the "
                f"sequence only", sequence=sequence)
    opaque = _opaque_functions(calls.names)
    for name in opaque:
        ctx.act(ActionKind.CALL, None, ctx.fact("call"), f"SELECT calls {name}(), which is not a known built-in: the "
                "lock model cannot see what it does (it may take any lock and run DDL)", function=name, mode=None)
    if not calls.sequences and not opaque:
        ctx.act(ActionKind.OTHER, None, read, "SELECT only reads, under ACCESS SHARE")


def _opaque_functions(names: list[tuple[str | None, str]]) -> tuple[str, ...]:
    """Of the functions called, ``(schema, name)``, those that are not known built-ins (user code: it may do
    anything)."""
    return tuple(dict.fromkeys(
        name if schema in (None, "pg_catalog") else f"{schema}.{name}" for schema, name in names
        if schema not in (None, "pg_catalog") or (name not in NON_VOLATILE_FUNCTIONS and name not in VOLATILE_FUNCTIONS)
    ))


def _dml(node: ast.UpdateStmt | ast.DeleteStmt | ast.InsertStmt | ast.MergeStmt, ctx: _Context) -> None:
    target = _name(node.relation)
    verb = {ast.UpdateStmt: "update", ast.DeleteStmt: "delete", ast.InsertStmt: "insert",
            ast.MergeStmt: "merge"}[type(node)]
    if verb == "merge" and not ctx.holds("merge"):
        raise LookupError(f"MERGE does not exist before PostgreSQL 15 (modelling {ctx.pg_version})")
    tables = _RangeVars()
    tables(node)
    read = ctx.fact("dml.read")
    for table in dict.fromkeys(tables.names):
        if table != target:
            ctx.lock(table, read.mode)
    f = ctx.fact("dml")
    ctx.lock(target, f.mode)
    where_clause = getattr(node, "whereClause", None)
    where = where_clause is not None
    names = {target, node.relation.relname} | ({node.relation.alias.aliasname} if node.relation.alias else set())
    keys = _key_columns(ctx.catalog, target)
    detail: dict[str, Any] = dict(verb=verb, where=where, key=_primary_key(ctx.catalog, target),
                                  alias=node.relation.alias.aliasname if node.relation.alias else None)
    if verb in ("update", "delete"):
        detail["bounded"] = where and _bounds(where_clause, names, keys)
    elif verb == "insert" and node.selectStmt is not None:
        detail["source"], detail["bounded"] = _insert_source(node.selectStmt, ctx.catalog, target)
    # Without a WHERE it reads every row: a scan (the lock, ROW EXCLUSIVE, lets reads and writes of other rows
    # go on; the row locks of the rows it changes are what hurts). With one, how the rows are found is the
    # planner's choice (an index, a join), so no scan is claimed, bounded or not.
    reads_all = verb in ("update", "delete") and not where
    partitioned = ctx.catalog.relkind(target) == "partitioned table"
    rows = "the rows it changes" if where else "every row"
    reason = (f"{verb.upper()} on {_q(target)} takes ROW EXCLUSIVE and locks {rows} until the transaction "
              f"ends, so other writers of those rows wait")
    if reads_all:
        reason += f"; with no WHERE clause it reads every row of {_q(target)}"
    elif verb in ("update", "delete") and not detail["bounded"]:
        reason += "; its WHERE does not bound it to a range of keys"
    scan = ctx.fact("dml.scan") if reads_all and not partitioned else f
    ctx.act(ActionKind.DML, target, scan, reason, mode=f.mode, **detail)
    _foreign_key_checks(node, target, verb, ctx)
    if verb != "insert" and node.relation.inh:
        # the planner opens every partition it cannot prune; without a WHERE on the key, all of them
        child_fact = ctx.fact("dml.scan") if reads_all else f
        for child in ctx.catalog.descendants(target):
            ctx.lock(child, f.mode)
            ctx.act(ActionKind.DML, child, child_fact if ctx.catalog.relkind(child) != "partitioned table" else f,
                    f"{verb.upper()} on the partitioned {_q(target)} also takes ROW EXCLUSIVE on its partition "
                    f"{_q(child)}" + (", reading every row of it" if reads_all else ""), mode=f.mode,
                    partition_of=target, **detail)


def _foreign_key_checks(node: Any, target: str, verb: str, ctx: _Context) -> None:
    """ROW SHARE on the tables that the foreign keys of the columns written reference (immediate keys: the check
    runs with the statement; a deferred key's runs at commit)."""
    if verb == "insert":
        written = {t.name for t in node.cols or ()} or None  # None: every column
    elif verb == "update":
        written = {t.name for t in node.targetList or () if isinstance(t, ast.ResTarget)}
    else:
        return
    f = ctx.fact("dml.foreign_key")
    checked = tuple(dict.fromkeys(fk.referenced for fk in ctx.catalog.foreign_keys_from(target)
                                  if not fk.deferred and (written is None or set(fk.columns) & written)))
    for referenced in checked:
        ctx.lock(referenced, f.other_mode)
    if checked:
        ctx.act(ActionKind.OTHER, None, f, f"the foreign keys of the columns written check each row against "
                f"{', '.join(map(_q, checked))}, taking ROW SHARE there", mode=None, checks=checked)


def _key_columns(catalog: Catalog, table: str) -> frozenset[str]:
    """Columns that identify one row of ``table``: single-column primary keys and unique constraints, and ``id``."""
    key = table.removeprefix("public.")
    return frozenset({"id"} | {columns[0] for (owner, _name), columns in catalog.unique_constraints.items()
                               if owner == key and len(columns) == 1})


def _primary_key(catalog: Catalog, table: str) -> str:
    """The primary key column of ``table`` when the catalog knows it (a single column), else Django's ``id``."""
    key = table.removeprefix("public.")
    for (owner, name), columns in sorted(catalog.unique_constraints.items()):
        if owner == key and name.endswith("_pkey") and len(columns) == 1:
            return columns[0]
    return "id"


def _insert_source(select: Any, catalog: Catalog, target: str) -> tuple[tuple[str, ...], bool]:
    """(tables an INSERT ... SELECT reads, whether a LIMIT or a key range bounds how many rows it copies)."""
    if not isinstance(select, ast.SelectStmt) or select.valuesLists:
        return (), True
    read = _relations_read(select)
    tables = [t for t in read if t != target] or read
    if not tables or select.limitCount is not None:
        return tuple(tables), True
    names = {alias for rel in _range_vars(select) for alias in (_name(rel), rel.relname,
                                                                  rel.alias.aliasname if rel.alias else None) if alias}
    keys = frozenset().union(*(_key_columns(catalog, t) for t in tables))
    return tuple(tables), select.whereClause is not None and _bounds(select.whereClause, names, keys)


def _range_vars(node: Any) -> list[ast.RangeVar]:
    found: list[ast.RangeVar] = []

    class _Collect(_Search):
        def visit_RangeVar(self, ancestors, rel) -> None:
            found.append(rel)

    _Collect()(node)
    return found


_SIDE = {">": "lower", ">=": "lower", "<": "upper", "<=": "upper"}
_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">="}


def _bounds(expr: Any, names: set[str], keys: frozenset[str]) -> bool:
    """Whether a WHERE ``expr`` limits the rows of a table (called any of ``names``) to a few keys or a key range:
    ``id = 5``, ``id IN (...)``, ``id = ANY(...)``, ``id BETWEEN a AND b``, ``id >= a AND id < b``, ``id IN
    (SELECT ... LIMIT n)``, or an OR of such. ``keys`` are the columns that identify a row."""
    match expr:
        case ast.BoolExpr(boolop=BoolExprType.AND_EXPR, args=args):
            if any(_bounds(arg, names, keys) for arg in args):
                return True
            sides: dict[str, set[str]] = {}
            for arg in args:
                compared = _key_compared(arg, names, keys)
                if compared is not None:
                    column, op = compared
                    sides.setdefault(column, set()).add(_SIDE.get(op, ""))
            return any({"lower", "upper"} <= found for found in sides.values())
        case ast.BoolExpr(boolop=BoolExprType.OR_EXPR, args=args):
            return all(_bounds(arg, names, keys) for arg in args)
        case ast.A_Expr(kind=A_Expr_Kind.AEXPR_OP, name=(ast.String(sval="="),)):
            compared = _key_compared(expr, names, keys)
            return compared is not None
        case ast.A_Expr(kind=A_Expr_Kind.AEXPR_IN | A_Expr_Kind.AEXPR_OP_ANY, name=(ast.String(sval="="),),
                        lexpr=column):
            return _is_key(column, names, keys)
        case ast.A_Expr(kind=A_Expr_Kind.AEXPR_BETWEEN | A_Expr_Kind.AEXPR_BETWEEN_SYM, lexpr=column):
            return _is_key(column, names, keys)
        case ast.SubLink(subLinkType=SubLinkType.ANY_SUBLINK, testexpr=column, subselect=ast.SelectStmt() as sub):
            return sub.limitCount is not None and _is_key(column, names, keys)
    return False


def _key_compared(expr: Any, names: set[str], keys: frozenset[str]) -> tuple[str, str] | None:
    """``(key column, operator)`` for ``key <op> value`` (or ``value <op> key``, flipped) where the value is not a
    column of some table (``o.id = todo.id`` bounds nothing)."""
    if not isinstance(expr, ast.A_Expr) or expr.kind is not A_Expr_Kind.AEXPR_OP or len(expr.name) != 1:
        return None
    op = expr.name[0].sval
    if op not in _FLIPPED and op != "=":
        return None
    if _is_key(expr.lexpr, names, keys) and not isinstance(expr.rexpr, ast.ColumnRef):
        return expr.lexpr.fields[-1].sval, op
    if _is_key(expr.rexpr, names, keys) and not isinstance(expr.lexpr, ast.ColumnRef):
        return expr.rexpr.fields[-1].sval, _FLIPPED.get(op, op)
    return None


def _is_key(expr: Any, names: set[str], keys: frozenset[str]) -> bool:
    """Whether ``expr`` is a key column of the table (unqualified, or qualified by one of its ``names``)."""
    if not isinstance(expr, ast.ColumnRef) or not isinstance(expr.fields[-1], ast.String):
        return False
    fields = [f.sval for f in expr.fields if isinstance(f, ast.String)]
    return fields[-1] in keys and (len(fields) == 1 or fields[-2] in names)


# -- session statements ------------------------------------------------------------------------


def _set(node: ast.VariableSetStmt, ctx: _Context) -> None:
    f = ctx.fact("set_setting")
    if node.kind is VariableSetKind.VAR_SET_VALUE:
        value = ", ".join(_setting_value(a) for a in node.args or ())
    elif node.kind is VariableSetKind.VAR_SET_DEFAULT or node.kind is VariableSetKind.VAR_RESET:
        value = None
    else:
        value = None
    name = node.name or node.kind.name
    ctx.act(ActionKind.SET_SETTING, None, f, f"SET {name} changes a session setting and locks nothing",
            name=name, value=value, local=bool(node.is_local))


def _setting_value(arg: Any) -> str:
    match arg:
        case ast.A_Const(val=ast.String(sval=text)):
            return text
        case ast.A_Const(val=ast.Integer(ival=number)):
            return str(number)
    return _sql(arg)


_TRANSACTION_VERBS = {
    TransactionStmtKind.TRANS_STMT_BEGIN: "begin",
    TransactionStmtKind.TRANS_STMT_START: "begin",
    TransactionStmtKind.TRANS_STMT_COMMIT: "commit",
    TransactionStmtKind.TRANS_STMT_ROLLBACK: "rollback",
}


def _transaction(node: ast.TransactionStmt, ctx: _Context) -> None:
    f = ctx.fact("transaction")
    verb = _TRANSACTION_VERBS.get(node.kind, node.kind.name.removeprefix("TRANS_STMT_").lower())
    ctx.act(ActionKind.TRANSACTION, None, f, f"{verb.upper()} locks nothing" + (
        "; it releases every lock the transaction holds" if verb in ("commit", "rollback") else ""), verb=verb)
