"""Pre-flight (edge): before the release gate gives a pass, the sessions on the live database that
hold or wait for locks on the tables the pending migrations will lock (the lock queue that turns an
instant DDL into an outage). Reads ``pg_locks`` and ``pg_stat_activity`` only; judging is MG009's."""

from __future__ import annotations

from collections.abc import Iterable

from migration_guard.locks.modes import LockMode
from migration_guard.pipeline import MigrationResult
from migration_guard.rules.mg009_session_holding_conflicting_lock import PlannedLock, Session
from migration_guard.stats import table_key

__all__ = ["planned_locks", "read_sessions"]

_SESSIONS_SQL = """
SELECT a.pid, a.usename, a.application_name, a.state,
       EXTRACT(EPOCH FROM now() - a.xact_start)::float8,
       coalesce(a.query, ''),
       CASE WHEN n.nspname = ANY (current_schemas(false)) THEN c.relname ELSE n.nspname || '.' || c.relname END,
       l.mode, l.granted
  FROM pg_locks l
  JOIN pg_class c ON c.oid = l.relation
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid() AND l.database = (
       SELECT oid FROM pg_database WHERE datname = current_database())
   AND c.relkind IN ('r', 'p')
"""


def planned_locks(results: Iterable[MigrationResult], created: Iterable[str] = ()) -> list[PlannedLock]:
    """Every lock on an existing table the linted migrations will take, statement by statement."""
    new = {table_key(t) for t in created}
    planned = []
    for result in results:
        for index, statement in enumerate(result.statements):
            for lock in statement.effects.locks:
                if lock.relkind == "table" and table_key(lock.relation) not in new:
                    planned.append(PlannedLock(table_key(lock.relation), lock.mode, result.label, index,
                                               statement.parsed.fingerprint, statement.settings.get("lock_timeout")))
    return planned


def read_sessions(connection, tables: set[str]) -> list[Session]:
    """Other sessions' table locks on ``tables`` (Django connection), read in a READ ONLY
    transaction with short timeouts. pg_stat_activity shows other roles' queries only to
    members of pg_read_all_stats (see the README's role SQL)."""
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
    for pid, user, application, state, age, query, relation, mode, granted in rows:
        if table_key(relation) not in tables:
            continue
        try:
            lock_mode = LockMode.from_pg_name(mode)
        except ValueError:
            continue
        sessions.append(Session(pid, user, application or None, state, age, query or "<not visible to this role>",
                                table_key(relation), lock_mode, granted))
    return sessions
