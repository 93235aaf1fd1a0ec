"""MG009 session-holding-conflicting-lock: pre-flight, against the live database: a session that
holds (or waits for) a lock a pending migration's lock would queue behind."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from migration_guard.locks.modes import LockMode
from migration_guard.model import Finding, Severity
from migration_guard.rules.base import Rule

DOC = """\
## What it does
Before giving a pass against a live database (the release gate), looks at `pg_locks` and
`pg_stat_activity` for other sessions holding a lock on a table that a pending migration will
lock in a conflicting mode: a long-running query, or a transaction left *idle in transaction*.

## Why is this bad?
Even an instant `ALTER TABLE` must wait for every conflicting lock to be released, and while it
waits, every later query on the table queues behind it: a two-second DDL behind a ten-minute
report query is a ten-minute outage. Sessions whose transaction is older than
`preflight_max_age_seconds` (default 60) block the deploy; younger ones are warnings, and so are
all of them when the migration sets a `lock_timeout` before taking the lock (the wait is bounded).

## Example
A BI session ran `BEGIN; SELECT ... FROM shop_order;` an hour ago and is idle in transaction;
the pending migration adds a column to `shop_order` (ACCESS EXCLUSIVE).

## Use instead
Wait for the session to finish or end it (`SELECT pg_terminate_backend(pid)`), and run migrations
with a `lock_timeout` (e.g. `SET lock_timeout = '5s'` for the migration role) so that a waiting
lock gives up instead of queueing traffic; retry the deploy.
"""


@dataclass(frozen=True)
class Session:
    """Another session's lock on a table, from pg_locks joined to pg_stat_activity."""

    pid: int
    user: str | None
    application: str | None
    state: str | None  # "active", "idle in transaction", ...
    transaction_seconds: float | None
    query: str
    relation: str
    mode: LockMode
    granted: bool


@dataclass(frozen=True)
class PlannedLock:
    """A lock a pending migration's statement will take on an existing table."""

    relation: str
    mode: LockMode
    migration: str
    statement_index: int
    fingerprint: str
    lock_timeout: str | None = None  # in force when the statement runs: bounds the wait


def check_sessions(sessions: Iterable[Session], planned: Iterable[PlannedLock], *, max_age_seconds: int,
                   severity_override: Severity | None = None) -> list[Finding]:
    """One finding per (session, migration) whose lock conflicts with a pending migration's."""
    findings: list[Finding] = []
    seen: set[tuple[int, str]] = set()
    # A migration's worst wait is the one to report: one that queues traffic and has no lock_timeout.
    planned = sorted(planned, key=lambda lock: (not lock.mode.blocks_traffic, lock.lock_timeout is not None))
    for session in sessions:
        for lock in planned:
            if lock.relation != session.relation or not lock.mode.conflicts_with(session.mode):
                continue
            if (session.pid, lock.migration) in seen:
                continue
            seen.add((session.pid, lock.migration))
            age = session.transaction_seconds
            old = age is None or age >= max_age_seconds
            # With a lock_timeout the migration gives up waiting instead of queueing traffic for
            # as long as the session lives: the deploy fails and is retried, nobody is blocked long.
            bounded = lock.lock_timeout is not None
            # A waiting lock that reads and writes do not conflict with (SHARE UPDATE EXCLUSIVE) holds up
            # the deploy, not the traffic queued behind it.
            queues = lock.mode.blocks_traffic
            severity = severity_override or (Severity.ERROR if old and not bounded and queues else Severity.WARNING)
            who = ", ".join(x for x in (session.user and f"user {session.user}",
                                        session.application and f"application {session.application!r}") if x)
            holds = "holds" if session.granted else "is waiting for"
            findings.append(Finding(
                rule=RULE.id,
                slug=RULE.slug,
                severity=severity,
                message=f'Session {session.pid} ({who or "unknown"}; {session.state or "unknown state"}, '
                f"transaction open {_age(age)}) {holds} {session.mode.label} on \"{session.relation}\"; "
                f"this migration's {lock.mode.label} would queue behind it"
                + (", and every later query on the table behind that" if queues else
                   " (reads and writes would not queue behind it)")
                + (f" (for at most its lock_timeout of {lock.lock_timeout}, then the migration fails)."
                   if bounded else "."),
                migration=lock.migration,
                statement_index=lock.statement_index,
                table=session.relation,
                lock=lock.mode,
                recipe="\n".join([
                    f"-- wait for session {session.pid} to finish, or end it:",
                    f"SELECT pg_terminate_backend({session.pid});",
                    "-- and give migrations a lock_timeout so a waiting lock gives up instead of queueing traffic",
                    f"-- its query: {' '.join(session.query.split())[:200]}",
                ]),
                fingerprint=lock.fingerprint,
            ))
    return findings


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "for an unknown time"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


RULE = Rule(
    id="MG009",
    slug="session-holding-conflicting-lock",
    severity=Severity.ERROR,
    summary="another session holds a lock a pending migration would queue behind (pre-flight, live database)",
    doc=DOC,
)
