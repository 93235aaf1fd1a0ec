"""Lock model of the other objects and statements: views and materialized views, triggers, rules,
policies, statistics, types and domains, comments, privileges, sequences, and session statements
(SET, BEGIN / COMMIT).

Conventions: :mod:`migration_guard.locks.analyze`.
"""

from __future__ import annotations

from typing import Any

from pglast import ast
from pglast.enums import DropBehavior, ObjectType, TransactionStmtKind, VariableSetKind

from migration_guard.locks.catalog import Catalog
from migration_guard.locks.statements.common import _AT, _Context, _dotted, _missing, _name, _q, _relations_read, _sql
from migration_guard.model import ActionKind


# -- ALTER VIEW / MATERIALIZED VIEW (AlterTableStmt on views) ----------------------------------


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


def _create_view(node: ast.ViewStmt, ctx: _Context) -> None:
    view = _name(node.view)
    read = ctx.fact("create_view")
    for table in _relations_read(node.query):
        ctx.lock(table, read.mode, ctx.catalog.relkind(table) or "table")
    exists = node.replace and (ctx.catalog.relkind(view) == "view" or not ctx.catalog.from_database)
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
        if node.behavior is DropBehavior.DROP_CASCADE and not tables and not ctx.catalog.from_database:
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
    if not ctx.catalog.columns_of_type(domain) and not ctx.catalog.from_database:
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
