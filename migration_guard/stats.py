"""Table sizes: read from the target database, or from a snapshot file, or assumed.

The rules block a long-locking operation only on a large table, so they need to know how big
each table is. Figures come from one of three places:

* the target database itself (:func:`read_database_stats`), for the release-pipeline gate;
* a snapshot file (:func:`load_snapshot`) written earlier by ``migration-guard stats dump``,
  for CI, which has no production access;
* an assumed row count (``--assume-rows``) for tables with no figure at all.

A table with no figure is *unknown*, and the rules treat unknown as large (fail closed).

Reading the database never writes and never waits long: everything runs in one ``READ ONLY``
transaction (a savepoint when the caller already has a transaction open) with ``SET LOCAL``
``statement_timeout`` and ``lock_timeout``. Row counts come from ``pg_class`` and
``pg_stat_user_tables``, which take no lock on the table. ``pg_total_relation_size`` does take
``ACCESS SHARE`` on the table, so it waits behind an ``ACCESS EXCLUSIVE`` lock held *or queued* by
another session (a migration running right now); ``lock_timeout`` bounds that wait, and such a
table gets ``total_bytes`` ``None`` instead of the whole read failing.

Which table a name means: the one PostgreSQL will pick when ``migrate`` runs the statement. A
schema-qualified name means that schema's table; an unqualified one the first schema of the session's
effective ``search_path`` that has a table (or a table created earlier in the plan) of that name.
The path is the session's ``search_path`` setting (from the server's configuration, ``ALTER DATABASE``/
``ALTER ROLE ... SET``, or the connection's options) with ``$user`` standing for the role and schemas
that do not exist left out, as PostgreSQL does. Sizes are looked up by the schema and name found. A
migration may run several times, once in each schema of a schema-per-tenant project (see
:class:`Runs`): its sizes are then the largest copy's.

Snapshot file format (``schema_version`` 2), as written by ``migration-guard stats dump``::

    {
      "schema_version": 2,
      "pg_version": 16,
      "server_version_num": 160004,
      "taken_at": "2025-01-31T12:00:00+00:00",
      "database": "shop",
      "search_path": ["app", "public"],
      "tables": {
        "public.shop_order": {"rows": 2000000, "total_bytes": 123456789, "indexes": 5},
        "billing.\\"Invoice\\"": {"rows": null, "total_bytes": 8192}
      }
    }

Every key shown is required but a table's ``indexes`` (how many indexes it has, for the duration of a
rewrite; absent in older snapshots: unknown). ``server_version_num`` and ``database`` may be ``null``;
``rows`` and ``total_bytes`` are non-negative integers or ``null`` (unknown). ``search_path`` is the effective path
of the session that took the snapshot (existing schemas only, ``$user`` expanded), or ``null`` when not
known. Every table is keyed ``schema.name``, each part double-quoted (as in SQL) unless it is a plain
lower-case identifier; names are case-sensitive, as PostgreSQL stores them. A partitioned table's
figures are the sums over its partitions.

``schema_version`` 1 snapshots (older versions of this tool) are still read: a bare key is a table of
``public``, ``schema.name`` one of that schema, and the search_path is not known. An unqualified name
is then the table of the one schema that has it; a name found in several schemas is *ambiguous* and
counts as large (fail closed), with a note saying how to settle it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migration_guard.config import MAX_BIGINT, SUPPORTED_PG_VERSIONS
from migration_guard.model import Runs, TableSize

if TYPE_CHECKING:  # psycopg is imported where a database is read: explain and report need none
    import psycopg

__all__ = [
    "SCHEMA_VERSION",
    "Runs",
    "Snapshot",
    "StatsError",
    "TableSizes",
    "format_bytes",
    "format_schema",
    "format_size",
    "is_large",
    "load_snapshot",
    "parse_search_path",
    "qualified_name",
    "read_database_stats",
    "read_search_path",
    "split_name",
    "write_snapshot",
]

SCHEMA_VERSION = 2
_READABLE_VERSIONS = (1, 2)

# Catalog reads are quick; anything slower means something is wrong, and the gate must not
# hang a deploy pipeline. A lock wait longer than a second means a migration holds the table.
DEFAULT_STATEMENT_TIMEOUT_MS = 5000
DEFAULT_LOCK_TIMEOUT_MS = 1000
_CONNECT_TIMEOUT_S = 10

_REGENERATE = "regenerate it with `migration-guard stats dump --dsn DSN --output {path}`"


class StatsError(ValueError):
    """Table sizes could not be read: a bad snapshot file or an unreadable database."""


# -- the snapshot ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Table sizes of one database at one moment, the server version and the search_path.

    ``tables`` maps ``(schema, name)`` to :class:`TableSize`; treat it as read-only. A ``str`` key
    given to the constructor is read as a ``schema_version`` 1 key: ``name`` is ``public``'s,
    ``schema.name`` that schema's. ``search_path``: the effective path of the session that read
    the sizes (existing schemas, in order), ``None`` when not known.
    """

    pg_version: int  # major version, e.g. 16
    server_version_num: int | None
    taken_at: str  # UTC, ISO 8601
    database: str | None
    tables: Mapping[tuple[str, str], TableSize] = field(default_factory=dict, hash=False)
    search_path: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if any(isinstance(key, str) for key in self.tables):
            object.__setattr__(self, "tables", {
                (_v1_key(key) if isinstance(key, str) else key): size for key, size in self.tables.items()})
        if self.search_path is not None:
            object.__setattr__(self, "search_path", tuple(self.search_path))

    @cached_property
    def by_name(self) -> Mapping[str, Mapping[str, TableSize]]:
        """``name -> {schema: size}``: the schemas that have a table of each name."""
        index: dict[str, dict[str, TableSize]] = {}
        for (schema, name), size in self.tables.items():
            index.setdefault(name, {})[schema] = size
        return index

    def to_json(self) -> str:
        """The snapshot in the file format described in this module's docstring."""
        document = {
            "schema_version": SCHEMA_VERSION,
            "pg_version": self.pg_version,
            "server_version_num": self.server_version_num,
            "taken_at": self.taken_at,
            "database": self.database,
            "search_path": None if self.search_path is None else list(self.search_path),
            # Sorted so that two dumps of the same database diff cleanly.
            "tables": {
                qualified_name(*key): {"rows": size.rows, "total_bytes": size.total_bytes,
                                       **({} if size.indexes is None else {"indexes": size.indexes})}
                for key, size in sorted(self.tables.items())
            },
        }
        return json.dumps(document, indent=2) + "\n"


def _v1_key(key: str) -> tuple[str, str]:
    """A ``schema_version`` 1 key: ``name`` (in ``public``) or ``schema.name``, unquoted."""
    schema, dot, name = key.partition(".")
    return (schema, name) if dot else ("public", key)


def write_snapshot(snapshot: Snapshot, path: str | os.PathLike) -> None:
    """Write ``snapshot`` to ``path`` as JSON, replacing the file only once it is complete."""
    path = Path(path)
    # A half-written snapshot would fail to load at best; write aside, then rename over.
    handle, temporary = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(snapshot.to_json())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_snapshot(path: str | os.PathLike) -> Snapshot:
    """Read a snapshot file; raise :class:`StatsError` naming the file and the fault if it is not valid.

    Nothing is guessed: a missing key, a wrong type or an unknown key is an error, because a
    silently wrong size could let a dangerous migration through.
    """
    path = Path(path)

    def fail(what: str) -> StatsError:
        return StatsError(f"snapshot {path}: {what}; {_REGENERATE.format(path=path)}")

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot be read ({exc})") from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except _DuplicateKey as exc:
        raise fail(f"the key {exc.args[0]!r} appears twice in one object (which figure is meant?)") from None
    except RecursionError:
        raise fail("JSON nested too deeply (a snapshot is two levels deep)") from None
    except ValueError as exc:  # a number of thousands of digits
        raise fail(f"invalid JSON ({' '.join(str(exc).split())[:200]})") from None

    if not isinstance(document, dict):
        raise fail(f"expected a JSON object at the top level, found {_json_type(document)}")
    version = document.get("schema_version")
    if not _is_int(version) or version not in _READABLE_VERSIONS:
        raise fail(f"schema_version is {_shown(version)}, this migration-guard reads "
                   f"{' and '.join(map(str, _READABLE_VERSIONS))}")
    expected = {"schema_version", "pg_version", "server_version_num", "taken_at", "database", "tables"}
    _check_keys(document, expected | ({"search_path"} if version >= 2 else set()), "the top level", fail)
    pg_version = document["pg_version"]
    if not _is_int(pg_version) or pg_version < 1:
        raise fail("pg_version must be a positive integer (the major version, e.g. 16), "
                   f"found {_shown(pg_version)}")
    if pg_version not in SUPPORTED_PG_VERSIONS:
        raise fail(f"pg_version is {pg_version}: migration-guard models PostgreSQL 14 to 18 (give --pg-version N "
                   "to model one of them without this snapshot)")
    server_version_num = document["server_version_num"]
    if server_version_num is not None:
        if not _is_int(server_version_num) or not 1 <= server_version_num <= MAX_BIGINT:
            raise fail("server_version_num must be a positive integer or null, "
                       f"found {_shown(server_version_num)}")
        if server_version_num // 10000 != pg_version:
            raise fail(f"pg_version {pg_version} does not match server_version_num {server_version_num}")
    taken_at = document["taken_at"]
    if not isinstance(taken_at, str):
        raise fail(f"taken_at must be a string, found {_shown(taken_at)}")
    database = document["database"]
    if database is not None and not isinstance(database, str):
        raise fail(f"database must be a string or null, found {_shown(database)}")
    search_path = document.get("search_path")
    if search_path is not None and (not isinstance(search_path, list)
                                    or not all(isinstance(schema, str) and schema for schema in search_path)):
        raise fail(f"search_path must be an array of schema names or null, found {_shown(search_path)}")
    entries = document["tables"]
    if not isinstance(entries, dict):
        raise fail(f"tables must be a JSON object, found {_json_type(entries)}")

    tables: dict[tuple[str, str], TableSize] = {}
    for name, entry in entries.items():
        if not name:
            raise fail("tables has an entry with an empty name")
        if version >= 2:
            parts = _split_identifier(name)
            if len(parts) != 2 or not all(parts):
                raise fail(f"table {_named(name)} must be keyed schema.name (quote a part that has a dot: "
                           'schema."a.b")')
            qualified = (parts[0], parts[1])
        else:
            qualified = _v1_key(name)
        if qualified in tables:
            raise fail(f"table {_named(name)} appears twice")
        if not isinstance(entry, dict):
            raise fail(f"table {_named(name)} must be a JSON object, found {_json_type(entry)}")
        _check_keys(entry, {"rows", "total_bytes"}, f"table {_named(name)}", fail, optional={"indexes"})
        figures = {}
        for key in ("rows", "total_bytes", "indexes"):
            value = entry.get(key)
            if value is not None and (not _is_int(value) or not 0 <= value <= MAX_BIGINT):
                raise fail(f"table {_named(name)} has {key} {_shown(value)}, expected a non-negative integer or null "
                           f"(at most {MAX_BIGINT:,})")
            figures[key] = value
        tables[qualified] = TableSize(figures["rows"], figures["total_bytes"], source="snapshot",
                                      indexes=figures["indexes"])
    return Snapshot(pg_version, server_version_num, taken_at, database, tables,
                    search_path=None if search_path is None else tuple(search_path))


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list) -> dict:
    """A JSON object, refusing a key given twice (json's default keeps the last one silently)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _shown(value: Any) -> str:
    """A JSON value for a message, cut short (a huge number or string would flood it)."""
    if _is_int(value) and value.bit_length() > 64:
        return "a number too large for any table"
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        return _json_type(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _named(name: str) -> str:
    text = repr(name)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_keys(obj: dict, expected: set[str], where: str, fail, optional: frozenset[str] | set[str] = frozenset()) -> None:
    missing = sorted(expected - obj.keys())
    if missing:
        raise fail(f"{where} is missing {', '.join(missing)}")
    unknown = sorted(obj.keys() - expected - optional)
    if unknown:
        # Most often a typo ("row"); reading past it would drop a figure silently.
        raise fail(f"{where} has unknown key {', '.join(map(repr, unknown))} "
                   f"(expected {', '.join(sorted(expected | optional))})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


# -- looking sizes up --------------------------------------------------------------------------


def _split_identifier(name: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(name):
        char = name[i]
        if quoted:
            if char == '"':
                if name[i + 1 : i + 2] == '"':  # "" inside quotes is one "
                    current.append('"')
                    i += 1
                else:
                    quoted = False
            else:
                current.append(char)
        elif char == '"':
            quoted = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def split_name(name: str) -> tuple[str | None, str]:
    """``(schema, table)`` of a table name as SQL writes it (``None``: not schema-qualified).

    ``x``, ``"x"`` -> ``(None, "x")``; ``s.x``, ``"s"."x"``, ``db.s.x`` -> ``("s", "x")``. Quoted parts
    are unquoted and kept case-sensitive; unquoted parts are taken as written (the SQL parser has
    already folded them to lower case).
    """
    parts = _split_identifier(name)
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return None, parts[0]


def qualified_name(schema: str, name: str) -> str:
    """``schema.name`` as a snapshot keys it: each part double-quoted unless a plain lower-case identifier."""
    return f"{_quote(schema)}.{_quote(name)}"


def _quote(part: str) -> str:
    if part and (part[0].islower() or part[0] == "_") and part.isascii() and all(
            c.islower() or c.isdigit() or c in "_$" for c in part):
        return part
    return '"' + part.replace('"', '""') + '"'


def parse_search_path(setting: str, user: str | None = None) -> tuple[str, ...]:
    """The schemas a ``search_path`` setting names, in order, as PostgreSQL reads it: unquoted names
    folded to lower case, ``$user`` replaced by ``user`` (dropped when ``None``), repeats dropped.
    Whether the schemas exist is the caller's question."""
    schemas: list[str] = []
    for raw in _split_list(setting):
        name = raw[1:-1].replace('""', '"') if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2 \
            else raw.lower()
        if name == "$user":
            if user is None:
                continue
            name = user
        if name and name not in schemas:
            schemas.append(name)
    return tuple(schemas)


def _split_list(setting: str) -> list[str]:
    """The comma-separated items of a GUC list, quotes kept, whitespace around them dropped."""
    items, current, quoted = [], [], False
    for char in setting:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


_NEW = "new in this plan"


def _bigness(size: TableSize) -> tuple:
    """Orders sizes smallest first; an unknown row count is the largest of all."""
    return (size.rows is None, size.rows or 0, size.total_bytes or 0)


@dataclass(frozen=True)
class TableSizes:
    """What the rules ask for a table's size: a snapshot's figures, the plan's new tables, a fallback.

    ``search_path``: the effective path of the session ``migrate`` runs in (existing schemas, in order);
    ``None``: the snapshot's, if it has one, else not known. ``runs``: where the statements being
    analysed run (set per migration for schema-per-tenant projects); ``None``: once, on
    ``search_path``. ``created``: ``(schema, name)`` of the tables created earlier in the plan (empty
    when a statement runs, so harmless to lock); the schema is ``None`` when the name was not qualified
    and the search_path is not known. ``assume_rows``: the row count of a table with no figure; without
    it such a table is unknown, which the rules treat as large.
    """

    snapshot: Snapshot | None = None
    assume_rows: int | None = None
    created: frozenset[tuple[str | None, str]] = frozenset()
    search_path: tuple[str, ...] | None = None
    runs: Runs | None = None

    def __post_init__(self) -> None:
        if self.search_path is None and self.snapshot is not None and self.snapshot.search_path is not None:
            object.__setattr__(self, "search_path", self.snapshot.search_path)
        elif self.search_path is not None:
            object.__setattr__(self, "search_path", tuple(self.search_path))
        if any(isinstance(entry, str) for entry in self.created):
            names = [entry for entry in self.created if isinstance(entry, str)]
            object.__setattr__(self, "created", frozenset(e for e in self.created if not isinstance(e, str))
                               | self._created_keys(names))

    @property
    def current_runs(self) -> Runs | None:
        """Where the statements run now; ``None``: once, on a search_path that is not known."""
        if self.runs is not None:
            return self.runs
        return None if self.search_path is None else Runs.on(self.search_path)

    def running(self, runs: Runs | None) -> TableSizes:
        """A copy for statements that run as ``runs`` says (``None``: once, on ``search_path``)."""
        return self if runs == self.runs else replace(self, runs=runs)

    def of(self, table: str) -> TableSize:
        """The size of ``table`` (as written in the SQL), where the figure came from, the schema it
        resolved to and how many times the statement runs; when it runs in several schemas, the
        largest copy's."""
        cache = self.__dict__.get("_of")  # rules ask for the same tables again and again
        if cache is None:
            cache = self.__dict__["_of"] = {}
            self.__dict__["_of_spellings"] = {}
        size = cache.get(table)
        if size is None:
            runs = self.current_runs
            schema, found = max(self._copies(table), key=lambda copy: _bigness(copy[1]))
            size = replace(found, schema=schema, runs=runs.count if runs is not None else 1)
            cache[table] = size
            # a table's size depends on the tables created under its name only (see with_created)
            self.__dict__["_of_spellings"].setdefault(split_name(table)[1], []).append(table)
        return size

    def copies(self, table: str) -> tuple[TableSize, ...]:
        """Every copy of ``table`` (as written in the SQL) the statement reaches, each with its
        schema (``None``: the name did not resolve) and size: one, unless it runs in several schemas."""
        return tuple(replace(size, schema=schema) for schema, size in self._copies(table))

    def _copies(self, table: str) -> list[tuple[str | None, TableSize]]:
        schema, name = split_name(table)
        runs = self.current_runs
        if schema is not None:
            found = self._figure(schema, name)
            if found is None and (None, name) in self.created and schema == "public":
                found = TableSize(0, 0, source=_NEW)  # created unqualified, search_path not known
            return [(schema, found or self._no_figure(schema))]
        if runs is None:
            size = self._without_path(name)
            return [(size.schema, size)]
        copies: list[tuple[str | None, TableSize]] = []
        missing = 0
        known = self.snapshot.by_name.get(name, {}) if self.snapshot is not None else {}
        new = TableSize(0, 0, source=_NEW)
        for first in runs.schemas:  # a schema-per-tenant project may have thousands
            if (first, name) in self.created:
                copies.append((first, new))
            elif first in known:
                copies.append((first, known[first]))
            else:
                missing += 1
        if missing or not runs.schemas:
            size = self._along(runs.tail, name, runs)
            copies.append((size.schema, size))
        return copies

    def is_new(self, table: str) -> bool:
        """Whether ``table`` (every copy the statement reaches) was created earlier in the plan."""
        return self.of(table).source == _NEW

    def with_created(self, names: Iterable[str]) -> TableSizes:
        """A copy that also counts ``names`` (as written in the SQL) as created earlier in the plan,
        in the schema each was created in (the first of the search path, when not qualified)."""
        added = self._created_keys(names) - self.created
        if not added:
            return self
        # Keys only the new names: replace() would key every created table again.
        copy = replace(self, created=frozenset())
        object.__setattr__(copy, "created", self.created | added)
        cache = self.__dict__.pop("_of", None)
        if cache is not None:  # handed on without the names created now (a script asks for thousands)
            spellings = self.__dict__.pop("_of_spellings")
            for _schema, name in added:
                for table in spellings.pop(name, ()):
                    del cache[table]
            copy.__dict__.update(_of=cache, _of_spellings=spellings)
        by_name = self.__dict__.get("_created_by_name")
        if by_name is not None:  # handed on, with the new names (a long script creates thousands of tables)
            by_name = dict(by_name)
            for schema, name in added:
                by_name[name] = by_name.get(name, frozenset()) | {schema}
            object.__setattr__(copy, "_created_by_name", by_name)
        return copy

    def _schemas_created(self, name: str) -> frozenset[str | None]:
        """The schemas (None: not qualified, search_path not known) in which the plan created ``name``."""
        by_name = self.__dict__.get("_created_by_name")
        if by_name is None:
            by_name = {}
            for schema, created in self.created:
                by_name[created] = by_name.get(created, frozenset()) | {schema}
            object.__setattr__(self, "_created_by_name", by_name)
        return by_name.get(name, frozenset())

    # -- resolution ------------------------------------------------------------------------------

    def _created_keys(self, names: Iterable[str]) -> frozenset[tuple[str | None, str]]:
        runs = self.current_runs
        keys: set[tuple[str | None, str]] = set()
        for written in names:
            schema, name = split_name(written)
            if schema is not None:
                keys.add((schema, name))
            elif runs is None:
                keys.add((None, name))
            else:
                # CREATE TABLE goes to the first schema of the path; with none, PostgreSQL refuses it.
                keys.update((first, name) for first in (runs.schemas or runs.tail[:1]))
        return frozenset(keys)

    def _figure(self, schema: str, name: str) -> TableSize | None:
        if (schema, name) in self.created:
            return TableSize(0, 0, source=_NEW, schema=schema)
        if self.snapshot is not None:
            size = self.snapshot.tables.get((schema, name))
            if size is not None:
                return replace(size, schema=schema)
        return None

    def _no_figure(self, schema: str | None, note: str | None = None) -> TableSize:
        if self.assume_rows is not None and note is None:
            return TableSize(self.assume_rows, None, source="assumed", schema=schema)
        return TableSize(None, None, source="unknown", schema=schema, note=note)

    def _along(self, path: tuple[str, ...], name: str, runs: Runs) -> TableSize:
        """The first table ``name`` on ``path``, as PostgreSQL looks an unqualified name up."""
        for schema in path:
            found = self._figure(schema, name)
            if found is not None:
                return found
        elsewhere = sorted(self.snapshot.by_name.get(name, {})) if self.snapshot is not None else []
        if not elsewhere:
            return self._no_figure(None)
        searched = ", ".join(runs.schemas + path) if len(runs.schemas) <= 1 else \
            f"each of the {runs.label}, then {', '.join(path) or 'nothing'}"
        return self._no_figure(None, note=(
            f'"{name}" is in no schema of the search_path ({searched or "empty"}) but exists in '
            f"{_schemas_list(elsewhere)}: counted as large; check the search_path the gate uses "
            "(`search_path` in the configuration)"))

    def _without_path(self, name: str) -> TableSize:
        """An unqualified name when the search_path is not known: the one schema that has it."""
        if (None, name) in self.created:
            return TableSize(0, 0, source=_NEW)
        candidates = set(self.snapshot.by_name.get(name, {})) if self.snapshot is not None else set()
        candidates |= {schema for schema in self._schemas_created(name) if schema is not None}
        if not candidates:
            return self._no_figure(None)
        if len(candidates) == 1:
            return self._figure(candidates.pop(), name)
        return TableSize(None, None, source="ambiguous", note=(
            f'"{name}" is a table in {_schemas_list(sorted(candidates))} and the search_path is not known '
            "(a schema_version 1 snapshot): counted as large; dump the snapshot again with this version, "
            "or set `search_path` in the configuration"))


def _schemas_list(schemas: list[str]) -> str:
    shown = ", ".join(schemas[:5]) + (f" and {len(schemas) - 5} more" if len(schemas) > 5 else "")
    return f"schema {shown}" if len(schemas) == 1 else f"schemas {shown}"


def is_large(size: TableSize, max_rows: int, max_bytes: int | None = None) -> bool:
    """Whether a table is above the blocking threshold; an unknown row count counts as large."""
    if size.rows is None or size.rows > max_rows:
        return True
    return max_bytes is not None and size.total_bytes is not None and size.total_bytes > max_bytes


def format_bytes(n: int | None) -> str:
    """``n`` bytes for people: ``"8.0 kB"``, ``"1.2 GB"`` (powers of 1024, as ``pg_size_pretty``)."""
    if n is None:
        return "unknown"
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1024
        if value < 1024 or unit == "PB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_size(size: TableSize) -> str:
    """A table size for messages: ``"2,000,000 rows, 1.2 GB"``, ``"unknown size"``."""
    if size.rows is None:
        text = "unknown size" if size.total_bytes is None else f"unknown rows, {format_bytes(size.total_bytes)}"
    else:
        text = f"{size.rows:,} rows"
        if size.total_bytes is not None:
            text += f", {format_bytes(size.total_bytes)}"
    if size.source == "assumed":
        text += " (assumed)"
    return text


def format_schema(size: TableSize) -> str:
    """Which copy a size is, for messages, when it is not simply ``public``'s: ``"in schema app"``,
    ``"in schema t2, the largest of 3 copies (the statement runs in each of 3 schemas in turn)"``; ``""``."""
    if size.runs > 1:
        where = f"in schema {size.schema}, the largest copy" if size.schema else "the largest copy"
        return f"{where} (the statement runs {size.runs} times, in one schema after the other)"
    if size.schema and size.schema != "public":
        return f"in schema {size.schema}"
    return ""


# -- reading the database ----------------------------------------------------------------------

# Catalog and statistics views only: none of this takes a lock on a user table. relkind 'r' is an
# ordinary table (partitions included), 'p' a partitioned table. Temporary tables belong to
# another session and are skipped.
_TABLES_SQL = """
SELECT c.oid::bigint, n.nspname, c.relname, c.relkind::text, c.reltuples::float8, c.relpages,
       coalesce(s.n_live_tup, 0), (SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p')
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""

# Partition edges from the catalog rather than pg_partition_tree(), which locks every partition.
_PARTITIONS_SQL = """
SELECT i.inhparent::bigint, i.inhrelid::bigint, c.relkind::text
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
WHERE c.relispartition
"""

# The size functions open the relation with ACCESS SHARE; they return NULL for a table dropped
# since the catalog read. The oids go in as one array literal (a string), which binds the same
# way through psycopg's server-side and Django's client-side cursors.
_SIZES_SQL = """
SELECT oid::bigint, pg_catalog.pg_relation_size(oid), pg_catalog.pg_total_relation_size(oid)
FROM unnest(%s::oid[]) AS oid
"""


def _oid_array(oids: Iterable[int]) -> str:
    return "{" + ",".join(str(int(oid)) for oid in oids) + "}"


def read_database_stats(
    source: Any,
    *,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> Snapshot:
    """Read the size of every table of a PostgreSQL database, without writing and without waiting long.

    ``source`` is a libpq connection string (``"host=... dbname=..."`` or a ``postgresql://`` URL),
    an open ``psycopg.Connection``, or a Django connection (``django.db.connections[alias]``,
    PostgreSQL backend on psycopg 3). A connection passed in is left in the transaction state it
    was in: outside a transaction the read is its own read-only transaction, inside one it is a
    savepoint rolled back at the end. Raises :class:`StatsError` if the database cannot be read.

    Rows: ``pg_class.reltuples`` (as of the last VACUUM/ANALYZE), raised to
    ``pg_stat_user_tables.n_live_tup`` when that is higher; for a table never vacuumed or analysed,
    ``n_live_tup``, or 0 when its heap is empty, else unknown. A partitioned table sums its
    partitions. A table whose size cannot be read in time keeps its row figure and gets
    ``total_bytes`` ``None``.
    """
    import psycopg

    if isinstance(source, str):
        return _read_from_dsn(source, statement_timeout_ms, lock_timeout_ms)
    if isinstance(source, psycopg.Connection):
        return _read(source, statement_timeout_ms, lock_timeout_ms)
    if hasattr(source, "ensure_connection") and hasattr(source, "vendor"):
        return _read(_django_raw_connection(source), statement_timeout_ms, lock_timeout_ms)
    raise TypeError(f"read_database_stats() needs a DSN, a psycopg.Connection or a Django connection, not {source!r}")


def _django_raw_connection(django_connection: Any) -> psycopg.Connection:
    import psycopg

    alias = getattr(django_connection, "alias", "?")
    if django_connection.vendor != "postgresql":
        raise StatsError(f"database {alias!r} is {django_connection.vendor}, not PostgreSQL; "
                         "migration-guard reads sizes only from PostgreSQL")
    try:
        django_connection.ensure_connection()
    except Exception as exc:
        raise StatsError(f"cannot connect to database {alias!r}: {exc}; check DATABASES[{alias!r}] "
                         "and that the server is reachable from here") from exc
    raw = django_connection.connection
    if not isinstance(raw, psycopg.Connection):
        raise StatsError(f"database {alias!r} uses {type(raw).__module__}, not psycopg 3; "
                         "install psycopg 3 (`pip install 'psycopg[binary]'`) so Django uses it")
    return raw


def _read_from_dsn(dsn: str, statement_timeout_ms: int, lock_timeout_ms: int) -> Snapshot:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        # The parser's message can quote the string, password included.
        raise StatsError("the DSN is not a valid libpq connection string or postgresql:// URL; "
                         "see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING") from None
    params.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
    params.setdefault("application_name", "migration-guard stats")
    try:
        conn = psycopg.connect(**params)
    except psycopg.Error as exc:
        # libpq's message spans lines; one line reads better in CI logs.
        reason = _redact(" ".join(str(exc).split()), params.get("password"))
        raise StatsError(f"cannot connect to {_describe_dsn(dsn)}: {reason}; check the DSN, "
                         "that the server is reachable from here and that the role may connect") from None
    with conn:
        return _read(conn, statement_timeout_ms, lock_timeout_ms, where=_describe_dsn(dsn))


def _describe_dsn(dsn: str) -> str:
    # For messages: where the DSN points, never its password.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "the database (unparsable DSN)"
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "the default socket"
    text = f'database "{params.get("dbname") or os.environ.get("PGDATABASE") or "(default)"}" on host "{host}"'
    if params.get("port"):
        text += f" port {params['port']}"
    if params.get("user"):
        text += f' as "{params["user"]}"'
    return text


def _redact(text: str, password: str | None) -> str:
    return text.replace(password, "********") if password else text


def _read(conn: psycopg.Connection, statement_timeout_ms: int, lock_timeout_ms: int,
          where: str | None = None) -> Snapshot:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.pq import TransactionStatus

    where = where or f'database "{conn.info.dbname}" on host "{conn.info.host}"'
    if conn.info.transaction_status == TransactionStatus.INERROR:
        raise StatsError(f"cannot read table sizes from {where}: the connection is in a failed transaction; "
                         "roll it back first")
    try:
        # force_rollback: BEGIN ... ROLLBACK on an idle connection, SAVEPOINT ... ROLLBACK TO inside
        # a caller's transaction. Either way SET LOCAL and READ ONLY end with the block and the
        # caller's transaction is as it was, even after a timeout.
        with conn.transaction(force_rollback=True):
            # Setting read-only is allowed at any point, also inside a subtransaction.
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
            conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
            taken_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            version_num, database = conn.execute(
                "SELECT current_setting('server_version_num')::int, current_database()"
            ).fetchone()
            search_path = _session_search_path(conn)
            relations = conn.execute(_TABLES_SQL).fetchall()
            edges = conn.execute(_PARTITIONS_SQL).fetchall()
            leaves = [oid for oid, _schema, _name, relkind, *_ in relations if relkind == "r"]
            sizes = _read_sizes(conn, leaves)
    except (pg_errors.QueryCanceled, pg_errors.LockNotAvailable) as exc:
        raise StatsError(f"cannot read table sizes from {where}: the catalog did not answer in time "
                         f"({' '.join(str(exc).split())}); retry when the database is less busy") from None
    except psycopg.Error as exc:
        raise StatsError(f"cannot read table sizes from {where}: {' '.join(str(exc).split())}; "
                         "check that the role may read pg_class and pg_stat_user_tables") from None
    return Snapshot(pg_version=version_num // 10000, server_version_num=version_num, taken_at=taken_at,
                    database=database, tables=_figures(relations, edges, sizes), search_path=search_path)


def read_search_path(source: Any) -> tuple[str, ...]:
    """The effective search_path of a session (a ``psycopg.Connection`` or a Django connection, as it
    was opened: role and database settings, connection options, a ``SET ROLE``): the schemas of its
    ``search_path`` setting that exist, in order, ``$user`` standing for the current role. Read in a
    read-only transaction (a savepoint inside a caller's), which is rolled back."""
    import psycopg

    conn = source if isinstance(source, psycopg.Connection) else _django_raw_connection(source)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(f"SET LOCAL statement_timeout = {DEFAULT_STATEMENT_TIMEOUT_MS}")
            return _session_search_path(conn)
    except psycopg.Error as exc:
        raise StatsError(f"cannot read the search_path: {' '.join(str(exc).split())}") from None


def _session_search_path(conn: psycopg.Connection) -> tuple[str, ...]:
    # Not current_schemas(): it also leaves out the schemas this role may not use, and the role that
    # runs migrate may well use them. PostgreSQL skips only the ones that do not exist.
    setting, user = conn.execute("SELECT current_setting('search_path'), current_user").fetchone()
    schemas = parse_search_path(setting, user)
    if not schemas:
        return ()
    present = {name for (name,) in conn.execute("SELECT nspname FROM pg_catalog.pg_namespace").fetchall()}
    return tuple(schema for schema in schemas if schema in present)


# Tables per size query: pg_total_relation_size opens every table, index and TOAST table, about 0.6 ms
# a table on a loaded server, and each query must end well within the statement_timeout. A database
# with a schema per tenant may have tens of thousands of tables.
_SIZES_PER_QUERY = 2000


def _read_sizes(conn: psycopg.Connection, oids: list[int]) -> dict[int, tuple[int | None, int | None]]:
    """``oid -> (heap bytes, total bytes)``; ``(None, None)`` for a table whose lock did not come in time.

    One query for every ``_SIZES_PER_QUERY`` tables; if one of them is locked (or the query is too
    slow), one query per table of that batch, each in its own savepoint so one locked table costs only
    its own figure.
    """
    from psycopg import errors as pg_errors

    sizes: dict[int, tuple[int | None, int | None]] = {}
    for start in range(0, len(oids), _SIZES_PER_QUERY):
        batch = oids[start:start + _SIZES_PER_QUERY]
        try:
            with conn.transaction():
                sizes.update({oid: (heap, total)
                              for oid, heap, total in conn.execute(_SIZES_SQL, [_oid_array(batch)])})
            continue
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled):
            pass
        for oid in batch:
            try:
                # Rolled back rather than released: that drops this table's ACCESS SHARE at once.
                with conn.transaction(force_rollback=True):
                    (_, heap, total), = conn.execute(_SIZES_SQL, [_oid_array([oid])]).fetchall()
            except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled):
                heap = total = None
            sizes[oid] = (heap, total)
    return sizes


def _figures(relations, edges, sizes) -> dict[str, TableSize]:
    own: dict[int, TableSize] = {}
    names: dict[int, tuple[str, str]] = {}
    kinds: dict[int, str] = {}
    for oid, schema, name, relkind, reltuples, relpages, live, indexes in relations:
        names[oid] = (schema, name)
        kinds[oid] = relkind
        if relkind == "r":
            heap, total = sizes.get(oid, (None, None))
            own[oid] = TableSize(_rows(reltuples, relpages, live, heap), total, source="database", indexes=indexes)

    children: dict[int, list[tuple[int, str]]] = {}
    for parent, child, relkind in edges:
        children.setdefault(parent, []).append((child, relkind))

    def leaf_sizes(oid: int) -> list[TableSize]:
        result = []
        for child, relkind in children.get(oid, []):
            if relkind == "p":
                result.extend(leaf_sizes(child))
            elif child in own:
                result.append(own[child])
            else:  # a foreign or otherwise unreadable partition: its size is unknown
                result.append(TableSize(None, None, source="database"))
        return result

    tables: dict[tuple[str, str], TableSize] = {}
    for oid, name in names.items():
        if kinds[oid] == "p":
            parts = leaf_sizes(oid)
            tables[name] = TableSize(_sum(p.rows for p in parts), _sum(p.total_bytes for p in parts), source="database",
                                     indexes=max((p.indexes for p in parts if p.indexes is not None), default=None))
        else:
            tables[name] = own[oid]
    return tables


def _rows(reltuples: float, relpages: int, live: int, heap_bytes: int | None) -> int | None:
    if reltuples >= 0:
        # reltuples is as of the last VACUUM/ANALYZE; rows inserted since then show in n_live_tup.
        # The larger figure errs towards "large", the safe side.
        return max(round(reltuples), live)
    # reltuples -1: never vacuumed or analysed (PostgreSQL 14+).
    if live > 0:
        return live
    if relpages == 0 and heap_bytes == 0:
        return 0
    return None


def _sum(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total
