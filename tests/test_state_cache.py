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
