"""Stage *render* (edge): each migration -> its statements, at the database state just before it.

One process, one loader, one project state threaded from migration to migration (never
``sqlmigrate`` or a subprocess per migration). Two ways:

- **collect** (the release gate, against a real database): each operation runs through
  ``schema_editor(collect_sql=True)``, as ``sqlmigrate`` does, in a session whose transactions are
  all READ ONLY, so nothing can write to the target database, not even Python code that an
  operation runs. Only the first pending migration sees the database at its own state; which
  tables later ones introspected is recorded so the pipeline can flag SQL that may be wrong.
- **execute** (CI, ``--since``/``--scratch``): the migrations run for real on a throwaway database,
  and every statement executed is recorded. This also catches DDL issued from ``RunPython`` and
  constraints created earlier in the same migration, which ``collect_sql`` cannot see.

Every statement keeps its migration, the operation that produced it (index, class, description,
line in the file) and whether it runs inside a transaction.
"""

from __future__ import annotations

import ast
import contextlib
import dis
import gc
import hashlib
import inspect
import itertools
import re
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from django.core.exceptions import FieldDoesNotExist
from django.db import models, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations.special import RunPython, RunSQL, SeparateDatabaseAndState
from django.db.migrations.state import ModelState, ProjectState

from migration_guard import interrupt
from migration_guard.guard import Guard
from migration_guard.partial_state import render_models
from migration_guard.redact import mask_sql
from migration_guard.model import (
    Deploy,
    ModelChange,
    Operation,
    RenderedMigration,
    StateFacts,
    Statement,
    StatementKind,
)
from migration_guard.plan import Plan, migration_path
from migration_guard.project_facts import FactsBuilder, StateView, TableIndex, definition, named_identifiers
from migration_guard.state_cache import applied_state, state_of, unrendered_replay

__all__ = ["bulk_load", "clone_state", "render_plan"]

# Introspection methods whose table argument shows which catalog entries rendering relied on.
_INTROSPECTION_METHODS = (
    "get_constraints",
    "get_relations",
    "get_primary_key_column",
    "get_primary_key_columns",
    "get_sequences",
    "get_table_description",
)
_PLACEHOLDER = re.compile(r"%%|%\(\w+\)s|%s")
# Timeouts for the read-only render transaction: catalog reads only, they should be instant.
_RENDER_STATEMENT_TIMEOUT_MS = 30_000
_RENDER_LOCK_TIMEOUT_MS = 5_000


@contextlib.contextmanager
def bulk_load() -> Iterator[None]:
    """Loading the migration files or the cached project state makes many objects that live to the
    end and leave no garbage: the cyclic collector is off while they are made, then they are frozen
    out of later collections (walking them again and again was a sixth of the PR case's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def render_plan(
    executor: MigrationExecutor,
    plan: Plan,
    *,
    execute: bool,
    before_first: Callable[[object], None] | None = None,
    placement: Callable[[object], Sequence[Callable[[], None]]] | None = None,
    guard: Guard | None = None,
    running: frozenset[tuple[str, str]] | None = None,
    basis: str | None = None,
    release: bool = False,
    each: bool = False,
    start: tuple[ProjectState, frozenset] | None = None,
    at_base: Callable[[object, ProjectState], None] | None = None,
    progress: Callable[[int, int, str, int], None] | None = None,
) -> Iterator[RenderedMigration]:
    """Render every migration of ``plan.lint``, in order.

    ``execute=False``: collect mode on the executor's (target) database, never writing.
    ``execute=True``: the executor's connection must point at an empty scratch database
    (see :func:`migration_guard.scratch.scratch_database`); the whole plan is applied to it.
    ``before_first(connection)`` is called when the database is at the state just before the
    first linted migration (to read its catalog).
    ``placement(migration)``: where a migration runs on the connection, for schema-per-tenant
    projects: functions that each point the connection at one schema. The migration is rendered in
    the last; in execute mode it is first applied in the others (an app both shared and per tenant).
    ``guard``, the :class:`~migration_guard.guard.Guard` on the connection, learns which migration's
    code runs; what it refused goes on that migration.

    Each linted migration (and each of its statements) carries a :class:`Deploy`: the models of
    ``running``, the migrations that count as applied (the code running during the deploy; None: the
    ones before the first linted migration), described by ``basis``; with ``release``, also the
    models once the plan is applied (the code being deployed). With ``each`` every migration is its
    own deploy: the running code is that of the migrations before it, the new code that of the state
    after it.

    Execute mode, from a copy of a kept base (:mod:`migration_guard.base_cache`): ``start`` is the
    project state after the migrations the scratch database already has, and those migrations;
    ``at_base(connection, state)`` is called once the database is at the state just before the
    first linted migration, before ``before_first``.
    ``progress(done, total, label, failed)`` is called before each migration of the plan is rendered
    or applied: how many are done, of how many, which one is next, how many failed so far.
    """
    connection = executor.connection
    graph = executor.loader.graph
    lint = set(plan.lint)
    done = start[1] if start is not None else frozenset()
    if execute:
        state = start[0] if start is not None else executor._create_project_state(with_applied_migrations=False)
        todo = tuple(node for node in plan.full if node not in done)
    else:
        with bulk_load():
            state = applied_state(executor)
        todo = tuple(node for node in plan.full if node not in plan.applied)
    if lint:
        todo = todo[: max(todo.index(node) for node in plan.lint) + 1]
    facts = FactsBuilder(connection)
    # The state rendering starts from is the running code's when those are its migrations: the
    # applied ones in collect mode, a kept base's (the usual pull request) in execute mode.
    ready = running == (done if execute and start is not None else None if execute else plan.applied)
    # From a kept base that lacks migrations of the running code (a merge to main since it was kept), the
    # run applies them before the first linted migration: the state there is the running code's, so it is
    # taken then rather than replayed from every migration now (1.9 s of a merge run at 5,000 migrations).
    reached = (execute and start is not None and running is not None and not ready and not each
               and set(running) == done | set(itertools.takewhile(lambda node: node not in lint, todo)))
    running_view = None if reached else _running_view(executor, facts, state, running, ready=ready)
    if running_view is None and not reached:
        basis = None  # the state just before the first linted migration, described there
    index = TableIndex(facts) if each else None  # --each: the tables' models before each migration
    release_view = _release_view(executor, facts, state, todo, execute) if release and not each else None
    # Render the models once up front, as migrate does; later operations update them. Collect mode
    # renders only the ones the pending migrations need (see partial_state); execute mode all, but
    # from a kept base with no Python to run (RunPython may ask for any model) what collect mode does.
    if execute and (start is None or any(_runs_python(graph.nodes[node]) for node in todo)):
        state.apps  # noqa: B018
    else:
        render_models(state, [graph.nodes[node] for node in todo])

    with contextlib.ExitStack() as stack:
        stack.enter_context(_statements_recorded())
        if not execute:
            stack.enter_context(_read_only_session(connection, guard))
            stack.enter_context(_introspection_spy(connection))
        # Migrations that failed, or depend on one that did -> the one that failed (its label, and why). A
        # migration that does not depend on any of them is rendered as usual: one failure does not
        # hide the rest of the plan.
        failed: dict[tuple[str, str], tuple[str, str]] = {}
        for position, node in enumerate(todo):
            migration = graph.nodes[node]
            if progress is not None:
                progress(position, len(todo), f"{migration.app_label}.{migration.name}",
                         len({root for root, _ in failed.values()}))
            if guard is not None:
                guard.migration = f"{migration.app_label}.{migration.name}"
            root = next((failed[parent.key] for parent in graph.node_map[node].parents if parent.key in failed), None)
            if root is not None:
                failed[node] = root
                if node in lint:
                    yield _unrendered(migration, f"not analysed: it depends on {root[0]}, which failed ({root[1]})",
                                      failed_before=root[0])
                continue
            label = f"{migration.app_label}.{migration.name}"
            if placement is not None:
                *elsewhere, here = placement(migration)
                for place in elsewhere if execute else ():
                    place()
                    try:  # the same migration's own copy elsewhere: the state moves on only once
                        _apply_quietly(connection, migration, clone_state(state))
                    except BaseException as exc:
                        failed[node] = (label, describe_exception(exc))
                here()
                if node in failed:
                    if node in lint:
                        yield _unrendered(migration, f"not rendered: {label} ({failed[node][1]}) failed")
                    continue
            if at_base is not None and node in lint:
                at_base(connection, state)
                at_base = None
            if before_first is not None and (node in lint or not execute):
                before_first(connection)
                before_first = None
            if running_view is None and node in lint and not each:
                # (a migration of the running code that failed to apply: the state here lacks it; replay)
                running_view = (_running_view(executor, facts, state, running, ready=False) if reached and failed
                                else facts.view(_model_copy(state)))
                basis = basis or f"the migrations before {migration.app_label}.{migration.name}"
            if node not in lint and execute:
                try:
                    state = _apply_quietly(connection, migration, state)
                except BaseException as exc:  # the migration's own error, reported on what depends on it
                    failed[node] = (label, describe_exception(exc))
                if index is not None:
                    index.changed(migration)
                continue
            # Collect mode renders unselected pending migrations too: later ones see their effects.
            rendered, state, error, before = _render_migration(connection, migration, state, execute, facts)
            if guard is not None:
                rendered = replace(rendered, refused=guard.take(rendered.label))
            if node not in lint:
                rendered = replace(rendered, linted=False)
            elif each:
                tables = named_identifiers(statement.sql for statement in rendered.statements)
                running_facts = _facts_of(facts, before, index.keys(before, tables))
                index.changed(migration)
                rendered = _with_deploy(rendered, Deploy(
                    running=running_facts,
                    basis=f"the migrations before {migration.app_label}.{migration.name} (--each)",
                    release=_facts_of(facts, state, index.keys(state, tables)) if release else None))
            elif running_view is not None:
                tables = named_identifiers(statement.sql for statement in rendered.statements)
                rendered = _with_deploy(rendered, Deploy(
                    running=running_view.facts(tables), basis=basis or "",
                    release=release_view.facts(tables) if release_view is not None else None))
            if index is not None and node not in lint:
                index.changed(migration)
            yield rendered
            if error:
                failed[node] = (label, "see its own finding" if node in lint else error)


# What PostgreSQL says when it was built without an option: "ICU is not supported in this build", "lz4
# compression is not supported by this build", "This functionality requires the server to be built with
# libxml support".
_NOT_IN_BUILD = (re.compile(r"(\w[\w-]*)(?: compression)? is not supported (?:in|by) this build"),
                 re.compile(r"built with (\w[\w-]*) support"))


def missing_feature(exc: BaseException) -> str | None:
    """The build option (``"ICU"``, ``"lz4"``, ``"libxml"``) the server lacks when that is what ``exc``
    (or the error it was raised from) says; None for any other failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = " ".join(str(part) for part in (exc, getattr(getattr(exc, "diag", None), "message_detail", None),
                                                getattr(getattr(exc, "diag", None), "message_hint", None)) if part)
        for pattern in _NOT_IN_BUILD:
            match = pattern.search(text)
            if match:
                return match.group(1)
        exc = exc.__cause__ or exc.__context__
    return None


def describe_exception(exc: BaseException) -> str:
    """What a migration's code raised, in words. Re-raises a signal's :class:`Stopped` (and
    anything else while a signal asks the run to stop): that ends the run, never a finding."""
    if interrupt.requested() is not None or isinstance(exc, GeneratorExit):
        raise exc
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}), which the gate does not let end the run"
    if isinstance(exc, KeyboardInterrupt):
        return "it raised KeyboardInterrupt (no signal was received)"
    if isinstance(exc, RecursionError):
        return "RecursionError: nested too deeply"
    return f"{type(exc).__name__}: {mask_sql(str(exc))}".strip()
def _running_view(executor, facts: FactsBuilder, state: ProjectState, running, *, ready: bool):
    """The running code's models: the state of the ``running`` migrations (``ready``: ``state``,
    the state rendering starts from, is theirs), or None: decided at the first linted migration."""
    if running is None:
        return None
    if ready:
        return facts.view(_model_copy(state))
    try:
        return facts.view(state_of(executor, running))
    except BaseException as exc:  # a migration whose state change fails: rendering reports it
        describe_exception(exc)  # (a signal still stops the run)
        return None


def _release_view(executor, facts: FactsBuilder, state: ProjectState, todo, execute: bool) -> StateView | None:
    """The models once every migration of ``todo`` is applied (None when a migration's state change
    fails: rendering reports that migration)."""
    try:
        if execute:
            return facts.view(state_of(executor, set(todo)))
        release = _model_copy(state)
        with unrendered_replay():
            for node in todo:
                release = executor.loader.graph.nodes[node].mutate_state(release, preserve=False)
        return facts.view(release)
    except BaseException as exc:
        describe_exception(exc)  # (a signal still stops the run)
        return None


def _facts_of(facts: FactsBuilder, state: ProjectState, keys) -> StateFacts:
    """The models ``keys`` of ``state``."""
    return StateFacts(models=tuple(m for m in (facts.model(state, key) for key in keys) if m is not None))


def _with_deploy(rendered: RenderedMigration, deploy: Deploy) -> RenderedMigration:
    """The migration and its statements carrying ``deploy``."""
    statements = tuple(replace(statement, deploy=deploy) for statement in rendered.statements)
    return replace(rendered, statements=statements, deploy=deploy)


def _runs_python(migration) -> bool:
    """Whether applying the migration runs Python code of the project (RunPython, also inside
    SeparateDatabaseAndState)."""
    stack = list(migration.operations)
    while stack:
        operation = stack.pop()
        if isinstance(operation, RunPython):
            return True
        stack.extend(getattr(operation, "database_operations", None) or ())
    return False


def _apply_quietly(connection, migration, state):
    """Bring the scratch database and the state past a migration that is not linted."""
    with connection.schema_editor(atomic=migration.atomic) as editor:
        return migration.apply(state, editor)


@dataclass
class _Recording:
    """What one migration's render records, operation by operation."""

    label: str
    atomic: bool
    statements: list[Statement] = field(default_factory=list)
    current: Operation | None = None
    current_atomic: bool = True
    column_types: tuple = ()
    model_checks: tuple = ()
    deferred_owner: dict[int, Operation] = field(default_factory=dict)
    in_deferred: bool = False
    # The operation each ``editor.execute`` call in progress runs for (deferred SQL: the one that deferred it).
    owners: list[Operation | None] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    before: ProjectState | None = None  # the state before the first operation (a copy)
    # Inside ``BaseDatabaseSchemaEditor.execute``: its statement is recorded there, not again as a query.
    in_editor: int = 0

    def add(self, sql: str, *, kind: StatementKind = StatementKind.SQL, owner: Operation | None = None,
            executed: str | None = None) -> None:
        operation = owner if self.in_deferred else self.current
        in_transaction = self.atomic or (not self.in_deferred and self.current_atomic)
        if self.atomic:
            number: int | None = 0
        elif in_transaction and operation is not None:
            number = operation.index + 1
        else:
            number = None
        shown = mask_sql(sql)
        self.statements.append(
            Statement(
                sql=shown,
                executed=executed if executed is not None else (sql if shown != sql else None),
                migration=self.label,
                operation=operation,
                in_transaction=in_transaction,
                transaction=number,
                kind=kind,
                deferred=self.in_deferred,
                column_types=self.column_types if not self.in_deferred else (),
                model_checks=self.model_checks if not self.in_deferred else (),
            )
        )


def _render_migration(connection, migration, state, execute: bool, facts: FactsBuilder):
    """Render one migration. Returns (RenderedMigration, state after it, error or None, a copy of the
    state before it)."""
    label = f"{migration.app_label}.{migration.name}"
    path = migration_path(migration)
    lines = _operation_lines(path)
    recording = _Recording(label=label, atomic=migration.atomic)
    spy = getattr(connection, "_migration_guard_introspected", None)
    if spy is not None:
        spy.clear()
    error: str | None = None
    missing: str | None = None
    try:
        # An atomic migration's transaction is rolled back by the schema editor if it fails.
        with connection.schema_editor(collect_sql=not execute, atomic=migration.atomic) as editor:
            # A backend may run an atomic migration without a transaction (django-pg-zero-downtime-migrations)
            recording.atomic = editor.atomic_migration
            _hook_editor(editor, recording)
            for index, operation in enumerate(migration.operations):
                described = Operation(
                    index=index,
                    name=type(operation).__name__,
                    description=_describe(operation),
                    line=lines[index] if index < len(lines) else None,
                    model_name=getattr(operation, "model_name", None) or getattr(operation, "name", None),
                )
                state = _run_operation(connection, migration, operation, described, state, editor,
                                       recording, execute, facts)
            recording.in_deferred = True
            # The schema editor runs deferred SQL (FK constraints, indexes) on exit.
    except BaseException as exc:  # SystemExit, KeyboardInterrupt too: migration code is untrusted
        error = describe_exception(exc)
        missing = missing_feature(exc)
    if interrupt.requested() is not None:  # the code swallowed the signal's exception
        raise interrupt.Stopped(interrupt.requested())
    introspected = spy.frozen() if spy is not None else ()
    statements = recording.statements
    if not execute and error is None:
        statements = _as_collected(statements, editor.collected_sql)
    rendered = RenderedMigration(
        app_label=migration.app_label,
        name=migration.name,
        path=path,
        atomic=recording.atomic,
        statements=tuple(statements),
        error=error,
        missing_feature=missing,
        how="executed" if execute else "collect_sql",
        introspected=introspected,
        operations=tuple(recording.operations),
    )
    return rendered, state, error, recording.before if recording.before is not None else state


def _run_operation(connection, migration, operation, described, state, editor, recording, execute, facts):
    """Run (or collect) one operation exactly as ``Migration.apply`` does, recording its SQL."""
    recording.current = described
    atomic_operation = operation.atomic or (migration.atomic and operation.atomic is not False)
    recording.current_atomic = bool(atomic_operation)
    old_state = clone_state(state)
    if recording.before is None:
        recording.before = old_state
    operation.state_forwards(migration.app_label, state)
    defined = definition(operation) or (None, ())
    described = replace(described, changes=_changes(facts, operation, migration.app_label, old_state, state),
                        definition=defined[0], definition_imports=defined[1])
    recording.current = described
    recording.operations.append(described)
    recording.column_types, recording.model_checks = _old_column(operation, migration.app_label, old_state, editor)
    if isinstance(operation, RunPython) and _does_nothing(operation.code):
        return state  # RunPython.noop, or a function with an empty body: no work, no statement
    if not operation.reduces_to_sql or isinstance(operation, RunPython):
        recording.add(_opaque_description(operation), kind=StatementKind.RUN_PYTHON)
        if not execute:
            return state  # collect_sql cannot run Python; its work stays opaque
        with _capture_queries(connection, recording):
            _forwards(connection, migration, operation, editor, old_state, state, atomic_operation)
        return state
    deferred_before = {id(sql) for sql in editor.deferred_sql}
    _forwards(connection, migration, operation, editor, old_state, state, atomic_operation)
    for sql in editor.deferred_sql:
        if id(sql) not in deferred_before:
            recording.deferred_owner[id(sql)] = described
    return state


def _changes(facts: FactsBuilder, operation, app_label: str, old_state: ProjectState,
             new_state: ProjectState) -> tuple[ModelChange, ...]:
    """What ``operation`` does at the Django level. ``SeparateDatabaseAndState`` and
    ``RunSQL(state_operations=...)``: each inner operation on a copy of the state, with its scope."""
    try:
        if isinstance(operation, SeparateDatabaseAndState):
            inner = [("state", operation.state_operations), ("database", operation.database_operations)]
        elif isinstance(operation, RunSQL) and operation.state_operations:
            inner = [("state", operation.state_operations)]
        else:
            change = facts.change(operation, app_label, old_state, new_state, "both")
            return (change,) if change is not None else ()
        found = []
        for scope, operations in inner:
            state = _model_copy(old_state)
            for inner_operation in operations:
                before = _model_copy(state)
                inner_operation.state_forwards(app_label, state)
                change = facts.change(inner_operation, app_label, before, state, scope)
                if change is not None:
                    found.append(change)
        return tuple(found)
    except BaseException as exc:  # untrusted operation code: what it does stays unknown (rules fail closed on it)
        describe_exception(exc)  # (a signal still stops the run)
        return ()


def _model_copy(state: ProjectState) -> ProjectState:
    """A copy of ``state``'s models (as :func:`clone_state`) without its rendered apps: for reading
    facts and replaying state changes, never for rendering."""
    return ProjectState(models={key: _clone_model(model) for key, model in state.models.items()},
                        real_apps=state.real_apps)


def clone_state(state: ProjectState) -> ProjectState:
    """``state.clone()``, as ``Migration.apply`` makes before every operation, without re-running
    ``ModelState.__init__``'s sanity checks on every field of every model: a copy of a state that
    passed them passes them. Those checks were a sixth of linting 5,000 migrations.
    ``tests/test_render.py`` holds it to Django's own clone, attribute for attribute."""
    clone = ProjectState(models={key: _clone_model(model) for key, model in state.models.items()},
                         real_apps=state.real_apps)
    if "apps" in state.__dict__:
        clone.apps = state.apps.clone()
    clone.is_delayed = state.is_delayed
    return clone


def _clone_model(model: ModelState) -> ModelState:
    """``model.clone()``: the attributes ``ModelState.__init__`` sets, copied as clone() copies them."""
    clone = _new(type(model))
    clone.app_label = model.app_label
    clone.name = model.name
    clone.fields = dict(model.fields)
    clone.options = dict(model.options)
    clone.options.setdefault("indexes", [])
    clone.options.setdefault("constraints", [])
    clone.bases = model.bases or (models.Model,)
    clone.managers = list(model.managers)
    return clone


_new = object.__new__


def _forwards(connection, migration, operation, editor, old_state, new_state, atomic_operation):
    if not editor.atomic_migration and atomic_operation:
        with transaction.atomic(using=connection.alias):
            operation.database_forwards(migration.app_label, editor, old_state, new_state)
    else:
        operation.database_forwards(migration.app_label, editor, old_state, new_state)


def _hook_editor(editor, recording: _Recording) -> None:
    """Record every statement the schema editor executes (or collects), with its operation.

    The statements are recorded where Django's own ``BaseDatabaseSchemaEditor.execute`` receives them
    (:func:`_statements_recorded`), once the backend's ``execute`` is done with what the operation
    gave it: a backend may turn one statement object into several, skip one, or set timeouts around
    it (django-pg-zero-downtime-migrations does all three). This outer hook only says which operation
    a deferred statement belongs to."""
    original = editor.execute
    owners = recording.owners

    def execute(sql, params=()):
        owner = recording.deferred_owner.get(id(sql)) if recording.in_deferred else None
        owners.append(owner or (owners[-1] if owners else None))
        try:
            return original(sql, params)
        finally:
            owners.pop()

    editor.execute = execute
    editor._migration_guard_recording = recording


@contextlib.contextmanager
def _statements_recorded():
    """While rendering, each statement that reaches ``BaseDatabaseSchemaEditor.execute`` (where
    ``collect_sql`` collects it as ``sqlmigrate`` prints it, and a real run executes it) is added to
    its editor's recording as SQL text. Editors without one (:func:`_apply_quietly`) pass through."""
    original = BaseDatabaseSchemaEditor.execute

    def execute(self, sql, params=()):
        recording = self.__dict__.get("_migration_guard_recording")
        if recording is not None:
            text = self.connection.ops.compose_sql(str(sql), params) if params else str(sql)
            recording.add(text, owner=recording.owners[-1] if recording.owners else None)
            recording.in_editor += 1
            try:
                if not self.collect_sql and _DO_BLOCK.match(text):
                    # The lock model cannot read a DO block or CALL; on the scratch database it runs: see what
                    # it locked.
                    before = _table_locks(self.connection)
                    result = original(self, sql, params)
                    taken = tuple(sorted(_table_locks(self.connection) - before))
                    recording.statements[-1] = replace(recording.statements[-1], observed_locks=taken)
                    return result
                return original(self, sql, params)
            finally:
                recording.in_editor -= 1
        return original(self, sql, params)

    BaseDatabaseSchemaEditor.execute = execute
    try:
        yield
    finally:
        BaseDatabaseSchemaEditor.execute = original


_DO_BLOCK = re.compile(r"\s*(DO|CALL)\b", re.IGNORECASE)


def _table_locks(connection) -> set[tuple[str, str]]:
    """(table, mode) of the relation locks this session holds on user tables (pg_locks: no lock taken)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.oid::regclass::text, l.mode FROM pg_catalog.pg_locks l "
                       "JOIN pg_catalog.pg_class c ON c.oid = l.relation "
                       "WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' AND l.granted "
                       "AND c.relkind IN ('r', 'p') AND c.oid >= 16384")
        return set(cursor.fetchall())


def _as_collected(statements: list[Statement], collected: list[str]) -> list[Statement]:
    """The statements as ``collect_sql`` returns them. A backend may take a statement back out of
    ``collected_sql`` after collecting it (django-pg-zero-downtime-migrations drops the second
    ``DROP CONSTRAINT`` that only collecting produces, the constraint being still there); those
    are dropped here too. When the two do not match up in order, nothing is dropped: a statement
    too many is a finding too many, a statement too few could be a silent pass."""
    sql = [i for i, statement in enumerate(statements) if statement.kind is StatementKind.SQL]
    if len(sql) == len(collected):
        return statements
    kept: set[int] = set()
    position = 0
    for i in sql:
        text = statements[i].sql
        if position < len(collected) and collected[position] == text + ("" if text.rstrip().endswith(";") else ";"):
            kept.add(i)
            position += 1
    if position != len(collected):
        return statements
    return [s for i, s in enumerate(statements) if s.kind is not StatementKind.SQL or i in kept]


@contextlib.contextmanager
def _capture_queries(connection, recording: _Recording):
    """Record the SQL that Python code (RunPython) runs, except reads and catalog queries: the text
    with its placeholders as ``$1, $2, ...``, never the parameters (values read from the
    environment, secrets among them, would end up in reports). A statement RunPython gives
    ``schema_editor.execute`` is recorded there once (:func:`_statements_recorded`), not again here."""
    seen: set[str] = set()

    def wrapper(execute, sql, params, many, context):
        if recording.in_editor:
            return execute(sql, params, many, context)
        text = _numbered_placeholders(str(sql)) if params is not None else str(sql)
        head = text.lstrip().split(None, 1)[0].upper() if text.strip() else ""
        if head not in {"SELECT", "SHOW", "SAVEPOINT", "RELEASE", "ROLLBACK"} and text not in seen:
            seen.add(text)
            recording.add(text, executed=connection.ops.compose_sql(sql, params) if params and not many else None)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def _numbered_placeholders(sql: str) -> str:
    """``%s`` and ``%(name)s`` -> ``$1``, ``$2``, ... (a parameter PostgreSQL's parser reads),
    ``%%`` -> ``%``."""
    numbers = iter(range(1, sql.count("%") + 2))
    return _PLACEHOLDER.sub(lambda m: "%" if m.group(0) == "%%" else f"${next(numbers)}", sql)


def _old_column(operation, app_label, old_state, editor) -> tuple[tuple, tuple]:
    """For AlterField-like operations, the column's type before the change (``Statement.column_types``)
    and the CHECK constraints of its table in the project state (``Statement.model_checks``)."""
    field_name = getattr(operation, "name", None)
    model_name = getattr(operation, "model_name", None)
    if not (field_name and model_name and hasattr(operation, "field")):
        return (), ()
    try:
        model = old_state.apps.get_model(app_label, model_name)
        old_field = model._meta.get_field(field_name)
    except (LookupError, FieldDoesNotExist):  # AddField: no old column
        return (), ()
    db_type = old_field.db_type(editor.connection)
    if not db_type or not getattr(old_field, "column", None):
        return (), ()
    table = model._meta.db_table
    checks = []
    own = old_field.db_check(editor.connection)
    if own:
        checks.append(((table, f"{table}_{old_field.column}_check"), own))
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.CheckConstraint):
            checks.append(((table, constraint.name), _check_expression(constraint, model, editor)))
    return (((table, old_field.column), db_type),), tuple(checks)


_CHECK_SQL = re.compile(r"CONSTRAINT .+? CHECK \((.*)\)", re.DOTALL)


def _check_expression(constraint, model, editor) -> str:
    """The SQL expression of a ``CheckConstraint``, as the schema editor writes it; "" when it cannot be
    written (the lock model then takes it to read every column)."""
    try:
        found = _CHECK_SQL.fullmatch(constraint.constraint_sql(model, editor))
    except Exception:  # a condition the project's code makes uncompilable: unknown, not an error here
        return ""
    return found.group(1) if found else ""


def _describe(operation) -> str:
    if isinstance(operation, RunPython):  # describe() says only "Raw Python operation"
        return f"RunPython {getattr(operation.code, '__name__', 'code')}"
    try:
        return operation.describe()
    except Exception:  # a custom operation's describe() should not stop the gate
        return type(operation).__name__


def _does_nothing(code) -> bool:
    """Whether RunPython ``code`` is ``RunPython.noop`` or a plain function whose body is empty
    (``pass``, a docstring, ``return``, ``return None``): its bytecode only returns None."""
    if code is RunPython.noop:
        return True
    if not isinstance(code, types.FunctionType):
        return False
    steps = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname not in ("RESUME", "NOP", "CACHE")]
    return steps in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _opaque_description(operation) -> str:
    """A comment standing for Python work, with a digest of its code so approvals bind to it."""
    code = getattr(operation, "code", None)
    name = getattr(code, "__qualname__", type(operation).__name__)
    try:
        source = inspect.getsource(code) if code is not None else repr(operation.deconstruct())
    except (OSError, TypeError):
        source = repr(name)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    return f"-- {type(operation).__name__} {name} (code sha256 {digest})"


def _operation_lines(path: str | None) -> list[int]:
    """Line numbers of the elements of ``Migration.operations`` in a migration file."""
    if not path or not path.endswith(".py"):
        return []
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=path)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                targets = item.targets if isinstance(item, ast.Assign) else (
                    [item.target] if isinstance(item, ast.AnnAssign) else [])
                if any(isinstance(t, ast.Name) and t.id == "operations" for t in targets) and isinstance(
                    item.value, ast.List | ast.Tuple
                ):
                    return [element.lineno for element in item.value.elts]
    return []


def _unrendered(migration, reason: str, failed_before: str | None = None) -> RenderedMigration:
    return RenderedMigration(
        app_label=migration.app_label,
        name=migration.name,
        path=migration_path(migration),
        atomic=migration.atomic,
        error=reason,
        failed_before=failed_before,
    )


@contextlib.contextmanager
def _read_only_session(connection, guard: Guard | None = None):
    """Make every transaction of this connection READ ONLY, with short timeouts, for as long as
    rendering lasts; closing the connection afterwards drops the session settings.

    A session setting rather than one wrapping transaction: non-atomic migrations must render
    outside any transaction block (AddIndexConcurrently refuses to run inside one)."""
    connection.ensure_connection()
    with guard.trusted() if guard is not None else contextlib.nullcontext(), connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.execute(f"SET statement_timeout = {_RENDER_STATEMENT_TIMEOUT_MS}")
        cursor.execute(f"SET lock_timeout = {_RENDER_LOCK_TIMEOUT_MS}")
    try:
        yield
    finally:
        connection.close()


class _Introspected:
    """What rendering one migration read of the catalog: per table, the columns whose constraints it
    looked up (``BaseDatabaseSchemaEditor._constraint_names`` with ``column_names``: the constraints on
    exactly those columns), or None when it read more (every constraint, the columns, the sequences)."""

    def __init__(self):
        self.tables: dict[str, set[str] | None] = {}
        self.scopes: list[tuple[str, tuple[str, ...] | None]] = []  # the _constraint_names calls in progress

    def clear(self) -> None:
        self.tables.clear()
        self.scopes.clear()

    def read(self, table: str) -> None:
        scope = self.scopes[-1] if self.scopes else None
        # PostgreSQL cuts names at 63 bytes; a longer one might not match the catalog's; no column at all
        # matches constraints on expressions: the whole table.
        columns = scope[1] if scope is not None and scope[0] == table else None
        if not columns or any(len(column.encode()) > 63 for column in columns):
            self.tables[table] = None
        elif table not in self.tables:
            self.tables[table] = set(columns)
        elif self.tables[table] is not None:
            self.tables[table].update(columns)

    def frozen(self) -> tuple[tuple[str, frozenset[str] | None], ...]:
        return tuple(sorted((table, None if columns is None else frozenset(columns))
                            for table, columns in self.tables.items()))


@contextlib.contextmanager
def _introspection_spy(connection):
    """Note what every introspection call reads, in ``connection._migration_guard_introspected``."""
    introspection = connection.introspection
    seen = _Introspected()
    connection._migration_guard_introspected = seen
    originals = {}
    for name in _INTROSPECTION_METHODS:
        method = getattr(introspection, name, None)
        if method is None:
            continue
        originals[name] = method

        def spy(cursor, table_name, *args, _method=method, **kwargs):
            seen.read(table_name)
            return _method(cursor, table_name, *args, **kwargs)

        setattr(introspection, name, spy)
    constraint_names = BaseDatabaseSchemaEditor._constraint_names

    def scoped(self, model, column_names=None, *args, **kwargs):
        scope = None if column_names is None else tuple(column_names)
        seen.scopes.append((model._meta.db_table, scope))
        try:
            return constraint_names(self, model, column_names, *args, **kwargs)
        finally:
            seen.scopes.pop()

    BaseDatabaseSchemaEditor._constraint_names = scoped
    try:
        yield
    finally:
        BaseDatabaseSchemaEditor._constraint_names = constraint_names
        for name in originals:
            delattr(introspection, name)
        del connection._migration_guard_introspected
