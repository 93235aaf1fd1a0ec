"""Pre-flight (edge): before the release gate gives a pass, the sessions on the live database that
hold or wait for locks on the tables the pending migrations will lock (the lock queue that turns an
instant DDL into an outage). Reads ``pg_locks`` and ``pg_stat_activity`` only; judging is MG009's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from migration_guard.locks.modes import LockMode
from migration_guard.model import Runs
from migration_guard.pipeline import MigrationResult
from migration_guard.rules.mg009_session_holding_conflicting_lock import PlannedLock, Session
from migration_guard.stats import TableSizes, split_name

__all__ = ["planned_locks", "read_sessions", "relation_name", "yields_to_lock_requests"]

_SESSIONS_SQL = """
SELECT a.pid, a.usename, a.application_name, a.state,
       EXTRACT(EPOCH FROM now() - a.xact_start)::float8,
       coalesce(a.query, ''), a.backend_type,
       n.nspname, c.relname,
       l.mode, l.granted
  FROM pg_locks l
  JOIN pg_class c ON c.oid = l.relation
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid() AND l.database = (
       SELECT oid FROM pg_database WHERE datname = current_database())
   AND c.relkind IN ('r', 'p')
"""


def relation_name(schema: str | None, name: str) -> str:
    """How pre-flight names a table: ``name`` in ``public`` (or when its schema is not known), else
    ``schema.name``."""
    return name if schema in (None, "public") else f"{schema}.{name}"


def planned_locks(results: Iterable[MigrationResult], created: Iterable[str] = (), *,
                  sizes: TableSizes | None = None, runs: Mapping[str, Runs | None] | None = None,
                  lock_timeout: str | None = None) -> list[PlannedLock]:
    """Every lock on an existing table the linted migrations will take, statement by statement, on
    every copy the statement reaches: the schema the search_path resolves each name to, in every
    schema the migration runs in (``runs``, by migration label). ``lock_timeout``: the session's,
    when the migrations run under one (safe_migrate); a migration's own SET or RESET overrides it."""
    created = list(created)
    sizes = sizes or TableSizes()
    planned = []
    for result in results:
        current = sizes.running((runs or {}).get(result.label)).with_created(created)
        for index, statement in enumerate(result.statements):
            for lock in statement.effects.locks:
                if lock.relkind != "table":
                    continue
                for copy in current.copies(lock.relation):
                    if copy.source == "new in this plan":
                        continue
                    planned.append(PlannedLock(relation_name(copy.schema, split_name(lock.relation)[1]), lock.mode,
                                               result.label, index, statement.parsed.fingerprint,
                                               statement.settings.get("lock_timeout", lock_timeout)))
    return planned


def yields_to_lock_requests(backend_type: str | None, query: str | None) -> bool:
    """Whether a session gives its lock up when a migration asks for a conflicting one: an autovacuum
    worker is cancelled by the server after ``deadlock_timeout`` (1 s by default), unless it runs to
    prevent transaction ID wraparound (PostgreSQL documentation, "The Autovacuum Daemon"; the same
    on 14-18). Such a worker shows ``(to prevent wraparound)`` in its query; when the query is not
    visible to the gate's role, the worker is kept (it may be one that does not yield)."""
    if backend_type != "autovacuum worker":
        return False
    text = query or ""
    return text.startswith("autovacuum:") and "to prevent wraparound" not in text


def read_sessions(connection, tables: set[str]) -> list[Session]:
    """Other sessions' table locks on ``tables`` (as :func:`relation_name` names them; Django
    connection), read in a READ ONLY transaction with short timeouts. pg_stat_activity shows other
    roles' queries only to members of pg_read_all_stats (see the role SQL in docs/ci-and-release.md)."""
    from django.db import transaction

    if not tables:
        return []
    sessions = []
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute("SET LOCAL statement_timeout = 5000")
            cursor.execute(_SESSIONS_SQL)
            rows = cursor.fetchall()
        transaction.set_rollback(True, using=connection.alias)
    for pid, user, application, state, age, query, backend_type, schema, table, mode, granted in rows:
        relation = relation_name(schema, table)
        if relation not in tables or yields_to_lock_requests(backend_type, query):
            continue
        try:
            lock_mode = LockMode.from_pg_name(mode)
        except ValueError:
            continue
        sessions.append(Session(pid, user, application or None, state, age, query or "<not visible to this role>",
                                relation, lock_mode, granted))
    return sessions
