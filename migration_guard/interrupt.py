"""How a run ends when it does not end with a report: one line on stderr, never a traceback.

Signals end it cleanly: SIGINT, SIGTERM and SIGHUP raise :class:`Stopped` in the main thread, so
every ``finally`` on the way out runs (the scratch database is dropped), and the entry points
turn it into exit 130 (SIGINT) or 2. Anything else (``sys.exit()`` in code the gate ran, a bug)
is exit 2 with :func:`unexpected_error`.

Migration code runs inside the gate and may catch anything, :class:`Stopped` included: the signal
is remembered (:func:`requested`) and the renderer stops at the next operation all the same. A
second signal while cleaning up is ignored, so the cleanup finishes. SIGKILL cannot be caught:
the next run drops what such a run left behind (see :mod:`migration_guard.scratch`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import traceback

__all__ = ["Stopped", "exit_code", "handle_signals", "requested", "unexpected_error"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None),
                             getattr(signal, "SIGHUP", None)) if s is not None)
_requested: int | None = None


class Stopped(KeyboardInterrupt):
    """The run was stopped by a signal (a KeyboardInterrupt, so code that lets Ctrl-C through
    lets it through too)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def requested() -> int | None:
    """The signal that asked the run to stop, if one did."""
    return _requested


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C (SIGINT, as shells report it), else 2 (the gate could not run)."""
    signum = getattr(exc, "signum", signal.SIGINT)
    return 130 if signum == signal.SIGINT else 2


def _handler(signum, frame) -> None:
    global _requested
    if _requested is not None:
        return  # already stopping: let the cleanup finish
    _requested = signum
    raise Stopped(signum)


@contextlib.contextmanager
def handle_signals():
    """Install the handlers for the duration of a run (main thread only; elsewhere a no-op)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    _requested = None
    for s in _SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _requested = None


def unexpected_error(exc: BaseException) -> str:
    """One line for what should not happen: ``sys.exit()`` called by code the gate ran, or a bug
    in the gate (with where it happened, to report it)."""
    if isinstance(exc, SystemExit):
        return (f"code the gate ran called sys.exit({exc.code!r}); the gate did not finish, so nothing "
                "was checked: find the call (a migration, a custom field, a settings module) and remove it")
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    from migration_guard.redact import mask_sql

    message = mask_sql(" ".join(str(exc).split()))[:300]
    return (f"the gate stopped on an unexpected error{where}: {type(exc).__name__}: {message}; nothing was "
            "checked (please report it, with the command you ran)")
