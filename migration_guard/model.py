"""The frozen data that flows through the pipeline, stage to stage.

plan -> render (:class:`RenderedMigration` of :class:`Statement`) -> parse (:class:`ParsedStatement`)
-> locks (:class:`Effects` of :class:`Action`) -> stats (:class:`TableSize`) -> rules
(:class:`Finding`) -> approvals -> report (:class:`Report`). Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the lock model imports this module; import LockMode from locks.modes
    from migration_guard.locks.modes import LockMode

__all__ = [
    "Action",
    "ActionKind",
    "Deploy",
    "Effects",
    "FieldFacts",
    "Finding",
    "ModelChange",
    "ModelFacts",
    "Operation",
    "ParsedStatement",
    "RelationLock",
    "RenderedMigration",
    "Runs",
    "Severity",
    "StateFacts",
    "Statement",
    "StatementKind",
    "TableSize",
]


# -- render ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """The migration operation a statement came from."""

    index: int  # position in ``Migration.operations``
    name: str  # class name, e.g. ``AddField``
    description: str  # ``operation.describe()``
    line: int | None  # line of the operation in the migration file, when it could be found
    model_name: str | None = None  # the operation's ``model_name``/``name`` model, for recipes
    # What it does at the Django level, one entry per model it changes (SeparateDatabaseAndState:
    # one per inner operation, with its scope); () for operations with no model (RunSQL, RunPython).
    changes: tuple[ModelChange, ...] = ()
    # The index an AddIndex adds or the constraint an AddConstraint adds, as Python source (as makemigrations
    # writes it, e.g. ``models.Index(fields=['status'], name='shop_order_status_idx')``), for recipes that
    # keep it in Django's state; with the import lines it needs (but ``from django.db import models``). None:
    # another operation (or its code failed).
    definition: str | None = None
    definition_imports: tuple[str, ...] = ()


# -- Django facts ------------------------------------------------------------------------------
# What an operation does at the Django level, and what the project's models look like, as plain
# frozen data: computed once by render (the edge that holds Django's ProjectState), read by rules
# and recipes, which never import Django. Every value is a str, int, bool, None or a tuple of them,
# so all of it pickles and compares.


@dataclass(frozen=True)
class FieldFacts:
    """One field of one model of a project state.

    ``path``/``args``/``kwargs`` are the field's ``deconstruct()``, each argument written as Python
    source by Django's migration serializer (as ``makemigrations`` would write it), so a recipe can
    print the user's own field: ``facts.source()`` is ``models.CharField(max_length=200)``, and
    ``facts.source(null="True")`` the same field made nullable. The other attributes are what the
    database sees of it, for rules.
    """

    name: str  # the attribute name, e.g. "customer"
    path: str  # deconstruct()'s import path, e.g. "django.db.models.ForeignKey"
    args: tuple[str, ...] = ()  # positional arguments, as Python source
    kwargs: tuple[tuple[str, str], ...] = ()  # (name, Python source), in deconstruct()'s order
    imports: tuple[str, ...] = ()  # the import lines that source needs, e.g. "from django.db import models"
    column: str | None = None  # its column, e.g. "customer_id"; None: no column (ManyToManyField, ...)
    db_type: str | None = None  # the column's type on the target database, e.g. "varchar(200)"; None: unknown
    null: bool = False
    has_default: bool = False  # a Python-side default: Django writes it when the code gives no value
    db_default: str | None = None  # Django 5's db_default, as Python source; None: none
    max_length: int | None = None
    primary_key: bool = False
    generated: bool = False  # a GeneratedField: the database computes it; the code never writes it
    related_model: str | None = None  # "app_label.modelname" of a relation's target
    m2m_table: str | None = None  # the table of a ManyToManyField (auto-created or its ``through``'s)

    def kwarg(self, name: str) -> str | None:
        """A keyword argument's source, or None when the field does not set it."""
        for key, value in self.kwargs:
            if key == name:
                return value
        return None

    def source(self, **changes: str | None) -> str:
        """The field as Python source, written as ``makemigrations`` writes it (keyword arguments
        sorted), with keyword arguments changed (source text) or removed (None)."""
        kwargs = dict(self.kwargs)
        for key, value in changes.items():
            if value is None:
                kwargs.pop(key, None)
            else:
                kwargs[key] = value
        module, _, name = self.path.rpartition(".")
        callable_name = f"models.{name}" if module == "django.db.models" else self.path
        arguments = [*self.args, *(f"{key}={value}" for key, value in sorted(kwargs.items()))]
        return f"{callable_name}({', '.join(arguments)})"

    @property
    def written_on_insert(self) -> bool:
        """Whether an INSERT that does not name the column still gets a value: a database default,
        or nothing to store (NULL allowed, or the database computes it)."""
        return self.null or self.db_default is not None or self.generated


@dataclass(frozen=True)
class ModelFacts:
    """One model of a project state: its table and its fields."""

    app_label: str
    name: str  # the class name, e.g. "Order"
    db_table: str
    fields: tuple[FieldFacts, ...] = ()
    managed: bool = True

    @property
    def model_name(self) -> str:
        """The lower-case name migrations use, e.g. ``"order"``."""
        return self.name.lower()

    @property
    def label(self) -> str:
        """``app_label.Name``."""
        return f"{self.app_label}.{self.name}"

    def field(self, name: str) -> FieldFacts | None:
        """The field with this attribute name."""
        for item in self.fields:
            if item.name == name:
                return item
        return None

    def column(self, column: str) -> FieldFacts | None:
        """The field stored in this column."""
        for item in self.fields:
            if item.column == column:
                return item
        return None


@dataclass(frozen=True)
class ModelChange:
    """What one Django operation does to one model (or one of its fields), at the Django level.

    ``before``/``after`` are the model in the project state just before and just after the operation
    (None: it did not exist / no longer exists): their ``db_table`` gives the old and new table, their
    fields the old and new field (``field_before``/``field_after``) with its deconstruction and column.
    ``scope`` says what the change reaches: ``"both"`` (the code's models and the database, as a
    plain operation does), ``"state"`` (the models only: ``SeparateDatabaseAndState.state_operations``,
    ``RunSQL(state_operations=...)``) or ``"database"`` (``database_operations``: the code does not
    see it).
    """

    operation: str  # the Django operation's class name, e.g. "AddField"
    scope: str  # "both", "state" or "database"
    app_label: str
    model: str  # the model's lower-case name after the operation (its old one when deleted)
    before: ModelFacts | None = None
    after: ModelFacts | None = None
    field: str | None = None  # the field's name after the operation (RenameField: the new name)
    old_field: str | None = None  # its name before (RenameField: the old name; else as ``field``)

    @property
    def field_before(self) -> FieldFacts | None:
        """The field as it was before the operation."""
        if self.before is None or self.old_field is None:
            return None
        return self.before.field(self.old_field)

    @property
    def field_after(self) -> FieldFacts | None:
        """The field as it is after the operation."""
        if self.after is None or self.field is None:
            return None
        return self.after.field(self.field)


@dataclass(frozen=True)
class StateFacts:
    """Models of one project state, looked up by table.

    ``models`` need not be every model of the state: a migration carries the ones whose table (or
    many-to-many table) its SQL names, which are all a statement's actions can reach."""

    models: tuple[ModelFacts, ...] = ()

    @cached_property
    def _by_table(self) -> dict[str, tuple[ModelFacts, FieldFacts | None]]:
        tables: dict[str, tuple[ModelFacts, FieldFacts | None]] = {}
        for model in self.models:
            for item in model.fields:
                if item.m2m_table:
                    tables.setdefault(item.m2m_table, (model, item))
        for model in self.models:
            tables[model.db_table] = (model, None)
        return tables

    def table(self, table: str | None) -> tuple[ModelFacts, FieldFacts | None] | None:
        """Who uses ``table`` (a name as the lock model reports it: ``t``, ``"t"`` or ``public.t``):
        (its model, None), or (the model, its ManyToManyField) for a many-to-many table; None: no model."""
        if not table:
            return None
        found = self._by_table.get(table)
        if found is None and ("." in table or '"' in table):
            found = self._by_table.get(_bare_table(table))
        return found

    def column(self, table: str | None, column: str | None) -> tuple[ModelFacts, FieldFacts] | None:
        """(model, field) of the column ``column`` of the model table ``table``; None: no such field."""
        used = self.table(table)
        if used is None or used[1] is not None or column is None:
            return None
        model = used[0]
        item = model.column(column)
        return (model, item) if item is not None else None


def _bare_table(name: str) -> str:
    """``public.t`` / ``"t"`` -> ``t``; another schema's table keeps its schema."""
    parts = [part.strip('"') for part in name.split(".")]
    if len(parts) >= 2 and parts[-2] != "public":
        return ".".join(parts[-2:])
    return parts[-1]


@dataclass(frozen=True)
class Deploy:
    """The code around a migration during a rolling deploy, for the backward-compatibility rules.

    ``running`` is the project state of the migrations that count as applied (see ``basis``): the
    models of the code that runs now, and the schema the database has before the deploy. ``release``
    is the state once the linted migrations are applied: the models of the code being deployed
    (computed when the deploy order is ``code_first``, which runs that code against the old schema;
    else None). Both hold the models whose tables the migration's SQL names.
    """

    running: StateFacts
    basis: str  # what counts as applied, e.g. "the 12 migrations applied on database \"default\""
    release: StateFacts | None = None


class StatementKind(enum.Enum):
    """What a rendered statement is."""

    SQL = "sql"  # SQL text to parse and analyse
    RUN_PYTHON = "run_python"  # opaque Python work (its SQL is unknown when only rendered)


@dataclass(frozen=True)
class Statement:
    """One statement of a migration (or of a raw SQL file), before parsing."""

    sql: str
    migration: str  # ``app_label.migration_name``, or the SQL file's path for raw SQL
    operation: Operation | None = None
    in_transaction: bool = True  # runs inside a transaction (the migration's, or its operation's)
    # Statements of one migration with the same number run in the same transaction and so hold
    # each other's locks until it ends; None: autocommit (or unknown, for raw SQL: see BEGIN).
    transaction: int | None = 0
    kind: StatementKind = StatementKind.SQL
    deferred: bool = False  # schema editor's deferred SQL (run at the end of the migration)
    line: int | None = None  # 1-based line of the statement in a raw SQL file
    # Column types known before this statement runs, from the migration's project state:
    # ((table, column), db_type) pairs. Lets the lock model tell a binary-coercible type change.
    column_types: tuple[tuple[tuple[str, str], str], ...] = ()
    # The CHECK constraints the project state has on that column's table (its model's
    # ``Meta.constraints``, the field's own ``db_check``), before this statement runs: ((table, name),
    # CHECK expression as SQL) pairs. For a table the lock model's catalog does not know, they say
    # which CHECKs a type change checks again.
    model_checks: tuple[tuple[tuple[str, str], str], ...] = ()
    # The SQL as it ran, when ``sql`` is not it: ``sql`` is what reports show (parameters as $1,
    # credentials masked); this one, with the values, is only ever run again (trace), never shown.
    executed: str | None = field(default=None, repr=False, compare=False)
    # The code around the migration during a deploy (None: raw SQL, where no code is known).
    deploy: Deploy | None = None
    # The table locks the statement took when the gate ran it on the scratch database (--scratch): ((table,
    # lock mode as pg_locks names it), ...), for a statement the lock model cannot read (a DO block);
    # None: not observed.
    observed_locks: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class Runs:
    """Where a migration's statements run: once in each schema of ``schemas``, the search path then
    being that schema followed by ``tail`` (schema-per-tenant: the tenant schemas, then ``public``);
    with no ``schemas``, once on ``tail`` alone. ``label`` names the schemas in reports
    (``"tenant schemas"``)."""

    schemas: tuple[str, ...]
    tail: tuple[str, ...] = ()
    label: str = "schemas"

    @classmethod
    def on(cls, search_path: Iterable[str]) -> Runs:
        """One run on ``search_path``."""
        path = tuple(search_path)
        return cls(path[:1], path[1:])

    @property
    def count(self) -> int:
        """How many times the statements run."""
        return max(1, len(self.schemas))


@dataclass(frozen=True)
class RenderedMigration:
    """One migration rendered to statements at the database state just before it."""

    app_label: str
    name: str
    path: str | None
    atomic: bool
    statements: tuple[Statement, ...] = ()
    error: str | None = None  # why it could not be rendered (a blocking finding)
    # The earlier migration of the plan whose failure kept this one from being rendered (it depends on
    # it); None: rendered, or failed itself.
    failed_before: str | None = None
    # A build option the server the gate rendered on lacks (e.g. "ICU") when that is why it failed: the
    # migration is not to blame, the gate's server is.
    missing_feature: str | None = None
    how: str = "collect_sql"  # "collect_sql" (rendered only) or "executed" (run on a scratch db)
    # What rendering read of the catalog (constraint names etc.): (table, the columns whose constraints
    # it looked up, or None for more of the table), by table. When an earlier pending migration changes
    # them and the database is not at this migration's state, the rendered SQL may be wrong.
    introspected: tuple[tuple[str, frozenset[str] | None], ...] = ()
    # False: rendered only so that later migrations see what it does (a pending migration that
    # was not selected for linting); its findings are not reported.
    linted: bool = True
    # Where its statements run, when not once on the database's search_path (schema-per-tenant: in
    # public and/or in every tenant schema).
    runs: Runs | None = None
    # Statements its code sent that the gate refused to send (migration_guard.guard.Refusal):
    # a write on the target database, or a cluster-wide statement on the scratch one.
    refused: tuple = ()
    # Every operation of the migration, in order, with what it does at the Django level; operations
    # that produce no SQL (state-only ones) are here too.
    operations: tuple[Operation, ...] = ()
    deploy: Deploy | None = None  # the same object its statements carry

    @property
    def label(self) -> str:
        """``app_label.name``, how findings and approvals name a migration."""
        return f"{self.app_label}.{self.name}"


# -- parse -------------------------------------------------------------------------------------


class _Deferred:
    """A field given either its value or a function computing it, called once on first read.

    The fingerprint deparses the statement, which costs three times its parse; ``explain`` on a
    long script never reads it (a finding's fingerprint is its statement's, read on demand too)."""

    def __set_name__(self, owner, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, instance, owner=None):
        if instance is None:
            return ""  # the dataclass default
        value = instance.__dict__[self.slot]
        if callable(value):
            value = value()
            instance.__dict__[self.slot] = value
        return value

    def __set__(self, instance, value) -> None:
        instance.__dict__[self.slot] = value


@dataclass(frozen=True)
class ParsedStatement:
    """A statement with its pglast AST (``None`` when it did not parse or is not SQL)."""

    statement: Statement
    node: Any = None  # pglast.ast.Node: the RawStmt's ``stmt``
    error: str | None = None  # parser error message
    # Why the statement was not analysed although it may be valid SQL (too large, nested too deeply).
    limit: str | None = None
    # hash of the canonical (deparsed) SQL; binds approvals. May be given as a function computing it.
    fingerprint: str = _Deferred()


# -- locks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelationLock:
    """A lock a statement takes on one relation."""

    relation: str  # as written in the SQL (schema-qualified only when the SQL qualifies it)
    relkind: str  # "table", "index", "sequence", "view", "materialized view", "type"
    mode: LockMode


class ActionKind(enum.Enum):
    """The things a statement can do to a table that rules reason about."""

    CREATE_TABLE = "create_table"
    DROP_TABLE = "drop_table"
    RENAME_TABLE = "rename_table"
    ADD_COLUMN = "add_column"
    DROP_COLUMN = "drop_column"
    RENAME_COLUMN = "rename_column"
    ALTER_COLUMN_TYPE = "alter_column_type"
    SET_NOT_NULL = "set_not_null"
    DROP_NOT_NULL = "drop_not_null"
    SET_DEFAULT = "set_default"
    DROP_DEFAULT = "drop_default"
    ADD_CONSTRAINT = "add_constraint"
    VALIDATE_CONSTRAINT = "validate_constraint"
    DROP_CONSTRAINT = "drop_constraint"
    CREATE_INDEX = "create_index"
    DROP_INDEX = "drop_index"
    RENAME_INDEX = "rename_index"
    DML = "dml"  # UPDATE / DELETE / INSERT ... SELECT: backfills
    CALL = "call"  # a function or procedure the model cannot see into (SELECT f(), CALL, DO)
    SET_SETTING = "set_setting"  # SET lock_timeout / statement_timeout / ...
    TRANSACTION = "transaction"  # BEGIN / COMMIT / ROLLBACK
    OTHER = "other"  # a modelled statement with nothing a rule reasons about
    UNKNOWN = "unknown"  # not modelled: assumed ACCESS EXCLUSIVE on every relation it names


@dataclass(frozen=True)
class Action:
    """One thing a statement does, to one table; what rules match on.

    ``detail`` keys by kind (all optional):
      ADD_COLUMN: type, default (SQL text), volatile_default (bool), not_null, identity, serial,
        generated_stored, check (bool: inline CHECK), references (table)
      ALTER_COLUMN_TYPE: new_type, old_type (None when unknown), using (SQL text or None), collation,
        rebuilt (((index, its columns, whether it backs a UNIQUE/PRIMARY KEY constraint), ...): indexes
        a new collation rebuilds), rebuilt_anyway (those of them with expressions or a WHERE, which no
        index built beforehand spares), assumed_indexes (bool: the table's indexes are not known, so a
        new collation is assumed to rebuild some)
      ADD_CONSTRAINT: contype ("check", "foreign_key", "unique", "primary_key", "exclusion",
        "not_null"), name, not_valid, using_index (index name or None), columns (tuple),
        references (table or None), expression (SQL text, for checks)
      VALIDATE_CONSTRAINT / DROP_CONSTRAINT: name
      CREATE_INDEX / DROP_INDEX: name, concurrently, unique, columns (tuple); CREATE_INDEX also reads
        (every column an index with expressions or a WHERE reads; () for the others)
      DML: verb ("update", "delete", "insert"), where (bool: has a WHERE clause), bounded (bool: a key
        range or a LIMIT bounds the rows it writes), source (tables an INSERT ... SELECT reads), key (the
        table's primary key column, or "id"), alias (the table's alias in the statement)
      CALL: function (name, or "DO"), why (a DO block: what keeps it opaque)
      any kind, done by a statement inside a DO block: block_sql (that statement's SQL)
      SET_SETTING: name, value
      TRANSACTION: verb ("begin", "commit", "rollback")
    """

    kind: ActionKind
    table: str | None
    mode: LockMode | None = None  # the lock this action takes on ``table``
    column: str | None = None
    rewrites: bool = False  # rewrites every row of ``table`` (and rebuilds its indexes)
    scans: bool = False  # reads every row of ``table`` while holding ``mode``
    builds_index: bool = False  # builds an index on ``table`` while holding ``mode``
    reason: str = ""  # the fact behind the flags, e.g. "random() is volatile, so every row is rewritten"
    detail: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Effects:
    """Everything the lock model says about one statement."""

    locks: tuple[RelationLock, ...] = ()  # the strongest mode per relation
    actions: tuple[Action, ...] = ()
    known: bool = True  # False: the statement kind is not modelled (see ActionKind.UNKNOWN)
    needs_no_transaction: bool = False  # CONCURRENTLY family: cannot run in a transaction block

    @property
    def rewrites(self) -> tuple[str, ...]:
        """Tables whose every row the statement rewrites."""
        return _tables(self.actions, "rewrites")

    @property
    def scans(self) -> tuple[str, ...]:
        """Tables the statement reads in full while holding its lock."""
        return _tables(self.actions, "scans")

    @property
    def index_builds(self) -> tuple[str, ...]:
        """Tables the statement builds an index on."""
        return _tables(self.actions, "builds_index")

    def lock_on(self, relation: str) -> LockMode | None:
        """The mode this statement takes on ``relation``, if any."""
        for lock in self.locks:
            if lock.relation == relation:
                return lock.mode
        return None


def _tables(actions: tuple[Action, ...], flag: str) -> tuple[str, ...]:
    """The tables of the actions with ``flag`` set, each once, in order (most statements have one action)."""
    found: tuple[str, ...] = ()
    for action in actions:
        if getattr(action, flag) and action.table and action.table not in found:
            found += (action.table,)
    return found


# -- stats -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSize:
    """How big a table is, and where the figure came from."""

    rows: int | None  # None: unknown (treated as large)
    total_bytes: int | None = None  # table + indexes + toast
    # "database", "snapshot", "assumed", "new in this plan", "unknown", "ambiguous" (in several schemas
    # and the search_path is not known: counted as large)
    source: str = "database"
    schema: str | None = None  # the schema the name resolved to (of the largest copy, when several)
    # How many times the statement runs, each time on the copy of its own schema (schema-per-tenant:
    # once per tenant schema, one after the other); the figures are the largest copy's.
    runs: int = 1
    note: str | None = None  # why the size is unknown, when a name could not be resolved
    indexes: int | None = None  # how many indexes the table has (a rewrite rebuilds each); None: unknown


# -- rules and findings ------------------------------------------------------------------------


class Severity(enum.Enum):
    """How much a finding matters. Only ``ERROR`` findings block (unless approved)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One problem a rule found in one statement."""

    rule: str  # "MG001"
    slug: str  # "add-column-rewriting-table"
    severity: Severity
    message: str  # one sentence, with the user's own names
    migration: str  # ``app_label.name`` or the SQL file path
    statement_index: int | None = None  # index into the migration's statements
    table: str | None = None
    size: TableSize | None = None
    lock: LockMode | None = None
    duration: str | None = None  # rough, e.g. "~4 s"
    recipe: str = ""  # the safe alternative, pasteable, with the user's names
    # of the statement, for approvals; may be given as a function computing it (explain never reads it)
    fingerprint: str = _Deferred()
    approval: str | None = None  # set by the approvals stage: why it no longer blocks
    # Other statements of the migration (indexes) the finding is about too (MG008: the statements
    # whose locks are held while this one works): its fingerprint covers them all.
    related: tuple[int, ...] = ()
    # A warning only because its table is below the size threshold (on a large one the rule blocks):
    # the text report counts these per rule instead of giving each in full (--show-warnings gives them).
    below_threshold: bool = False

    @property
    def blocking(self) -> bool:
        """Whether this finding stops the deploy."""
        return self.severity is Severity.ERROR and self.approval is None
