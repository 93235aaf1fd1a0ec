"""What the schema advice rules (MG030-MG039) share: the columns, indexes and foreign keys a statement
defines (read from its AST), the type of a column wherever it is known, the Django field behind a
column, and which apps are Django's own.

Advice is what a database reliability engineer says on the pull request: never blocking by default,
and quiet on Django's own apps and on Django's default choices. A rule judges the rendered SQL (what
the database gets) with the Django facts of the operation behind it (what the user wrote), so that the
advice and its recipe speak of the user's model and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, wraps

from pglast import ast
from pglast.enums import AlterTableType, ConstrType
from pglast.visitors import Visitor

from migration_guard.model import FieldFacts, ModelChange, ParsedStatement
from migration_guard.rules.base import StatementContext, claim_key
from migration_guard.rules.compat import column_change, deploy_of
from migration_guard.rules.recipes import split_note

__all__ = [
    "DJANGO_APPS",
    "ColumnDef",
    "ForeignKeyDef",
    "IndexDef",
    "SqlType",
    "add_index_recipe",
    "column_defs",
    "column_type",
    "columns_with_fields",
    "django_app",
    "field_of",
    "foreign_key_defs",
    "index_defs",
    "index_name",
    "is_django_field",
    "known_large",
    "model_name",
    "model_of",
    "new_or_large",
    "parse_type",
    "plan_indexes",
    "same_table",
    "statement_creates",
]

# Django's own apps: their models are Django's choices, not the user's, and cannot be changed by the user.
DJANGO_APPS = frozenset({
    "admin", "admindocs", "auth", "contenttypes", "flatpages", "gis", "humanize", "messages", "postgres",
    "redirects", "sessions", "sitemaps", "sites", "staticfiles", "syndication",
})


def django_app(ctx: StatementContext, change: ModelChange | None = None) -> bool:
    """Whether the statement belongs to one of Django's own apps (by the change's app, else the migration's)."""
    label = change.app_label if change is not None else ctx.label.split(".", 1)[0]
    return label in DJANGO_APPS


def is_django_field(field: FieldFacts | None) -> bool:
    """Whether the field is one of Django's own classes (its column type is Django's choice)."""
    return field is not None and field.path.startswith("django.")


# -- types ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SqlType:
    """A column type as pg_type names it (``int4``, ``varchar``, ``timestamp``, ``serial``), its
    modifiers (``varchar(20)``: ``(20,)``) and whether it is an array."""

    name: str
    mods: tuple[int, ...] = ()
    array: bool = False

    @property
    def text(self) -> str:
        """How SQL writes it, e.g. ``varchar(20)``."""
        shown = {"int4": "integer", "int8": "bigint", "int2": "smallint", "bpchar": "char",
                 "timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone"}
        base = shown.get(self.name, self.name) + (f"({', '.join(map(str, self.mods))})" if self.mods else "")
        return base + ("[]" if self.array else "")


_ALIASES = {"int": "int4", "integer": "int4", "bigint": "int8", "smallint": "int2", "boolean": "bool",
            "real": "float4", "decimal": "numeric"}


def _type_of_node(type_name: ast.TypeName) -> SqlType:
    name = type_name.names[-1].sval.lower()
    mods = tuple(m.val.ival for m in type_name.typmods or ()
                 if isinstance(m, ast.A_Const) and isinstance(m.val, ast.Integer))
    return SqlType(_ALIASES.get(name, name), mods, bool(type_name.arrayBounds))


@lru_cache(maxsize=1024)
def parse_type(text: str | None) -> SqlType | None:
    """A type written in SQL (a Django field's ``db_type``, e.g. ``varchar(200)[]``), or None."""
    if not text:
        return None
    from pglast import parse_sql

    try:
        node = parse_sql(f"SELECT NULL::{text}")[0].stmt.targetList[0].val.typeName
    except Exception:  # a type pglast cannot read (a user type with odd syntax): unknown
        return None
    return _type_of_node(node)


# -- what a statement defines ---------------------------------------------------------------------


def _table(relation: ast.RangeVar) -> str:
    return f"{relation.schemaname}.{relation.relname}" if relation.schemaname else relation.relname


def same_table(a: str | None, b: str | None) -> bool:
    """Whether two spellings name one table (``t``, ``"t"``, ``public.t``)."""
    return a is not None and b is not None and claim_key(a) == claim_key(b)


@dataclass(frozen=True)
class ColumnDef:
    """A column a statement creates (``CREATE TABLE``, ``ADD COLUMN``) or retypes (``ALTER COLUMN ...
    TYPE``); ``how`` says which: ``"create"``, ``"add"`` or ``"alter"``."""

    table: str
    column: str
    type: SqlType
    how: str
    primary_key: bool = False
    identity: bool = False
    references: tuple[str, str | None] | None = None  # (table, column or None: its primary key)


@dataclass(frozen=True)
class IndexDef:
    """An index a statement builds: ``CREATE INDEX``, or a PRIMARY KEY / UNIQUE constraint.
    ``columns`` holds None for an expression; ``expression_columns`` the columns its expressions read."""

    table: str
    name: str | None
    columns: tuple[str | None, ...]
    method: str = "btree"
    unique: bool = False
    primary: bool = False
    opclasses: tuple[tuple[str, ...], ...] = ()
    partial: bool = False
    expression_columns: frozenset[str] = frozenset()

    @property
    def plain(self) -> bool:
        """A B-tree on plain columns, every row, default operator classes: what a duplicate looks like."""
        return (self.method == "btree" and not self.partial and None not in self.columns
                and not any(self.opclasses))

    def reads(self, column: str) -> bool:
        """Whether the index reads ``column`` (as a key column or in an expression)."""
        return column in self.columns or column in self.expression_columns


@dataclass(frozen=True)
class ForeignKeyDef:
    """A foreign key a statement adds: ``columns`` of ``table`` referencing ``referenced``."""

    table: str
    columns: tuple[str, ...]
    referenced: str
    referenced_columns: tuple[str, ...]


def _constraints_of_column(definition: ast.ColumnDef):
    return definition.constraints or ()


def _once_per_node(read):
    """``read(node)``, made once per statement: the rules of one statement ask for the same facts in turn (a
    statement's node is never changed; a recipe changes a copy of its own)."""
    last: list = [None, ()]

    @wraps(read)
    def cached(node):
        if last[0] is not node:
            last[0], last[1] = node, read(node)
        return last[1]

    return cached


@_once_per_node
def column_defs(node) -> tuple[ColumnDef, ...]:
    """The columns ``node`` creates or retypes."""
    found: list[ColumnDef] = []
    match node:
        case ast.CreateStmt():
            table = _table(node.relation)
            keys = [tuple(k.sval for k in element.keys or ()) for element in node.tableElts or ()
                    if isinstance(element, ast.Constraint) and element.contype is ConstrType.CONSTR_PRIMARY]
            for element in node.tableElts or ():
                if isinstance(element, ast.ColumnDef) and element.typeName is not None:
                    found.append(_column(table, element, "create", in_key=(element.colname,) in keys))
        case ast.AlterTableStmt():
            table = _table(node.relation)
            for cmd in node.cmds or ():
                if cmd.subtype is AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                    found.append(_column(table, cmd.def_, "add"))
                elif cmd.subtype is AlterTableType.AT_AlterColumnType and isinstance(cmd.def_, ast.ColumnDef) \
                        and cmd.def_.typeName is not None:
                    found.append(ColumnDef(table, cmd.name, _type_of_node(cmd.def_.typeName), "alter"))
    return tuple(found)


def _column(table: str, definition: ast.ColumnDef, how: str, *, in_key: bool = False) -> ColumnDef:
    constraints = _constraints_of_column(definition)
    kinds = {c.contype for c in constraints}
    fk = next((c for c in constraints if c.contype is ConstrType.CONSTR_FOREIGN), None)
    references = None
    if fk is not None:
        references = (_table(fk.pktable), fk.pk_attrs[0].sval if fk.pk_attrs else None)
    return ColumnDef(table, definition.colname, _type_of_node(definition.typeName), how,
                     primary_key=in_key or ConstrType.CONSTR_PRIMARY in kinds,
                     identity=ConstrType.CONSTR_IDENTITY in kinds, references=references)


class _ColumnRefs(Visitor):
    def __init__(self):
        self.names: set[str] = set()

    def visit_ColumnRef(self, ancestors, node):  # noqa: N802 (pglast's visitor naming)
        last = node.fields[-1] if node.fields else None
        if isinstance(last, ast.String):
            self.names.add(last.sval)


def _expression_columns(expr) -> frozenset[str]:
    refs = _ColumnRefs()
    refs(expr)
    return frozenset(refs.names)


@_once_per_node
def index_defs(node) -> tuple[IndexDef, ...]:
    """The indexes ``node`` builds (``CREATE INDEX``, PRIMARY KEY and UNIQUE constraints)."""
    found: list[IndexDef] = []
    match node:
        case ast.IndexStmt():
            columns, opclasses, reads = [], [], set()
            for element in node.indexParams or ():
                columns.append(element.name)
                opclasses.append(tuple(part.sval for part in element.opclass or ()))
                if element.expr is not None:
                    reads |= _expression_columns(element.expr)
            found.append(IndexDef(_table(node.relation), node.idxname, tuple(columns),
                                  (node.accessMethod or "btree").lower(), bool(node.unique or node.primary),
                                  bool(node.primary), tuple(opclasses), node.whereClause is not None,
                                  frozenset(reads)))
        case ast.CreateStmt():
            table = _table(node.relation)
            for element in node.tableElts or ():
                if isinstance(element, ast.ColumnDef):
                    found += _column_keys(table, element)
                elif isinstance(element, ast.Constraint):
                    found += _key_constraint(table, element)
        case ast.AlterTableStmt():
            table = _table(node.relation)
            for cmd in node.cmds or ():
                if cmd.subtype is AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                    found += _column_keys(table, cmd.def_)
                elif cmd.subtype is AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
                    found += _key_constraint(table, cmd.def_)
    return tuple(found)


def _column_keys(table: str, definition: ast.ColumnDef) -> list[IndexDef]:
    return [IndexDef(table, c.conname, (definition.colname,), unique=True,
                     primary=c.contype is ConstrType.CONSTR_PRIMARY)
            for c in _constraints_of_column(definition)
            if c.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE)]


def _key_constraint(table: str, constraint: ast.Constraint) -> list[IndexDef]:
    if constraint.contype not in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE) or constraint.indexname:
        return []  # USING INDEX: an index that is already there
    return [IndexDef(table, constraint.conname, tuple(k.sval for k in constraint.keys or ()), unique=True,
                     primary=constraint.contype is ConstrType.CONSTR_PRIMARY, partial=constraint.where_clause is not None)]


@_once_per_node
def foreign_key_defs(node) -> tuple[ForeignKeyDef, ...]:
    """The foreign keys ``node`` adds (in CREATE TABLE, ADD COLUMN or ADD CONSTRAINT)."""
    found: list[ForeignKeyDef] = []

    def add(table: str, columns: tuple[str, ...], constraint: ast.Constraint) -> None:
        found.append(ForeignKeyDef(table, columns, _table(constraint.pktable),
                                   tuple(a.sval for a in constraint.pk_attrs or ())))

    def from_column(table: str, definition: ast.ColumnDef) -> None:
        for c in _constraints_of_column(definition):
            if c.contype is ConstrType.CONSTR_FOREIGN:
                add(table, (definition.colname,), c)

    match node:
        case ast.CreateStmt():
            table = _table(node.relation)
            for element in node.tableElts or ():
                if isinstance(element, ast.ColumnDef):
                    from_column(table, element)
                elif isinstance(element, ast.Constraint) and element.contype is ConstrType.CONSTR_FOREIGN:
                    add(table, tuple(a.sval for a in element.fk_attrs or ()), element)
        case ast.AlterTableStmt():
            table = _table(node.relation)
            for cmd in node.cmds or ():
                if cmd.subtype is AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                    from_column(table, cmd.def_)
                elif cmd.subtype is AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint) \
                        and cmd.def_.contype is ConstrType.CONSTR_FOREIGN:
                    add(table, tuple(a.sval for a in cmd.def_.fk_attrs or ()), cmd.def_)
    return tuple(found)


# -- the plan around the statement ----------------------------------------------------------------

_PLAN_CACHE: dict[int, tuple[tuple[ParsedStatement, ...], _PlanFacts]] = {}


@dataclass(frozen=True)
class _PlanFacts:
    """Every index and column the statements of a plan define, with the position of the statement of each,
    and the same grouped by table (``claim_key``): a rule asks about one table, and a long script has
    thousands of statements, so a scan of the whole plan per statement would be quadratic."""

    indexes: tuple[tuple[int, IndexDef], ...]
    indexes_by_table: dict[tuple[str | None, str], tuple[tuple[int, IndexDef], ...]]
    # the same by table and key columns: a table of a long script may have hundreds of indexes
    indexes_by_columns: dict[tuple[tuple[str | None, str], tuple[str | None, ...]], tuple[tuple[int, IndexDef], ...]]
    columns_by_name: dict[tuple[tuple[str | None, str], str], tuple[tuple[int, ColumnDef], ...]]


def _plan_facts(statements: tuple[ParsedStatement, ...]) -> _PlanFacts:
    """The plan's facts, read once per plan (kept for the last few: the plan of a run, or one SQL file)."""
    cached = _PLAN_CACHE.get(id(statements))
    if cached is not None and cached[0] is statements:
        return cached[1]
    indexes: list[tuple[int, IndexDef]] = []
    by_table: dict[tuple[str | None, str], list[tuple[int, IndexDef]]] = {}
    by_columns: dict[tuple[tuple[str | None, str], tuple[str | None, ...]], list[tuple[int, IndexDef]]] = {}
    by_column: dict[tuple[tuple[str | None, str], str], list[tuple[int, ColumnDef]]] = {}
    for position, parsed in enumerate(statements):
        if parsed.node is None:
            continue
        for index in index_defs(parsed.node):
            indexes.append((position, index))
            by_table.setdefault(claim_key(index.table), []).append((position, index))
            by_columns.setdefault((claim_key(index.table), index.columns), []).append((position, index))
        for column in column_defs(parsed.node):
            by_column.setdefault((claim_key(column.table), column.column), []).append((position, column))
    facts = _PlanFacts(tuple(indexes), {k: tuple(v) for k, v in by_table.items()},
                       {k: tuple(v) for k, v in by_columns.items()}, {k: tuple(v) for k, v in by_column.items()})
    if len(_PLAN_CACHE) >= 8:
        _PLAN_CACHE.clear()
    _PLAN_CACHE[id(statements)] = (statements, facts)
    return facts


def plan_indexes(ctx: StatementContext, table: str | None = None,
                 columns: tuple[str | None, ...] | None = None) -> tuple[tuple[int, IndexDef], ...]:
    """(statement position, index) of every index the statements of the plan (or SQL file) build, before
    and after this statement (at ``ctx.position``): an index a later operation or migration adds counts.
    With ``table``: only the indexes on that table (any spelling of it), in plan order; with ``columns``
    too, only those whose key columns are these."""
    facts = _plan_facts(ctx.statements)
    if table is None:
        return facts.indexes
    if columns is not None:
        return facts.indexes_by_columns.get((claim_key(table), tuple(columns)), ())
    return facts.indexes_by_table.get(claim_key(table), ())


def column_type(ctx: StatementContext, table: str, column: str) -> SqlType | None:
    """The type of ``table.column`` when this statement runs: as this migration defines it, as the Django
    facts say, or as the database's catalog has it; None: unknown."""
    latest = None
    for position, definition in _plan_facts(ctx.statements).columns_by_name.get((claim_key(table), column), ()):
        if position > ctx.position:
            break
        latest = definition.type
    if latest is not None:
        return latest
    field = field_of(ctx, table, column)
    if field is not None and field.db_type:
        return parse_type(field.db_type)
    catalog = ctx.catalog
    if catalog is not None:
        known = catalog.column_types.get((claim_key(table)[1], column)) or catalog.column_types.get((table, column))
        return parse_type(known)
    return None


def field_of(ctx: StatementContext, table: str, column: str) -> FieldFacts | None:
    """The Django field stored in ``table.column``: as the statement's operation leaves it, else as the
    code running before the deploy has it; None: raw SQL, or no model uses the column."""
    changed = column_change(ctx, table, column)
    if changed is not None:
        return changed[1]
    deploy = deploy_of(ctx)
    if deploy is not None:
        found = deploy.running.column(table, column)
        if found is not None:
            return found[1]
    return None


def model_of(ctx: StatementContext, table: str):
    """(ModelFacts, ModelChange or None) of the model whose table is ``table``: as the statement's
    operation leaves it, else as the running code has it; None when no model is known."""
    operation = ctx.operation
    for change in operation.changes if operation is not None else ():
        if change.scope != "state" and change.after is not None and same_table(change.after.db_table, table):
            return change.after, change
    deploy = deploy_of(ctx)
    if deploy is not None:
        used = deploy.running.table(table)
        if used is not None and used[1] is None:
            return used[0], None
    return None


def index_name(table: str, columns: list[str] | tuple[str, ...], suffix: str) -> str:
    """A name for a new index, at most 30 characters as Django's ``Index.name`` requires:
    ``<table>_<columns>_<suffix>``, cut to fit."""
    bare = table.split(".")[-1].strip('"')
    head = f"{bare}_{'_'.join(columns)}"
    return f"{head[:29 - len(suffix)]}_{suffix}"


def new_or_large(ctx: StatementContext, table: str) -> bool:
    """Whether ``table`` is created by this plan (a table that will grow) or is large now."""
    return ctx.is_new(table) or ctx.is_large(table)


def known_large(ctx: StatementContext, table: str) -> bool:
    """Whether ``table`` exists with a size figure above the threshold (advice that only pays off on a
    large table does not guess: no figure, no advice)."""
    if ctx.is_new(table):
        return False
    size = ctx.size(table)
    return size.rows is not None and ctx.is_large(table)


def statement_creates(ctx: StatementContext, table: str) -> bool:
    """Whether this very statement creates ``table``."""
    node = ctx.parsed.node
    return isinstance(node, ast.CreateStmt) and same_table(_table(node.relation), table)


def columns_with_fields(ctx: StatementContext) -> tuple[tuple[ColumnDef, FieldFacts | None], ...]:
    """The columns this statement defines, each with its Django field (None: raw SQL); read once per
    statement (several rules ask)."""
    found = ctx.__dict__.get("_columns_with_fields")
    if found is None:
        node = ctx.parsed.node
        found = () if node is None else tuple(
            (definition, field_of(ctx, definition.table, definition.column)) for definition in column_defs(node))
        ctx.__dict__["_columns_with_fields"] = found
    return found


# -- recipes ----------------------------------------------------------------------------------


def model_name(ctx: StatementContext, table: str) -> str | None:
    """How a recipe names the model of ``table`` (``"order"``); None: no model is known (raw SQL)."""
    found = model_of(ctx, table)
    return f'"{found[0].model_name}"' if found is not None else None


def add_index_recipe(ctx: StatementContext, table: str, index: str, sql: str, imports: tuple[str, ...] = ()) -> str:
    """The migration that adds ``index`` (Django source, e.g. ``GinIndex(fields=["data"], name="...")``)
    to the model of ``table``: ``AddIndex`` on a table this plan creates, ``AddIndexConcurrently`` in a
    migration with ``atomic = False`` on a table that has rows. With no model (raw SQL): ``sql``, the
    ``CREATE INDEX`` (made CONCURRENTLY on a table that has rows)."""
    model = model_name(ctx, table)
    new = ctx.is_new(table) or statement_creates(ctx, table)
    if model is None:
        if new:
            return f"-- {sql};  (the table is new: a plain build is harmless)"
        concurrent = sql.replace("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
        return f"-- {concurrent};  (outside a transaction: the table has rows, do not block its writes)"
    imported = [line for line in imports if line.startswith("from ")]
    notes = [line for line in imports if not line.startswith("from ")]
    if new:
        return "\n".join([*imported, *notes,
                          "# in the model's Meta.indexes, or in this migration (the table is new: a plain build is harmless)",
                          f"migrations.AddIndex({model}, {index}),"])
    return "\n".join([split_note("a migration of its own, with atomic = False: the table has rows, build it "
                                 "without blocking writes"),
                      *imported, "from django.contrib.postgres.operations import AddIndexConcurrently", *notes,
                      f"AddIndexConcurrently({model}, {index}),"])
