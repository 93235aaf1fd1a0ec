"""``python manage.py safe_migrate`` on the fixture project and a real PostgreSQL: a second session
holds the conflicting lock, as a long report query or a transaction left open would."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from migration_guard.apply import RetryPolicy, parse_duration

# Short enough that a test's waits are a fraction of a second; the gate's own run dominates.
FAST = ["--lock-timeout", "200ms", "--backoff", "50ms", "--max-backoff", "100ms"]

ADD_SHELF_AND_COLUMN = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    """Atomic: a new table, then a column on the (locked) item table."""

    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.CreateModel("Shelf", [("id", models.BigAutoField(primary_key=True)),
                                         ("label", models.TextField())]),
        migrations.AddField("item", "colour", models.TextField(null=True)),
    ]
'''

BIN_AND_CONCURRENT_INDEX = '''
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """Not atomic: a new table (committed at once), then an index built concurrently on items."""

    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.CreateModel("Bin", [("id", models.BigAutoField(primary_key=True))]),
        AddIndexConcurrently("item", models.Index(fields=["name"], name="item_name_idx")),
    ]
'''


class Holder:
    """A second session holding a lock in an open transaction (as a report query or a
    transaction left idle would), released on demand or after the migration's Nth wait for it."""

    def __init__(self, dsn: str, sql: str, application: str = "nightly-report"):
        self.conn = psycopg.connect(dsn, application_name=application)
        self.conn.execute(sql)
        self.pid = self.conn.info.backend_pid
        self.waits_seen: list[tuple[int, object]] = []
        self._dsn = dsn
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def release_after_waits(self, waits: int, give_up_seconds: float = 60) -> None:
        """Release the lock once ``waits`` distinct statements have waited for it (each attempt is
        one, so the last of them gets the lock), watched from a third session; after
        ``give_up_seconds`` it is released anyway."""

        def watch():
            deadline = time.monotonic() + give_up_seconds
            with psycopg.connect(self._dsn, autocommit=True) as watcher:
                while time.monotonic() < deadline and len(self.waits_seen) < waits:
                    for row in watcher.execute("SELECT pid, query_start FROM pg_stat_activity "
                                               "WHERE %s = ANY (pg_blocking_pids(pid))", [self.pid]).fetchall():
                        if row not in self.waits_seen:
                            self.waits_seen.append(row)
                    time.sleep(0.01)
            self.release()

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()

    def release(self) -> None:
        with self._lock:
            if not self.conn.closed:
                self.conn.rollback()
                self.conn.close()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


def _columns(project, table: str) -> set[str]:
    return {r[0] for r in project.sql(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'")}


def _applied(project, name: str) -> int:
    return project.sql(f"SELECT count(*) FROM django_migrations WHERE app = 'inventory' AND name = '{name}'")[0][0]


def _log(project) -> dict:
    return json.loads((project.root / "safe-migrate.json").read_text())


def _applied_past(project, holder: Holder):
    """safe_migrate while ``holder`` keeps its lock for the migration's first two waits (each
    attempt is one); it must apply. The run and the migration's attempts from the log."""
    holder.release_after_waits(3)
    run = project.manage("safe_migrate", *FAST, "--log", "safe-migrate.json")
    holder.join()
    assert run.code == 0, run.out + run.err
    (migration,) = _log(project)["migrations"]
    assert migration["status"] == "applied"
    return run, migration["attempts"]


def test_lock_timeouts_then_the_holder_leaves_and_the_migration_applies(project):
    project.migrate("0004")
    project.add_migration("0005_shelf_colour", ADD_SHELF_AND_COLUMN)
    holder = Holder(project.dsn, "SELECT count(*) FROM inventory_item")  # ACCESS SHARE until the transaction ends
    run, attempts = _applied_past(project, holder)  # two attempts time out, the third waits and gets the lock
    outcomes = [a["outcome"] for a in attempts]
    assert outcomes[:2] == ["lock_timeout", "lock_timeout"] and outcomes[-1] == "applied", outcomes
    first = attempts[0]
    assert first["statement"].startswith('ALTER TABLE "inventory_item" ADD COLUMN "colour"')
    assert 0.15 < first["seconds"] < 2, first  # it waited about lock_timeout, not for the holder
    assert [(b["pid"], b["application"], b["state"]) for b in first["blockers"]] == [
        (holder.pid, "nightly-report", "idle in transaction")]
    assert first["backoff_seconds"] is not None and first["backoff_seconds"] <= 0.1
    assert f"blocked by pid {holder.pid}, application 'nightly-report'" in run.err
    assert "is not longer than the server's deadlock_timeout (1s)" in run.err  # 200ms: an autovacuum would win
    assert "inventory.0005_shelf_colour: attempt 1 of 10 gave up waiting for a lock" in run.err
    assert "colour" in _columns(project, "inventory_item")
    assert _applied(project, "0005_shelf_colour") == 1
    check = project.manage("migrate", "--check")  # django_migrations says everything is applied
    assert check.code == 0, check.out + check.err


def test_an_atomic_migration_that_gives_up_leaves_nothing_behind(project):
    project.migrate("0004")
    project.add_migration("0005_shelf_colour", ADD_SHELF_AND_COLUMN)
    holder = Holder(project.dsn, "SELECT count(*) FROM inventory_item")
    try:
        run = project.manage("safe_migrate", *FAST, "--attempts", "3", "--log", "safe-migrate.json")
    finally:
        holder.release()
    assert run.code == 3, run.out + run.err
    # Every attempt ran CREATE TABLE inventory_shelf again: none of them left it behind.
    (migration,) = _log(project)["migrations"]
    assert [a["outcome"] for a in migration["attempts"]] == ["lock_timeout"] * 3
    assert migration["status"] == "gave_up" and _log(project)["status"] == "gave_up"
    assert "gave up after 3 attempt(s)" in run.err and "Nothing of it is applied" in run.err
    assert project.sql("SELECT to_regclass('inventory_shelf')") == [(None,)]
    assert "colour" not in _columns(project, "inventory_item")
    assert _applied(project, "0005_shelf_colour") == 0


def test_a_concurrent_index_build_that_fails_half_way_is_dropped_and_retried(project):
    project.migrate("0004")
    project.fill_items(100)
    project.add_migration("0005_bin_name_idx", BIN_AND_CONCURRENT_INDEX)
    # A writer's open transaction: CREATE INDEX CONCURRENTLY enters the index in the catalog (INVALID),
    # then waits for every transaction that writes the table; its lock_timeout strikes there.
    holder = Holder(project.dsn, "UPDATE inventory_item SET quantity = quantity WHERE id = 1", "checkout")
    run, attempts = _applied_past(project, holder)
    assert attempts[0]["outcome"] == "lock_timeout"
    assert attempts[0]["statement"].startswith('CREATE INDEX CONCURRENTLY "item_name_idx"')
    assert attempts[0]["resumed_at_operation"] == 0
    # Later attempts start at the index: CREATE TABLE inventory_bin (committed) is not run again.
    assert {a["resumed_at_operation"] for a in attempts[1:]} == {1}
    assert [i for a in attempts for i in a["dropped_indexes"]] == ["item_name_idx"]
    assert attempts[-1]["outcome"] == "applied"
    assert "dropped the INVALID index item_name_idx that the failed build left" in run.err
    assert project.sql("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE c.relname = 'item_name_idx'") == [(True,)]
    assert project.sql("SELECT to_regclass('inventory_bin') IS NOT NULL") == [(True,)]
    assert _applied(project, "0005_bin_name_idx") == 1


def test_an_invalid_index_of_the_same_name_is_refused_before_anything_runs(project):
    project.migrate("0004")
    project.sql("INSERT INTO inventory_item (name, created) VALUES ('twin', now()), ('twin', now())")
    with pytest.raises(psycopg.errors.UniqueViolation):  # leaves item_name_idx INVALID
        project.sql('CREATE UNIQUE INDEX CONCURRENTLY "item_name_idx" ON "inventory_item" ("name")')
    project.add_migration("0005_bin_name_idx", BIN_AND_CONCURRENT_INDEX)
    gated = project.manage("safe_migrate", *FAST)
    assert gated.code == 1 and "MG014 create-index-over-invalid-index" in gated.out  # the gate sees it first
    # With the gate's rule turned off (or its finding approved), safe_migrate itself refuses.
    project.config('[tool.migration_guard]\ndisable = ["MG014"]\n')
    run = project.manage("safe_migrate", *FAST, "--log", "safe-migrate.json")
    assert run.code == 2, run.out + run.err
    assert "an INVALID index public.item_name_idx already exists" in run.err
    assert "DROP INDEX CONCURRENTLY public.item_name_idx;" in run.err
    assert project.sql("SELECT to_regclass('inventory_bin')") == [(None,)]  # nothing was started
    assert _log(project)["status"] == "failed" and _log(project)["exit_code"] == 2


def test_a_plan_the_gate_blocks_applies_nothing(project):
    project.migrate("0001")
    project.config("[tool.migration_guard]\nthreshold_rows = 1000\n")
    project.fill_items(3000)
    run = project.manage("safe_migrate", *FAST, "--log", "safe-migrate.json")
    assert run.code == 1, run.out + run.err
    assert "inventory.0002_item_created_idx  BLOCKED" in run.out
    blocked = ["inventory.0002_item_created_idx", "inventory.0004_item_warehouse_note"]  # MG002, MG008
    assert f"the gate blocked 2 migration(s) ({', '.join(blocked)}); nothing was applied" in run.err
    log = _log(project)
    assert log["status"] == "blocked" and log["gate"]["blocked"] == blocked
    assert [m["status"] for m in log["migrations"]] == ["not_run"] * 3
    assert project.sql("SELECT count(*) FROM django_migrations WHERE app = 'inventory'") == [(1,)]
    assert project.sql("SELECT to_regclass('item_created_idx')") == [(None,)]
    # The same approval as lint_migrations lets it through, and it applies.
    approved = project.manage("safe_migrate", *FAST, "--approve", "inventory.0002_item_created_idx:MG002",
                              "--approve", "inventory.0004_item_warehouse_note:MG008",
                              "--reason", "items are read-only tonight")
    assert approved.code == 0, approved.out + approved.err
    assert project.sql("SELECT count(*) FROM django_migrations WHERE app = 'inventory'") == [(4,)]


def test_the_gate_lints_exactly_the_migrations_migrate_would_apply(project):
    project.migrate("0001")
    project.config("[tool.migration_guard]\nthreshold_rows = 1000\n")
    project.fill_items(3000)
    # Up to 0003 includes the blocked 0002; the gate sees the same two migrations migrate would apply.
    plan = project.manage("safe_migrate", "inventory", "0003", "--plan", "--format", "json")
    assert plan.code == 1
    report = json.loads(plan.out)
    assert [m["migration"] for m in report["migrations"]] == ["inventory.0002_item_created_idx",
                                                             "inventory.0003_item_name_longer"]
    project.manage("migrate", "inventory", "0002")
    plan = project.manage("safe_migrate", "inventory", "0003", "--plan")
    assert plan.code == 0, plan.out + plan.err
    assert "Plan: 1 migration(s) on database \"default\"" in plan.out
    assert "inventory.0003_item_name_longer  [gate: ok; atomic: a failed attempt is rolled back" in plan.out
    assert _applied(project, "0003_item_name_longer") == 0  # --plan applies nothing


def test_what_it_refuses_exits_2(project):
    project.migrate("0004")
    for args, message in [
        (["inventory", "0001"], "safe_migrate only applies migrations: use migrate to unapply"),
        (["--log", "no/such/folder/log.json"], "cannot write there"),
    ]:
        run = project.manage("safe_migrate", *args)
        assert run.code == 2, (args, run.out, run.err)
        assert message in run.err, (args, run.err)
    assert _applied(project, "0004_item_warehouse_note") == 1


@pytest.mark.parametrize("change, message", [
    ({"lock_timeout": "0s"}, "--lock-timeout must be more than 0"),
    ({"statement_timeout": "0ms"}, "--statement-timeout must be more than 0"),
    ({"attempts": 0}, "--attempts must be at least 1"),
    ({"max_backoff": "500ms"}, "--max-backoff must not be shorter than --backoff"),
    ({"backoff": "soon"}, "--backoff 'soon': write a duration with its unit"),
])
def test_bad_settings_exit_2(change, message):
    from django.core.management.base import CommandError

    from migration_guard.management.commands.safe_migrate import _policy

    options = {"lock_timeout": "2s", "statement_timeout": None, "attempts": 10, "backoff": "1s",
               "max_backoff": "30s", **change}
    with pytest.raises(CommandError, match=message) as raised:
        _policy(options)
    assert raised.value.returncode == 2


def test_a_failure_that_is_not_a_lock_timeout_is_not_retried(project):
    project.migrate("0004")
    project.add_migration("0005_broken", '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunSQL("ALTER TABLE inventory_item ADD COLUMN name text")]
''')
    run = project.manage("safe_migrate", *FAST, "--log", "safe-migrate.json")
    assert run.code == 2, run.out + run.err
    assert 'inventory.0005_broken failed: column "name" of relation "inventory_item" already exists' in run.err
    (migration,) = _log(project)["migrations"]
    assert [a["outcome"] for a in migration["attempts"]] == ["error"]


def test_python_that_already_ran_statements_is_not_run_again(project):
    project.migrate("0004")
    project.fill_items(10)
    project.add_migration("0005_backfill", '''
from django.db import migrations


def backfill(apps, schema_editor):
    Item = apps.get_model("inventory", "Item")
    Item.objects.filter(id__lte=5).update(quantity=0)  # committed at once: the migration is not atomic
    Item.objects.update(note="checked")  # waits for the writer below


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
''')
    last = project.sql("SELECT max(id) FROM inventory_item")[0][0]
    holder = Holder(project.dsn, f"UPDATE inventory_item SET name = name WHERE id = {last}", "checkout")
    try:
        run = project.manage("safe_migrate", *FAST, "--log", "safe-migrate.json")
    finally:
        holder.release()
    assert run.code == 3, run.out + run.err
    assert "gave up waiting for a lock after its code had run 1 statement(s)" in run.err
    (migration,) = _log(project)["migrations"]
    assert [a["outcome"] for a in migration["attempts"]] == ["lock_timeout"]
    assert migration["status"] == "gave_up"
    assert _applied(project, "0005_backfill") == 0
    # The first update was committed, the second was not: exactly what the message says.
    assert project.sql("SELECT count(*) FILTER (WHERE quantity = 0), count(*) FILTER (WHERE note = 'checked') "
                       "FROM inventory_item") == [(5, 0)]


def test_sigterm_mid_attempt_rolls_back_and_writes_the_log(project):
    project.migrate("0004")
    project.add_migration("0005_shelf_colour", ADD_SHELF_AND_COLUMN)
    holder = Holder(project.dsn, "SELECT count(*) FROM inventory_item")
    process = subprocess.Popen([sys.executable, "manage.py", "safe_migrate", "--lock-timeout", "30s",
                                "--log", "safe-migrate.json"],
                               cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        with psycopg.connect(project.dsn, autocommit=True) as watcher:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not watcher.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE %s = ANY (pg_blocking_pids(pid))", [holder.pid]).fetchall():
                time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        holder.release()
    assert process.returncode == 2, out + err
    assert "stopped by SIGTERM: 0 migration(s) applied; inventory.0005_shelf_colour was interrupted" in err
    log = _log(project)
    assert log["status"] == "interrupted" and log["migrations"][0]["attempts"][0]["outcome"] == "interrupted"
    assert project.sql("SELECT to_regclass('inventory_shelf')") == [(None,)]
    assert _applied(project, "0005_shelf_colour") == 0


def test_preflight_counts_the_wait_as_bounded_by_the_lock_timeout(project):
    project.migrate("0002")
    project.config("[tool.migration_guard]\npreflight_max_age_seconds = 0\n")  # every session counts as old
    holder = Holder(project.dsn, "SELECT count(*) FROM inventory_item")
    try:
        lint = project.lint("inventory", "0003", "--format", "json")
        plan = project.manage("safe_migrate", "inventory", "0003", "--plan", "--lock-timeout", "200ms",
                              "--format", "json")
    finally:
        holder.release()
    assert lint.code == 1, lint.out + lint.err  # migrate has no lock_timeout: the wait is unbounded
    assert [f["severity"] for f in lint.json()["findings"] if f["rule"] == "MG009"] == ["error"]
    assert plan.code == 0, plan.out + plan.err
    (finding,) = [f for f in plan.json()["findings"] if f["rule"] == "MG009"]
    assert finding["severity"] == "warning"
    assert "for at most its lock_timeout of 200ms, then the migration fails" in finding["message"]


def test_backoff_doubles_with_jitter_up_to_the_ceiling():
    policy = RetryPolicy(backoff_ms=1000, max_backoff_ms=5000)
    rng = random.Random(7)
    for failed, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        waits = [policy.delay(failed, rng) for _ in range(200)]
        assert step / 2 <= min(waits) and max(waits) <= step, (failed, min(waits), max(waits))
        assert max(waits) - min(waits) > step / 4  # jitter spreads them


def test_durations_need_their_unit():
    assert [parse_duration(v, "x") for v in ("500ms", "2s", "1.5s", "1min")] == [500, 2000, 1500, 60_000]
    for bad in ("2", "", "2 hours", "-1s"):
        with pytest.raises(ValueError, match="write a duration with its unit"):
            parse_duration(bad, "--lock-timeout")


def test_the_deferred_statements_are_resumed_after_the_operations(project):
    project.migrate("0004")
    project.add_migration("0005_item_code", '''
from django.db import migrations, models


class Migration(migrations.Migration):
    """Not atomic: the column now; its two indexes are deferred SQL, run when the schema editor exits."""

    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.AddField("item", "code", models.CharField(max_length=20, null=True, db_index=True)),
        migrations.RunSQL("SELECT pg_sleep(2)", migrations.RunSQL.noop),  # time for a writer to come in
    ]
''')

    def writer_after_the_column():  # a checkout that starts once the column exists, before the indexes
        deadline = time.monotonic() + 120
        while "code" not in _columns(project, "inventory_item") and time.monotonic() < deadline:
            time.sleep(0.01)
        holder = Holder(project.dsn, "INSERT INTO inventory_item (name, created) VALUES ('x', now())", "checkout")
        holder.release_after_waits(3)
        holder.join()

    thread = threading.Thread(target=writer_after_the_column, daemon=True)
    thread.start()
    run = project.manage("safe_migrate", *FAST, "--log", "safe-migrate.json")
    thread.join()
    assert run.code == 0, run.out + run.err
    (migration,) = _log(project)["migrations"]
    attempts = migration["attempts"]
    assert attempts[0]["outcome"] == "lock_timeout" and attempts[0]["statement"].startswith("CREATE INDEX")
    assert {a["resumed_at_operation"] for a in attempts[1:]} == {2}  # past both operations: ADD COLUMN not redone
    assert attempts[-1]["outcome"] == "applied"
    indexes = {r[0] for r in project.sql("SELECT indexdef FROM pg_indexes WHERE tablename = 'inventory_item'")}
    assert sum('("code")' in d or "(code)" in d or "code varchar_pattern_ops" in d for d in indexes) == 2, indexes
    assert _applied(project, "0005_item_code") == 1


def test_an_operation_with_its_own_transaction_is_retried_whole(project):
    project.migrate("0004")
    project.fill_items(3)
    project.sql("INSERT INTO inventory_warehouse (name) VALUES ('north')")
    project.add_migration("0005_rename_north", '''
from django.db import migrations, models


def rename(apps, schema_editor):
    apps.get_model("inventory", "Item").objects.update(quantity=7)  # rolled back with the operation
    apps.get_model("inventory", "Warehouse").objects.update(name="North")  # waits for the checkout below


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.CreateModel("Crate", [("id", models.BigAutoField(primary_key=True))]),
        migrations.RunPython(rename, migrations.RunPython.noop, atomic=True),
    ]
''')
    _, attempts = _applied_past(project, Holder(project.dsn, "UPDATE inventory_warehouse SET name = name", "checkout"))
    assert [a["outcome"] for a in attempts[:2]] == ["lock_timeout"] * 2 and attempts[-1]["outcome"] == "applied"
    assert {a["resumed_at_operation"] for a in attempts[1:]} == {1}  # CREATE TABLE inventory_crate once
    assert project.sql("SELECT DISTINCT quantity FROM inventory_item") == [(7,)]
    assert project.sql("SELECT name FROM inventory_warehouse") == [("North",)]


def test_a_concurrent_build_that_fails_otherwise_leaves_no_invalid_index(project):
    project.migrate("0004")
    project.sql("INSERT INTO inventory_item (name, created) VALUES ('twin', now()), ('twin', now())")
    project.add_migration("0005_unique_name", '''
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunSQL('CREATE UNIQUE INDEX CONCURRENTLY "item_name_uniq" ON "inventory_item" ("name")',
                                    'DROP INDEX CONCURRENTLY "item_name_uniq"')]
''')
    run = project.manage("safe_migrate", *FAST, "--log", "safe-migrate.json")
    assert run.code == 2, run.out + run.err
    assert "could not create unique index" in run.err
    (migration,) = _log(project)["migrations"]
    assert migration["attempts"][0]["dropped_indexes"] == ["item_name_uniq"]
    assert project.sql("SELECT to_regclass('item_name_uniq')") == [(None,)]  # a re-run is not refused


RUNNER = '''
"""manage.py safe_migrate with the test's hooks: the migrate signals print what they get, and
MG_TEST_DEPLOY_MEANWHILE applies inventory 0002 between the gate and the apply (another deploy)."""
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fixtureproj.settings")
django.setup()
from django.core.management import call_command, execute_from_command_line
from django.db.models.signals import post_migrate, pre_migrate

from migration_guard.management.commands import safe_migrate


def say(signal):
    def receiver(sender, plan, apps, using, **kwargs):
        if sender.label == "inventory":
            names = [m.name for m, _ in plan]
            print(f"{signal} {using} {names} {sorted(m.__name__ for m in apps.get_models())}", file=sys.stderr)
    return receiver


pre_migrate.connect(say("pre_migrate"), weak=False)
post_migrate.connect(say("post_migrate"), weak=False)
if os.environ.get("MG_TEST_DEPLOY_MEANWHILE"):
    gate = safe_migrate.run_gate

    def gate_then_another_deploy(options):
        report = gate(options)
        call_command("migrate", "inventory", "0002", verbosity=0)
        return report

    safe_migrate.run_gate = gate_then_another_deploy
execute_from_command_line(["manage.py", "safe_migrate", *sys.argv[1:]])
'''


def _hooked(project, *args: str, env: dict | None = None):
    (project.root / "hooked_safe_migrate.py").write_text(RUNNER)
    result = subprocess.run([sys.executable, "hooked_safe_migrate.py", *args], cwd=project.root,
                            env={**project.env, **(env or {})}, capture_output=True, text=True, timeout=300)
    return result


def test_the_migrate_signals_are_sent_as_migrate_sends_them(project):
    project.migrate("0002")
    run = _hooked(project, "inventory", "0003")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pre_migrate default ['0003_item_name_longer'] ['Item', 'Warehouse']" in run.stderr
    assert "post_migrate default ['0003_item_name_longer'] ['Item', 'Warehouse']" in run.stderr
    assert run.stderr.index("pre_migrate") < run.stderr.index("inventory.0003_item_name_longer: applied")
    assert run.stderr.index("inventory.0003_item_name_longer: applied") < run.stderr.index("post_migrate")


def test_a_plan_that_changed_while_the_gate_ran_is_not_applied(project):
    project.migrate("0001")
    run = _hooked(project, env={"MG_TEST_DEPLOY_MEANWHILE": "1"})
    assert run.returncode == 2, run.stdout + run.stderr
    assert ("the migrations to apply changed while the gate ran (another deploy?): gated "
            "inventory.0002_item_created_idx, inventory.0003_item_name_longer, inventory.0004_item_warehouse_note, "
            "now inventory.0003_item_name_longer, inventory.0004_item_warehouse_note; nothing was applied") in run.stderr
    assert _applied(project, "0003_item_name_longer") == 0


def test_migration_code_that_calls_sys_exit_ends_as_exit_2_with_the_log(project):
    project.migrate("0004")
    project.add_migration("0005_exits", '''
import sys

from django.db import migrations, models


def leave(apps, schema_editor):
    sys.exit(0)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AddField("item", "colour", models.TextField(null=True)),
                  migrations.RunPython(leave, migrations.RunPython.noop)]
''')
    run = project.manage("safe_migrate", *FAST, "--log", "safe-migrate.json")
    assert run.code == 2, run.out + run.err
    assert "migration code called sys.exit(0): 0 migration(s) applied; inventory.0005_exits was interrupted" in run.err
    assert "Traceback" not in run.err
    assert _log(project)["status"] == "failed"
    assert "colour" not in _columns(project, "inventory_item")  # rolled back with the transaction
    assert _applied(project, "0005_exits") == 0
