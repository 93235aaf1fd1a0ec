"""The base cache (migration_guard/base_cache.py): a scratch database at the base state kept as a
template, and the reports it gives, which must be those of a full build, push after push."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import psycopg
import pytest

from migration_guard.base_cache import TEMPLATE_PREFIX, Base, drop_templates, list_templates
from migration_guard.embedded import (EmbeddedPostgres, EmbeddedPostgresError, _KeptFolder, _memory_folder,
                                      archive_data_folder)

MIGRATION_0005 = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.AlterField("item", "quantity", models.BigIntegerField(null=True)),
        migrations.CreateModel("Shelf", [("id", models.BigAutoField(primary_key=True)), ("label", models.TextField())]),
    ]
'''

MIGRATION_0006 = '''
from django.db import migrations, models
from django.utils.translation import gettext_lazy as _


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_item_quantity_big")]
    operations = [
        migrations.AddField("item", "colour", models.TextField(null=True, verbose_name=_("colour"))),
        migrations.AddIndex("item", models.Index(fields=["colour"], name="item_colour_idx")),
    ]
'''

MIGRATION_0007 = '''
from django.db import migrations, models


def label_shelves(apps, schema_editor):
    # A model no operation of this migration touches: rendering only the touched ones would miss it.
    apps.get_model("inventory", "Shelf").objects.filter(label="").update(label="?")


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_item_colour")]
    operations = [
        # First: Django renders every model again only before a RunPython that follows a change.
        migrations.RunPython(label_shelves, migrations.RunPython.noop),
        migrations.AlterField("item", "colour", models.CharField(max_length=40, null=True)),
        migrations.AddConstraint("item", models.CheckConstraint(condition=models.Q(quantity__gte=0),
                                                                 name="item_quantity_positive")),
    ]
'''


@pytest.fixture
def templates(pg_server):
    """The server's templates are the tests' own: none before, none after."""

    def drop():
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn, conn.cursor() as cursor:
            drop_templates(cursor, [name for name, _, _ in list_templates(cursor)])

    def current() -> list[tuple[str, Base | None, int]]:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn, conn.cursor() as cursor:
            return list_templates(cursor)

    drop()
    yield current
    drop()


def _git(root, *args):
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


def _repository(project):
    """The fixture project as a git repository whose main branch has 0001-0004."""
    _git(project.root, "init", "-q", "-b", "main")
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-qm", "base")


def _lint(project, tmp_path, *args, cache=True):
    env = {"MIGRATION_GUARD_CACHE_DIR": str(tmp_path / "cache"), "MIGRATION_GUARD_BASE_CACHE": "1" if cache else "0"}
    run = project.lint(*args, "--format", "json", "--assume-rows", "10", env=env)
    assert run.code in (0, 1), run.err
    report = run.json()
    notes = [n for n in report.get("notes", []) if n.startswith("base cache:")]
    return report, notes


def _comparable(report: dict) -> dict:
    """The report without its notes (which name the throwaway database and the cache)."""
    return {key: value for key, value in report.items() if key != "notes"}


def _same_with_and_without(project, tmp_path, *args) -> list[str]:
    return _cached_same_as_full(project, tmp_path, *args)[1]


def _cached_same_as_full(project, tmp_path, *args) -> tuple[dict, list[str]]:
    """The report with the cache and its base cache notes, once checked to be the report without it."""
    cached, notes = _lint(project, tmp_path, *args)
    full, full_notes = _lint(project, tmp_path, *args, cache=False)
    assert full_notes == []
    assert _comparable(cached) == _comparable(full)
    assert cached["migrations"], "nothing was linted"
    return cached, notes


def _merge_0005_0006_and_rebase_with(project, name: str, migration: str) -> None:
    """0005 and 0006 are merged to main; the feature branch is rebased on it and adds ``name``."""
    _git(project.root, "checkout", "-q", "main")
    project.add_migration("0005_item_quantity_big", MIGRATION_0005)
    project.add_migration("0006_item_colour", MIGRATION_0006)
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-qm", "merge 0005, 0006")
    _git(project.root, "checkout", "-q", "feature")
    _git(project.root, "rebase", "-q", "main")
    project.add_migration(name, migration)
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-qm", name)


def test_reports_identical_over_pushes_merges_rebases_and_edits(project, tmp_path, templates):
    _repository(project)
    # A pull request adds 0005: the first run builds the base (0001-0004) and keeps it.
    _git(project.root, "checkout", "-qb", "feature")
    project.add_migration("0005_item_quantity_big", MIGRATION_0005)
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-qm", "bigint quantity")
    notes = _same_with_and_without(project, tmp_path, "--since", "main")
    assert notes[0].startswith("base cache: no template for this base yet (4 migrations")
    assert notes[1].startswith("base cache: kept the base (4 migrations) as template")
    (kept,) = templates()
    assert kept[1] is not None and len(kept[1].nodes) == 4
    # The key CI caches it under, printed before the run (no scratch database made): the template's name.
    env = {"MIGRATION_GUARD_CACHE_DIR": str(tmp_path / "cache"), "MIGRATION_GUARD_BASE_CACHE": "1"}
    key = project.lint("--since", "main", "--print-cache-key", env=env)
    assert key.code == 0 and TEMPLATE_PREFIX + key.out.strip() == kept[0], key.err
    off = project.lint("--since", "main", "--print-cache-key", env={**env, "MIGRATION_GUARD_BASE_CACHE": "0"})
    assert off.out.strip() == "none"
    # A second push: the base is the template, copied.
    notes = _same_with_and_without(project, tmp_path, "--since", "main")
    assert notes == [f"base cache: the scratch database is a copy of template {kept[0]} (4 migrations)"]

    # 0005 and 0006 are merged to main; the branch is rebased and adds 0007: 0001-0004 come from the
    # template, 0005-0006 are applied, and the new base is kept.
    _merge_0005_0006_and_rebase_with(project, "0007_item_colour_char", MIGRATION_0007)
    notes = _same_with_and_without(project, tmp_path, "--since", "main")
    assert notes[0] == f"base cache: the scratch database is a copy of template {kept[0]} (4 migrations; 2 more applied)"
    assert notes[1].startswith("base cache: kept the base (6 migrations)")
    assert len(templates()) == 2
    # The next push: the base is that template; the linted migration's Python still sees every model.
    notes = _same_with_and_without(project, tmp_path, "--since", "main")
    assert notes[0].startswith("base cache: the scratch database is a copy of template ")
    assert notes[0].endswith(" (6 migrations)")

    # An edited migration of the base (a fix-up of 0003 on main): no template has that 0003, so
    # the largest one without it (0001-0002: none) or a full build; the report is that of a full build.
    _git(project.root, "checkout", "-q", "main")
    path = project.root / "inventory" / "migrations" / "0003_item_name_longer.py"
    path.write_text(path.read_text().replace("max_length=200", "max_length=300"))
    assert "max_length=300" in path.read_text()
    _git(project.root, "commit", "-qam", "0003: longer still")
    _git(project.root, "checkout", "-q", "feature")
    _git(project.root, "rebase", "-q", "main")
    notes = _same_with_and_without(project, tmp_path, "--since", "main")
    assert notes[0].startswith("base cache: no template for this base yet (6 migrations")


def test_a_template_is_copied_file_by_file_not_through_the_write_ahead_log(project, tmp_path, templates,
                                                                           pg_server):
    """Keeping the base and copying it for the next run write the template's files, not its every
    block to the write-ahead log (PostgreSQL 15's default, WAL_LOG: several times slower for a
    project's thousands of small files, and a kept data folder that much bigger)."""
    _repository(project)
    _git(project.root, "checkout", "-qb", "feature")
    project.add_migration("0005_item_quantity_big", MIGRATION_0005)

    def wal() -> int:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            return conn.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0]

    before = wal()
    _, kept_notes = _lint(project, tmp_path, "--since", "main")
    _, copy_notes = _lint(project, tmp_path, "--since", "main")
    written = wal() - before
    assert kept_notes[1].startswith("base cache: kept the base") and copy_notes[0].startswith(
        "base cache: the scratch database is a copy of template")
    ((_, _, size),) = templates()
    assert written < size / 2, (written, size)


def test_cache_list_and_prune_on_a_server(project, tmp_path, templates, pg_server):
    _repository(project)
    project.add_migration("0005_item_quantity_big", MIGRATION_0005)
    _lint(project, tmp_path, "--since", "main")
    (name, base, size) = templates()[0]
    listed = project.cli("cache", "list", "--dsn", pg_server.dsn())
    assert listed.code == 0, listed.err
    assert listed.out.startswith(f"{name}  4 migrations  ")
    # The project state kept with the template (a later run starts from it) goes with it.
    (state,) = (tmp_path / "cache").glob("base-*.pickle")
    project.env["MIGRATION_GUARD_CACHE_DIR"] = str(tmp_path / "cache")
    kept = project.cli("cache", "prune", "--dsn", pg_server.dsn(), "--max-bytes", str(size))
    assert kept.code == 0 and templates() != [] and state.exists()  # fits: kept
    pruned = project.cli("cache", "prune", "--dsn", pg_server.dsn(), "--max-bytes", str(size - 1))
    assert pruned.code == 0 and f"dropped {name}" in pruned.err
    assert templates() == [] and not state.exists()


def test_a_template_is_the_role_s_own_named_by_its_manifest_and_never_changed(project, tmp_path, templates,
                                                                             pg_server):
    _repository(project)
    project.add_migration("0005_item_quantity_big", MIGRATION_0005)
    _lint(project, tmp_path, "--since", "main")
    ((name, base, _),) = templates()
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (name,)).fetchone() == (False,)
        # A database of another role with the same manifest, and one of ours whose name does not match
        # its manifest: neither is ever used.
        conn.execute("CREATE ROLE intruder CREATEDB")
        conn.execute(f'ALTER DATABASE "{name}" RENAME TO "{TEMPLATE_PREFIX}{"0" * 40}"')
        conn.execute(f'CREATE DATABASE "{name}" OWNER intruder')
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{base.manifest()}'")
        try:
            _, notes = _lint(project, tmp_path, "--since", "main")
            assert notes[0].startswith("base cache: no template for this base yet")
            assert notes[1] == ("base cache: the base was not kept (database "
                                f"\"{name}\" already exists)")
        finally:
            conn.execute(f'DROP DATABASE "{name}"')
            conn.execute("DROP ROLE intruder")
    # A run never reaches into a template: the migrations linted on the copy are not in it.
    _lint(project, tmp_path, "--since", "main")
    ((name, _, _),) = [t for t in templates() if t[1] is not None]
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    with psycopg.connect(pg_server.dsn(name)) as conn:
        column = conn.execute("SELECT data_type FROM information_schema.columns "
                              "WHERE table_name = 'inventory_item' AND column_name = 'quantity'").fetchone()
        warehouse = conn.execute("SELECT count(*) FROM information_schema.tables "
                                 "WHERE table_name = 'inventory_warehouse'").fetchone()
    assert warehouse == (1,) and column == ("integer",)  # the base's tables; 0005 (bigint) ran on the copy only


def test_embedded_keeps_its_data_folder_privately_and_turns_off(project, tmp_path):
    _repository(project)
    project.add_migration("0005_item_quantity_big", MIGRATION_0005)
    _, notes = _lint(project, tmp_path, "--since", "main", "--embedded")
    assert notes[1].startswith("base cache: kept the base (4 migrations)")
    (cluster,) = (tmp_path / "cache").glob("embedded-*/cluster")
    with tarfile.open(cluster / "data.tar") as tar:
        assert tar.extractfile("PG_VERSION").read().strip() == b"18"
    for path in [cluster, *cluster.rglob("*")]:  # this user's, nobody else can write to it
        assert path.stat().st_uid == os.getuid() and not path.stat().st_mode & 0o022, path
    _, notes = _lint(project, tmp_path, "--since", "main", "--embedded")
    assert notes[0].startswith("base cache: the scratch database is a copy of template")
    # A file another user could have written: the kept folder is never started, a fresh one is kept instead.
    os.chmod(cluster / "data.tar", 0o666)
    _, notes = _lint(project, tmp_path, "--since", "main", "--embedded")
    assert notes[0].startswith("base cache: no template for this base yet")
    assert not (cluster / "data.tar").stat().st_mode & 0o022  # replaced
    # Off with one setting: the configuration's base_cache, or the environment.
    project.config("[tool.migration_guard]\nbase_cache = false\n")
    assert _lint(project, tmp_path, "--since", "main", "--embedded")[1] == []


def _kept_files(cache) -> dict[str, str]:
    """Every file of the kept embedded data folder, by relative path, with the sha256 of its content."""
    (cluster,) = cache.glob("embedded-*/cluster")
    return {str(path.relative_to(cluster)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(cluster.rglob("*")) if path.is_file()}


def _template_folders(cache) -> list[str]:
    """The kept data folder's databases made after initdb (the templates), each archived apart."""
    (cluster,) = cache.glob("embedded-*/cluster")
    return sorted(path.name for path in cluster.glob("base.*.tar") if int(path.name.split(".")[1]) >= 16384)


def test_embedded_runs_use_a_template_in_their_copy_and_keep_every_template_whole(project, tmp_path):
    """A run uses a template of its own copy of the kept data folder (the one at its base becomes its
    scratch database; the others' files are copied only when used) and never changes the kept folder;
    a run that makes a template keeps a folder with every template's files."""
    cache = tmp_path / "cache"
    _repository(project)
    _git(project.root, "checkout", "-qb", "feature")
    project.add_migration("0005_item_quantity_big", MIGRATION_0005)
    assert _lint(project, tmp_path, "--since", "main", "--embedded")[1][1].startswith("base cache: kept the base (4")
    # 0005 and 0006 merged to main, the branch rebased with 0007: the base (6) is kept next to the first (4).
    _git(project.root, "checkout", "-q", "main")
    project.add_migration("0006_item_colour", MIGRATION_0006)
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-qm", "merge 0005, 0006")
    _git(project.root, "checkout", "-q", "-B", "feature")
    project.add_migration("0007_item_colour_char", MIGRATION_0007)
    notes = _lint(project, tmp_path, "--since", "main", "--embedded")[1]
    assert notes[0].endswith("(4 migrations; 2 more applied)") and notes[1].startswith("base cache: kept the base (6")
    assert len(_template_folders(cache)) == 2
    kept = _kept_files(cache)
    # The next push: the template at the base, in the run's copy; the kept folder is left as it was.
    notes = _same_with_and_without(project, tmp_path, "--since", "main", "--embedded")
    assert notes == [notes[0]] and notes[0].startswith("base cache: the scratch database is a copy of template")
    assert notes[0].endswith("(6 migrations)")
    assert _kept_files(cache) == kept
    # A branch made before the merge: the first template's files, which no run had copied since the merge.
    (project.root / "inventory" / "migrations" / "0007_item_colour_char.py").unlink()
    _git(project.root, "checkout", "-q", "-b", "older", "main~1")
    project.add_migration("0005_item_code", MIGRATION_0005.replace("quantity", "code").replace("AlterField", "AddField"))
    notes = _same_with_and_without(project, tmp_path, "--since", "main", "--embedded")
    assert notes == [notes[0]] and notes[0].endswith("(4 migrations)")
    assert _kept_files(cache) == kept
    # On top of it, a base made from the first template: kept with the newest other one (6), whose
    # files this run did not need but copies before it keeps its folder.
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-qm", "code")
    _git(project.root, "checkout", "-q", "-b", "newer")
    project.add_migration("0006_item_note", MIGRATION_0006.replace("0005_item_quantity_big", "0005_item_code"))
    notes = _lint(project, tmp_path, "--since", "older", "--embedded")[1]
    assert notes[0].endswith("(4 migrations; 1 more applied)") and notes[1].startswith("base cache: kept the base (5")
    assert len(_template_folders(cache)) == 2
    (project.root / "inventory" / "migrations" / "0006_item_note.py").unlink()
    _git(project.root, "checkout", "-q", "feature")
    project.add_migration("0007_item_colour_char", MIGRATION_0007)
    notes = _same_with_and_without(project, tmp_path, "--since", "main", "--embedded")
    assert notes == [notes[0]] and notes[0].endswith("(6 migrations)")


UNDESCRIBABLE = '''
from django.db import migrations, models


class Odd:
    """A validator that does not say what it is made of (no deconstruct)."""

    def __call__(self, value):
        pass


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AddField("item", "code", models.TextField(null=True, validators=[Odd()]))]
'''


def test_a_base_the_key_cannot_describe_is_built_in_full_and_says_why(project, tmp_path, templates):
    project.add_migration("0005_item_code", UNDESCRIBABLE)
    _repository(project)
    project.add_migration("0006_item_quantity_big", MIGRATION_0005.replace("0004_item_warehouse_note", "0005_item_code"))
    notes = _same_with_and_without(project, tmp_path, "--since", "main")
    assert notes == ["base cache: not used (inventory.0005_item_code: a inventory.migrations.0005_item_code.Odd in "
                     "its operations has no deconstruct()); every migration applied"]
    assert templates() == []


def _data_folder(root):
    """A stand-in for a stopped data folder: a system database's files and a template's."""
    for relative in ("PG_VERSION", "base/1/1259", "base/16384/1259", "base/16384/2619"):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_bytes(relative.encode() * 1000)
    return root


def _kept(tmp_path, name="cluster", content=b""):
    """A kept data folder (archives) of :func:`_data_folder`."""
    data = _data_folder(tmp_path / f"data-{name}")
    (data / "base" / "16384" / "2619").write_bytes(b"base/16384/2619" * 1000 + content)
    archive_data_folder(data, tmp_path / name, apart=["base/16384"])
    return tmp_path / name


def _tarfile_archive(data, top, path, skip):
    """The archive ``tarfile`` writes of the folder ``top`` of ``data`` (the entries: folders and
    files, named, mode 0700/0600, nothing else), which the kept folder's own writer must match."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder, names, files in os.walk(data / top):
            relative = os.path.relpath(folder, data)
            names[:] = sorted(name for name in names if os.path.normpath(os.path.join(relative, name)) not in skip
                              and not os.path.islink(os.path.join(folder, name)))
            entry = tarfile.TarInfo(os.path.normpath(relative))
            entry.type, entry.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(entry)
            for name in sorted(files):
                source = os.path.join(folder, name)
                if os.path.islink(source) or not os.path.isfile(source):
                    continue
                entry = tarfile.TarInfo(os.path.normpath(os.path.join(relative, name)))
                entry.mode, entry.size = 0o600, os.path.getsize(source)
                with open(source, "rb") as content:
                    tar.addfile(entry, content)


def test_the_archives_of_a_kept_folder_are_the_bytes_tarfile_writes(tmp_path):
    """The writer makes headers itself (tarfile's cost 1 s a run at 5,000 migrations): every kind of
    name and size a data folder can hold comes out as tarfile writes it, and extracts whole."""
    data = _data_folder(tmp_path / "data")
    deep = data / "base" / "16384" / ("d" * 60) / ("e" * 60)  # a folder's name past ustar's 100 bytes
    deep.mkdir(parents=True)
    files = {"PG_VERSION": b"18\n", "empty": b"", "base/16384/one_block": b"x" * 512,
             "base/16384/odd": bytes(range(256)) * 41, "base/16384/" + "f" * 99: b"a name of 110 bytes",
             "base/16384/" + "g" * 88: b"a name of exactly 99 bytes", "pg_wal/caf\u00e9": b"not ascii",
             "big": os.urandom(3 * (1 << 20) + 17)}  # more than one read
    for relative, content in files.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_bytes(content)
    (deep / "file").write_bytes(b"deep")
    os.symlink(data / "PG_VERSION", data / "link")  # left out, as links are
    os.mkfifo(data / "fifo")  # left out, and not waited on
    archive_data_folder(data, tmp_path / "kept", apart=["base/16384"])
    _tarfile_archive(data, ".", tmp_path / "data.tar", {"base/16384"})
    _tarfile_archive(data, "base/16384", tmp_path / "base.16384.tar", set())
    for name in ("data.tar", "base.16384.tar"):
        assert (tmp_path / "kept" / name).read_bytes() == (tmp_path / name).read_bytes(), name
    source = _KeptFolder(tmp_path / "kept")
    try:
        source.copy(tmp_path / "copy", None)
    finally:
        source.close()
    for relative, content in files.items():
        assert (tmp_path / "copy" / relative).read_bytes() == content
    assert not (tmp_path / "copy" / "link").exists() and not (tmp_path / "copy" / "fifo").exists()


def test_a_kept_folder_is_extracted_from_the_archives_it_had_when_opened(tmp_path):
    """Folders left for later (at once, or in the background) come from the archives opened at the
    start, whole, even when another run has kept another folder in its place and deleted the old."""
    kept = _kept(tmp_path)
    assert sorted(path.name for path in kept.iterdir()) == ["base.16384.tar", "data.tar"]
    source = _KeptFolder(kept)
    try:
        source.copy(tmp_path / "copy", None, later=["base/16384"])
        assert (tmp_path / "copy" / "base" / "1" / "1259").read_bytes() == b"base/1/1259" * 1000
        assert not (tmp_path / "copy" / "base" / "16384").exists()
        os.rename(kept, tmp_path / "old")
        _kept(tmp_path, content=b"another run's")
        shutil.rmtree(tmp_path / "old")
        source.copy_later(tmp_path / "copy", None, ["base/16384"])
        assert (tmp_path / "copy" / "base" / "16384" / "2619").read_bytes() == b"base/16384/2619" * 1000
    finally:
        source.close()
    source = _KeptFolder(kept)
    try:
        source.copy(tmp_path / "soon", None, later=["base/16384"])
        source.copy_soon(tmp_path / "soon", None, ["base/16384"])
        source.copy_later(tmp_path / "soon", None, ["base/16384"])
        assert (tmp_path / "soon" / "base" / "16384" / "2619").read_bytes().endswith(b"another run's")
        assert source.later == set()
    finally:
        source.close()


def _hostile(kept, entry, tmp_path):
    """Make the kept folder ``kept`` hold what another user or a tampered archive would."""
    if entry == "writable":
        os.chmod(kept / "data.tar", 0o666)
    elif entry == "fifo":
        (kept / "base.16384.tar").unlink()
        os.mkfifo(kept / "base.16384.tar")  # never waited on
    elif entry == "link":
        (kept / "base.16384.tar").unlink()
        (kept / "base.16384.tar").symlink_to(tmp_path / "elsewhere.tar")
    elif entry == "other file":
        (kept / "notes.txt").write_text("")
    else:  # an archive entry: outside the data folder, outside its own folder, a link
        (kept / "base.16384.tar").unlink()
        with tarfile.open(kept / "base.16384.tar", "w") as tar:
            member = tarfile.TarInfo({"parent": "../escaped", "absolute": "/tmp/escaped",
                                      "elsewhere": "base/1/2619", "member link": "base/16384/2619"}[entry])
            if entry == "member link":
                member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(member, io.BytesIO(b""))


@pytest.mark.parametrize("entry", ["writable", "fifo", "link", "other file", "parent", "absolute", "elsewhere",
                                   "member link"])
def test_a_kept_folder_with_anything_another_user_could_have_made_is_not_extracted(tmp_path, entry):
    kept = _kept(tmp_path)
    _hostile(kept, entry, tmp_path)
    with pytest.raises(EmbeddedPostgresError):
        source = _KeptFolder(kept)
        try:
            source.copy(tmp_path / "copy", None)
        finally:
            source.close()
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_a_server_that_does_not_start_says_why(tmp_path):
    server = EmbeddedPostgres(settings={"max_connections": "many"})
    try:
        with pytest.raises(EmbeddedPostgresError, match='invalid value for parameter "max_connections"'):
            server.start()
    finally:
        server.stop()


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="no /dev/shm on this system")
def test_a_data_folder_goes_to_memory_when_it_fits_and_tmpdir_is_not_set(tmp_path, monkeypatch):
    """A new data folder (initdb) and a copy of a kept one: in memory, unless TMPDIR says where."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.delenv(name, raising=False)
    kept = tmp_path / "kept"
    server = EmbeddedPostgres().start()
    assert server.host.startswith("/dev/shm/migration-guard-pg-")
    server.stop(keep=lambda data: archive_data_folder(data, kept))
    try:
        server.start(data_from=kept)
        assert server.host.startswith("/dev/shm/migration-guard-pg-")
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
    # Too big for the memory free, or TMPDIR naming the temp folder: the temp folder.
    assert _memory_folder(2**60) is None
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(name, str(tmp_path))
        assert _memory_folder(0) is None
        monkeypatch.delenv(name)
    # A folder the server's user can reach (as root the server runs as nobody; tmp_path is private).
    folder = Path(tempfile.mkdtemp(prefix="migration-guard-test-tmpdir-", dir="/tmp"))
    folder.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read from TMPDIR again
    try:
        server = EmbeddedPostgres().start()
        try:
            assert server.host.startswith(str(folder / "migration-guard-pg-"))
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


MIGRATION_0007_DROP = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_item_colour")]
    operations = [migrations.RemoveField("item", "colour")]
'''


def test_after_a_merge_the_running_code_is_the_new_base_not_the_template(project, tmp_path, templates):
    """A template kept before a merge lacks the merged migrations; the running code (main after the merge)
    has them. The run takes the running code's models where it reaches them (after applying the merged
    migrations), not from the template: dropping a column main added (0006) while main's code uses it is
    MG020, with the cache as without it."""
    _repository(project)
    _git(project.root, "checkout", "-qb", "feature")
    project.add_migration("0005_item_quantity_big", MIGRATION_0005)
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-qm", "bigint quantity")
    _same_with_and_without(project, tmp_path, "--since", "main")  # keeps the base 0001-0004
    _merge_0005_0006_and_rebase_with(project, "0007_remove_item_colour", MIGRATION_0007_DROP)
    cached, notes = _cached_same_as_full(project, tmp_path, "--since", "main")
    assert notes[0].endswith("(4 migrations; 2 more applied)"), notes
    assert ("inventory.0007_remove_item_colour", "MG020") in {(f["migration"], f["rule"]) for f in cached["findings"]}
