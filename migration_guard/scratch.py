"""Scratch databases: the throwaway databases ``lint_migrations --scratch`` (``--since``, ``--files``,
``--embedded``) applies migrations to and ``migration-guard trace`` / ``lint_migrations --trace`` run
statements in. This module alone creates and drops them.

Every one is named ``migration_guard_scratch_<host>_<pid>_<unix time>_<random>`` (:func:`scratch_name`),
so that a later run can prove that one it finds is a leftover (its run was killed with SIGKILL or
lost its connection) and drop it: only those, owned by the same role, with no session connected.
Signals are the entry points' business (:mod:`migration_guard.interrupt`): they end the run through
the ``finally`` blocks here, which drop the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import make_conninfo

from migration_guard.redact import dsn_problem

__all__ = ["SCRATCH_PREFIX", "ScratchCreation", "ScratchError", "copy_strategy", "is_scratch_name", "scratch_database",
           "scratch_dsn", "scratch_name"]


class ScratchError(RuntimeError):
    """No throwaway database could be had (server not reachable, no CREATEDB, no binaries)."""


# migration_guard_scratch_<host>_<pid>_<unix time>_<random>: enough for a later run to prove that
# a database it finds is a leftover (see _drop_leftovers). At most 59 characters (PostgreSQL: 63).
SCRATCH_PREFIX = "migration_guard_scratch_"
_SCRATCH_NAME = re.compile(r"^migration_guard_scratch_([0-9a-f]{6})_([0-9]+)_([0-9]+)_[0-9a-f]{8}$")
# A leftover of another machine's run is dropped only when it is older than this: a run creates
# its database while the migration files load and connects to it only then.
_FOREIGN_LEFTOVER_AGE_S = 3600


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def scratch_name() -> str:
    """A new scratch database's name, which proves whose it is once its run is over (see :func:`_is_leftover`)."""
    return f"{SCRATCH_PREFIX}{_host_tag()}_{os.getpid()}_{int(time.time())}_{secrets.token_hex(4)}"


def is_scratch_name(name: str) -> bool:
    """Whether ``name`` is one :func:`scratch_name` makes."""
    return _SCRATCH_NAME.match(name) is not None


def _is_leftover(name: str, now: float) -> bool:
    """Whether a scratch database's name proves its run is over: made on this machine by a process
    that is gone, or on another machine over an hour ago."""
    match = _SCRATCH_NAME.match(name)
    if match is None:
        return False
    host, pid, created = match.group(1), int(match.group(2)), int(match.group(3))
    if host == _host_tag():
        return pid != os.getpid() and not _pid_alive(pid)
    return now - created > _FOREIGN_LEFTOVER_AGE_S


def _drop_leftovers(cursor) -> list[str]:
    """Drop the scratch databases earlier runs left behind (SIGKILL, a lost connection): only
    those whose name proves it (see :func:`_is_leftover`), owned by this role, that no session
    is connected to. Without FORCE: a database someone connects to meanwhile stays."""
    cursor.execute(
        "SELECT d.datname FROM pg_catalog.pg_database d "
        "WHERE d.datname LIKE 'migration\\_guard\\_scratch\\_%' "
        "AND d.datdba = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) "
        "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.datname = d.datname)"
    )
    now = time.time()
    dropped = []
    for (name,) in cursor.fetchall():
        if not _is_leftover(name, now):
            continue
        try:
            cursor.execute(f'DROP DATABASE "{name}"')
        except Exception:  # connected to meanwhile, or no longer there
            continue
        dropped.append(name)
    return dropped


def copy_strategy(cursor) -> str:
    """How ``CREATE DATABASE`` copies its template on the server of ``cursor``: file by file
    (``STRATEGY = FILE_COPY``) from PostgreSQL 15 on when the server does not fsync (the embedded
    one, many CI services), else the server's default. That default from 15 on, WAL_LOG, writes the
    template's every block to the write-ahead log: a project's schema is thousands of small files,
    and on the embedded server a copy of the base at 5,000 migrations took 0.3-0.9 s that way
    against 0.09-0.14 s (0.04-0.11 s against 0.02 s at 100). FILE_COPY's checkpoints cost little only
    without fsync, so a server that syncs keeps its default."""
    cursor.execute("SELECT current_setting('server_version_num')::int >= 150000 "
                   "AND NOT current_setting('fsync')::boolean")
    return " STRATEGY = FILE_COPY" if cursor.fetchone()[0] else ""


class ScratchCreation:
    """``CREATE DATABASE`` of a scratch database, started on a session of its own in a thread:
    about 0.2 s of server time that runs while the caller loads the migrations. Hand it to
    :func:`scratch_database`, which waits for it (and drops the database); :meth:`discard` drops
    it when it is not used after all. The same session first drops the scratch databases that
    earlier runs left behind (:func:`_drop_leftovers`). ``now=False``: nothing is done until
    :meth:`wait`, unless the caller makes the database itself (:meth:`adopt`)."""

    def __init__(self, connection, *, now: bool = True):
        self.name = scratch_name()
        self.dropped_leftovers: list[str] = []
        # The thread's own connection, with a copy of the settings as they are now (--embedded has
        # pointed them at its server; scratch_database will change NAME)
        self._wrapper = type(connection)(dict(connection.settings_dict), connection.alias)
        self._error: Exception | None = None
        self.used = False  # handed to scratch_database, which drops it
        self._thread = threading.Thread(target=self._create, daemon=True, name="migration-guard-scratch")
        self.started = now  # the database is made (or being made) under self.name
        if now:
            self._thread.start()

    def _create(self) -> None:
        try:
            with self._wrapper._nodb_cursor() as cursor:
                with contextlib.suppress(Exception):  # cleaning up after others never stops this run
                    self.dropped_leftovers = _drop_leftovers(cursor)
                cursor.execute(f'CREATE DATABASE "{self.name}"{copy_strategy(cursor)}')
        except Exception as exc:  # raised by wait(), in the caller's thread
            self._error = exc
        finally:
            with contextlib.suppress(Exception):
                self._wrapper.close()

    def wait(self) -> str:
        """The database's name once it exists (raises what creating it raised)."""
        if not self.started:
            self.started = True
            self._create()
        self._join()
        self.used = True
        if self._error is not None:
            raise self._error
        return self.name

    def adopt(self) -> None:
        """The caller made the database under :attr:`name` itself (the base cache renamed a template
        to it): :meth:`wait` makes none."""
        self._join()
        self.started = True
        self._error = None

    def _join(self) -> None:
        if self._thread.ident is not None:
            self._thread.join()

    def server_cursor(self):
        """A cursor on the server's maintenance database, opened with the settings the scratch
        database is created with (a context manager: the session ends with it)."""
        return self._wrapper._nodb_cursor()

    def discard(self) -> None:
        """Drop the database if it was made (the run stopped before rendering)."""
        self._join()
        if self.started and self._error is None:
            with contextlib.suppress(Exception), self._wrapper._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            with contextlib.suppress(Exception):
                self._wrapper.close()


@contextlib.contextmanager
def scratch_database(connection, created: ScratchCreation | None = None, *, options: dict | None = None):
    """Point ``connection`` (keeping its alias, so routers still apply) at a new empty database on
    the same server (``created``'s, when given, else one created now); drop it afterwards. Needs the
    CREATEDB privilege. ``options``: the connection OPTIONS to use there (the target's own, without
    the read-only ones the gate adds to it)."""
    original = connection.settings_dict["NAME"]
    original_options = connection.settings_dict.get("OPTIONS")
    created = created or ScratchCreation(connection)
    connection.close()
    name = created.wait()
    connection.settings_dict["NAME"] = name
    if options is not None:
        connection.settings_dict["OPTIONS"] = options
    try:
        yield name
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original
        try:
            with connection._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            if options is not None:
                connection.settings_dict["OPTIONS"] = original_options


@contextlib.contextmanager
def scratch_dsn(dsn: str | None = None, *, pg_bin: str | None = None) -> Iterator[str]:
    """The DSN of a new, empty database, dropped on exit: on the server at ``dsn`` (which only needs to
    let us CREATE DATABASE), or on an embedded server started for the occasion. The session that creates
    it first drops the scratch databases earlier runs left behind (:func:`_drop_leftovers`)."""
    server = None
    if dsn is None:
        from migration_guard.embedded import EmbeddedPostgres, EmbeddedPostgresError

        try:
            server = EmbeddedPostgres(pg_bin).start()
        except EmbeddedPostgresError as exc:
            raise ScratchError(f"cannot start an embedded PostgreSQL: {exc}") from None
        dsn = server.dsn()
    name = scratch_name()
    try:
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                with contextlib.suppress(Exception), conn.cursor() as cursor:  # never stops this run
                    _drop_leftovers(cursor)
                with conn.cursor() as cursor:
                    cursor.execute(f'CREATE DATABASE "{name}"{copy_strategy(cursor)}')
        except psycopg.Error as exc:
            raise ScratchError(f"cannot create a scratch database on that server (the role needs CREATEDB): "
                               f"{dsn_problem(exc, dsn)}") from None
        try:
            yield make_conninfo(dsn, dbname=name)
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        if server is not None:
            server.stop()
