"""Hostile and broken migrations, end to end on a real server: the gate never passes by accident,
never writes, never leaves anything behind, never leaks (issue 13).

Each migration here tries to break one promise; the test proves on the server (catalog, rows,
role settings) that nothing it tried persisted, and that the run ended in a verdict."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tests.test_lint_migrations import SMALL_THRESHOLD, _finding

# A migration that holds a blocking statement: a run that exits 0 with it has passed by accident.
BLOCKING = 'migrations.RunSQL("ALTER TABLE inventory_item ALTER COLUMN quantity TYPE bigint")'


def _migration(body: str, operations: str, *, header: str = "", atomic: bool = True) -> str:
    return f'''import os, sys, time
from django.db import connection, migrations, models
{header}

{body}


class Migration(migrations.Migration):
    atomic = {atomic}
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [{operations}]
'''


def _no_traceback(run) -> None:
    assert "Traceback" not in run.err and "Traceback" not in run.out, run.err


def _exists(project, table: str) -> bool:
    return project.sql(f"SELECT to_regclass('public.{table}') IS NOT NULL")[0][0]


def _scratch_databases(project) -> list[str]:
    return [name for (name,) in project.sql(
        "SELECT datname FROM pg_database WHERE datname LIKE 'migration\\_guard\\_scratch\\_%'")]


# -- no way out but a verdict ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [(), ("--scratch",)], ids=["collect", "scratch"])
def test_sys_exit_at_import_time_is_an_error_not_a_pass(project, mode):
    project.migrate("0004")
    project.add_migration("0005_exit", _migration("sys.exit(0)", BLOCKING))
    run = project.lint(*mode)
    _no_traceback(run)
    assert run.code == 2, (run.code, run.out, run.err)
    assert "sys.exit(0)" in run.err and "0005_exit.py" in run.err


def test_sys_exit_in_run_python_under_scratch_blocks(project):
    project.migrate("0004")
    project.add_migration("0005_exit", _migration(
        "def leave(apps, schema_editor):\n    sys.exit(0)",
        f"{BLOCKING}, migrations.RunPython(leave)"))
    run = project.lint("--scratch", "--format", "json")
    _no_traceback(run)
    assert run.code == 1, run.err
    [error] = _finding(run, "MG901")
    assert "sys.exit(0)" in error["message"]


@pytest.mark.parametrize("raised", ["SystemExit(0)", "KeyboardInterrupt()", "RecursionError()"])
def test_anything_raised_by_a_custom_operation_in_collect_mode_blocks(project, raised):
    project.migrate("0004")
    project.add_migration("0005_raise", _migration(
        "class Leave(migrations.operations.base.Operation):\n"
        "    def state_forwards(self, app_label, state):\n        pass\n"
        "    def database_forwards(self, app_label, schema_editor, from_state, to_state):\n"
        f"        raise {raised}\n",
        f"{BLOCKING}, Leave()"))
    run = project.lint("--format", "json")
    _no_traceback(run)
    assert run.code == 1, run.err
    assert _finding(run, "MG901"), run.out


def test_a_bug_in_the_gate_is_exit_2_with_one_line_not_a_traceback(project):
    project.migrate("0004")
    # The migration breaks the gate itself (as a bug would): analysing raises.
    project.add_migration("0005_break_the_gate", _migration(
        "import migration_guard.gate\n"
        "def broken(*args, **kwargs):\n    raise ZeroDivisionError('a bug')\n"
        "migration_guard.gate.analyse_migrations = broken", BLOCKING))
    run = project.lint()
    _no_traceback(run)
    assert run.code == 2
    assert "unexpected error" in run.err and "ZeroDivisionError: a bug" in run.err
    assert len(run.err.strip().splitlines()) == 1


# -- read-only in depth ------------------------------------------------------------------------------


def test_import_time_write_is_refused_and_nothing_persists(project):
    project.migrate("0004")
    project.add_migration("0005_import_write", _migration(
        "with connection.cursor() as c:\n    c.execute('CREATE TABLE pwned_at_import (id int)')", BLOCKING))
    run = project.lint()
    _no_traceback(run)
    assert run.code == 2
    assert "CREATE TABLE pwned_at_import" in run.err and "0005_import_write.py" in run.err
    assert not _exists(project, "pwned_at_import")


def test_trace_loads_the_migrations_read_only_too(project):
    project.migrate("0004")
    project.add_migration("0005_import_write", _migration(
        "try:\n    connection.cursor().execute('CREATE TABLE pwned_at_import (id int)')\nexcept Exception:\n    pass",
        BLOCKING))
    run = project.lint("--trace")
    _no_traceback(run)
    assert run.code == 2 and "CREATE TABLE pwned_at_import" in run.err
    assert not _exists(project, "pwned_at_import")


def test_import_time_code_that_swallows_the_refusal_still_stops_the_run(project):
    project.migrate("0004")
    project.add_migration("0005_import_write", _migration(
        "for sql in ['SET default_transaction_read_only = off', 'SET SESSION CHARACTERISTICS AS TRANSACTION "
        "READ WRITE', 'CREATE TABLE pwned_at_import (id int)']:\n"
        "    try:\n        connection.cursor().execute(sql)\n    except Exception:\n        pass", BLOCKING))
    run = project.lint()
    _no_traceback(run)
    assert run.code == 2, run.out
    assert "default_transaction_read_only" in run.err
    assert not _exists(project, "pwned_at_import")


# What a custom operation tried, each in its own try (so every one is attempted): none may persist.
WRITES = [
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "RESET ALL",
    "COMMIT",
    "INSERT INTO inventory_warehouse (name) VALUES ('pwned')",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; COMMIT; INSERT INTO inventory_warehouse (name) VALUES ('pwned')",
    "CREATE TABLE pwned_in_render (id int)",
    "WITH gone AS (DELETE FROM inventory_warehouse RETURNING id) SELECT count(*) FROM gone",
]


def test_custom_operation_writes_become_findings_and_none_persists(project):
    project.migrate("0004")
    project.sql("INSERT INTO inventory_warehouse (name) VALUES ('kept')")
    project.add_migration("0005_render_write", _migration(
        "class Write(migrations.operations.base.Operation):\n"
        "    def state_forwards(self, app_label, state):\n        pass\n"
        "    def database_forwards(self, app_label, schema_editor, from_state, to_state):\n"
        f"        for sql in {WRITES!r}:\n"
        "            try:\n"
        "                with schema_editor.connection.cursor() as c:\n                    c.execute(sql)\n"
        "            except Exception:\n                pass\n",
        "Write()"))
    run = project.lint("--format", "json")
    _no_traceback(run)
    assert run.code == 1, run.err
    refused = _finding(run, "MG910")
    assert len(refused) == len(WRITES), [f["message"] for f in refused]
    assert all(f["blocking"] and f["migration"] == "inventory.0005_render_write" for f in refused)
    assert "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE" in refused[0]["message"]
    assert project.sql("SELECT array_agg(name ORDER BY name) FROM inventory_warehouse")[0][0] == ["kept"]
    assert not _exists(project, "pwned_in_render")


def test_the_release_gate_says_whether_the_role_could_write(project):
    project.migrate("0004")
    superuser = project.lint("--format", "json")
    note = next(n for n in superuser.json()["notes"] if "role" in n)
    assert f'the role "{project.server.user}" can write' in note and "superuser" in note
    assert "only a read-only role stops" in note
    role = f"mg_reader_{secrets.token_hex(3)}"
    project.sql(f"CREATE ROLE {role} LOGIN; GRANT SELECT ON django_migrations TO {role}")
    try:
        reader = project.lint("--format", "json", env={"FIXTURE_DB_USER": role})
        assert reader.code == 0, reader.err
        note = next(n for n in reader.json()["notes"] if "role" in n)
        assert f'the role "{role}" has no write privilege' in note
    finally:
        project.sql(f"DROP OWNED BY {role}; DROP ROLE {role}")


# -- --scratch touches nothing outside its database ------------------------------------------------


def test_scratch_refuses_cluster_wide_statements_and_none_persists(project):
    victim = f"mg_victim_{secrets.token_hex(3)}"
    intruder = f"mg_intruder_{secrets.token_hex(3)}"
    project.sql(f"CREATE ROLE {victim}")
    attacks = [
        f"ALTER ROLE {victim} SET work_mem = '77kB'",
        f"ALTER ROLE {victim} PASSWORD 'hunter2'",
        f"CREATE ROLE {intruder} SUPERUSER",
        f'ALTER DATABASE "{project.dbname}" SET work_mem = \'77kB\'',
        "ALTER SYSTEM SET work_mem = '77kB'",
        f"DO $$BEGIN EXECUTE 'ALTER ROLE {victim} SET work_mem = ''78kB'''; END$$",
    ]
    project.migrate("0004")
    project.add_migration("0005_cluster", _migration(
        "def attack(apps, schema_editor):\n"
        f"    for sql in {attacks!r}:\n"
        "        try:\n"
        "            with schema_editor.connection.cursor() as c:\n                c.execute(sql)\n"
        "        except Exception:\n            pass\n",
        "migrations.RunPython(attack, atomic=False)", atomic=False))  # autocommit: each one would stay
    try:
        run = project.lint("--scratch", "--format", "json")
        _no_traceback(run)
        assert run.code == 1, run.err
        refused = _finding(run, "MG911")
        assert len(refused) == len(attacks), [f["message"] for f in refused]
        assert "hunter2" not in run.out
        settings = project.sql("SELECT count(*) FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') "
                               "LIKE '%work_mem=7%'")[0][0]
        assert settings == 0
        assert project.sql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{intruder}'")[0][0] == 0
        assert project.sql(f"SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = '{victim}'")[0][0]
        assert project.sql("SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem' "
                           "AND sourcefile LIKE '%postgresql.auto.conf'")[0][0] == 0
    finally:
        project.sql(f"DROP ROLE IF EXISTS {intruder}")
        project.sql(f"ALTER ROLE {victim} RESET ALL")
        project.sql(f"DROP ROLE {victim}")
        project.sql(f'ALTER DATABASE "{project.dbname}" RESET ALL')
        project.sql("ALTER SYSTEM RESET work_mem")


# -- signals -----------------------------------------------------------------------------------------


def _start_slow_scratch_run(project):
    project.migrate("0004")
    project.add_migration("0005_slow", _migration(
        "def slow(apps, schema_editor):\n    time.sleep(60)", f"{BLOCKING}, migrations.RunPython(slow)"))
    process = subprocess.Popen([sys.executable, "manage.py", "lint_migrations", "--scratch"], cwd=project.root,
                               env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the scratch database exists and the RunPython sleeps
        names = _scratch_databases(project)
        if names and project.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = ANY({_array(names)}) "
                                 "AND query LIKE '%ALTER TABLE%'")[0][0]:
            return process, names
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the scratch run did not reach the migration")


def _array(names: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{n}'" for n in names) + "]"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 2), (signal.SIGHUP, 2)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_ends_the_run_cleanly_and_drops_the_scratch_database(project, signum, code):
    process, names = _start_slow_scratch_run(project)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, (out, err)
    assert "Traceback" not in err and signal.Signals(signum).name in err or "interrupted" in err, err
    assert not set(names) & set(_scratch_databases(project))


def test_a_later_run_drops_what_a_killed_run_left_behind(project):
    process, names = _start_slow_scratch_run(project)
    process.kill()  # SIGKILL: nothing runs on the way out
    process.wait()
    time.sleep(0.5)  # the server notices the closed connection
    assert set(names) <= set(_scratch_databases(project))
    os.remove(project.root / "inventory" / "migrations" / "0005_slow.py")
    run = project.lint("--scratch", "--format", "json")
    assert run.code == 0, run.err
    assert not set(names) & set(_scratch_databases(project))
    assert any("left behind" in note and names[0] in note for note in run.json()["notes"])


def test_leftover_cleanup_spares_other_owners_and_connected_databases(project, pg_server):
    from migration_guard.scratch import _host_tag

    owner = f"mg_owner_{secrets.token_hex(3)}"
    dead = 2**22 + 12345  # no such pid here
    foreign = f"migration_guard_scratch_{_host_tag()}_{dead}_1_{secrets.token_hex(4)}"
    busy = f"migration_guard_scratch_{_host_tag()}_{dead + 1}_1_{secrets.token_hex(4)}"
    project.sql(f"CREATE ROLE {owner}")
    project.sql(f'CREATE DATABASE "{foreign}" OWNER {owner}')
    project.sql(f'CREATE DATABASE "{busy}"')
    try:
        with psycopg.connect(pg_server.dsn(busy)):
            run = project.lint("--scratch")
            assert run.code in (0, 1), run.err
            assert {foreign, busy} <= set(_scratch_databases(project))
        run = project.lint("--scratch")
        assert foreign in _scratch_databases(project) and busy not in _scratch_databases(project)
    finally:
        project.sql(f'DROP DATABASE IF EXISTS "{foreign}"')
        project.sql(f'DROP DATABASE IF EXISTS "{busy}"')
        project.sql(f"DROP ROLE {owner}")


# -- approvals cover what was approved ---------------------------------------------------------------


LOCKED_BACKFILL = '''from django.db import migrations


def backfill(apps, schema_editor):
    apps.get_model("inventory", "Item").objects.update(note="")


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.RunSQL("{lock}", migrations.RunSQL.noop),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
'''


def test_an_mg008_approval_goes_stale_when_the_held_lock_changes(project):
    project.migrate("0004")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    project.sql("INSERT INTO inventory_warehouse (name) SELECT 'w' || g FROM generate_series(1, 3000) g; "
                "ANALYZE inventory_warehouse")
    project.add_migration("0005_locked", LOCKED_BACKFILL.format(lock="LOCK TABLE inventory_item IN ACCESS EXCLUSIVE MODE"))
    [held] = _finding(project.lint("--format", "json"), "MG008")
    approved = project.cli("approve", held["migration"], "MG008", "--fingerprint", held["fingerprint"],
                           "--reason", "window", "--by", "dba@example.com")
    assert approved.code == 0, approved.err
    assert project.lint().code == 0
    for changed in ("LOCK TABLE inventory_warehouse IN ACCESS EXCLUSIVE MODE",  # another table
                    "LOCK TABLE inventory_item, inventory_warehouse IN ACCESS EXCLUSIVE MODE",  # one more
                    "LOCK TABLE inventory_item IN SHARE MODE"):  # another mode
        project.add_migration("0005_locked", LOCKED_BACKFILL.format(lock=changed))
        run = project.lint("--format", "json")
        assert run.code == 1, (changed, run.out)
        assert [a["status"] for a in run.json()["approvals"]] == ["stale"], changed


# -- secrets never printed ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["collect", "scratch"])
def test_run_python_parameters_and_password_literals_are_never_reported(project, tmp_path, mode):
    secret = "s3cr3t-" + secrets.token_hex(4)
    project.migrate("0004")
    if mode == "collect":  # rendered only: a role's password in RunSQL
        operations = f"""migrations.RunSQL("CREATE ROLE mg_app PASSWORD '{secret}'", migrations.RunSQL.noop)"""
    else:  # run on the scratch database: a setting, a connection string, a parameter from the environment
        operations = f"""migrations.RunSQL("SET my.api_token = '{secret}'", migrations.RunSQL.noop),
        migrations.RunSQL("COMMENT ON TABLE inventory_item IS 'host=db password={secret}'", migrations.RunSQL.noop),
        migrations.RunPython(use_secret)"""
    project.add_migration("0005_secrets", _migration(
        "def use_secret(apps, schema_editor):\n"
        "    with schema_editor.connection.cursor() as c:\n"
        "        c.execute('UPDATE inventory_item SET name = %s WHERE id = %s', [os.environ['MG_SECRET'], 1])",
        f"{BLOCKING}, {operations}"))
    formats = ("json", "sarif", "github", "junit", "markdown")
    outputs = [a for fmt in formats for a in ("--output", f"{fmt}:{tmp_path / fmt}")]
    run = project.lint(*(["--scratch"] if mode == "scratch" else []), "--format", "text", *outputs,
                       env={"MG_SECRET": secret})
    assert run.code in (0, 1), run.err
    for text in [run.out, run.err] + [(tmp_path / fmt).read_text() for fmt in formats]:
        assert secret not in text
    report = json.loads((tmp_path / "json").read_text())
    statements = [s["sql"] for m in report["migrations"] for s in m["statements"]]
    if mode == "scratch":
        assert "UPDATE inventory_item SET name = $1 WHERE id = $2" in statements
        assert "SET my.api_token = '***'" in statements
    else:
        assert "CREATE ROLE mg_app PASSWORD '***'" in statements


# -- bounded input -----------------------------------------------------------------------------------


def test_a_check_of_a_thousand_terms_is_a_blocking_finding_not_a_crash(project):
    project.migrate("0004")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    check = " + ".join(["quantity"] * 1000) + " >= 0"
    project.add_migration("0005_check", _migration(
        "", f'migrations.RunSQL("ALTER TABLE inventory_item ADD CONSTRAINT q CHECK ({check})")'))
    run = project.lint("--format", "json")
    _no_traceback(run)
    assert run.code == 1, run.err
    # Analysed (a CHECK scans the table: MG005), or said to be beyond the limits (MG912): a verdict.
    assert _finding(run, "MG005") or _finding(run, "MG912")
