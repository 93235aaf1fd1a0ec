"""After the gate (edge): apply the plan migration by migration under a short ``lock_timeout``, and
retry a migration whose statement gave up waiting for a lock (SQLSTATE 55P03), so that no
statement waits long enough to queue traffic behind it (the lock queue).

Migrations are applied by Django's own executor (``MigrationExecutor.apply_migration``: the same
schema editor, the same ``django_migrations`` records as ``migrate``). :class:`SafeExecutor` turns
each call into attempts:

- an **atomic** migration is retried whole: the schema editor rolls its transaction back when a
  statement fails, so a failed attempt leaves nothing behind;
- a **non-atomic** migration is resumed at the operation that failed, from the project state
  Django had before it: operations already done are not run again. Inside the failed operation,
  the statements the schema editor had already run (each committed on its own) must come out the
  same when the operation runs again, and are skipped; the first one that differs stops the run.
  Python code (``RunPython``) that had already run statements is not run again: nothing says it is
  safe to repeat. An operation that runs in its own transaction is retried whole.
- a ``CREATE INDEX CONCURRENTLY`` that fails leaves an INVALID index behind. The INVALID index the
  failed attempt created (absent before it) is dropped with ``DROP INDEX CONCURRENTLY`` before the
  next attempt; an INVALID index of the same name that exists before the build is refused.

Between attempts: exponential backoff with jitter, and the sessions that blocked the attempt
(``pg_blocking_pids``), watched from a second session while the attempt runs.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import pglast
from django.db import connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations.special import RunPython
from pglast.parser import ParseError

__all__ = [
    "Attempt",
    "Blocker",
    "CannotResume",
    "GaveUp",
    "MigrationFailed",
    "MigrationRun",
    "RetryPolicy",
    "SafeExecutor",
    "autovacuum_note",
    "invalid_indexes_in_the_way",
    "parse_duration",
]

LOCK_NOT_AVAILABLE = "55P03"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min)\s*$", re.IGNORECASE)
_DURATION_MS = {"ms": 1, "s": 1000, "min": 60_000}
_STATEMENT_SHOWN = 300  # characters of a statement in progress lines and the log
# Statements that Django's schema operations run outside the schema editor are introspection reads.
_READS = {"SELECT", "SHOW"}


def parse_duration(value: str, what: str) -> int:
    """``"500ms"``, ``"2s"``, ``"1.5min"`` -> milliseconds; ValueError naming ``what`` otherwise
    (a bare number is refused: PostgreSQL reads it as milliseconds, people as seconds)."""
    match = _DURATION.match(value or "")
    if not match:
        raise ValueError(f"{what} {value!r}: write a duration with its unit, e.g. 500ms, 2s or 1min")
    number, unit = match.groups()
    return round(float(number) * _DURATION_MS[unit.lower()])


def format_ms(ms: int | None) -> str:
    """Milliseconds as the shortest exact duration: 2000 -> ``2s``, 250 -> ``250ms``."""
    if ms is None:
        return "none"
    return f"{ms // 1000}s" if ms % 1000 == 0 and ms else f"{ms}ms"


@dataclass(frozen=True)
class RetryPolicy:
    """How each migration is applied: the timeouts its statements run under and how often, and
    how long apart, it is tried."""

    lock_timeout_ms: int = 2000
    statement_timeout_ms: int | None = None
    attempts: int = 10
    backoff_ms: int = 1000
    max_backoff_ms: int = 30_000

    def delay(self, failed: int, rng: random.Random) -> float:
        """Seconds to wait after the ``failed``-th failed attempt: the exponential step (doubling
        from ``backoff_ms``, at most ``max_backoff_ms``), half of it fixed and half random, so that
        several deploys retrying at once spread out."""
        step = min(self.max_backoff_ms, self.backoff_ms * 2 ** (failed - 1)) / 1000
        return step / 2 + rng.uniform(0, step / 2)


@dataclass(frozen=True)
class Blocker:
    """A session that held a lock the attempt waited for (from ``pg_blocking_pids``)."""

    pid: int
    application: str | None
    user: str | None
    state: str | None
    backend_type: str | None
    transaction_seconds: float | None
    query_seconds: float | None

    def describe(self) -> str:
        """One line: pid, application, user, state and ages."""
        who = [f"pid {self.pid}"]
        if self.backend_type and self.backend_type != "client backend":
            who.append(self.backend_type)
        if self.application:
            who.append(f"application {self.application!r}")
        if self.user:
            who.append(f"user {self.user}")
        who.append(self.state or "state not visible (grant pg_read_all_stats)")
        if self.transaction_seconds is not None:
            who.append(f"transaction open {self.transaction_seconds:.1f} s")
        if self.query_seconds is not None:
            who.append(f"query started {self.query_seconds:.1f} s ago")
        return ", ".join(who)


@dataclass
class Attempt:
    """One try at one migration."""

    number: int
    started_at: str
    seconds: float = 0.0
    outcome: str = "running"  # applied, lock_timeout, error, interrupted
    statement: str | None = None  # the statement that failed
    error: str | None = None
    resumed_at_operation: int | None = None  # non-atomic: the first operation this attempt ran (0-based)
    statements_skipped: int = 0  # non-atomic: statements of that operation already done, not run again
    blockers: list[Blocker] = field(default_factory=list)
    dropped_indexes: list[str] = field(default_factory=list)
    backoff_seconds: float | None = None  # the wait after it, before the next attempt


@dataclass
class MigrationRun:
    """What applying one migration took."""

    migration: str
    atomic: bool
    status: str = "running"  # applied, gave_up, failed, interrupted
    seconds: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    operations_done: int | None = None  # non-atomic and not applied: how many operations are committed
    leftover_indexes: list[str] = field(default_factory=list)  # INVALID indexes it could not drop

    def as_json(self) -> dict:
        """The run as the JSON log writes it."""
        return asdict(self)


class MigrationFailed(Exception):
    """A migration failed for a reason other than a lock wait, or cannot go on (exit 2)."""

    def __init__(self, message: str, run: MigrationRun | None = None):
        super().__init__(message)
        self.run = run


class GaveUp(MigrationFailed):
    """Every attempt at a migration gave up waiting for its locks (exit 3)."""


class CannotResume(GaveUp):
    """A non-atomic migration's attempt gave up waiting for a lock after part of its work was
    committed, and that part cannot be known to be safe to run again (exit 3)."""


@dataclass
class _Resume:
    """Where a non-atomic migration's next attempt starts."""

    state: object  # the ProjectState before ``operations[operation]``
    operation: int = 0
    deferred: list = field(default_factory=list)  # the schema editor's deferred statements still to run
    done: list[str] = field(default_factory=list)  # statements of ``operations[operation]`` already committed
    python_ran: int = 0  # statements its Python code already ran (committed): not repeatable


@dataclass
class _Build:
    """A ``CREATE INDEX CONCURRENTLY`` in flight: its table and the indexes that table had before."""

    table: str  # quoted, possibly schema-qualified
    name: str | None
    before: frozenset[int] = frozenset()


class _Tracker:
    """An execute wrapper on the migration's connection, for one attempt: notes the failing
    statement, whether a lock timeout went by (even one that Python code caught), the statements
    outside the schema editor, and the CONCURRENTLY index builds (refusing one whose name is
    taken by an INVALID index, remembering the indexes its table had before)."""

    def __init__(self, connection):
        self.connection = connection
        self.saw_lock_timeout = False
        self.failed_statement: str | None = None
        self.failed_build: _Build | None = None
        self.in_editor = False
        self.outside_editor = 0  # statements run (and finished) outside the schema editor
        self.outside_editor_writes = 0  # ... of which not a plain SELECT or SHOW

    def __call__(self, execute, sql, params, many, context):
        build = None
        if "CONCURRENTLY" in str(sql).upper():
            build = _concurrent_build(str(sql))
            if build is not None:
                _refuse_invalid_index(self.connection, build)
                build.before = frozenset(row[0] for row in _indexes_of(self.connection, build.table))
        try:
            result = execute(sql, params, many, context)
        except Exception as exc:
            self.failed_statement = str(sql)
            if _sqlstate(exc) == LOCK_NOT_AVAILABLE:
                self.saw_lock_timeout = True
            if build is not None:
                self.failed_build = build
            raise
        if not self.in_editor:
            self.outside_editor += 1
            if str(sql).lstrip().split(None, 1)[0].upper() not in _READS:
                self.outside_editor_writes += 1
        return result


class SafeExecutor(MigrationExecutor):
    """A ``MigrationExecutor`` whose ``apply_migration`` sets the timeouts and retries (see the
    module's description). ``runs`` holds what each migration took; ``say`` gets progress lines."""

    def __init__(self, connection, policy: RetryPolicy, *, say: Callable[[str], None] = lambda line: None,
                 rng: random.Random | None = None):
        super().__init__(connection)
        self.policy = policy
        self.say = say
        self.rng = rng or random.Random()
        self.runs: list[MigrationRun] = []
        self._watch = _BlockerWatch(connection.alias, poll_seconds=min(0.1, policy.lock_timeout_ms / 10_000))

    def close(self) -> None:
        """End the watching session."""
        self._watch.close()

    def apply_migration(self, state, migration, fake=False, fake_initial=False):
        """Apply one migration in attempts; raises GaveUp, CannotResume or MigrationFailed."""
        if fake or fake_initial:
            raise MigrationFailed("safe_migrate does not fake migrations; use migrate --fake")
        label = f"{migration.app_label}.{migration.name}"
        run = MigrationRun(migration=label, atomic=bool(migration.atomic))
        self.runs.append(run)
        started = time.monotonic()
        resume = None if migration.atomic else _Resume(state=state)
        pending_drops: list[tuple[str, str]] = []  # (quoted index, name) left by failed attempts
        try:
            for number in range(1, self.policy.attempts + 1):
                if number > 1:
                    wait = self.policy.delay(number - 1, self.rng)
                    run.attempts[-1].backoff_seconds = round(wait, 3)
                    self.say(f"  retrying in {wait:.2f} s")
                    time.sleep(wait)
                attempt = Attempt(number=number, started_at=_now())
                run.attempts.append(attempt)
                result = self._attempt(state, migration, run, attempt, resume, pending_drops)
                if result is not None:
                    run.status = "applied"
                    return result
            run.status = "gave_up"
            raise GaveUp(self._gave_up_message(run, migration, resume), run)
        except MigrationFailed as exc:
            if run.status == "running":
                run.status = "gave_up" if isinstance(exc, GaveUp) else "failed"
            exc.run = run
            raise
        except BaseException:
            run.status = "interrupted"
            raise
        finally:
            run.seconds = round(time.monotonic() - started, 3)
            if resume is not None and run.status != "applied":
                run.operations_done = resume.operation
            run.leftover_indexes = [name for _, name in pending_drops]
            self._say_summary(run)

    def _attempt(self, state, migration, run: MigrationRun, attempt: Attempt, resume: _Resume | None,
                 pending_drops: list[tuple[str, str]]):
        """One attempt: the new project state, or None when it gave up waiting for a lock."""
        label = run.migration
        tracker = _Tracker(self.connection)
        started = time.monotonic()
        if resume is not None:
            attempt.resumed_at_operation = resume.operation
            attempt.statements_skipped = len(resume.done)
        try:
            self._set_timeouts()
            with self._watch.watching(self.connection) as seen:
                try:
                    self._drop(pending_drops, attempt)
                    with self.connection.execute_wrapper(tracker):
                        if resume is None:
                            new_state = super().apply_migration(state.clone(), migration)
                        else:
                            new_state = super().apply_migration(resume.state.clone(),
                                                                _resumable(migration, resume, tracker))
                finally:
                    attempt.blockers = list(seen.values())
        except BaseException as exc:
            attempt.seconds = round(time.monotonic() - started, 3)
            attempt.statement = _shorten(tracker.failed_statement) or attempt.statement  # or the DROP INDEX
            attempt.error = _first_line(exc)
            if tracker.failed_build is not None:
                pending_drops.extend(self._left_by(tracker.failed_build))
                statement = attempt.statement
                try:
                    self._drop(pending_drops, attempt)
                except Exception:  # tried again before the next attempt
                    self.say(f"  could not drop the INVALID index {pending_drops[0][1]} the failed build left "
                             "yet; it is dropped before the next attempt")
                attempt.statement = statement
            lock_timeout = _sqlstate(exc) == LOCK_NOT_AVAILABLE or (resume is None and tracker.saw_lock_timeout)
            if isinstance(exc, CannotResume):
                attempt.outcome = "error"
                raise
            if not isinstance(exc, Exception):
                attempt.outcome = "interrupted"
                raise
            if not lock_timeout:
                attempt.outcome = "error"
                where = f" ({_partial_state(migration, resume)})" if resume is not None else ""
                raise MigrationFailed(f"{label} failed: {_first_line(exc)}{where}") from exc
            attempt.outcome = "lock_timeout"
            self._say_timeout(run, attempt)
            if resume is not None and resume.python_ran:
                raise CannotResume(
                    f"{label}: operation {resume.operation + 1} ({_describe(migration, resume.operation)}) gave up "
                    f"waiting for a lock after its code had run {resume.python_ran} statement(s), committed "
                    "outside a transaction; running it again could repeat them, so it is not retried. "
                    + _partial_state(migration, resume)) from exc
            return None
        attempt.seconds = round(time.monotonic() - started, 3)
        attempt.outcome = "applied"
        return new_state

    def _set_timeouts(self) -> None:
        """The session's timeouts, set before every attempt (a migration may have changed them)."""
        self.connection.ensure_connection()
        with self.connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {int(self.policy.lock_timeout_ms)}")
            if self.policy.statement_timeout_ms is None:
                cursor.execute("RESET statement_timeout")
            else:
                cursor.execute(f"SET statement_timeout = {int(self.policy.statement_timeout_ms)}")

    def reset_timeouts(self) -> None:
        """Back to the session's defaults (post_migrate handlers run as under ``migrate``)."""
        with self.connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
            cursor.execute("RESET statement_timeout")

    def _left_by(self, build: _Build) -> list[tuple[str, str]]:
        """The INVALID indexes on the build's table that were not there before the attempt."""
        try:
            rows = _indexes_of(self.connection, build.table)
        except Exception:  # the connection itself is gone: nothing more can be done here
            return []
        return [(quoted, name) for oid, quoted, name, valid in rows if oid not in build.before and not valid]

    def _drop(self, pending: list[tuple[str, str]], attempt: Attempt) -> None:
        """Drop the INVALID indexes failed attempts left, under the same lock_timeout."""
        while pending:
            quoted, name = pending[0]
            statement = f"DROP INDEX CONCURRENTLY IF EXISTS {quoted}"
            try:
                with self.connection.cursor() as cursor:
                    cursor.execute(statement)
            except Exception:
                attempt.statement = statement
                raise
            pending.pop(0)
            attempt.dropped_indexes.append(name)
            self.say(f"  dropped the INVALID index {name} that the failed build left")

    def _say_timeout(self, run: MigrationRun, attempt: Attempt) -> None:
        self.say(f"{run.migration}: attempt {attempt.number} of {self.policy.attempts} gave up waiting for a lock "
                 f"after {attempt.seconds:.2f} s (lock_timeout {format_ms(self.policy.lock_timeout_ms)})")
        if attempt.statement:
            self.say(f"  statement: {' '.join(attempt.statement.split())}")
        if attempt.blockers:
            for blocker in attempt.blockers:
                self.say(f"  blocked by {blocker.describe()}")
        else:
            self.say("  blocked by: not seen (the wait ended before the watching session looked)")

    def _say_summary(self, run: MigrationRun) -> None:
        if run.status == "applied" and len(run.attempts) == 1:
            self.say(f"{run.migration}: applied in {run.seconds:.2f} s")
            return
        failed = [a for a in run.attempts if a.outcome == "lock_timeout"]
        waited = sum(a.seconds for a in failed)
        backoff = sum(a.backoff_seconds or 0 for a in run.attempts)
        self.say(f"{run.migration}: {run.status.replace('_', ' ')} in {run.seconds:.2f} s "
                 f"({len(run.attempts)} attempt(s); {waited:.2f} s in attempts that gave up waiting for a lock, "
                 f"{backoff:.2f} s backing off)")

    def _gave_up_message(self, run: MigrationRun, migration, resume: _Resume | None) -> str:
        blockers = {b.pid: b for a in run.attempts for b in a.blockers}
        who = "; ".join(b.describe() for b in blockers.values()) or "not seen"
        text = (f"{run.migration}: gave up after {len(run.attempts)} attempt(s), each waiting "
                f"{format_ms(self.policy.lock_timeout_ms)} for a lock; blocked by {who}.")
        if resume is None:
            text += " Nothing of it is applied (its transaction was rolled back)."
        else:
            text += " " + _partial_state(migration, resume)
        return text + " Run safe_migrate again when the blocking sessions are gone."


def _resumable(migration, resume: _Resume, tracker: _Tracker):
    """A copy of a non-atomic migration whose ``apply`` starts where ``resume`` says, for Django's
    ``apply_migration`` (which opens the schema editor and records the migration as usual)."""
    resumed = copy.copy(migration)
    resumed.apply = functools.partial(_apply_from, migration, resume, tracker)
    return resumed


def _apply_from(migration, resume: _Resume, tracker: _Tracker, project_state, schema_editor, collect_sql=False):
    """``Migration.apply`` of a non-atomic migration from ``resume.operation`` on, keeping
    ``resume`` up to date for the next attempt (see the module's description)."""
    connection = schema_editor.connection
    operations = migration.operations
    schema_editor.deferred_sql.extend(resume.deferred)
    replay = list(resume.done)
    ran: list[str] = []  # statements of the current operation done (run or skipped)
    in_deferred = False
    original = schema_editor.execute

    def execute(sql, params=()):
        text = connection.ops.compose_sql(str(sql), params) if params else str(sql)
        if replay:
            expected = replay.pop(0)
            if text != expected:
                raise CannotResume(
                    f"{migration.app_label}.{migration.name}: operation {resume.operation + 1} "
                    f"({_describe(migration, resume.operation)}) had run {len(resume.done)} statement(s) before "
                    f"its lock timeout, but running it again gives a different statement ({_shorten(text)!r} "
                    f"instead of {_shorten(expected)!r}); not retried. " + _partial_state(migration, resume))
            ran.append(text)
            return None
        tracker.in_editor = True
        try:
            result = original(sql, params)
        finally:
            tracker.in_editor = False
        if in_deferred:
            resume.deferred = [s for s in resume.deferred if s is not sql]
        else:
            ran.append(text)
        return result

    schema_editor.execute = execute
    for index in range(resume.operation, len(operations)):
        operation = operations[index]
        old_state = project_state.clone()
        operation.state_forwards(migration.app_label, project_state)
        own_transaction = bool(operation.atomic)  # Migration.apply's rule, in a non-atomic migration
        deferred_before = list(schema_editor.deferred_sql)
        tracker.outside_editor = tracker.outside_editor_writes = 0
        try:
            if own_transaction:
                with transaction.atomic(using=connection.alias):
                    operation.database_forwards(migration.app_label, schema_editor, old_state, project_state)
            else:
                operation.database_forwards(migration.app_label, schema_editor, old_state, project_state)
            if replay:
                raise CannotResume(
                    f"{migration.app_label}.{migration.name}: operation {index + 1} ({_describe(migration, index)}) "
                    f"ran fewer statements when run again than before its lock timeout; not retried. "
                    + _partial_state(migration, resume))
        except BaseException:
            resume.state = old_state
            resume.operation = index
            resume.deferred = deferred_before
            committed = [] if own_transaction else ran
            resume.done = committed
            if own_transaction:
                resume.python_ran = 0
            elif isinstance(operation, RunPython) or not operation.reduces_to_sql:
                resume.python_ran = len(committed) + tracker.outside_editor
            else:  # a schema operation: only a write of its own (a custom one's) is not repeatable
                resume.python_ran = tracker.outside_editor_writes
            raise
        ran = []
    # Every operation is done: what is left is the deferred SQL the schema editor runs on exit.
    in_deferred = True
    resume.state = project_state.clone()
    resume.operation = len(operations)
    resume.done = []
    resume.deferred = list(schema_editor.deferred_sql)
    return project_state


def _describe(migration, index: int) -> str:
    if index >= len(migration.operations):
        return "the deferred statements"
    operation = migration.operations[index]
    if isinstance(operation, RunPython):
        return f"RunPython {getattr(operation.code, '__name__', 'code')}"
    try:
        return operation.describe()
    except Exception:
        return type(operation).__name__


def _partial_state(migration, resume: _Resume) -> str:
    """What a stopped non-atomic migration left applied, in a sentence."""
    total = len(migration.operations)
    label = f"{migration.app_label}.{migration.name}"
    if resume.operation == 0 and not resume.done:
        return f"Nothing of {label} is applied."
    if resume.operation >= total:
        return (f"All {total} operation(s) of {label} are applied, not all of its deferred statements; "
                "Django has not recorded it as applied.")
    done = f"operation(s) 1-{resume.operation} of {total}" if resume.operation else "no operation"
    part = f", and {len(resume.done)} statement(s) of operation {resume.operation + 1}" if resume.done else ""
    return (f"{done} of {label} are applied and committed{part}; Django has not recorded it as applied: "
            "finish it by hand (then `migrate --fake` it) or make its operations safe to repeat before running again.")


def autovacuum_note(connection, policy: RetryPolicy) -> str | None:
    """A note when ``lock_timeout`` is not longer than the server's ``deadlock_timeout``: PostgreSQL
    cancels an autovacuum that blocks a lock request only when the deadlock check runs, after
    ``deadlock_timeout``, so every attempt would give up behind a running autovacuum first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'")
        row = cursor.fetchone()
    if row is None or policy.lock_timeout_ms > row[0]:
        return None
    return (f"note: --lock-timeout {format_ms(policy.lock_timeout_ms)} is not longer than the server's deadlock_timeout "
            f"({format_ms(row[0])}); PostgreSQL cancels an autovacuum in the way only after deadlock_timeout, so "
            "attempts give up behind one instead")


# -- who blocks -----------------------------------------------------------------------------------

_WAITING_SQL = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
_BLOCKERS_SQL = """
SELECT a.pid, a.application_name, a.usename, a.state, a.backend_type,
       EXTRACT(EPOCH FROM now() - a.xact_start)::float8,
       EXTRACT(EPOCH FROM now() - a.query_start)::float8
  FROM pg_stat_activity a
 WHERE a.pid = ANY (pg_blocking_pids(%s))
"""


class _BlockerWatch:
    """A second session, in a thread, that looks at who blocks the migration's session while an
    attempt runs: ``pg_blocking_pids`` is asked only while that session waits for a lock (it takes
    the lock manager's locks for a moment, so it is not polled blindly)."""

    def __init__(self, alias: str, *, poll_seconds: float):
        self._alias = alias
        self._poll = max(0.01, poll_seconds)
        self._pid: int | None = None
        self._seen: dict[int, Blocker] = {}
        self._active = threading.Event()
        self._closed = threading.Event()
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    @contextlib.contextmanager
    def watching(self, connection):
        """Watch ``connection``'s backend for the block; yields the blockers seen (pid -> Blocker)."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        with self._busy:
            self._pid = pid
            self._seen = {}
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="migration-guard-blockers")
            self._thread.start()
        self._active.set()
        try:
            yield self._seen
        finally:
            self._active.clear()
            with self._busy:  # a look in progress finishes before the attempt's result is read
                pass

    def close(self) -> None:
        """Stop the thread and close its session."""
        self._closed.set()
        self._active.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        wrapper = connections.create_connection(self._alias)
        try:
            wrapper.ensure_connection()
            with wrapper.cursor() as cursor:
                cursor.execute("SET application_name = 'migration_guard safe_migrate (watching locks)'")
                cursor.execute("SET statement_timeout = 2000")
            while not self._closed.is_set():
                self._active.wait()
                if self._closed.is_set():
                    break
                with self._busy:
                    if self._active.is_set():
                        self._look(wrapper)
                self._closed.wait(self._poll)
        except Exception as exc:  # the watch is a help, never a reason to stop the migration
            self.error = _first_line(exc)
        finally:
            with contextlib.suppress(Exception):
                wrapper.close()

    def _look(self, wrapper) -> None:
        with wrapper.cursor() as cursor:
            cursor.execute(_WAITING_SQL, [self._pid])
            row = cursor.fetchone()
            if not row or row[0] != "Lock":
                return
            cursor.execute(_BLOCKERS_SQL, [self._pid])
            for pid, application, user, state, backend, xact, query in cursor.fetchall():
                self._seen[pid] = Blocker(pid, application or None, user, state, backend,
                                          None if xact is None else round(xact, 1),
                                          None if query is None else round(query, 1))


# -- CONCURRENTLY builds --------------------------------------------------------------------------

_INDEXES_SQL = """
SELECT i.indexrelid::bigint, format('%%I.%%I', n.nspname, c.relname), c.relname, i.indisvalid
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE i.indrelid = to_regclass(%s)
"""
_NAMED_INDEX_SQL = """
SELECT format('%%I.%%I', n.nspname, c.relname), i.indisvalid
  FROM pg_class t
  JOIN pg_class c ON c.relnamespace = t.relnamespace AND c.relname = %s
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_index i ON i.indexrelid = c.oid
 WHERE t.oid = to_regclass(%s)
"""


def _concurrent_build(sql: str) -> _Build | None:
    """The table and index name of a ``CREATE INDEX CONCURRENTLY`` statement, else None."""
    try:
        statements = pglast.parse_sql(sql)
    except ParseError:
        return None
    for raw in statements:
        stmt = raw.stmt
        if isinstance(stmt, pglast.ast.IndexStmt) and stmt.concurrent and stmt.relation is not None:
            relation = stmt.relation
            table = _quote(relation.relname)
            if relation.schemaname:
                table = f"{_quote(relation.schemaname)}.{table}"
            return _Build(table=table, name=stmt.idxname)
    return None


def _indexes_of(connection, table: str) -> list[tuple[int, str, str, bool]]:
    """(oid, quoted qualified name, name, valid) of every index on ``table``, read on the
    connection's own session with its raw cursor (not through the execute wrappers)."""
    with connection.cursor() as cursor:
        raw = cursor.cursor
        raw.execute(_INDEXES_SQL, [table])
        return list(raw.fetchall())


def _refuse_invalid_index(connection, build: _Build) -> None:
    """Stop before a build whose index name is taken by an INVALID index: left by an earlier
    failed build, it would make this one fail, or (IF NOT EXISTS) be kept in its place."""
    if not build.name:
        return
    with connection.cursor() as cursor:
        raw = cursor.cursor
        raw.execute(_NAMED_INDEX_SQL, [build.name, build.table])
        row = raw.fetchone()
    if row is not None and not row[1]:
        raise MigrationFailed(_invalid_index_message(row[0]))


def _invalid_index_message(quoted: str) -> str:
    return (f"an INVALID index {quoted} already exists, left by an earlier failed CREATE INDEX CONCURRENTLY "
            f"that safe_migrate did not start; drop it (DROP INDEX CONCURRENTLY {quoted};) and run again")


def invalid_indexes_in_the_way(connection, statements: list[str]) -> list[str]:
    """Before anything is applied: a message for each ``CREATE INDEX CONCURRENTLY`` among
    ``statements`` whose index name is taken by an INVALID index on the database now."""
    problems = []
    for sql in statements:
        if "CONCURRENTLY" not in sql.upper():
            continue
        build = _concurrent_build(sql)
        if build is None:
            continue
        try:
            _refuse_invalid_index(connection, build)
        except MigrationFailed as exc:
            problems.append(str(exc))
    return problems


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- small helpers --------------------------------------------------------------------------------

def _sqlstate(exc: BaseException | None) -> str | None:
    """The SQLSTATE of a database error, looking through Django's wrapping (psycopg 3 or 2)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if code:
            return code
        exc = exc.__cause__ or exc.__context__
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _shorten(sql: str | None) -> str | None:
    if sql is None:
        return None
    text = " ".join(sql.split())
    return text if len(text) <= _STATEMENT_SHOWN else text[: _STATEMENT_SHOWN - 3] + "..."


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
