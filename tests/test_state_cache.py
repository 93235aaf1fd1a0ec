"""The cache of the applied migrations' project state (collect mode): same reports, never trusted."""

from __future__ import annotations


def _lint(project, cache, **extra):
    run = project.lint("--format", "json", env={"MIGRATION_GUARD_CACHE_DIR": str(cache), **extra})
    assert run.code in (0, 1), run.err
    return run.out


def _files(cache):
    return sorted(cache.glob("*.pickle")) if cache.exists() else []


def test_a_hit_reads_the_cached_state_and_reports_the_same(project, tmp_path):
    project.migrate("0002")
    cache = tmp_path / "cache"
    uncached = _lint(project, cache, MIGRATION_GUARD_CACHE="0")
    assert _files(cache) == []  # disabled: nothing written
    first = _lint(project, cache)
    (stored,) = _files(cache)
    before = stored.stat()
    second = _lint(project, cache)
    after = stored.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # read, not rewritten
    assert first == second == uncached


def test_changing_an_applied_migration_file_misses(project, tmp_path):
    project.migrate("0002")
    cache = tmp_path / "cache"
    _lint(project, cache)
    (old,) = _files(cache)
    path = project.root / "inventory" / "migrations" / "0002_item_created_idx.py"
    path.write_text(path.read_text() + "\n# edited after it was applied\n")
    changed = _lint(project, cache)
    assert len(_files(cache)) == 2 and old in _files(cache)
    assert changed == _lint(project, cache, MIGRATION_GUARD_CACHE="0")


def test_a_corrupt_cache_file_is_ignored_and_rebuilt(project, tmp_path):
    project.migrate("0001")
    cache = tmp_path / "cache"
    good = _lint(project, cache)
    (stored,) = _files(cache)
    for garbage in (b"not a pickle", stored.read_bytes()[: stored.stat().st_size // 2]):
        stored.write_bytes(garbage)
        assert _lint(project, cache) == good
        assert stored.read_bytes() != garbage  # rebuilt and written again


def test_a_cache_others_can_write_to_is_never_loaded(project, tmp_path):
    project.migrate("0001")
    cache = tmp_path / "cache"
    _lint(project, cache)
    (stored,) = _files(cache)
    assert cache.stat().st_mode & 0o077 == 0  # the folder is private
    stored.chmod(0o666)
    before = stored.stat().st_ino
    _lint(project, cache)
    # Not read (a pickle runs code when loaded): rebuilt and replaced by a private file.
    assert stored.stat().st_ino != before and stored.stat().st_mode & 0o022 == 0


_SAME_STATE = '''
import django
django.setup()
from django.db import connection
from django.db.migrations import state as state_module
from django.db.migrations.executor import MigrationExecutor
from migration_guard.state_cache import _build

executor = MigrationExecutor(connection)
asked = state_module.field_is_referenced
ours, django_own = _build(executor), executor._create_project_state(with_applied_migrations=True)
assert state_module.field_is_referenced is asked, "left replaced"
assert "apps" not in ours.__dict__
assert ours.models == django_own.models, sorted(set(ours.models.items()) ^ set(django_own.models.items()))
print(len(ours.models))
'''


def test_the_state_is_built_as_django_builds_it(project):
    """``_build`` skips alter_field's reference scan while nothing is rendered: the same models,
    here with an AlterField of a key other models reference, a RenameModel and an AddField."""
    from tests.test_partial_state import CHANGES, SHIPMENT

    project.add_migration("0005_shipment", SHIPMENT)
    project.add_migration("0006_changes", CHANGES)
    assert project.manage("migrate", "-v0").code == 0
    result = project.manage("shell", "-c", _SAME_STATE)
    assert result.code == 0, result.err
    assert int(result.out.split()[-1]) >= 3  # item, depot, shipment at least
