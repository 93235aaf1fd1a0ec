"""Scratch databases at a base state, kept between runs: the CI check applies only what its base lacks.

``--scratch``, ``--since``, ``--files`` and ``--embedded`` bring a throwaway database to the *base*,
the state just before the first linted migration, by applying every migration before it: a full
``migrate`` on a big history, minutes for a pull request that adds one small migration. This module
keeps that database as a **template** on the server (``CREATE DATABASE ... TEMPLATE``), and the next
run copies the best template into its scratch database and applies only the migrations the template
lacks. A run never changes a template: it works on its copy.

**Key.** A template is named ``migration_guard_base_<digest>`` and carries its manifest as the
database's comment: the environment digest and, in the order they were applied, every migration with
the digest of what makes it build the same schema:

- the migration file's sha256 (remembered by size, mtime and inode, as the state cache does);
- its parents in the graph (what it depends on decides what exists when it runs);
- what its operations are made of, walked as Django's migration writer walks them (``deconstruct``):
  every value, and the sha256 of the file of every module outside Django and the standard library
  whose class or function they use (a custom field's ``db_type``, a ``RunPython`` function imported
  from elsewhere, a custom operation, a custom ``Migration`` base). The walk is remembered by the
  file's digest and walked again when one of those modules changes; a value the file computes from a
  setting at import is therefore seen only through the settings below.

The environment: this cache's format; Django's version (the schema editor writes the SQL; a patch
release may fix it); the server's PostgreSQL version; the database backend (``ENGINE``: a backend such
as django-pg-zero-downtime-migrations or django-tenants writes other SQL); ``OPTIONS`` (a
``search_path`` there decides where tables go) and ``USER`` (``$user`` in the default search_path);
the apps without migrations (they are part of the project state); every ``*_MODEL`` setting
(swappable models: which table a foreign key points to). Not in the key, and why: ``DEFAULT_AUTO_FIELD``
(only ``makemigrations`` reads it; a migration file names its primary key's class); ``USE_TZ`` and
``TIME_ZONE`` (PostgreSQL's ``timestamp with time zone`` either way); the Python version (the schema
does not depend on it; the pickled project state kept with a template is keyed by it too); table
sizes and ``--stats`` (never in the database). Code that a ``RunPython`` function calls at run time and
settings it reads then are not seen: such a function that changes the schema according to them should
run with the cache off.

**Reuse.** A template is used when its environment equals this run's and each of its migrations is
one this run's base needs, with the same digest (so the template is an ancestor-closed subset of the
base: each migration's parents are part of its digest); the largest such template wins. The
migrations it lacks are applied after it, in ``migrate``'s order, as ``migrate`` applies a merge onto
a database (migrations that no dependency orders are independent for Django too). Anything unexpected
(a manifest that does not read, a name that does not match its manifest, a copy that fails) means a
full build, never a guess. A template belongs to the role that made it (``datdba``), never accepts
connections (``ALLOW_CONNECTIONS false``: nothing can change it, and it can always be copied), and its
name never matches the scratch databases' (``migration_guard_scratch_*``), which runs clean up.
The role's own migration code could still open a connection and change a template: templates are
trusted as far as that role is (see the README's base cache section).

**Where.** ``--scratch`` (and ``--since``/``--files`` on a configured server): on that server.
``--embedded``: in the embedded server, whose stopped data directory is kept between runs in the
cache folder (``<cache>/embedded-<PostgreSQL version>-<tag>/cluster``, as archives: a few large files
rather than thousands of small ones) and extracted for each run, so it keeps only the two newest
templates (a base, and the one before a merge); private like the state cache (a folder only this
user can write to, every archive this user's, only folders and files in them; anything else is never
used). The templates' folders are archived apart (:meth:`EmbeddedCluster.keep`): a run extracts the
one it uses, and a template at its base is its scratch database itself (the server's data directory
is the run's own); a run that makes a template extracts them all before its data directory is kept
in place of the old one. Templates are bounded by ``base_cache_max_bytes`` (oldest dropped first) and
listed and pruned by ``migration-guard cache list|prune``. Off with
``MIGRATION_GUARD_BASE_CACHE=0`` or ``base_cache = false`` in the configuration
(``MIGRATION_GUARD_CACHE=0`` turns every cache off).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import enum
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import types
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import django
from django.conf import settings
from django.db.migrations.state import ProjectState
from django.utils import translation
from django.utils.functional import Promise

from migration_guard.plan import Plan, migration_path
from migration_guard.state_cache import _FileDigests, _load, _module_file, _private, _store, _write_private, cache_dir
from migration_guard.scratch import copy_strategy

if TYPE_CHECKING:
    from migration_guard.embedded import EmbeddedPostgres
    from migration_guard.scratch import ScratchCreation

__all__ = [
    "Base", "BaseCache", "EmbeddedCluster", "TEMPLATE_PREFIX", "describe_base", "drop_templates", "enabled",
    "list_templates",
]

Node = tuple[str, str]

FORMAT = "migration_guard-base-1"
TEMPLATE_PREFIX = "migration_guard_base_"
_TEMPLATE_NAME = re.compile(r"^migration_guard_base_[0-9a-f]{40}$")
_OFF = {"0", "off", "no", "false"}
EMBEDDED_TEMPLATES = 2
# PostgreSQL's first oid after initdb (FirstNormalObjectId), and template0's since version 15.
_FIRST_NORMAL_OID = 16384
_TEMPLATE0_OID = 4
# A template's drop waits this long for a copy of it in progress, then leaves it for a later run.
_DROP_LOCK_TIMEOUT = "1s"
_LIST_SQL = (
    "SELECT d.datname, pg_catalog.shobj_description(d.oid, 'pg_database'), pg_catalog.pg_database_size(d.oid) "
    "FROM pg_catalog.pg_database d WHERE d.datname LIKE 'migration\\_guard\\_base\\_%' "
    "AND d.datdba = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)"
)


def enabled(config) -> bool:
    """Whether runs keep and reuse base databases: ``MIGRATION_GUARD_BASE_CACHE`` and
    ``MIGRATION_GUARD_CACHE`` not off, and ``base_cache`` not false in the configuration."""
    if os.environ.get("MIGRATION_GUARD_BASE_CACHE", "").strip().lower() in _OFF:
        return False
    return cache_dir() is not None and config.base_cache


# -- what a base is --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A database state: the migrations applied, in order, each with its digest, and the digest of
    the environment they were applied in."""

    environment: str
    nodes: tuple[Node, ...]
    digests: tuple[str, ...]
    created: float = field(default=0.0, compare=False)

    @functools.cached_property
    def key(self) -> str:
        """sha256 of everything that makes two bases the same database."""
        digest = hashlib.sha256(f"{FORMAT}\n{self.environment}\n".encode())
        for (app, name), node_digest in zip(self.nodes, self.digests):
            digest.update(f"{app}\n{name}\n{node_digest}\n".encode())
        return digest.hexdigest()

    @property
    def name(self) -> str:
        """The template database's name."""
        return TEMPLATE_PREFIX + self.key[:40]

    def manifest(self) -> str:
        """What the template's comment holds: plain ASCII (base64 of zlib of JSON)."""
        document = {"format": FORMAT, "environment": self.environment, "created": self.created or time.time(),
                    "nodes": [[app, name, d] for (app, name), d in zip(self.nodes, self.digests)]}
        return base64.b64encode(zlib.compress(json.dumps(document).encode(), 6)).decode("ascii")

    @classmethod
    def from_manifest(cls, text: str | None) -> Base | None:
        """The base a comment describes, or None when it is not one of ours (never an exception)."""
        try:
            document = json.loads(zlib.decompress(base64.b64decode(text or "", validate=True)))
            if document.get("format") != FORMAT or not isinstance(document.get("environment"), str):
                return None
            nodes = tuple((str(app), str(name)) for app, name, _ in document["nodes"])
            digests = tuple(str(d) for _, _, d in document["nodes"])
            return cls(document["environment"], nodes, digests, float(document.get("created") or 0))
        except (ValueError, TypeError, KeyError, zlib.error, AttributeError):
            return None

    def covers(self, other: Base) -> bool:
        """Whether this base is a part of ``other``: same environment, each migration one that
        ``other`` applies, with the same digest."""
        if self.environment != other.environment or len(self.nodes) > len(other.nodes):
            return False
        theirs = dict(zip(other.nodes, other.digests))
        return all(theirs.get(node) == d for node, d in zip(self.nodes, self.digests))


class Undescribed(Exception):
    """A migration the key cannot describe: no cache for this run (the message says which and why)."""


def describe_base(executor, nodes: Sequence[Node], connection, server_version: str,
                  params: dict | None = None) -> Base | None:
    """The base ``nodes`` (in the order they are applied) make on ``connection``'s server (whose
    settings are ``params``, by default its own); None when caching is off. Raises
    :class:`Undescribed` when a migration cannot be described (no file, a module that cannot be
    read, a value that does not say what it is made of)."""
    directory = cache_dir()
    if directory is None:
        return None
    graph = executor.loader.graph
    files = _FileDigests(directory)
    code = _CodeDigests(directory, files)
    digests = []
    for node in nodes:
        migration = graph.nodes[node]
        path = migration_path(migration)
        file_digest = files.get(path) if path and path.endswith(".py") else None
        if file_digest is None:
            raise Undescribed(f"{node[0]}.{node[1]} has no migration file to digest")
        parents = sorted(parent.key for parent in graph.node_map[node].parents)
        try:
            operations = code.of(migration, file_digest)
        except Undescribed as exc:
            raise Undescribed(f"{node[0]}.{node[1]}: {exc}") from None
        digests.append(hashlib.sha256(f"{file_digest}\n{parents!r}\n{operations}\n".encode()).hexdigest()[:32])
    files.save()
    code.save()
    environment = _environment(executor, connection, server_version, params or connection.settings_dict)
    return Base(environment, tuple(nodes), tuple(digests))


def _environment(executor, connection, server_version: str, params: dict) -> str:
    swappable = sorted((name, value) for name in dir(settings)
                       if name.isupper() and name.endswith("_MODEL")
                       and isinstance(value := getattr(settings, name, None), str))
    described = repr((
        django.__version__, server_version, type(connection).__module__,
        _canonical(params.get("OPTIONS") or {}), params.get("USER") or "",
        sorted(executor.loader.unmigrated_apps), swappable,
    ))
    return hashlib.sha256(described.encode()).hexdigest()


def _canonical(value) -> str:
    """A repr that does not depend on dict or set order."""
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(f"{_canonical(k)}: {_canonical(v)}" for k, v in value.items())) + "}"
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(_canonical(v) for v in value)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_canonical(v) for v in value) + "]"
    return repr(value)


_LEAVES = (str, bytes, int, float, complex, bool, type(None), decimal.Decimal, dt.date, dt.time, dt.timedelta,
           uuid.UUID, re.Pattern)
_CODE = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.BuiltinMethodType)


class _CodeDigests:
    """What a migration's operations are made of, as its writer would serialize them. Walking them
    costs ~1 ms a migration, so the result is remembered (``base-code.json``, private like the
    file digests) by the migration file's digest, with the digests of the modules it used, and
    walked again when one of those changed."""

    def __init__(self, directory: Path, files: _FileDigests):
        self.files = files
        self.path = directory / "base-code.json"
        self.modules: dict[str, str | None] = {}
        self.known: dict[str, dict] = {}
        self.changed = False
        try:
            if _private(self.path):
                known = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(known, dict) and known.get("format") == FORMAT:
                    self.known = known.get("migrations", {})
        except (OSError, ValueError):
            pass

    def of(self, migration, file_digest: str) -> str:
        """The digest of the migration's operations (raises Undescribed when they cannot be described)."""
        entry = self.known.get(file_digest)
        if isinstance(entry, dict) and isinstance(entry.get("modules"), dict) and isinstance(entry.get("code"), str) \
                and all(self._digest(name) == d for name, d in entry["modules"].items()):
            return entry["code"]
        digest = hashlib.sha256()
        used: dict[str, str] = {}
        for cls in type(migration).__mro__:
            self._module(cls.__module__, digest, used)
        for operation in migration.operations:
            self._walk(operation, digest, 0, used)
        code = digest.hexdigest()
        self.known[file_digest] = {"modules": used, "code": code}
        self.changed = True
        return code

    def save(self) -> None:
        if self.changed:
            with contextlib.suppress(OSError):
                _write_private(self.path, json.dumps({"format": FORMAT, "migrations": self.known}).encode())

    def _digest(self, name: str) -> str | None:
        if name not in self.modules:
            path = _module_file(name)
            self.modules[name] = self.files.get(path) if path else path
        return self.modules[name]

    def _module(self, name: str | None, digest, used: dict) -> None:
        found = self._digest(name) if name else None
        if found is None:
            raise Undescribed(f"the code of module {name!r} cannot be read")
        if found:
            used[name] = found
        digest.update(f"{name} {found}\n".encode())

    def _walk(self, value, digest, depth: int, used: dict) -> None:
        if depth > 40:
            raise Undescribed("its operations are nested too deeply")
        if isinstance(value, Promise):  # gettext_lazy: its message id, whatever the language
            with translation.override(None):
                digest.update(f"lazy {str(value)!r}\n".encode())
        elif isinstance(value, enum.Enum):
            self._module(type(value).__module__, digest, used)
            digest.update(f"{type(value).__qualname__}.{value.name}\n".encode())
        elif isinstance(value, _LEAVES):
            digest.update(f"{type(value).__name__} {value!r}\n".encode())
        elif isinstance(value, _CODE):
            self._module(getattr(value, "__module__", None), digest, used)
            digest.update(f"{getattr(value, '__qualname__', value)!r}\n".encode())
        elif isinstance(value, functools.partial):
            self._walk((value.func, value.args, value.keywords), digest, depth + 1, used)
        elif isinstance(value, list | tuple):
            digest.update(f"{type(value).__name__}[{len(value)}\n".encode())
            for item in value:
                self._walk(item, digest, depth + 1, used)
        elif isinstance(value, set | frozenset):
            digest.update(f"set[{len(value)}\n".encode())
            for item in sorted(value, key=_canonical):
                self._walk(item, digest, depth + 1, used)
        elif isinstance(value, dict):
            digest.update(f"dict[{len(value)}\n".encode())
            for key in sorted(value, key=_canonical):
                self._walk(key, digest, depth + 1, used)
                self._walk(value[key], digest, depth + 1, used)
        else:
            kind = type(value)
            self._module(kind.__module__, digest, used)
            digest.update(f"{kind.__qualname__}(\n".encode())
            deconstruct = getattr(value, "deconstruct", None)
            if not callable(deconstruct):  # nothing says what it is made of
                raise Undescribed(f"a {kind.__module__}.{kind.__qualname__} in its operations has no deconstruct()")
            parts = deconstruct()  # (path, args, kwargs), a field's (name, path, args, kwargs), ...
            if not isinstance(parts, tuple) or len(parts) < 2:
                raise Undescribed(f"{kind.__module__}.{kind.__qualname__}.deconstruct() is not (..., args, kwargs)")
            self._walk(parts[-2], digest, depth + 1, used)
            self._walk(parts[-1], digest, depth + 1, used)


# -- templates on a server -------------------------------------------------------------------------


def list_templates(cursor) -> list[tuple[str, Base | None, int]]:
    """The role's templates on the server of ``cursor``: (name, its base or None when its comment
    does not describe one matching the name, size in bytes)."""
    cursor.execute(_LIST_SQL)
    found = []
    for name, comment, size in cursor.fetchall():
        if not _TEMPLATE_NAME.match(name):
            continue
        base = Base.from_manifest(comment)
        found.append((name, base if base is not None and base.name == name else None, int(size or 0)))
    return found


def drop_templates(cursor, names: Sequence[str]) -> list[str]:
    """Drop these templates of the role (never FORCE: a copy in progress keeps its template);
    the names dropped."""
    dropped = []
    cursor.execute(f"SET lock_timeout = '{_DROP_LOCK_TIMEOUT}'")
    for name in names:
        if not _TEMPLATE_NAME.match(name):
            continue
        try:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        except Exception:  # being copied, or gone meanwhile: a later prune
            continue
        dropped.append(name)
    return dropped


def prune(cursor, max_bytes: int, *, keep: Sequence[str] = (), max_count: int | None = None) -> list[str]:
    """Drop the oldest templates (and any whose manifest does not read) until the rest fit in
    ``max_bytes`` (and number at most ``max_count``); never those in ``keep``. Their project
    states in the cache folder go with them."""
    templates = list_templates(cursor)
    broken = [name for name, base, _ in templates if base is None and name not in keep]
    valid = sorted(((base.created, name, size) for name, base, size in templates if base is not None),
                   reverse=True)
    total = 0
    excess = []
    for count, (_, name, size) in enumerate(valid, start=1):
        total += size
        if (total > max_bytes or (max_count is not None and count > max_count)) and name not in keep:
            excess.append(name)
            total -= size
    dropped = drop_templates(cursor, broken + excess)
    forget_states(templates, dropped)
    return dropped


def forget_states(templates: Sequence[tuple[str, Base | None, int]], dropped: Sequence[str]) -> None:
    """Delete the project states kept with the ``dropped`` ones of ``templates``."""
    if cache_dir() is None:
        return
    for name, base, _ in templates:
        if base is not None and name in dropped:
            _state_path(base).unlink(missing_ok=True)


@dataclass
class BaseCache:
    """One run's use of the cache: find a template for the base, copy it into the scratch
    database, keep the base once it is built."""

    base: Base | None  # None: the base cannot be described (the notes say why)
    server_cursor: Callable[[], contextlib.AbstractContextManager]
    max_bytes: int
    # The embedded server's data folder is copied whole for every run: only the newest templates stay
    # (the base, and the one before a merge).
    max_count: int | None = None
    # The embedded server this run owns (its data folder a copy of the kept one): a template at the
    # base itself becomes the scratch database, and the folders of its templates are copied when used.
    server: EmbeddedPostgres | None = None
    used: Base | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, executor, plan: Plan, connection, config, server_cursor, *, embedded: EmbeddedPostgres | None = None,
             params: dict | None = None) -> BaseCache | None:
        """The cache for this run's base (the migrations before the first linted one), or None: the
        cache is off, there is no base, or it cannot be described. ``embedded``: the run's embedded
        server. ``params``: the connection's settings as the project gives them (the gate adds
        read-only options to the target's)."""
        if not enabled(config) or not plan.lint:
            return None
        nodes = plan.full[:plan.first_lint_position]
        version = getattr(connection, "pg_version", None)
        if not nodes or not version:
            return None
        try:
            base = describe_base(executor, nodes, connection, str(version // 10000), params)
        except Undescribed as exc:
            return cls(None, server_cursor, 0, notes=[f"base cache: not used ({exc}); every migration applied"])
        if base is None:
            return None
        return cls(base, server_cursor, config.base_cache_max_bytes,
                   max_count=EMBEDDED_TEMPLATES if embedded is not None else None, server=embedded)

    def start(self, executor, scratch: ScratchCreation) -> tuple[ProjectState, frozenset[Node]] | None:
        """Make the scratch database a copy of the best template (in place of the empty one, when it
        is made already); the project state after the template's migrations and the migrations it
        has, or None: build in full (the scratch database is then an empty one). In the
        embedded server, a template at the base itself is renamed to be the scratch database: the
        server's data folder is this run's own copy, and nothing of it is kept unless a template is
        made (see :meth:`at_base`), so the kept folder still has that template unchanged."""
        if self.base is None:
            return None
        try:
            with self.server_cursor() as cursor:
                candidates = [base for _, base, _ in list_templates(cursor) if base is not None]
                closed = [base for base in candidates if base.covers(self.base) and _closed(executor, base)]
                if not closed:
                    self.notes.append(f"base cache: no template for this base yet ({len(self.base.nodes)} migrations "
                                      "applied in full)")
                    return None
                best = max(closed, key=lambda base: len(base.nodes))
                state = _state(executor, best)
                in_place = self.server is not None and best.key == self.base.key
                if self.server is not None:
                    cursor.execute("SELECT oid FROM pg_catalog.pg_database WHERE datname = %s", (best.name,))
                    self.server.copy_later([f"base/{cursor.fetchone()[0]}"])
                name = scratch.name
                made = scratch.started
                if made:
                    scratch.wait()
                    cursor.execute(f'DROP DATABASE "{name}"')
                try:
                    if in_place:
                        cursor.execute(f'ALTER DATABASE "{best.name}" RENAME TO "{name}"')
                        cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                        cursor.execute(f'COMMENT ON DATABASE "{name}" IS NULL')
                    else:
                        cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{best.name}"{copy_strategy(cursor)}')
                except Exception:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    if made:
                        cursor.execute(f'CREATE DATABASE "{name}"')  # an empty one, as before
                    raise
                scratch.adopt()
        except Exception as exc:  # a template dropped meanwhile, a state that does not build: in full
            self.notes.append(f"base cache: not used ({' '.join(str(exc).split())[:200]}); every migration applied")
            return None
        self.used = best
        missing = len(self.base.nodes) - len(best.nodes)
        self.notes.append(f"base cache: the scratch database is a copy of template {best.name} "
                          f"({len(best.nodes)} migrations" + (f"; {missing} more applied)" if missing else ")"))
        return state, frozenset(best.nodes)

    def at_base(self, connection, state: ProjectState) -> None:
        """The scratch database is at the base: keep a copy as a template (unless it is one)."""
        if self.base is None or (self.used is not None and self.used.key == self.base.key):
            return
        scratch = connection.settings_dict["NAME"]
        base = Base(self.base.environment, self.base.nodes, self.base.digests, time.time())
        # The state goes with the template: a later run starts from it without replaying the base.
        _store(_state_path(base), _state_key(base), ProjectState(models=state.models, real_apps=state.real_apps))
        connection.close()  # a database is copied only when no session is connected to it
        try:
            if self.server is not None:  # the run's data folder is kept: every template's files in it
                self.server.copy_later()
            with self.server_cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{base.name}" TEMPLATE "{scratch}"{copy_strategy(cursor)}')
                cursor.execute(f'ALTER DATABASE "{base.name}" ALLOW_CONNECTIONS false')
                cursor.execute(f"COMMENT ON DATABASE \"{base.name}\" IS '{base.manifest()}'")
                dropped = prune(cursor, self.max_bytes, keep=[base.name], max_count=self.max_count)
        except Exception as exc:  # another run made it meanwhile, no space: this run goes on
            self.notes.append(f"base cache: the base was not kept ({' '.join(str(exc).split())[:200]})")
            return
        self.notes.append(f"base cache: kept the base ({len(base.nodes)} migrations) as template {base.name}"
                          + (f"; dropped {len(dropped)} older template(s)" if dropped else ""))


def _closed(executor, base: Base) -> bool:
    """Whether every parent of the template's migrations is in it."""
    graph = executor.loader.graph
    nodes = set(base.nodes)
    return all(node in graph.node_map and all(p.key in nodes for p in graph.node_map[node].parents)
               for node in base.nodes)


def _state_key(base: Base) -> str:
    return hashlib.sha256(f"{base.key}\n{sys.version}".encode()).hexdigest()


def _state_path(base: Base) -> Path:
    return cache_dir() / f"base-{_state_key(base)}.pickle"


def _state(executor, base: Base) -> ProjectState:
    """The project state after the template's migrations, in its order: kept with it, else replayed."""
    state = _load(_state_path(base), _state_key(base))
    if state is not None:
        return state
    graph = executor.loader.graph
    state = ProjectState(real_apps=executor.loader.unmigrated_apps)
    for node in base.nodes:
        state = graph.nodes[node].mutate_state(state, preserve=False)
    return state


# -- the embedded server's data directory ----------------------------------------------------------


class EmbeddedCluster:
    """The embedded server's stopped data directory, kept in the cache folder between runs."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.data = folder / "cluster"
        self.index = folder / "templates.json"

    @classmethod
    def for_binaries(cls, bin_dir: Path) -> EmbeddedCluster | None:
        """The cluster folder for the PostgreSQL of ``bin_dir`` (None: the version cannot be read)."""
        directory = cache_dir()
        if directory is None:
            return None
        try:
            version = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True,
                                     timeout=30, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
        tag = hashlib.sha256(f"{version}\n{os.uname().machine}".encode()).hexdigest()[:12]
        number = re.search(r"(\d+(?:\.\d+)?)", version)
        return cls(directory / f"embedded-{number.group(1) if number else 'pg'}-{tag}")

    def usable(self) -> bool:
        """Whether the kept data directory exists and only this user could have written to the
        folders that hold it (a data directory's configuration can run programs; the server that
        starts from it checks its archives, and stops at one another user could have written)."""
        try:
            return all(_private_folder(folder) for folder in (self.folder.parent, self.folder, self.data))
        except OSError:
            return False

    def later(self) -> tuple[list[str], list[str]]:
        """The folders of the kept data directory a run extracts only if it uses them (archived
        apart, see :meth:`keep`), and among them the newest template's (the largest oid), which a
        run on the latest base uses."""
        try:
            oids = [int(name[len("base."):-len(".tar")]) for name in os.listdir(self.data)
                    if re.fullmatch(r"base\.[0-9]+\.tar", name)]
        except OSError:
            return [], []
        later = sorted(oids, reverse=True)
        return [f"base/{oid}" for oid in later], [f"base/{oid}" for oid in later[:1] if oid >= _FIRST_NORMAL_OID]

    def keep(self, data: Path, templates: list[dict]) -> None:
        """Make ``data`` (a stopped data directory) the kept one, atomically: archives in a new
        folder (:func:`~migration_guard.embedded.archive_data_folder`) renamed in place of the old
        one. Archived apart, for a run to extract only if it uses them: the folders of the databases
        made after initdb (``base/<oid>``, oid 16384 and up: the templates) and, from PostgreSQL 15
        on, template0's (oid 4). None of them accepts connections; a run that uses a template
        extracts its folder first, and one that keeps its data directory extracts them all."""
        from migration_guard.embedded import archive_data_folder

        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private_folder(self.folder):
            return
        try:
            major = int((data / "PG_VERSION").read_text().split(".")[0])
            oids = [int(entry.name) for entry in os.scandir(data / "base")
                    if entry.is_dir(follow_symlinks=False) and entry.name.isdigit()]
        except (OSError, ValueError):
            return
        apart = [f"base/{oid}" for oid in oids if oid >= _FIRST_NORMAL_OID or (major >= 15 and oid == _TEMPLATE0_OID)]
        incoming = Path(tempfile.mkdtemp(prefix=".cluster-", dir=self.folder))
        try:
            target = incoming / "cluster"
            archive_data_folder(data, target, apart=apart)
            old = self.folder / f".old-{os.getpid()}-{time.time_ns()}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.data, old)
            os.rename(target, self.data)
            shutil.rmtree(old, ignore_errors=True)
            payload = json.dumps({"format": FORMAT, "templates": templates}, indent=1).encode()
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".templates-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.replace(temporary, self.index)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    def templates(self) -> list[dict]:
        """What the index says the kept data directory holds (for ``cache list``)."""
        try:
            document = json.loads(self.index.read_text())
            return list(document.get("templates", [])) if document.get("format") == FORMAT else []
        except (OSError, ValueError, AttributeError):
            return []


def template_rows(cursor) -> list[dict]:
    """The role's templates on a server, for the cluster's index and ``cache list``."""
    rows = []
    for name, base, size in list_templates(cursor):
        rows.append({"name": name, "migrations": len(base.nodes) if base else None, "bytes": size,
                     "created": base.created if base else None})
    return rows


def _private_folder(path: Path) -> bool:
    """Whether ``path`` is a folder (not a symbolic link) of this user's that no one else can write to."""
    info = path.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022
