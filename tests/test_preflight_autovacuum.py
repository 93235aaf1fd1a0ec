"""Pre-flight does not count an autovacuum worker as a session a migration would queue behind:
the server cancels it when a conflicting lock is requested (unless it runs to prevent wraparound).
Measured on a real server: a worker slowed down to hold its lock, then an ALTER TABLE."""

from __future__ import annotations

import time

import psycopg

from migration_guard.preflight import yields_to_lock_requests

_WORKER = """
SELECT a.backend_type, a.query
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.relation = 'av_slow'::regclass AND a.backend_type = 'autovacuum worker'
"""


def test_an_autovacuum_worker_gives_its_lock_up_and_is_not_counted(fresh_dsn):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            # a cost limit of 1 with a delay between pages: the worker holds SHARE UPDATE EXCLUSIVE for long
            conn.execute("CREATE TABLE av_slow (id int, pad text) WITH (autovacuum_vacuum_cost_delay = 100, "
                         "autovacuum_vacuum_cost_limit = 1, autovacuum_vacuum_insert_threshold = 1, "
                         "autovacuum_vacuum_insert_scale_factor = 0, autovacuum_analyze_threshold = 1000000000)")
            conn.execute("INSERT INTO av_slow SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
            deadline = time.monotonic() + 60
            row = None
            while row is None and time.monotonic() < deadline:
                row = conn.execute(_WORKER).fetchone()
                time.sleep(0.1)
            assert row is not None, "no autovacuum worker took av_slow within 60 s"
            backend_type, query = row
            assert query.startswith("autovacuum: VACUUM") and "av_slow" in query, query
            assert yields_to_lock_requests(backend_type, query)

            conn.execute("SET lock_timeout = '20s'")
            started = time.monotonic()
            conn.execute("ALTER TABLE av_slow ADD COLUMN extra integer")
            waited = time.monotonic() - started
            # cancelled after deadlock_timeout (1 s); a worker that kept its lock would hold it for minutes
            assert waited < 10, waited
        finally:
            conn.execute("ALTER SYSTEM RESET autovacuum_naptime")
            conn.execute("SELECT pg_reload_conf()")


def test_other_sessions_and_wraparound_workers_count():
    assert not yields_to_lock_requests("client backend", "autovacuum: VACUUM public.t")
    assert not yields_to_lock_requests("autovacuum worker", "autovacuum: VACUUM public.t (to prevent wraparound)")
    assert not yields_to_lock_requests("autovacuum worker", "<insufficient privilege>")
    assert yields_to_lock_requests("autovacuum worker", "autovacuum: VACUUM ANALYZE public.t")
