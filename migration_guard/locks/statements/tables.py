"""Lock model of CREATE / DROP / RENAME TABLE, ALTER TABLE (its dispatch over subcommands, and the
table-level subcommands: storage, options, triggers, inheritance), VACUUM, ANALYZE and CLUSTER.

Conventions: :mod:`migration_guard.locks.analyze`.
"""

from __future__ import annotations

from pglast import ast
from pglast.enums import DropBehavior, ObjectType

from migration_guard.locks.catalog import Catalog, ForeignKey
from migration_guard.locks.statements.columns import (
    _add_column,
    _alter_column_type,
    _column_default,
    _drop_column,
    _drop_not_null,
    _identity,
    _set_not_null,
    _set_statistics,
)
from migration_guard.locks.statements.common import _AT, _CT, _Context, _dotted, _missing, _name, _q, _sql
from migration_guard.locks.statements.constraints import (
    _add_constraint,
    _alter_constraint,
    _drop_constraint,
    _validate_constraint,
)
from migration_guard.locks.statements.partitions import _attach_partition, _create_child, _detach_partition, _recurse
from migration_guard.model import ActionKind


# -- CREATE / DROP / RENAME TABLE --------------------------------------------------------------


def _create_table(node: ast.CreateStmt, ctx: _Context) -> None:
    table = _name(node.relation)
    columns: list[tuple[str, str]] = []
    not_null: list[str] = []
    fks: list[ForeignKey] = []
    sequences: list[str] = []  # the sequences its serial and identity columns create
    for element in node.tableElts or ():
        match element:
            case ast.ColumnDef():
                columns.append((element.colname, _sql(element.typeName)))
                if _sql(element.typeName).lower() in _SERIAL_TYPES or any(
                        con.contype is _CT.CONSTR_IDENTITY for con in element.constraints or ()):
                    sequences.append(_owned_sequence(table, element.colname))
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
            relkind="partitioned table" if node.partspec is not None else "table", sequences=tuple(sequences))


_SERIAL_TYPES = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})


def _owned_sequence(table: str, column: str) -> str:
    """The sequence PostgreSQL names for a serial or identity column (``<table>_<column>_seq``; a
    longer name is truncated by PostgreSQL in a way not worth modelling: it stays unknown)."""
    schema, _, name = table.rpartition(".")
    return f"{schema + '.' if schema else ''}{name}_{column}_seq"


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
    if ctx.catalog.relkind(table) == "sequence":  # ALTER TABLE accepts a sequence: the same as ALTER SEQUENCE
        f = ctx.fact("rename_sequence")
        ctx.lock(table, f.mode, "sequence")
        ctx.act(ActionKind.OTHER, None, f, f"renaming the sequence {_q(table)} takes ACCESS EXCLUSIVE on it: "
                "nextval() waits briefly", sequence=table)
        return
    f = ctx.fact("rename_table")
    ctx.lock(table, f.mode)
    ctx.act(ActionKind.RENAME_TABLE, table, f,
            f"renaming {_q(table)} to {_q(node.newname)} takes ACCESS EXCLUSIVE, and code still using "
            f"the old name fails", new_name=node.newname)


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


# -- VACUUM, ANALYZE, CLUSTER ------------------------------------------------------------------


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
