"""Progress lines on stderr while the gate works through a long plan (``lint_migrations --progress``,
or by itself when stderr is a terminal): a whole history on ``--embedded --each`` runs for many minutes.

Like ``migrate``'s "Applying ..." lines, but bounded for CI logs: one line when rendering starts, then
at most one every :data:`INTERVAL` seconds, each with the migrations done out of the total, the one
starting and the time spent; one line when the analysis starts and one when it is done::

    migration_guard: database 'default': rendering 304 migration(s)
    migration_guard: database 'default': 57/304 rendered, 1 failed, 0:45; now dcim.0131_squashed_0159
    migration_guard: database 'default': rendered 304 migration(s) in 24:10; analysing 3,603 statement(s)
    migration_guard: database 'default': analysed in 0:31
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["INTERVAL", "Progress"]

# Seconds between two lines while rendering: often enough to see that the run moves and where it is,
# few enough that a 25-minute run writes a hundred lines, not one per migration.
INTERVAL = 15.0


class Progress:
    """Writes the progress of one database alias's run through ``write`` (a line, no newline)."""

    def __init__(self, write: Callable[[str], None], alias: str, *, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self._write = write
        self._prefix = f"migration_guard: database '{alias}': "
        self._interval = interval
        self._clock = clock
        self._started = self._last = clock()
        self._stage = self._started
        self._rendering = False

    def _line(self, text: str) -> None:
        self._last = self._clock()
        self._write(self._prefix + text)

    def migration(self, done: int, total: int, label: str, failed: int) -> None:
        """``label`` is about to be rendered and ``done`` of ``total`` are: the first call says that
        rendering starts, the others write a line when the last one is ``interval`` seconds old."""
        if not self._rendering:
            self._rendering = True
            self._line(f"rendering {total:,} migration(s)")
        elif self._clock() - self._last >= self._interval:
            failures = f", {failed:,} failed" if failed else ""
            self._line(f"{done:,}/{total:,} rendered{failures}, {self._elapsed(self._started)}; now {label}")

    def analysing(self, rendered: int, statements: int) -> None:
        """Rendering is done: ``rendered`` migrations, ``statements`` statements to analyse."""
        self._line(f"rendered {rendered:,} migration(s) in {self._elapsed(self._started)}; "
                   f"analysing {statements:,} statement(s)")
        self._stage = self._clock()

    def analysed(self) -> None:
        """The analysis is done."""
        self._line(f"analysed in {self._elapsed(self._stage)}")

    def _elapsed(self, since: float) -> str:
        seconds = int(self._clock() - since)
        hours, rest = divmod(seconds, 3600)
        return (f"{hours}:" if hours else "") + f"{rest // 60:0{2 if hours else 1}d}:{rest % 60:02d}"
