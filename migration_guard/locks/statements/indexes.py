"""Lock model of CREATE / DROP / RENAME / ALTER INDEX and REINDEX.

Conventions: :mod:`migration_guard.locks.analyze`.
"""

from __future__ import annotations

from pglast import ast

from migration_guard.locks.statements.common import _AT, _ColumnRefs, _Context, _dotted, _name, _q, _sql
from migration_guard.model import ActionKind


# -- indexes -----------------------------------------------------------------------------------


def _create_index(node: ast.IndexStmt, ctx: _Context) -> None:
    table = _name(node.relation)
    name = node.idxname
    concurrently = bool(node.concurrent)
    f = ctx.fact("create_index.concurrently" if concurrently else "create_index")
    ctx.needs_no_transaction = ctx.needs_no_transaction or concurrently
    # (a materialized view's index: rules tell its locks apart, as nothing writes to one)
    ctx.lock(table, f.mode, "materialized view" if ctx.catalog.relkind(table) == "materialized view" else "table")
    columns = tuple(
        p.name if p.name else _sql(p.expr) for p in node.indexParams or ()
    )
    # With expressions or a WHERE: every column it reads (a later collation change rebuilds it, whatever
    # index was built beforehand).
    computed = tuple(p.expr for p in node.indexParams or () if p.expr is not None) + (
        (node.whereClause,) if node.whereClause is not None else ())
    reads: tuple[str, ...] = ()
    if computed:
        refs = _ColumnRefs()
        refs(computed)
        reads = tuple(sorted({*refs.names, *(p.name for p in node.indexParams or () if p.name)}))
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
                  collations=tuple(".".join(n.sval for n in p.collation) if p.collation else None
                                   for p in node.indexParams or ()),
                  method=node.accessMethod, partial=node.whereClause is not None,
                  include=tuple(p.name for p in node.indexIncludingParams or ()),
                  if_not_exists=bool(node.if_not_exists), existing_invalid=invalid, reads=reads,
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
        if node.missing_ok and ctx.catalog.from_database and table is None:
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


# -- ALTER INDEX -------------------------------------------------------------------------------


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


# -- REINDEX -----------------------------------------------------------------------------------


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
