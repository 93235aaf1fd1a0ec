"""Lock model of partitions and inheritance: ALTER TABLE subcommands recursing to partitions and children,
ATTACH / DETACH PARTITION, CREATE TABLE ... PARTITION OF / INHERITS.

Conventions: :mod:`migration_guard.locks.analyze`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pglast import ast
from pglast.enums import BoolExprType

from migration_guard.locks.catalog import Catalog
from migration_guard.locks.statements.common import _AT, _Context, _name, _q
from migration_guard.model import ActionKind


# -- ALTER TABLE on a parent: recursing to partitions and children, ATTACH / DETACH PARTITION --


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


def _attach_partition(table: str, cmd: ast.AlterTableCmd, ctx: _Context) -> None:
    partition = _name(cmd.def_.name)
    bound = cmd.def_.bound
    f = ctx.fact("attach_partition")
    ctx.lock(table, f.mode, "partitioned table")
    ctx.lock(partition, f.other_mode)
    proof = _bound_proven(ctx.catalog, partition, table, bound)
    missing = _indexes_to_build(ctx.catalog, table, partition)
    known = ctx.catalog.knows_table(table)
    reason = (f"ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on {_q(table)} (reads and writes continue) and ACCESS "
              f"EXCLUSIVE on {_q(partition)}; ")
    reason += (f"the CHECK constraint {_q(proof)} proves the bound, so no row is read" if proof else
               f"every row of {_q(partition)} is read to check the partition bound")
    if missing:
        reason += f"; {', '.join(map(_q, missing))} of the parent must be built on it"
    elif not known:
        reason += (f"; the indexes of {_q(table)} are not known without the database's catalog: each one is assumed "
                   "built on it")
    ctx.act(ActionKind.OTHER, partition, f, reason, mode=f.other_mode, scans=not proof,
            builds_index=bool(missing) or not known, attach=None, partition_of=table)
    # for the catalog: the parent now has this child
    ctx.act(ActionKind.OTHER, table, f, f"{_q(partition)} becomes a partition of {_q(table)}", scans=False,
            attach=partition, default_partition=bool(bound is not None and bound.is_default))
    default = ctx.catalog.default_partition(table)
    if default and not (bound is not None and bound.is_default):
        d = ctx.fact("attach_partition.default")
        ctx.lock(default, d.mode)
        ctx.act(ActionKind.OTHER, default, d, f"the DEFAULT partition {_q(default)} is locked ACCESS EXCLUSIVE and "
                "read in full for rows that belong to the new partition", partition_of=table)
    elif not known and not (bound is not None and bound.is_default):
        # Whether the parent has a DEFAULT partition is not known: assume it has (fail closed), as for PARTITION OF.
        d = ctx.fact("attach_partition.default")
        ctx.act(ActionKind.OTHER, table, d, f"whether {_q(table)} has a DEFAULT partition is not known without the "
                "database's catalog: if it has one, it is locked ACCESS EXCLUSIVE and read in full for rows that "
                "belong to the new partition", assumed_default=True)


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
    for name, (expression, validated) in sorted(catalog.checks_on(partition).items()):
        if not validated:
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
            elif not node.partbound.is_default and not ctx.catalog.knows_table(parent):
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
