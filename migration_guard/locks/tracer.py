"""Measure what one SQL statement really does on a PostgreSQL server: its locks, rewrites and scans.

The lock model (:mod:`migration_guard.locks`) predicts; this module measures, so the prediction
can be checked against the server itself (the test suite does that for every modelled form, and
``migration-guard trace`` lets a user do it for any statement).

How it measures, on a **throwaway** database (setup SQL is committed there, never cleaned up):

- A statement that may run in a transaction block runs between ``BEGIN`` and ``ROLLBACK``.
  Before the rollback the tracer reads ``pg_locks`` for its own backend (every relation lock is
  held until the transaction ends), ``pg_class.relfilenode`` of every relation (a table whose
  storage changed was rewritten; an index whose storage is new was built) and
  ``pg_stat_xact_user_tables`` (the transaction's own, not yet flushed, scan counters: in
  PostgreSQL 15+ ``pg_stat_user_tables`` only sees them after the transaction ends).
- A statement that cannot (``CREATE INDEX CONCURRENTLY``, ``DROP INDEX CONCURRENTLY``, ``REINDEX
  CONCURRENTLY``, ...) runs on its own connection while a second one samples that backend's
  ``pg_locks`` rows. Such statements take their locks in phases across several internal
  transactions, so sampling alone could miss one. A *holder* transaction holding SHARE UPDATE
  EXCLUSIVE on every table makes the first lock request wait where it can be seen (every statement
  of this family asks for SHARE UPDATE EXCLUSIVE or stronger on its table first, and ``pg_locks``
  shows the mode asked for); it is released once the statement is seen waiting. Event
  triggers (``ddl_command_end``, ``sql_drop``) report the locks held inside the last phase, which
  is too quick to sample (``DROP INDEX CONCURRENTLY`` takes ACCESS EXCLUSIVE on the index there).
  Scan counters are read from ``pg_stat_user_tables`` after forcing the statement's backend to
  flush them (``pg_stat_force_next_flush()``, PostgreSQL 15+; 14 reports within 500 ms).

Locks on system catalogs, the tracer's own catalog queries, virtual transaction ids and
transaction ids are not reported.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg
from pglast import ast, parse_sql
from psycopg import errors

from migration_guard.locks.modes import LockMode

__all__ = ["TraceError", "TracedLock", "Trace", "trace"]

# Relations with an oid below FirstNormalObjectId belong to the system (catalogs and their views).
_FIRST_NORMAL_OID = 16384

_RELKINDS = {
    "r": "table",
    "p": "partitioned table",
    "i": "index",
    "I": "partitioned index",
    "S": "sequence",
    "t": "toast table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
    "c": "composite type",
}

# Every user relation with what it belongs to: an index's table, a toast table's table, a
# sequence's owning table (serial or identity).
_RELATIONS_SQL = """
SELECT c.oid,
       CASE WHEN n.nspname = ANY (current_schemas(false)) THEN c.relname
            ELSE n.nspname || '.' || c.relname END,
       c.relkind::text,
       c.relfilenode,
       pg_relation_size(c.oid),
       (SELECT CASE WHEN tn.nspname = ANY (current_schemas(false)) THEN t.relname
                    ELSE tn.nspname || '.' || t.relname END
          FROM pg_class t JOIN pg_namespace tn ON tn.oid = t.relnamespace
         WHERE t.oid = COALESCE(
                 (SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = c.oid),
                 (SELECT o.oid FROM pg_class o WHERE o.reltoastrelid = c.oid),
                 (SELECT d.refobjid FROM pg_depend d
                   WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                     AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                     AND c.relkind = 'S'
                   LIMIT 1)))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid >= %(first)s
"""

_LOCKS_SQL = """
SELECT l.relation::oid, l.mode, l.granted
  FROM pg_locks l
 WHERE l.locktype = 'relation' AND l.pid = %(pid)s
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.relation::oid >= %(first)s
"""

_XACT_STATS_SQL = "SELECT relid, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables"
_STATS_SQL = "SELECT relid, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) FROM pg_stat_user_tables"


class TraceError(RuntimeError):
    """The setup or the statement failed on the server; nothing was measured."""


@dataclass(frozen=True)
class TracedLock:
    """The strongest lock the statement held (or asked for) on one relation."""

    relation: str  # unqualified when its schema is on the search_path
    relkind: str  # "table", "index", "sequence", "toast table", ...
    mode: LockMode
    of_table: str | None = None  # the table an index, toast table or owned sequence belongs to
    created: bool = False  # the statement created this relation (nobody else can see it yet)


@dataclass(frozen=True)
class Trace:
    """What one statement did on a real server."""

    sql: str
    server_version: int  # major version, e.g. 18
    in_transaction: bool  # ran inside BEGIN ... ROLLBACK (False: the CONCURRENTLY family)
    locks: tuple[TracedLock, ...] = ()  # one per relation, strongest mode, sorted by name
    rewritten: frozenset[str] = frozenset()  # tables whose storage (relfilenode) changed, rows copied
    # Tables given new, empty storage (TRUNCATE, REFRESH ... WITH NO DATA): their rows were dropped,
    # not copied; the empty indexes built for them are not index builds.
    truncated: frozenset[str] = frozenset()
    index_built: frozenset[str] = frozenset()  # tables that got new index storage
    # Sequential scans started on each table (a rewrite, an index build and a validation scan
    # each start one): {table: count}.
    seq_scans: tuple[tuple[str, int], ...] = ()

    @property
    def modes(self) -> dict[str, str]:
        """``{relation: pg_locks mode name}``, e.g. ``{"shop_order": "AccessExclusiveLock"}``."""
        return {lock.relation: lock.mode.pg_name for lock in self.locks}

    @property
    def scanned(self) -> frozenset[str]:
        """Tables the statement read sequentially (in full, for the tables this tool is run on)."""
        return frozenset(table for table, count in self.seq_scans if count)

    def lock_on(self, relation: str) -> LockMode | None:
        """The mode held on ``relation``, if any."""
        for lock in self.locks:
            if lock.relation == relation:
                return lock.mode
        return None


@dataclass(frozen=True)
class _Relation:
    oid: int
    name: str
    relkind: str
    relfilenode: int
    size: int
    of_table: str | None


def trace(dsn: str, sql: str, setup: str | None = None, *, timeout: float = 30.0) -> Trace:
    """Run ``sql`` on the throwaway database at ``dsn`` and measure its locks, rewrites and scans.

    ``setup`` (any SQL, several statements allowed) runs first and is committed. ``sql`` is rolled
    back when it can run in a transaction block; otherwise (the CONCURRENTLY family) it is
    committed. Raises :class:`TraceError` when the setup or the statement fails, or when ``sql`` is
    not exactly one statement (or is BEGIN/COMMIT/..., which would end the tracer's transaction).
    """
    _check_one_statement(sql)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if setup:
            try:
                conn.execute(setup)
            except psycopg.Error as exc:
                raise TraceError(f"setup failed: {exc}") from exc
        version = conn.info.server_version // 10000
        try:
            return _trace_in_transaction(conn, sql, version)
        except errors.ActiveSqlTransaction:
            # "cannot run inside a transaction block": measure it from the outside instead.
            pass
    return _trace_outside_transaction(dsn, sql, version, timeout)


def _check_one_statement(sql: str) -> None:
    try:
        statements = parse_sql(sql)
    except Exception as exc:  # pglast.parser.ParseError
        raise TraceError(f"statement does not parse: {exc}") from exc
    if len(statements) != 1:
        raise TraceError(f"trace one statement at a time, not {len(statements)}")
    if isinstance(statements[0].stmt, ast.TransactionStmt):
        raise TraceError("transaction control (BEGIN, COMMIT, ...) cannot be traced")


def _trace_in_transaction(conn: psycopg.Connection, sql: str, version: int) -> Trace:
    before = _relations(conn)
    pid = conn.info.backend_pid
    conn.execute("BEGIN")
    try:
        # Parallel index builds would count scans in other backends; one backend keeps counts exact.
        conn.execute("SET LOCAL max_parallel_maintenance_workers = 0")
        conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        stats_before = _stats(conn, _XACT_STATS_SQL)
        try:
            conn.execute(sql)
        except errors.ActiveSqlTransaction:
            raise
        except psycopg.Error as exc:
            raise TraceError(f"statement failed: {exc}") from exc
        held = [(oid, mode) for oid, mode, _granted in conn.execute(_LOCKS_SQL, _params(pid)).fetchall()]
        after = _relations(conn)
        stats_after = _stats(conn, _XACT_STATS_SQL)
    finally:
        conn.execute("ROLLBACK")
    return _result(sql, version, True, held, before, after, stats_before, stats_after)


def _trace_outside_transaction(dsn: str, sql: str, version: int, timeout: float) -> Trace:
    with (
        psycopg.connect(dsn, autocommit=True) as runner,
        psycopg.connect(dsn, autocommit=True) as observer,
        psycopg.connect(dsn) as holder,
    ):
        runner.execute("SET max_parallel_maintenance_workers = 0")
        _flush_stats(runner, version)
        before = _relations(observer)
        stats_before = _shared_stats(observer, version)
        for table in (r for r in before.values() if r.relkind in ("r", "p")):
            holder.execute(f"LOCK TABLE ONLY {_quoted(holder, table.oid)} IN SHARE UPDATE EXCLUSIVE MODE")

        seen: dict[int, str] = {}
        runner.add_notice_handler(lambda notice: _record_notice(notice, seen))
        failure: list[BaseException] = []

        def run() -> None:
            try:
                runner.execute(sql)
                _flush_stats(runner, version)
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)

        watching = _watch_ddl_end(observer)
        try:
            worker = threading.Thread(target=run, daemon=True)
            pid = runner.info.backend_pid
            started = time.monotonic()
            worker.start()
            held = True
            while worker.is_alive():
                _sample(observer, pid, seen)
                waited = time.monotonic() - started
                if held and (waited > 0.5 or _waiting(observer, pid)):
                    # stopped at the holder (or not stopping at all): sample once more, then let it go
                    _sample(observer, pid, seen)
                    holder.rollback()
                    held = False
                if waited > timeout:
                    observer.execute("SELECT pg_cancel_backend(%s)", (pid,))
                    worker.join()
                    raise TraceError(f"statement did not finish within {timeout} s: {sql}")
            worker.join()
        finally:
            holder.rollback()
            if watching:
                observer.execute(f"DROP SCHEMA {_WATCH_SCHEMA} CASCADE")
        if failure:
            raise TraceError(f"statement failed: {failure[0]}") from failure[0]
        after = _relations(observer)
        stats_after = _shared_stats(observer, version)
    return _result(sql, version, False, list(seen.items()), before, after, stats_before, stats_after)


# The last step of DROP INDEX CONCURRENTLY (ACCESS EXCLUSIVE on the index, after waiting for
# every transaction) is too quick to sample reliably; event triggers run inside that step and
# report the backend's locks as a notice.
_WATCH_SCHEMA = "migration_guard_trace"
_NOTICE_PREFIX = "migration_guard.trace locks:"
_WATCH_SQL = f"""
CREATE SCHEMA {_WATCH_SCHEMA};
CREATE FUNCTION {_WATCH_SCHEMA}.report_locks() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE '{_NOTICE_PREFIX}%', COALESCE((
    SELECT string_agg(relation::oid || '=' || mode, ',') FROM pg_locks
     WHERE pid = pg_backend_pid() AND locktype = 'relation' AND relation::oid >= {_FIRST_NORMAL_OID}), '');
END $$;
CREATE EVENT TRIGGER migration_guard_trace_end ON ddl_command_end
  EXECUTE FUNCTION {_WATCH_SCHEMA}.report_locks();
CREATE EVENT TRIGGER migration_guard_trace_drop ON sql_drop
  EXECUTE FUNCTION {_WATCH_SCHEMA}.report_locks();
"""


def _watch_ddl_end(conn: psycopg.Connection) -> bool:
    """Install the lock-reporting event triggers; False when not allowed (not a superuser)."""
    try:
        with conn.transaction():
            conn.execute(_WATCH_SQL)
    except errors.InsufficientPrivilege:
        return False
    return True


def _record_notice(notice, seen: dict[int, str]) -> None:
    message = notice.message_primary or ""
    if not message.startswith(_NOTICE_PREFIX):
        return
    for item in filter(None, message[len(_NOTICE_PREFIX):].split(",")):
        oid, mode = item.split("=")
        seen[int(oid)] = _stronger(seen.get(int(oid)), mode)


def _waiting(conn: psycopg.Connection, pid: int) -> bool:
    return bool(conn.execute("SELECT cardinality(pg_blocking_pids(%s))", (pid,)).fetchone()[0])


def _sample(observer: psycopg.Connection, pid: int, seen: dict[int, str]) -> None:
    for oid, mode, _granted in observer.execute(_LOCKS_SQL, _params(pid)).fetchall():
        seen[oid] = _stronger(seen.get(oid), mode)


def _shared_stats(observer: psycopg.Connection, version: int) -> dict[int, int]:
    """Scan counters every backend has reported so far."""
    if version < 15:
        # PostgreSQL 14's statistics collector receives reports asynchronously, every 500 ms at most.
        time.sleep(0.7)
    observer.execute("SELECT pg_stat_clear_snapshot()")
    return _stats(observer, _STATS_SQL)


def _flush_stats(conn: psycopg.Connection, version: int) -> None:
    if version >= 15:
        # Flushed when the backend next goes idle, i.e. right after this call.
        conn.execute("SELECT pg_stat_force_next_flush()")


def _params(pid: int) -> dict:
    return {"pid": pid, "first": _FIRST_NORMAL_OID}


def _quoted(conn: psycopg.Connection, oid: int) -> str:
    return conn.execute("SELECT %s::oid::regclass::text", (oid,)).fetchone()[0]


def _relations(conn: psycopg.Connection) -> dict[int, _Relation]:
    rows = conn.execute(_RELATIONS_SQL, {"first": _FIRST_NORMAL_OID}).fetchall()
    return {row[0]: _Relation(*row) for row in rows}


def _stats(conn: psycopg.Connection, query: str) -> dict[int, int]:
    return {relid: seq_scan for relid, seq_scan, _tup, _idx in conn.execute(query).fetchall()}


def _stronger(current: str | None, mode: str) -> str:
    try:
        new = LockMode.from_pg_name(mode)
    except ValueError:
        return current or mode
    if current is None or new > LockMode.from_pg_name(current):
        return mode
    return current


def _result(sql, version, in_transaction, held, before, after, stats_before, stats_after) -> Trace:
    strongest: dict[int, str] = {}
    for oid, mode in held:
        strongest[oid] = _stronger(strongest.get(oid), mode)
    locks = []
    for oid, mode in strongest.items():
        relation = before.get(oid) or after.get(oid)
        if relation is None:  # created and dropped by the statement itself
            continue
        locks.append(
            TracedLock(
                relation=relation.name,
                relkind=_RELKINDS.get(relation.relkind, relation.relkind),
                mode=LockMode.from_pg_name(mode),
                of_table=relation.of_table,
                created=oid not in before,
            )
        )
    new_storage = {
        oid: rel for oid, rel in before.items()
        if rel.relkind in ("r", "m") and oid in after and after[oid].relfilenode != rel.relfilenode
    }
    truncated = frozenset(rel.name for oid, rel in new_storage.items() if rel.size and not after[oid].size)
    rewritten = frozenset(rel.name for rel in new_storage.values()) - truncated
    # An index is built when its storage is new. ALTER COLUMN TYPE re-creates an index it can
    # keep under a new oid but on the old storage: that is not a build.
    old_storage = {rel.relfilenode for rel in before.values()}
    tables_before = {rel.name for rel in before.values() if rel.relkind in ("r", "m", "p")}
    index_built = frozenset(
        rel.of_table
        for rel in after.values()
        if rel.relkind == "i"
        and rel.of_table in tables_before  # an index on a table the statement created is no build
        and rel.of_table not in truncated  # an empty index for emptied storage is no build either
        and rel.relfilenode not in old_storage
    )
    scans = []
    for oid, rel in before.items():
        delta = stats_after.get(oid, 0) - stats_before.get(oid, 0)
        # building the empty indexes of a truncated table "scans" its empty storage
        if rel.relkind in ("r", "m") and delta > 0 and rel.name not in truncated:
            scans.append((rel.name, delta))
    return Trace(
        sql=sql,
        server_version=version,
        in_transaction=in_transaction,
        locks=tuple(sorted(locks, key=lambda lock: lock.relation)),
        rewritten=rewritten,
        truncated=truncated,
        index_built=index_built,
        seq_scans=tuple(sorted(scans)),
    )
