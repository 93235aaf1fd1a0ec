"""Django project states -> :mod:`migration_guard.model`'s facts (edge: it reads Django objects).

Render holds Django's ``ProjectState`` while it threads it through the plan; this module turns the
parts rules need into frozen data (:class:`~migration_guard.model.FieldFacts`,
:class:`~migration_guard.model.ModelFacts`, :class:`~migration_guard.model.ModelChange`) without
rendering any model: fields are read as the unbound ``Field`` objects the state holds. A field's
deconstruction costs ~25 us (a foreign key's asks the settings whether it is swappable), so facts are
made only for the models an operation changes or whose tables a migration's SQL names, and each field
object's deconstruction is made once.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable

from django.db.backends.utils import strip_quotes, truncate_name
from django.db.migrations.operations.fields import FieldOperation, RenameField
from django.db.migrations.operations.models import AddConstraint, AddIndex, IndexOperation, ModelOperation, RenameModel
from django.db.migrations.operations.special import RunPython, RunSQL, SeparateDatabaseAndState
from django.db.migrations.writer import MigrationWriter
from django.db.models import NOT_PROVIDED, ForeignKey

from migration_guard.model import FieldFacts, ModelChange, ModelFacts, StateFacts

__all__ = ["FactsBuilder", "StateView", "TableIndex", "definition", "named_identifiers"]

Key = tuple[str, str]  # (app_label, model_name_lower), as ProjectState.models keys models

# A quoted identifier ("" is a quote inside it) or an unquoted one (folded to lower case, as PostgreSQL does).
_IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)')


def named_identifiers(sql_texts: Iterable[str]) -> set[str]:
    """Every identifier the SQL texts could name a table with (a superset: keywords and columns too)."""
    found: set[str] = set()
    for text in sql_texts:
        for quoted, bare in _IDENTIFIER.findall(text):
            found.add(quoted.replace('""', '"') if quoted else bare.lower())
    return found


class FactsBuilder:
    """Makes facts from the project states of one database connection (whose ``data_types`` give
    column types), keeping each field object's deconstruction."""

    def __init__(self, connection):
        self.connection = connection
        # id(field) -> (field, path, args, kwargs, imports); the field is kept so its id is not reused.
        self._deconstructed: dict[int, tuple] = {}
        # (id(field), name, table) -> (field, facts) of fields that are not relations (a relation's
        # column type follows its target's, which may change while the field object stays)
        self._fields: dict[tuple[int, str, str], tuple] = {}

    # -- models and tables ---------------------------------------------------------------------

    def model_tables(self, state, model_state) -> tuple[str | None, tuple[str, ...]]:
        """(the model's own table, None for a proxy; the tables of its many-to-many fields)."""
        if model_state.options.get("proxy"):
            return None, ()
        table = self.db_table(model_state)
        through = []
        for name, field in model_state.fields.items():
            try:
                m2m = self._m2m_table(state, table, name, field) if field.many_to_many else None
            except BaseException as exc:  # a custom field that does not answer: no table of its own known
                _untrusted(exc)
                m2m = None
            if m2m:
                through.append(m2m)
        return table, tuple(through)

    def db_table(self, model_state) -> str:
        """The model's table, as ``Options`` names it."""
        table = model_state.options.get("db_table")
        if table:
            return table
        return truncate_name(f"{model_state.app_label}_{model_state.name_lower}", self.connection.ops.max_name_length())

    def model(self, state, key: Key) -> ModelFacts | None:
        """The model ``key`` of ``state`` (None: no such model, or a proxy, which has no table)."""
        model_state = state.models.get(key)
        if model_state is None or model_state.options.get("proxy"):
            return None
        table = self.db_table(model_state)
        return ModelFacts(
            app_label=model_state.app_label,
            name=model_state.name,
            db_table=table,
            fields=tuple(self.field(state, table, name, field) for name, field in model_state.fields.items()),
            managed=bool(model_state.options.get("managed", True)),
        )

    def view(self, state) -> StateView:
        """Facts of ``state``, made on demand; the state must not change while the view is used."""
        return StateView(self, state)

    # -- fields ----------------------------------------------------------------------------------

    def field(self, state, db_table: str, name: str, field) -> FieldFacts:
        """One field of a model whose table is ``db_table``."""
        key = (id(field), name, db_table)
        known = self._fields.get(key)
        if known is not None and known[0] is field:
            return known[1]
        try:
            facts = self._field(state, db_table, name, field)
        except BaseException as exc:
            # A custom field whose code fails here (migration code is untrusted): its column is taken to
            # be its name, as Django's default, and its type unknown, so that rules fail closed on it.
            _untrusted(exc)
            return FieldFacts(name=name, path=f"{type(field).__module__}.{type(field).__qualname__}", column=name)
        if not getattr(field, "is_relation", True):
            self._fields[key] = (field, facts)
        return facts

    def _field(self, state, db_table: str, name: str, field) -> FieldFacts:
        path, args, kwargs, imports = self._deconstruct(field)
        m2m_table = self._m2m_table(state, db_table, name, field) if field.many_to_many else None
        column = None if field.many_to_many else _column(name, field)
        related = _model_key(field.remote_field.model) if field.remote_field is not None else None
        db_default = getattr(field, "db_default", NOT_PROVIDED)
        return FieldFacts(
            name=name,
            path=path,
            args=args,
            kwargs=kwargs,
            imports=imports,
            column=column,
            db_type=self._db_type(state, field) if column is not None else None,
            null=bool(field.null),
            has_default=field.has_default(),
            db_default=None if db_default is NOT_PROVIDED else dict(kwargs).get("db_default", repr(db_default)),
            max_length=getattr(field, "max_length", None),
            primary_key=bool(field.primary_key),
            generated=bool(getattr(field, "generated", False)),
            related_model=f"{related[0]}.{related[1]}" if related else None,
            m2m_table=m2m_table,
        )

    def _deconstruct(self, field) -> tuple[str, tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
        known = self._deconstructed.get(id(field))
        if known is not None and known[0] is field:
            return known[1:]
        imports: set[str] = set()
        try:
            _, path, args, kwargs = field.deconstruct()
        except BaseException as exc:  # a custom field's deconstruct(): the class is still known
            _untrusted(exc)
            path, args, kwargs = f"{type(field).__module__}.{type(field).__qualname__}", (), {}
        path = path or f"{type(field).__module__}.{type(field).__qualname__}"
        module = path.rpartition(".")[0]
        imports.add("from django.db import models" if module == "django.db.models" else f"import {module}")
        sources = tuple(_source(value, imports) for value in args)
        keywords = tuple((key, _source(value, imports)) for key, value in kwargs.items())
        result = (path, sources, keywords, tuple(sorted(imports)))
        self._deconstructed[id(field)] = (field, *result)
        return result

    def _db_type(self, state, field, depth: int = 0) -> str | None:
        """The column type, resolving a foreign key's through its target field in ``state``."""
        try:
            if isinstance(field, ForeignKey):
                target = _target_field(state, field)
                if target is None or depth > 5:
                    return None
                if isinstance(target, ForeignKey):  # a key to a key (a child's parent link)
                    return self._db_type(state, target, depth + 1)
                return target.rel_db_type(self.connection)
            return field.db_type(self.connection)
        except BaseException as exc:  # a custom field whose db_type needs a bound model: unknown
            _untrusted(exc)
            return None

    def _m2m_table(self, state, db_table: str, name: str, field) -> str | None:
        """A ManyToManyField's table: its ``through`` model's, its ``db_table``, or Django's default name."""
        through = getattr(field.remote_field, "through", None)
        if through is not None:
            key = _model_key(through)
            through_state = state.models.get(key) if key else None
            return self.db_table(through_state) if through_state is not None else None
        if getattr(field, "db_table", None):
            return field.db_table
        return truncate_name(f"{strip_quotes(db_table)}_{name}", self.connection.ops.max_name_length())

    # -- operations ------------------------------------------------------------------------------

    def change(self, operation, app_label: str, before_state, after_state, scope: str) -> ModelChange | None:
        """What ``operation`` (already applied to ``after_state``) changed, or None when it names no
        model (RunSQL, RunPython, an operation this does not understand)."""
        targets = _targets(operation)
        if targets is None:
            return None
        old_model, new_model, old_field, new_field = targets
        return ModelChange(
            operation=type(operation).__name__,
            scope=scope,
            app_label=app_label,
            model=new_model if (app_label, new_model) in after_state.models else old_model,
            before=self.model(before_state, (app_label, old_model)),
            after=self.model(after_state, (app_label, new_model)),
            field=new_field,
            old_field=old_field,
        )


class StateView:
    """One unchanging project state, whose models' facts are made when first asked for."""

    def __init__(self, builder: FactsBuilder, state):
        self.builder = builder
        self.state = state
        self._index = TableIndex(builder)
        self._models: dict[Key, ModelFacts | None] = {}

    def facts(self, tables: Iterable[str]) -> StateFacts:
        """The models whose tables (or many-to-many tables) are among ``tables``."""
        models = []
        for key in self._index.keys(self.state, tables):
            if key not in self._models:
                self._models[key] = self.builder.model(self.state, key)
            if self._models[key] is not None:
                models.append(self._models[key])
        return StateFacts(models=tuple(models))


class TableIndex:
    """Which model each table belongs to, kept up to date along a plan without reading every model at
    every migration (``--each`` needs it before each one): after a migration, only the models its
    operations can change are read again; an operation this cannot tell about makes it read all."""

    def __init__(self, builder: FactsBuilder):
        self.builder = builder
        self._entries: dict[Key, tuple[str | None, tuple[str, ...]]] | None = None  # None: read all
        self._dirty: set[Key] = set()
        self._own: dict[str, Key] = {}
        self._through: dict[str, Key] = {}

    def changed(self, migration) -> None:
        """Note what a migration (applied to the state since) may have changed."""
        if self._entries is None:
            return
        for operation in migration.operations:
            keys = _state_keys(operation, migration.app_label)
            if keys is None:
                self._entries = None
                return
            self._dirty |= keys

    def keys(self, state, tables: Iterable[str]) -> list[Key]:
        """The models of ``state`` that own ``tables`` (each once, in order)."""
        if self._entries is None:
            self._entries = {key: self.builder.model_tables(state, m) for key, m in state.models.items()}
            self._dirty = set()
            self._rebuild()
        elif self._dirty:
            for key in self._dirty:
                model_state = state.models.get(key)
                if model_state is None:
                    self._entries.pop(key, None)
                else:
                    self._entries[key] = self.builder.model_tables(state, model_state)
            self._dirty = set()
            self._rebuild()
        found = (self._own.get(table) or self._through.get(table) for table in tables)
        return list(dict.fromkeys(key for key in found if key is not None))

    def _rebuild(self) -> None:
        self._own = {table: key for key, (table, _) in self._entries.items() if table is not None}
        self._through = {}
        for key, (_, through) in self._entries.items():
            for table in through:
                self._through.setdefault(table, key)


def _state_keys(operation, app_label: str) -> set[Key] | None:
    """The models whose tables an operation's state change can touch (None: cannot tell)."""
    if isinstance(operation, RunPython):
        return set()
    if isinstance(operation, RunSQL | SeparateDatabaseAndState):
        keys: set[Key] = set()
        for inner in operation.state_operations:
            inner_keys = _state_keys(inner, app_label)
            if inner_keys is None:
                return None
            keys |= inner_keys
        return keys
    if not isinstance(operation, FieldOperation | ModelOperation | IndexOperation):
        return None
    targets = _targets(operation)
    return {(app_label, targets[0]), (app_label, targets[1])} if targets is not None else None


def _targets(operation) -> tuple[str, str, str | None, str | None] | None:
    """(old model, new model, old field, new field) names an operation acts on, lower-case models."""
    if isinstance(operation, RenameModel):
        return operation.old_name_lower, operation.new_name_lower, None, None
    if isinstance(operation, RenameField):
        model = operation.model_name_lower
        return model, model, operation.old_name, operation.new_name
    if isinstance(operation, FieldOperation):
        model = operation.model_name_lower
        return model, model, operation.name, operation.name
    model = getattr(operation, "model_name", None) or getattr(operation, "name", None)
    if not isinstance(model, str) or not model:
        return None
    return model.lower(), model.lower(), None, None


def _column(name: str, field) -> str | None:
    """The field's column, as ``get_attname_column()`` says once the field has its name (a foreign
    key's ``<name>_id``; None for fields without one, e.g. a composite primary key)."""
    named = copy.copy(field)  # Field.__copy__: a shallow copy, so the state's field is not touched
    named.name = name
    try:
        return named.get_attname_column()[1]
    except BaseException as exc:
        _untrusted(exc)
        return name


def _target_field(state, field):
    """The field a foreign key points at, in ``state``: its ``to_field`` or the target's primary key."""
    key = _model_key(field.remote_field.model)
    target = state.models.get(key) if key else None
    if target is None:
        return None
    wanted = getattr(field.remote_field, "field_name", None)
    for name, candidate in target.fields.items():
        if (name == wanted) if wanted else candidate.primary_key:
            return candidate
    return None


def _model_key(model) -> Key | None:
    """``"shop.Order"`` or a model class -> ``("shop", "order")``."""
    if isinstance(model, str):
        app_label, _, name = model.rpartition(".")
        return (app_label, name.lower()) if app_label else None
    meta = getattr(model, "_meta", None)
    return (meta.app_label, meta.model_name) if meta is not None else None


def definition(operation) -> tuple[str, tuple[str, ...]] | None:
    """(the index of an ``AddIndex`` or the constraint of an ``AddConstraint`` as Python source, as
    ``makemigrations`` writes it; the import lines it needs but Django's ``models``, which every migration
    imports), or None: another operation, or one whose
    index or constraint Django cannot write."""
    value = (operation.index if isinstance(operation, AddIndex)
             else operation.constraint if isinstance(operation, AddConstraint) else None)
    if value is None:
        return None
    try:
        text, needed = MigrationWriter.serialize(value)
    except BaseException as exc:
        _untrusted(exc)
        return None
    return text, tuple(sorted(line for line in needed if line != "from django.db import models"))


def _source(value, imports: set[str]) -> str:
    """A value as Python source, as ``makemigrations`` writes it (``repr`` when Django cannot)."""
    try:
        text, needed = MigrationWriter.serialize(value)
    except BaseException as exc:
        _untrusted(exc)
        return repr(value)
    imports.update(needed)
    return text


def _untrusted(exc: BaseException) -> None:
    """Code of a migration's field failed (any exception, ``sys.exit()`` too): the facts go on without
    it, as render goes on without a failing migration, unless a signal asks the run to stop."""
    from migration_guard.render import describe_exception  # render imports this module

    describe_exception(exc)
