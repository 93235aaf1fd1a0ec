"""Lock model of ADD / VALIDATE / DROP / ALTER CONSTRAINT.

Conventions: :mod:`migration_guard.locks.analyze`.
"""

from __future__ import annotations

from typing import Any

from pglast import ast
from pglast.enums import BoolExprType, DropBehavior, NullTestType

from migration_guard.locks.statements.columns import _referenced_columns
from migration_guard.locks.statements.common import _CT, _Context, _name, _q, _sql
from migration_guard.model import ActionKind


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
