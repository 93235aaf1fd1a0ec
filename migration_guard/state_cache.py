"""A cache of the project state after the applied migrations (collect mode, the PR case).

Building that state means replaying every applied migration's ``state_forwards`` (~0.5 s at
1,000 migrations), whereas ``migrate --plan`` only loads the files. The state is pickled, keyed
by a digest of: this cache's format, the Python and Django versions, the apps without
migrations, and every applied migration in migrate's order with the sha256 of its file (the
digests themselves are remembered by file size, mtime and inode in ``digests.json``). Every
module outside Django and the standard library that the pickle refers to (field classes,
default callables, validators, managers) is recorded with its file's digest and checked on
load, so changing a custom field's code misses too.

Never trusted: a file that cannot be read or unpickled, that holds another key or a different
module digest, or no ``ProjectState`` is ignored and the state rebuilt (and the file
rewritten). Where: ``$MIGRATION_GUARD_CACHE_DIR``, else ``$XDG_CACHE_HOME/migration_guard``,
else ``~/.cache/migration_guard``. ``MIGRATION_GUARD_CACHE=0`` (or ``off``/``no``/``false``)
disables it; so does any failure to write.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import pickle
import stat
import sys
import sysconfig
import tempfile
import types
from pathlib import Path

import django
from django.db.migrations.state import ProjectState

from migration_guard.plan import migration_path

__all__ = ["applied_state", "cache_dir", "state_of", "unrendered_replay"]

_FORMAT = "migration_guard-state-1"
_STDLIB = os.path.realpath(sysconfig.get_paths()["stdlib"])


def cache_dir() -> Path | None:
    """Where states are cached, or None when caching is disabled."""
    if os.environ.get("MIGRATION_GUARD_CACHE", "").strip().lower() in {"0", "off", "no", "false"}:
        return None
    configured = os.environ.get("MIGRATION_GUARD_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "migration_guard"


def applied_state(executor) -> ProjectState:
    """The project state after the applied migrations, as ``_create_project_state(True)`` builds it."""
    directory = cache_dir()
    key = _key(executor, directory) if directory is not None else None
    if key is None:
        return _build(executor)
    path = directory / f"{key}.pickle"
    state = _load(path, key)
    if state is not None:
        return state
    state = _build(executor)
    _store(path, key, state)
    return state


def _build(executor) -> ProjectState:
    """``_create_project_state(True)``, without the one part of it that changes nothing here (see
    :func:`unrendered_replay`)."""
    with unrendered_replay():
        return executor._create_project_state(with_applied_migrations=True)


def state_of(executor, nodes) -> ProjectState:
    """The project state after the migrations ``nodes`` (a set closed under dependencies: every
    migration's parents are in it), built as the applied one is."""
    graph = executor.loader.graph
    nodes = set(nodes)
    leaves = sorted(node for node in nodes if not any(child.key in nodes for child in graph.node_map[node].children))
    state = ProjectState(real_apps=executor.loader.unmigrated_apps)
    # migrate's own order (graph.make_state's plan is quadratic in the number of migrations)
    with unrendered_replay():
        for migration, _ in executor.migration_plan(leaves, clean_start=True):
            state = migration.mutate_state(state, preserve=False)
    return state


@contextlib.contextmanager
def unrendered_replay():
    """While replaying migrations' ``state_forwards`` on a state whose models are not rendered.

    ``ProjectState.alter_field`` asks ``field_is_referenced`` (a scan of every field of every model)
    only to choose how to re-render the models, and re-renders nothing while no model is rendered,
    which is the case all the way through such a replay: at 5,000 migrations that scan was three
    quarters of the time. Meanwhile the question is answered "no" for a state whose models are not
    rendered, and asked as Django does otherwise; the state is the same."""
    from django.db.migrations import state as state_module

    asked = getattr(state_module, "field_is_referenced", None)
    if asked is None:  # another Django: build it as it does
        yield
        return

    def field_is_referenced(state, model_tuple, field_tuple):
        return "apps" in state.__dict__ and asked(state, model_tuple, field_tuple)

    state_module.field_is_referenced = field_is_referenced
    try:
        yield
    finally:
        state_module.field_is_referenced = asked


def _key(executor, directory: Path) -> str | None:
    loader = executor.loader
    graph = loader.graph
    applied = {node for node in loader.applied_migrations if node in graph.nodes}
    digest = hashlib.sha256()
    digest.update(repr((_FORMAT, sys.version, django.__version__, sorted(loader.unmigrated_apps))).encode())
    # The graph's edges decide the order in which migrate (and so the state) applies them.
    edges = sorted((node, sorted(parent.key for parent in graph.node_map[node].parents)) for node in graph.nodes)
    digest.update(repr(edges).encode())
    paths = {}
    for node in sorted(applied):
        path = migration_path(loader.graph.nodes[node])
        if not path or not path.endswith(".py"):
            return None  # nothing to check it against: no cache
        paths[node] = path
    digests = _FileDigests(directory)
    for node, path in paths.items():
        file_digest = digests.get(path)
        if file_digest is None:
            return None
        digest.update(repr(node).encode())
        digest.update(bytes.fromhex(file_digest))
    digests.save()
    return digest.hexdigest()


class _FileDigests:
    """sha256 of files, remembered in ``digests.json`` by (size, mtime in ns, inode), the way
    Python trusts a ``.pyc`` by its source's mtime and size: reading and hashing 1,000 migration
    files costs more than the rest of the cache lookup. Plain JSON (never code), in the cache's
    private folder, and only read when private; a changed file is hashed again."""

    def __init__(self, directory: Path):
        self.path = directory / "digests.json"
        self.known: dict[str, list] = {}
        self.changed = False
        try:
            if _private(self.path):
                known = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(known, dict) and known.get("format") == _FORMAT:
                    self.known = known.get("files", {})
        except (OSError, ValueError):
            pass

    def get(self, path: str) -> str | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        stamp = [info.st_size, info.st_mtime_ns, info.st_ino]
        entry = self.known.get(path)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stamp and isinstance(entry[1], str):
            return entry[1]
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return None
        self.known[path] = [stamp, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        with contextlib.suppress(OSError):
            _write_private(self.path, json.dumps({"format": _FORMAT, "files": self.known}).encode())


def _module_file(module_name: str) -> str | None:
    """The file whose code a module's classes and functions run; '' for modules that need none
    (Django, stdlib, builtins), None when it is not known (not imported)."""
    if module_name == "django" or module_name.startswith("django.") or module_name in sys.builtin_module_names:
        return ""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if module is None:
        return None
    if path is None:
        return ""  # a namespace or built-in module: no code of its own
    if _real_path(path).startswith(_STDLIB + os.sep) and "site-packages" not in path:
        return ""
    return path


def _real_path(path: str) -> str:
    """``os.path.realpath(path)``, resolving each folder once: a project's thousands of migration
    modules live in a few folders (only a file that is itself a link is resolved whole)."""
    if os.path.islink(path):
        return os.path.realpath(path)
    return os.path.join(_real_folder(os.path.dirname(path)), os.path.basename(path))


@functools.lru_cache(maxsize=1024)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _file_digest(module_name: str) -> str | None:
    """sha256 of a module's file; '' for modules that need none (Django, stdlib, builtins)."""
    path = _module_file(module_name)
    if not path:
        return path
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class _RecordingPickler(pickle.Pickler):
    """Records the module of every class and function the pickle refers to by name."""

    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj):
        if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
            module = getattr(obj, "__module__", None)
            if module:
                self.modules.add(module)
        return NotImplemented


def _store(path: Path, key: str, state: ProjectState) -> None:
    try:
        buffer = io.BytesIO()
        pickler = _RecordingPickler(buffer)
        pickler.dump(state)
        modules = {}
        for name in sorted(pickler.modules):
            digest = _file_digest(name)
            if digest is None:
                return  # cannot be checked on load: do not cache
            if digest:
                modules[name] = digest
        payload = pickle.dumps({"format": _FORMAT, "key": key, "modules": modules, "state": buffer.getvalue()},
                               protocol=pickle.HIGHEST_PROTOCOL)
        _write_private(path, payload)
    except Exception:  # a state that does not pickle, a read-only disk: just no cache
        return


def _write_private(path: Path, payload: bytes) -> None:
    """Write ``path`` atomically in a folder only this user can write to (mkstemp: mode 0600);
    never through a symbolic link (the folder's or the entry's: it could point anywhere)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.is_symlink() or path.is_symlink() or not _private_folder(path.parent):
        raise OSError(f"{path}: a symbolic link or a folder others can write to; not written")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _private(path: Path) -> bool:
    """Whether only this user could have written ``path`` and its folder, neither of them a
    symbolic link: a pickle runs code when loaded, so a cache anyone else can write to, or one
    that leads elsewhere, is never read."""
    if not _private_folder(path.parent):
        return False
    info = path.lstat()
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _private_folder(folder: Path) -> bool:
    info = folder.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def _load(path: Path, key: str) -> ProjectState | None:
    try:
        if not _private(path):
            return None
        payload = pickle.loads(path.read_bytes())
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT or payload.get("key") != key:
            return None
        modules = payload["modules"]
        if any(_file_digest(name) != digest for name, digest in modules.items()):
            return None
        state = pickle.loads(payload["state"])
    except Exception:  # missing, truncated, corrupt or from another version: rebuild
        return None
    return state if isinstance(state, ProjectState) else None

