"""Rendering's own copy of Django's machinery, held to Django's."""

from __future__ import annotations

_SAME_CLONES = '''
import django
django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from migration_guard.render import clone_state

executor = MigrationExecutor(connection)
graph = executor.loader.graph
state = executor._create_project_state(with_applied_migrations=False)
compared = 0
for rendered in (False, True):
    if rendered:
        state = executor._create_project_state(with_applied_migrations=False)
        state.apps
    for node in executor.migration_plan(graph.leaf_nodes()):
        migration = node[0]
        for operation in migration.operations:
            ours, django_own = clone_state(state), state.clone()
            assert type(ours) is type(django_own)
            assert ours.__dict__.keys() == django_own.__dict__.keys(), (ours.__dict__.keys(), django_own.__dict__.keys())
            assert ours.models.keys() == django_own.models.keys()
            for key, model in django_own.models.items():
                copy = ours.models[key]
                assert type(copy) is type(model) and vars(copy) == vars(model), key
                assert copy.fields is not state.models[key].fields and copy.options is not state.models[key].options
                assert copy.managers is not state.models[key].managers
            assert (ours.real_apps, ours.is_delayed) == (django_own.real_apps, django_own.is_delayed)
            if rendered:
                assert sorted(m._meta.label for m in ours.apps.get_models()) == sorted(
                    m._meta.label for m in django_own.apps.get_models())
            compared += 1
            operation.state_forwards(migration.app_label, state)
print(compared)
'''


def test_state_clones_are_djangos_own(project):
    """``clone_state`` against ``ProjectState.clone`` before every operation of the fixture project and
    of migrations with an AlterField of a referenced key, a RenameModel and an AddField, with the
    models unrendered and rendered."""
    from tests.test_partial_state import CHANGES, SHIPMENT

    project.add_migration("0005_shipment", SHIPMENT)
    project.add_migration("0006_changes", CHANGES)
    result = project.manage("shell", "-c", _SAME_CLONES)
    assert result.code == 0, result.err
    assert int(result.out.split()[-1]) >= 20
