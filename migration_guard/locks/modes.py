"""PostgreSQL's table-level lock modes and what each one blocks.

Source: PostgreSQL documentation, "13.3.1. Table-Level Locks", Table 13.2 "Conflicting Lock
Modes" (unchanged from PostgreSQL 9.x through 18).
"""

from __future__ import annotations

import enum

__all__ = ["LockMode"]


class LockMode(enum.IntEnum):
    """A table-level lock mode, ordered from weakest to strongest."""

    ACCESS_SHARE = 1
    ROW_SHARE = 2
    ROW_EXCLUSIVE = 3
    SHARE_UPDATE_EXCLUSIVE = 4
    SHARE = 5
    SHARE_ROW_EXCLUSIVE = 6
    EXCLUSIVE = 7
    ACCESS_EXCLUSIVE = 8

    @property
    def pg_name(self) -> str:
        """The name ``pg_locks.mode`` shows, e.g. ``AccessExclusiveLock``."""
        return _PG_NAMES[self]

    @property
    def label(self) -> str:
        """The name the documentation and ``LOCK TABLE`` use, e.g. ``ACCESS EXCLUSIVE``."""
        return _LABELS[self]

    @classmethod
    def from_pg_name(cls, name: str) -> LockMode:
        """The mode for a ``pg_locks.mode`` value such as ``ShareRowExclusiveLock``."""
        for mode, pg_name in _PG_NAMES.items():
            if pg_name == name:
                return mode
        raise ValueError(f"not a table-level lock mode: {name!r}")

    def conflicts_with(self, other: LockMode) -> bool:
        """Whether a lock of this mode and one of ``other`` cannot be held at once."""
        return other in _CONFLICTS[self]

    @property
    def blocks_reads(self) -> bool:
        """Whether plain SELECTs (ACCESS SHARE) wait for this lock."""
        return self.conflicts_with(LockMode.ACCESS_SHARE)

    @property
    def blocks_writes(self) -> bool:
        """Whether INSERT/UPDATE/DELETE (ROW EXCLUSIVE) wait for this lock."""
        return self.conflicts_with(LockMode.ROW_EXCLUSIVE)

    @property
    def blocks_traffic(self) -> bool:
        """Whether application reads or writes wait for this lock."""
        return self.blocks_reads or self.blocks_writes

    @property
    def blocks(self) -> str:
        """What this lock makes wait, in words a user reads: ``reads and writes``, ``writes``, ..."""
        return _BLOCKS[self]

_M = LockMode
_CONFLICTS: dict[LockMode, frozenset[LockMode]] = {
    _M.ACCESS_SHARE: frozenset({_M.ACCESS_EXCLUSIVE}),
    _M.ROW_SHARE: frozenset({_M.EXCLUSIVE, _M.ACCESS_EXCLUSIVE}),
    _M.ROW_EXCLUSIVE: frozenset({_M.SHARE, _M.SHARE_ROW_EXCLUSIVE, _M.EXCLUSIVE, _M.ACCESS_EXCLUSIVE}),
    _M.SHARE_UPDATE_EXCLUSIVE: frozenset(
        {_M.SHARE_UPDATE_EXCLUSIVE, _M.SHARE, _M.SHARE_ROW_EXCLUSIVE, _M.EXCLUSIVE, _M.ACCESS_EXCLUSIVE}
    ),
    _M.SHARE: frozenset(
        {_M.ROW_EXCLUSIVE, _M.SHARE_UPDATE_EXCLUSIVE, _M.SHARE_ROW_EXCLUSIVE, _M.EXCLUSIVE, _M.ACCESS_EXCLUSIVE}
    ),
    _M.SHARE_ROW_EXCLUSIVE: frozenset(
        {_M.ROW_EXCLUSIVE, _M.SHARE_UPDATE_EXCLUSIVE, _M.SHARE, _M.SHARE_ROW_EXCLUSIVE, _M.EXCLUSIVE,
         _M.ACCESS_EXCLUSIVE}
    ),
    _M.EXCLUSIVE: frozenset(
        {_M.ROW_SHARE, _M.ROW_EXCLUSIVE, _M.SHARE_UPDATE_EXCLUSIVE, _M.SHARE, _M.SHARE_ROW_EXCLUSIVE,
         _M.EXCLUSIVE, _M.ACCESS_EXCLUSIVE}
    ),
    _M.ACCESS_EXCLUSIVE: frozenset(LockMode),
}

_BLOCKS: dict[LockMode, str] = {
    _M.ACCESS_SHARE: "only ACCESS EXCLUSIVE DDL",
    _M.ROW_SHARE: "EXCLUSIVE and ACCESS EXCLUSIVE locks",
    _M.ROW_EXCLUSIVE: "DDL that blocks writes (CREATE INDEX, ...)",
    _M.SHARE_UPDATE_EXCLUSIVE: "other DDL, VACUUM and ANALYZE",
    _M.SHARE: "writes",
    _M.SHARE_ROW_EXCLUSIVE: "writes",
    _M.EXCLUSIVE: "writes and SELECT FOR UPDATE",
    _M.ACCESS_EXCLUSIVE: "reads and writes",
}

# Names made once: explain prints one per lock of every statement.
_PG_NAMES: dict[LockMode, str] = {
    mode: "".join(part.capitalize() for part in mode.name.split("_")) + "Lock" for mode in LockMode
}
_LABELS: dict[LockMode, str] = {mode: mode.name.replace("_", " ") for mode in LockMode}
