"""Lock model of the column subcommands of ALTER TABLE (ADD / DROP / RENAME COLUMN, defaults, NOT NULL,
identity, statistics) and of ALTER COLUMN TYPE (when a type change rewrites the table).

Conventions: :mod:`migration_guard.locks.analyze`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pglast import ast
from pglast.enums import DropBehavior

from migration_guard.locks.catalog import Catalog, ForeignKey
from migration_guard.locks.pgcatalog import (
    BINARY_COERCIBLE,
    BUILTIN_TYPES,
    NON_VOLATILE_FUNCTIONS,
    PLAIN_EXTENSION_TYPES,
    VOLATILE_FUNCTIONS,
)
from migration_guard.locks.statements.common import (
    _AT,
    _CT,
    _ColumnRefs,
    _Context,
    _Functions,
    _name,
    _q,
    _SequenceCalls,
    _sql,
)
from migration_guard.model import ActionKind


# -- column subcommands of ALTER TABLE, RENAME COLUMN ------------------------------------------


def _rename_column(node: ast.RenameStmt, ctx: _Context) -> None:
    table = _name(node.relation)
    f = ctx.fact("rename_column")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.RENAME_COLUMN, table, f,
            f"renaming {_q(table)}.{_q(node.subname)} to {_q(node.newname)} takes ACCESS EXCLUSIVE, and code "
            f"still using the old name fails", column=node.subname, new_name=node.newname)


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
        columns = catalog.primary_key(fk.referenced)
        if columns is not None:
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
    # Indexes not known (the catalog has no record of the table): any it has are rebuilt, so assume they are.
    assumed = False
    checked = () if f.rewrites else _checks_using(ctx.catalog, table, column)
    if f.rewrites:
        reason = (f"changing {q_col} to {new_text}: {why}, so PostgreSQL rewrites every row of {_q(table)} and "
                  "rebuilds its indexes")
    else:
        reason = f"changing {q_col} to {new_text}: {why}, so no row is rewritten"
        if collation:
            # an index whose key already has the collation is kept (measured: its relfilenode stays), unless it
            # reads the column in an expression or its WHERE
            rebuilt = tuple(i for i in ctx.catalog.indexes_on(table, column)
                            if ctx.catalog.key_collation(i, column) != collation or i in ctx.catalog.index_reads)
            assumed = not rebuilt and not ctx.catalog.knows_table(table)
            if rebuilt:
                on = f"its indexes {', '.join(map(_q, rebuilt))}"
            elif assumed:
                on = (f"every index on it (the indexes of {_q(table)} are not known without a catalog read from a "
                      "database that has it: assumed)")
            else:
                on = "any index on it (it has none)"
            reason += f", but the collation {_q(collation)} rebuilds {on} under ACCESS EXCLUSIVE"
        elif not checked:
            reason += " (ACCESS EXCLUSIVE is held briefly)"
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
            builds_index=bool(rebuilt or assumed) and ctx.fact("alter_column_type.collation").builds_index,
            collation=collation, assumed_indexes=assumed,
            rebuilt=tuple((index, ctx.catalog.index_columns.get(index, ()),
                           ctx.catalog.unique_constraint(table, index) is not None) for index in rebuilt),
            # with expressions or a WHERE: rebuilt by the change whatever index was built beforehand
            rebuilt_anyway=tuple(index for index in rebuilt if index in ctx.catalog.index_reads),
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
    return tuple(sorted(name for name, (expression, validated) in catalog.checks_on(table).items()
                        if validated and column in _expression_columns(expression)))


@functools.lru_cache(maxsize=4096)
def _expression_columns(expression: str) -> frozenset[str]:
    """The column names an SQL expression (a CHECK's, as text) reads; every name when it does not parse."""
    from pglast import parse_sql

    try:
        found = _ColumnRefs()
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
