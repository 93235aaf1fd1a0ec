"""Lock model of statements on rows: TRUNCATE, LOCK TABLE, SELECT, INSERT / UPDATE / DELETE / MERGE (and
whether a WHERE bounds them to a key range).

Conventions: :mod:`migration_guard.locks.analyze`.
"""

from __future__ import annotations

from typing import Any

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, DropBehavior, SubLinkType

from migration_guard.locks.catalog import Catalog
from migration_guard.locks.modes import LockMode
from migration_guard.locks.pgcatalog import NON_VOLATILE_FUNCTIONS, VOLATILE_FUNCTIONS
from migration_guard.locks.statements.common import (
    _Context,
    _name,
    _q,
    _RangeVars,
    _relations_read,
    _Search,
    _SequenceCalls,
)
from migration_guard.model import ActionKind


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


# -- SELECT / DML ------------------------------------------------------------------------------


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
    return frozenset({"id"} | {columns[0] for columns in catalog.unique_constraints_on(table).values()
                               if len(columns) == 1})


def _primary_key(catalog: Catalog, table: str) -> str:
    """The primary key column of ``table`` when the catalog knows it (a single column), else Django's ``id``."""
    found = sorted((name, columns) for name, columns in catalog.unique_constraints_on(table).items()
                   if name.endswith("_pkey") and len(columns) == 1)
    return found[0][1][0] if found else "id"


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
