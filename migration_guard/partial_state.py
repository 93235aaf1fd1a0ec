"""Render only the models that pending migrations need (the pull-request case of collect mode).

Django renders every model of the project state before it applies a migration (``state.apps``):
about 0.3 s at 1,000 migrations, more than ``migrate --plan`` spends on anything else. The SQL of
an operation depends only on:

- the models it touches (``model_name``, a model operation's ``name``, both names of a rename);
- the models that reference those directly (an ``AlterField`` of a key alters the foreign key
  columns that point at it; a ``RenameModel`` alters the foreign keys to the model), which is
  what Django itself re-renders after a change (``ProjectState._find_reload_model``);
- and, for a model to render at all, everything it points at, transitively (foreign keys,
  many-to-many fields and their through models, model bases).

So the state renders that closure, computed from the unrendered state (``ProjectState.relations``
for the references). Anything the closure cannot be sure of renders every model, as Django does:
an operation class outside Django's own (a custom or third-party operation may read any model),
and anything that fails while building the partial registry. ``RunPython`` needs no models
here: collect mode does not run Python. Execute mode (``--scratch``) renders every model, because
``RunPython`` code may ask for any model, except from a kept base (``base_cache``) when none of the
migrations left to apply runs Python.

``MIGRATION_GUARD_PARTIAL_STATE=0`` turns it off (every model rendered).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from django.db.migrations.operations.base import Operation
from django.db.migrations.operations.models import ModelOperation, RenameModel
from django.db.migrations.operations.special import RunPython, RunSQL, SeparateDatabaseAndState
from django.db.migrations.state import ProjectState, StateApps

__all__ = ["render_models"]

# Operations whose model needs are read from their attributes (see _needs); any other class
# (a subclass included: it may override database_forwards) renders every model.
_MODULES = ("django.db.migrations.operations.", "django.contrib.postgres.operations")

ModelKey = tuple[str, str]


def render_models(state: ProjectState, migrations: Iterable) -> str:
    """Render the models of ``state`` that ``migrations`` (applied to it in order, collect mode)
    need; every model when that cannot be worked out. Returns ``"partial"`` or ``"all"``."""
    if os.environ.get("MIGRATION_GUARD_PARTIAL_STATE", "1") == "0":
        state.apps  # noqa: B018 - render every model
        return "all"
    touched: set[ModelKey] = set()
    pointed: set[ModelKey] = set()
    for migration in migrations:
        for operation in migration.operations:
            if not _needs(operation, migration.app_label, touched, pointed):
                state.apps  # noqa: B018
                return "all"
    needed = _closure(state, touched, pointed)
    if len(needed) == len(state.models):
        state.apps  # noqa: B018
        return "all"
    try:
        # In the state's own order: the order models register in decides the order of their
        # reverse relations, and so of the statements that alter them (e.g. on RenameModel).
        apps = StateApps(state.real_apps, {key: model for key, model in state.models.items() if key in needed})
    except Exception:  # a reference the closure missed (e.g. from an unmigrated app): render all
        state.apps  # noqa: B018
        return "all"
    state.__dict__["apps"] = apps  # what the cached property would hold, with fewer models
    return "partial"


def _needs(operation: Operation, app_label: str, touched: set[ModelKey], pointed: set[ModelKey]) -> bool:
    """Add the models ``operation`` changes to ``touched`` and the ones its fields point at to
    ``pointed``; False when the operation is not one whose needs this can read."""
    if not type(operation).__module__.startswith(_MODULES):
        return False
    if isinstance(operation, SeparateDatabaseAndState):
        return all(_needs(op, app_label, touched, pointed)
                   for op in (*operation.state_operations, *operation.database_operations))
    if isinstance(operation, RunSQL):
        return all(_needs(op, app_label, touched, pointed) for op in operation.state_operations)
    if isinstance(operation, RunPython):
        return True  # collect mode records it as opaque: it does not run
    if isinstance(operation, RenameModel):
        touched.update({(app_label, operation.old_name_lower), (app_label, operation.new_name_lower)})
    elif isinstance(operation, ModelOperation):
        touched.add((app_label, operation.name_lower))
    model_name = getattr(operation, "model_name_lower", None)
    if model_name:
        touched.add((app_label, model_name))
    fields = [operation.field] if getattr(operation, "field", None) is not None else []
    fields += [f for _, f in getattr(operation, "fields", None) or () if hasattr(f, "is_relation")]
    for field in fields:
        pointed.update(_field_targets(field, app_label))
    for base in getattr(operation, "bases", None) or ():
        key = _key(base, app_label)
        if key:
            pointed.add(key)
    return True


def _closure(state: ProjectState, touched: set[ModelKey], pointed: set[ModelKey]) -> set[ModelKey]:
    """The touched models, the ones referencing them directly, and everything these point at."""
    relations = state.relations  # {referenced model: {referencing model: {field: field}}}
    todo = set(touched) | set(pointed)
    for key in touched:
        todo.update(relations.get(key, ()))
    needed: set[ModelKey] = set()
    while todo:
        key = todo.pop()
        if key in needed or key not in state.models:
            continue
        needed.add(key)
        model = state.models[key]
        for field in model.fields.values():
            todo.update(_field_targets(field, key[0]))
        for base in model.bases:
            base_key = _key(base, key[0])
            if base_key:
                todo.add(base_key)
    return needed


def _field_targets(field, app_label: str) -> set[ModelKey]:
    """The models a field points at: its related model and a many-to-many field's through model."""
    remote = getattr(field, "remote_field", None)
    if not getattr(field, "is_relation", False) or remote is None:
        return set()
    keys = {_key(remote.model, app_label)}
    through = getattr(remote, "through", None)
    if through is not None:
        keys.add(_key(through, app_label))
    return {k for k in keys if k}


def _key(reference, app_label: str) -> ModelKey | None:
    """``("app", "model")`` of a model reference: ``"app.Model"``, ``"Model"`` (same app) or a class."""
    if isinstance(reference, str):
        if reference == "self":
            return None
        app, _, name = reference.rpartition(".")
        return (app or app_label, name.lower())
    meta = getattr(reference, "_meta", None)
    if meta is None or getattr(meta, "abstract", False) or not getattr(meta, "model_name", None):
        return None  # a mixin or an abstract base: nothing to render
    return (meta.app_label, meta.model_name)
