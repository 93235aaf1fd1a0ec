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

Snapshot file format (``schema_version`` 1), as written by ``migration-guard stats dump``::

    {
      "schema_version": 1,
      "pg_version": 16,
      "server_version_num": 160004,
      "taken_at": "2025-01-31T12:00:00+00:00",
      "database": "shop",
      "tables": {
        "shop_order": {"rows": 2000000, "total_bytes": 123456789},
        "billing.invoice": {"rows": null, "total_bytes": 8192}
      }
    }

Every key shown is required. ``server_version_num`` and ``database`` may be ``null``; ``rows`` and
``total_bytes`` are non-negative integers or ``null`` (unknown). A table in the ``public`` schema
is keyed by its bare name, any other as ``schema.name``; names are case-sensitive, as PostgreSQL
stores them. A partitioned table's figures are the sums over its partitions.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migration_guard.model import TableSize

if TYPE_CHECKING:  # psycopg is imported where a database is read: explain and report need none
    import psycopg

__all__ = [
    "SCHEMA_VERSION",
    "Snapshot",
    "StatsError",
    "TableSizes",
    "format_bytes",
    "format_size",
    "is_large",
    "load_snapshot",
    "read_database_stats",
    "table_key",
    "write_snapshot",
]

SCHEMA_VERSION = 1

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
    """Table sizes of one database at one moment, and the server version.

    ``tables`` maps :func:`table_key` names to :class:`TableSize`; treat it as read-only.
    """

    pg_version: int  # major version, e.g. 16
    server_version_num: int | None
    taken_at: str  # UTC, ISO 8601
    database: str | None
    tables: Mapping[str, TableSize] = field(default_factory=dict, hash=False)

    def to_json(self) -> str:
        """The snapshot in the file format described in this module's docstring."""
        document = {
            "schema_version": SCHEMA_VERSION,
            "pg_version": self.pg_version,
            "server_version_num": self.server_version_num,
            "taken_at": self.taken_at,
            "database": self.database,
            # Sorted so that two dumps of the same database diff cleanly.
            "tables": {
                name: {"rows": size.rows, "total_bytes": size.total_bytes}
                for name, size in sorted(self.tables.items())
            },
        }
        return json.dumps(document, indent=2) + "\n"


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
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None

    if not isinstance(document, dict):
        raise fail(f"expected a JSON object at the top level, found {_json_type(document)}")
    _check_keys(document, {"schema_version", "pg_version", "server_version_num", "taken_at", "database", "tables"},
                "the top level", fail)
    version = document["schema_version"]
    if version != SCHEMA_VERSION:
        raise fail(f"schema_version is {json.dumps(version)}, this migration-guard reads only {SCHEMA_VERSION}")
    pg_version = document["pg_version"]
    if not _is_int(pg_version) or pg_version < 1:
        raise fail("pg_version must be a positive integer (the major version, e.g. 16), "
                   f"found {json.dumps(pg_version)}")
    server_version_num = document["server_version_num"]
    if server_version_num is not None:
        if not _is_int(server_version_num) or server_version_num < 1:
            raise fail("server_version_num must be a positive integer or null, "
                       f"found {json.dumps(server_version_num)}")
        if server_version_num // 10000 != pg_version:
            raise fail(f"pg_version {pg_version} does not match server_version_num {server_version_num}")
    taken_at = document["taken_at"]
    if not isinstance(taken_at, str):
        raise fail(f"taken_at must be a string, found {json.dumps(taken_at)}")
    database = document["database"]
    if database is not None and not isinstance(database, str):
        raise fail(f"database must be a string or null, found {json.dumps(database)}")
    entries = document["tables"]
    if not isinstance(entries, dict):
        raise fail(f"tables must be a JSON object, found {_json_type(entries)}")

    tables: dict[str, TableSize] = {}
    for name, entry in entries.items():
        if not name:
            raise fail("tables has an entry with an empty name")
        if not isinstance(entry, dict):
            raise fail(f"table {name!r} must be a JSON object, found {_json_type(entry)}")
        _check_keys(entry, {"rows", "total_bytes"}, f"table {name!r}", fail)
        figures = {}
        for key in ("rows", "total_bytes"):
            value = entry[key]
            if value is not None and (not _is_int(value) or value < 0):
                raise fail(f"table {name!r} has {key} {json.dumps(value)}, expected a non-negative integer or null")
            figures[key] = value
        tables[name] = TableSize(figures["rows"], figures["total_bytes"], source="snapshot")
    return Snapshot(pg_version, server_version_num, taken_at, database, tables)


def _check_keys(obj: dict, expected: set[str], where: str, fail) -> None:
    missing = sorted(expected - obj.keys())
    if missing:
        raise fail(f"{where} is missing {', '.join(missing)}")
    unknown = sorted(obj.keys() - expected)
    if unknown:
        # Most often a typo ("row"); reading past it would drop a figure silently.
        raise fail(f"{where} has unknown key {', '.join(map(repr, unknown))} (expected {', '.join(sorted(expected))})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


# -- looking sizes up --------------------------------------------------------------------------


def table_key(name: str) -> str:
    """The key a table is stored under: ``x`` for ``x``, ``"x"``, ``public.x``; ``s.x`` for ``s.x``.

    Quoted parts are unquoted and kept case-sensitive, as PostgreSQL does; unquoted parts are taken
    as written, since the SQL parser has already folded them to lower case.
    """
    parts = _split_identifier(name)
    if len(parts) >= 3:  # database.schema.table: the database is the one being read
        parts = parts[-2:]
    if len(parts) == 2 and parts[0] != "public":
        return f"{parts[0]}.{parts[1]}"
    return parts[-1]


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


@dataclass(frozen=True)
class TableSizes:
    """What the rules ask for a table's size: a snapshot's figures, the plan's new tables, a fallback.

    ``created``: tables created earlier in the plan (empty when the statement runs, so harmless
    to lock). ``assume_rows``: the row count to use for a table with no figure; without it such a
    table is unknown, which the rules treat as large.
    """

    snapshot: Snapshot | None = None
    assume_rows: int | None = None
    created: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "created", frozenset(table_key(name) for name in self.created))

    def of(self, table: str) -> TableSize:
        """The size of ``table`` (as written in the SQL), and where the figure came from."""
        key = table_key(table)
        if key in self.created:
            return TableSize(0, 0, source="new in this plan")
        if self.snapshot is not None and key in self.snapshot.tables:
            return self.snapshot.tables[key]
        if self.assume_rows is not None:
            return TableSize(self.assume_rows, None, source="assumed")
        return TableSize(None, None, source="unknown")

    def with_created(self, names: Iterable[str]) -> TableSizes:
        """A copy that also counts ``names`` as created earlier in the plan."""
        added = frozenset(table_key(name) for name in names) - self.created
        if not added:
            return self
        # Keys only the new names: replace() would key every created table again.
        copy = replace(self, created=frozenset())
        object.__setattr__(copy, "created", self.created | added)
        return copy


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


# -- reading the database ----------------------------------------------------------------------

# Catalog and statistics views only: none of this takes a lock on a user table. relkind 'r' is an
# ordinary table (partitions included), 'p' a partitioned table. Temporary tables belong to
# another session and are skipped.
_TABLES_SQL = """
SELECT c.oid::bigint, n.nspname, c.relname, c.relkind::text, c.reltuples::float8, c.relpages,
       coalesce(s.n_live_tup, 0)
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
                    database=database, tables=_figures(relations, edges, sizes))


def _read_sizes(conn: psycopg.Connection, oids: list[int]) -> dict[int, tuple[int | None, int | None]]:
    """``oid -> (heap bytes, total bytes)``; ``(None, None)`` for a table whose lock did not come in time.

    One query for all tables first; if any table is locked (or the query is too slow), one query
    per table, each in its own savepoint so one locked table costs only its own figure.
    """
    from psycopg import errors as pg_errors

    try:
        with conn.transaction():
            return {oid: (heap, total) for oid, heap, total in conn.execute(_SIZES_SQL, [_oid_array(oids)])}
    except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled):
        pass
    sizes: dict[int, tuple[int | None, int | None]] = {}
    for oid in oids:
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
    names: dict[int, str] = {}
    kinds: dict[int, str] = {}
    for oid, schema, name, relkind, reltuples, relpages, live in relations:
        names[oid] = name if schema == "public" else f"{schema}.{name}"
        kinds[oid] = relkind
        if relkind == "r":
            heap, total = sizes.get(oid, (None, None))
            own[oid] = TableSize(_rows(reltuples, relpages, live, heap), total, source="database")

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

    tables: dict[str, TableSize] = {}
    for oid, name in names.items():
        if kinds[oid] == "p":
            parts = leaf_sizes(oid)
            tables[name] = TableSize(_sum(p.rows for p in parts), _sum(p.total_bytes for p in parts), source="database")
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
