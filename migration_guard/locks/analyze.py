"""pglast AST -> :class:`~migration_guard.model.Effects`: which locks a statement takes and what it does.

One function per statement form, dispatched with ``match`` on the top-level node; the functions live
in :mod:`migration_guard.locks.statements`, one module per statement family (tables, columns,
constraints, indexes, partitions, rows, other objects), and this module keeps the dispatcher and the
cautious answer for statements nobody models. Every lock mode and every rewrite/scan/index-build flag
comes from :mod:`migration_guard.locks.facts`; the handlers only decide *which* fact applies, using
the statement itself and what the
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

from dataclasses import replace
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import DropBehavior, ObjectType
from pglast.parser import ParseError

from migration_guard.locks.catalog import Catalog, advance
from migration_guard.locks.facts import fact
from migration_guard.locks.modes import LockMode
from migration_guard.locks.statements.columns import _rename_column
from migration_guard.locks.statements.common import _CT, _Context, _dotted, _name, _q, _RangeVars
from migration_guard.locks.statements.constraints import not_null_columns
from migration_guard.locks.statements.dml import _dml, _lock_table, _select, _truncate
from migration_guard.locks.statements.indexes import _alter_index, _create_index, _drop_indexes, _reindex, _rename_index
from migration_guard.locks.statements.plpgsql import MARKER, Opaque, block_statements, names_run_time_value
from migration_guard.locks.statements.objects import (
    _alter_domain,
    _alter_sequence,
    _alter_view,
    _comment_other,
    _create_table_as,
    _create_view,
    _drop_on_table,
    _drop_sequences,
    _drop_types,
    _grant,
    _on_table,
    _refresh_matview,
    _set,
    _transaction,
)
from migration_guard.locks.statements.tables import (
    _alter_table,
    _cluster,
    _comment,
    _create_table,
    _drop_tables,
    _rename_table,
    _vacuum,
)
from migration_guard.model import Action, ActionKind, Effects, RelationLock

# Names the tests reach for here (the printing cache, the AST searches, the ALTER TABLE subcommand table).
from migration_guard.locks.statements.common import _PRINTED as _PRINTED
from migration_guard.locks.statements.common import _Functions as _Functions
from migration_guard.locks.statements.common import _NoShape as _NoShape
from migration_guard.locks.statements.common import _SequenceCalls as _SequenceCalls
from migration_guard.locks.statements.common import _shape as _shape
from migration_guard.locks.statements.common import _sql as _sql
from migration_guard.locks.statements.tables import _ALTER_TABLE_COMMANDS as _ALTER_TABLE_COMMANDS

__all__ = ["analyse", "not_null_columns"]


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
            created = {"sequences": (_name(node.sequence),)} if isinstance(node, ast.CreateSeqStmt) else {}
            ctx.act(ActionKind.OTHER, None, f, f"{_statement_label(node)} creates a catalog object and locks no table",
                    **_new_type(node), **created)
        case ast.CallStmt():
            name = _dotted(node.funccall.funcname)
            ctx.act(ActionKind.CALL, None, ctx.fact("call"), f"CALL {name}() runs a procedure the lock model cannot see "
                    "into: it may take any lock and run DDL", function=name, mode=None)
        case ast.DoStmt():
            _do(node, ctx)
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


# -- DO blocks ---------------------------------------------------------------------------------

# Why a statement inside a DO block keeps the block opaque, by what it does: the block runs in the caller's
# transaction and the model follows no code but its own, no transaction control and no session settings.
_NOT_IN_A_BLOCK = {ActionKind.CALL: "calls {function}()", ActionKind.TRANSACTION: "ends the transaction",
                   ActionKind.SET_SETTING: "changes a session setting",
                   ActionKind.UNKNOWN: "runs {label}, which the lock model does not know"}
_AT_RUN_TIME = f'"{MARKER}"'


def _do(node: ast.DoStmt, ctx: _Context) -> None:
    """A DO block is the statements it may run (:mod:`~migration_guard.locks.statements.plpgsql`), each
    modelled as if written in place, in order, each at least once; else it stays code the model cannot
    see into (CALL: MG905 blocks it, saying ``why``)."""
    try:
        inner = _block_effects(node, ctx)
    except Opaque as exc:
        ctx.act(ActionKind.CALL, None, ctx.fact("call"), f"DO runs an anonymous code block the lock model cannot "
                f"follow ({exc}): it may take any lock and run DDL", function="DO", mode=None, why=str(exc))
        return
    for effects in inner:
        for lock in effects.locks:
            if not _reads_system_catalog(lock):
                ctx.lock(lock.relation, lock.mode, lock.relkind)
        ctx.actions.extend(replace(action, reason="in the DO block, " + action.reason.replace(
            _AT_RUN_TIME, "(a name given when it runs)")) for action in effects.actions)


def _reads_system_catalog(lock: RelationLock) -> bool:
    """A read of a system catalog (``IF NOT EXISTS (SELECT ... FROM pg_constraint ...)``): it blocks nobody,
    and the server shows no lock on it to compare with (the tracer leaves system relations out)."""
    name = lock.relation
    return lock.mode <= LockMode.ACCESS_SHARE and (
        name.startswith(("pg_catalog.", "information_schema.")) or ("." not in name and name.startswith("pg_")))


def _block_effects(node: ast.DoStmt, ctx: _Context) -> list[Effects]:
    """The effects of each statement the block may run; :class:`Opaque` unless every one is modelled and
    no value known only at run time reaches a lock, a table, a column or a name the catalog keeps."""
    catalog = ctx.catalog
    found = []
    for sql in block_statements(node):
        try:
            raws = parse_sql(sql)
        except ParseError as exc:
            raise Opaque(f"a statement it runs does not parse ({exc})") from None
        encoded = sql.encode()
        for raw in raws:
            label = _statement_label(raw.stmt) if not isinstance(raw.stmt, ast.RenameStmt) else (
                f"ALTER {raw.stmt.renameType.name.removeprefix('OBJECT_')} ... RENAME")
            end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(encoded)
            text = encoded[raw.stmt_location:end].decode().strip()
            if names_run_time_value(raw.stmt):
                raise Opaque(f"it runs {label} on a name known only when it runs")
            effects = analyse(raw.stmt, ctx.pg_version, catalog)
            for action in effects.actions:
                if action.kind in _NOT_IN_A_BLOCK:
                    raise Opaque("it " + _NOT_IN_A_BLOCK[action.kind].format(
                        function=action.detail.get("function"), label=label))
                if MARKER in repr((action.table, action.column, action.detail)):
                    raise Opaque(f"it runs {label} on a name known only when it runs")
            if any(MARKER in lock.relation for lock in effects.locks):
                raise Opaque(f"it runs {label} on a relation known only when it runs")
            if not effects.known or effects.needs_no_transaction:
                raise Opaque(f"it runs {label}, which cannot run in it")
            found.append(replace(effects, actions=tuple(
                replace(action, detail={**action.detail, "block_sql": text}) for action in effects.actions)))
            catalog = advance(catalog, effects)
    return found


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
