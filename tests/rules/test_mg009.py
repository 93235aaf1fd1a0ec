"""MG009 from given sessions and planned locks (pre-flight reads them from a live database; see
tests/test_release_gate.py): which of a migration's waits it reports, and how bad it is."""

from __future__ import annotations

from migration_guard.locks.modes import LockMode
from migration_guard.model import Severity
from migration_guard.rules.mg009_session_holding_conflicting_lock import PlannedLock, Session, check_sessions

HOLDER = Session(pid=42, user="report", application=None, state="idle in transaction", transaction_seconds=600,
                 query="LOCK TABLE shop_order IN SHARE MODE", relation="shop_order", mode=LockMode.SHARE, granted=True)


def _planned(index: int, mode: LockMode, lock_timeout: str | None = None) -> PlannedLock:
    return PlannedLock("shop_order", mode, "shop.0002", index, f"fp{index}", lock_timeout)


def test_a_migrations_worst_wait_is_reported():
    [finding] = check_sessions([HOLDER], [_planned(0, LockMode.ACCESS_EXCLUSIVE, "2s"),
                                          _planned(1, LockMode.ACCESS_EXCLUSIVE)], max_age_seconds=60)
    assert (finding.statement_index, finding.severity) == (1, Severity.ERROR)


def test_a_wait_that_queues_no_reads_or_writes_is_a_warning():
    [finding] = check_sessions([HOLDER], [_planned(0, LockMode.SHARE_UPDATE_EXCLUSIVE)], max_age_seconds=60)
    assert finding.severity is Severity.WARNING
    assert "reads and writes would not queue behind it" in finding.message
