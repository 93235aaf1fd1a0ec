"""Check that rendering only the models ``partial_state`` picks gives the same SQL as rendering all.

Walks the project's migrations in migrate's order on the configured (empty) database. At each
migration, with the database at the state just before it, the migration's SQL is collected twice
(``collect_sql``, as ``sqlmigrate`` and the gate's collect mode do): once with every model of the
project state rendered, once with the partial rendering. Then the migration is applied for real,
so the next one is compared at its own database state. Prints a line per difference and exits 1
if there is any; prints how many migrations rendered partially.

    DJANGO_SETTINGS_MODULE=... python tests/partial_state_check.py [--without-referencing-models]

The tests run it on the fixture and sample projects; run it by hand on a larger project (the
bench's realistic one) after changing ``migration_guard/partial_state.py``.
"""

from __future__ import annotations

import re
import sys

import django

# Values a field default computes anew at each call (timezone.now, uuid.uuid4): two renderings of
# the same migration differ in them even with every model rendered both times.
_VOLATILE = re.compile(r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00:00'|'[0-9a-f]{32}'")


def _collect(connection, migration, state, partial: bool):
    from migration_guard.partial_state import render_models

    state = state.clone()
    mode = render_models(state, [migration]) if partial else "all"
    if not partial:
        state.apps  # noqa: B018 - every model, as Django does
    try:
        with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
            migration.apply(state, editor, collect_sql=True)
        return mode, [_VOLATILE.sub("<volatile>", sql) for sql in editor.collected_sql], None
    except Exception as exc:
        return mode, None, f"{type(exc).__name__}: {exc}"


def _without_referencing_models() -> None:
    """Sabotage for the test that proves this check can fail: the partial rendering forgets the
    models that reference a changed one."""
    import types

    from migration_guard import partial_state

    closure = partial_state._closure
    partial_state._closure = lambda state, touched, pointed: closure(
        types.SimpleNamespace(relations={}, models=state.models), touched, pointed)


def main() -> int:
    django.setup()
    if "--without-referencing-models" in sys.argv[1:]:
        _without_referencing_models()
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    targets = executor.loader.graph.leaf_nodes()
    plan = [migration for migration, backwards in executor.migration_plan(targets, clean_start=True)]
    state = executor._create_project_state(with_applied_migrations=False)
    differences = partial_count = 0
    for migration in plan:
        label = f"{migration.app_label}.{migration.name}"
        full_mode, full_sql, full_error = _collect(connection, migration, state, partial=False)
        mode, partial_sql, partial_error = _collect(connection, migration, state, partial=True)
        partial_count += mode == "partial"
        if (full_sql, full_error) != (partial_sql, partial_error):
            differences += 1
            print(f"DIFFERENT {label} ({mode}):\n  all:     {full_error or full_sql}\n  partial: {partial_error or partial_sql}")
        with connection.schema_editor(atomic=migration.atomic) as editor:
            state = migration.apply(state, editor)
        state.__dict__.pop("apps", None)  # the next one starts unrendered, as the gate's does
        executor.recorder.record_applied(migration.app_label, migration.name)
    print(f"{len(plan)} migrations, {partial_count} rendered partially, {differences} different")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
