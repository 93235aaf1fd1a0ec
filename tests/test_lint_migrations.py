"""End to end: ``python manage.py lint_migrations`` on the fixture project and a real PostgreSQL."""

from __future__ import annotations

import re
import subprocess

import pytest

SMALL_THRESHOLD = """
[tool.migration_guard]
threshold_rows = 1000
"""


def _finding(run, rule):
    return [f for f in run.json()["findings"] if f["rule"] == rule]


def test_pending_migrations_in_migrate_order_and_verdicts(project):
    project.migrate("0001")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    run = project.lint("--format", "json")
    assert run.code == 1, run.err
    report = run.json()
    assert [m["migration"] for m in report["migrations"]] == [
        "inventory.0002_item_created_idx",
        "inventory.0003_item_name_longer",
        "inventory.0004_item_warehouse_note",
    ]
    statuses = {m["migration"]: m["status"] for m in report["migrations"]}
    assert statuses["inventory.0002_item_created_idx"] == "blocked"
    assert statuses["inventory.0003_item_name_longer"] == "ok"  # varchar(100) -> varchar(200): no rewrite
    index = _finding(run, "MG002")[0]
    assert index["table"] == "inventory_item" and index["rows"] == 3000
    assert index["lock"] == "ShareLock" and index["blocking"] is True
    assert index["line"] == 8 and index["path"].endswith("0002_item_created_idx.py")
    held = _finding(run, "MG008")
    assert held and held[0]["migration"] == "inventory.0004_item_warehouse_note"
    assert report["pg_version"] == 18 and report["pg_version_source"] == "the server's own version"


def test_small_table_warns_large_table_blocks(project):
    project.migrate("0001")
    project.fill_items(500)
    small = project.lint("inventory", "0002", "--format", "json")
    assert small.code == 0, small.err
    assert [f["severity"] for f in _finding(small, "MG002")] == ["warning"]
    project.config("[tool.migration_guard]\nthreshold_rows = 499\n")
    large = project.lint("inventory", "0002", "--format", "json")
    assert large.code == 1
    assert [f["severity"] for f in _finding(large, "MG002")] == ["error"]


def test_text_report_names_table_size_lock_and_recipe(project):
    project.migrate("0001")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    run = project.lint("inventory", "0002")
    assert run.code == 1
    text = run.out
    assert "inventory.0002_item_created_idx  BLOCKED" in text
    assert "MG002 add-index-non-concurrently (error)" in text
    assert "table   inventory_item (3,000 rows" in text
    assert "lock    SHARE (ShareLock): blocks writes" in text
    # the migration's own index, as makemigrations writes it
    assert "AddIndexConcurrently(\"item\", models.Index(fields=['created'], name='item_created_idx'))" in text
    assert re.search(r"approve: migration-guard approve inventory.0002_item_created_idx MG002 --fingerprint [0-9a-f]{16}", text)
    assert text.rstrip().endswith("Exit 1.")


def test_approval_lets_it_through_and_goes_stale_when_the_sql_changes(project, tmp_path):
    project.migrate("0001")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    first = _finding(project.lint("inventory", "0002", "--format", "json"), "MG002")[0]
    approve = project.cli("approve", first["migration"], "MG002", "--fingerprint", first["fingerprint"],
                          "--reason", "night window", "--by", "dba@example.com")
    assert approve.code == 0, approve.err
    assert (project.root / "migration-approvals.toml").exists()
    approved = project.lint("inventory", "0002", "--format", "json")
    assert approved.code == 0, approved.out
    assert _finding(approved, "MG002")[0]["approval"] == "approved by dba@example.com: night window"
    assert [a["status"] for a in approved.json()["approvals"]] == ["used"]

    path = project.root / "inventory" / "migrations" / "0002_item_created_idx.py"
    path.write_text(path.read_text().replace('fields=["created"]', 'fields=["created", "name"]'))
    stale = project.lint("inventory", "0002", "--format", "json")
    assert stale.code == 1
    assert [a["status"] for a in stale.json()["approvals"]] == ["stale"]


def _blocked_index_fingerprint(project) -> str:
    """Set up 0002 to block (3,000 rows over a 1,000-row threshold) and return its fingerprint."""
    project.migrate("0001")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    return _finding(project.lint("inventory", "0002", "--format", "json"), "MG002")[0]["fingerprint"]


def _approve(project, *entries: str) -> None:
    """Write approvals for inventory.0002, each entry the TOML lines after its migration key."""
    blocks = [f'[[approval]]\nmigration = "inventory.0002_item_created_idx"\napproved_by = "dba@example.com"\n{entry}'
              for entry in entries]
    (project.root / "migration-approvals.toml").write_text("\n".join(blocks))


def test_unused_and_expired_approvals_are_reported(project):
    fingerprint = _blocked_index_fingerprint(project)
    _approve(
        project,
        f'rule = "MG002"\nfingerprint = "{fingerprint}"\nreason = "was fine last year"\nexpires = 2020-01-01\n',
        'rule = "MG001"\nfingerprint = "0000000000000000"\nreason = "nothing matches this"\n',
    )
    run = project.lint("inventory", "0002", "--format", "json")
    assert run.code == 1
    assert [a["status"] for a in run.json()["approvals"]] == ["expired", "unused"]


def test_row_ceiling_stops_an_approval_when_the_table_grows(project):
    fingerprint = _blocked_index_fingerprint(project)
    _approve(project, f'rule = "MG002"\nfingerprint = "{fingerprint}"\nreason = "small enough"\nmax_rows = 2000\n')
    run = project.lint("inventory", "0002", "--format", "json")
    assert run.code == 1
    assert run.json()["approvals"][0]["status"] == "over row ceiling"


def test_lint_never_writes_to_the_target_database(project):
    project.migrate("0001")
    project.fill_items(10)
    before = project.sql("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                         "WHERE datname = current_database()")
    run = project.lint("--format", "json")
    assert run.code in (0, 1), run.err
    # Nothing the migrations would create exists, and no migration was recorded as applied.
    assert project.sql("SELECT to_regclass('inventory_item_created_idx'), to_regclass('item_created_idx')") == [(None, None)]
    assert project.sql("SELECT count(*) FROM django_migrations WHERE app = 'inventory'") == [(1,)]
    columns = {r[0] for r in project.sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'inventory_item'")}
    assert "note" not in columns and "warehouse_id" not in columns
    assert before is not None


def test_runpython_cannot_write_during_a_collect_render(project):
    project.migrate("0003")
    project.fill_items(5)
    run = project.lint("--format", "json")
    # fill_notes is not executed in collect mode; the rows keep note absent (column not even there).
    assert run.code in (0, 1), run.err
    kinds = [s["kind"] for m in run.json()["migrations"] for s in m["statements"]]
    assert "run_python" in kinds


def test_scratch_mode_records_the_sql_runpython_executes(project):
    project.migrate("0003")
    run = project.lint("--scratch", "--format", "json", "--assume-rows", "0")
    assert run.code == 0, run.out + run.err
    statements = run.json()["migrations"][0]["statements"]
    assert statements[-2]["kind"] == "run_python"
    assert statements[-1]["sql"].startswith('UPDATE "inventory_item" SET "note"')
    assert statements[-1]["operation"]["name"] == "RunPython"
    assert run.json()["migrations"][0]["rendered_by"] == "executed"
    # The scratch database is gone again.
    leftovers = project.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'migration_guard_scratch_%'")
    assert leftovers == [(0,)]


def test_since_lints_the_migrations_changed_on_a_branch(project):
    git = lambda *a: subprocess.run(["git", *a], cwd=project.root, check=True, capture_output=True, text=True)
    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "base")
    git("checkout", "-qb", "feature")
    project.add_migration("0005_item_quantity_big", '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AlterField("item", "quantity", models.BigIntegerField(null=True))]
''')
    unknown_ref = project.lint("--since", "no-such-ref")
    assert unknown_ref.code == 2 and "--since no-such-ref" in unknown_ref.err and "git fetch" in unknown_ref.err
    run = project.lint("--since", "main", "--format", "json")
    assert run.code == 1, run.out + run.err
    report = run.json()
    assert [m["migration"] for m in report["migrations"]] == ["inventory.0005_item_quantity_big"]
    rewrite = _finding(run, "MG007")[0]
    assert rewrite["table"] == "inventory_item" and rewrite["size_source"] == "unknown"
    # CI's server is not production's, but with nothing better its major is a fair guess, said as such
    assert report["pg_version"] == 18
    assert report["pg_version_source"] == "the CI server's own version; production's may differ: set --pg-version"


def test_since_with_a_snapshot_uses_production_sizes(project, tmp_path):
    project.migrate("0001")
    project.fill_items(50)
    dump = project.cli("stats", "dump", "--dsn", project.dsn, "--output", str(tmp_path / "s.json"))
    assert dump.code == 0, dump.err
    run = project.lint("inventory", "0002", "--scratch", "--stats", str(tmp_path / "s.json"), "--format", "json")
    assert run.code == 0, run.out + run.err
    finding = _finding(run, "MG002")[0]
    assert finding["rows"] == 50 and finding["size_source"] == "snapshot" and finding["severity"] == "warning"


BROKEN_RENDER = '''
from django.db import migrations


def boom(apps, schema_editor):
    raise RuntimeError("data check failed")


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunPython(boom)]
'''


@pytest.mark.parametrize("args, expected", [
    (("--stats", "missing.json"), "missing.json"),
    (("--approvals", "broken.toml"), "broken.toml"),
    (("--pg-version", "12"), "supported PostgreSQL major version"),
    (("nosuchapp",), "nosuchapp"),
    (("--database", "other"), "no database 'other'"),
    (("--since", "main"), "--since main: "),
])
def test_bad_input_exits_2_with_a_message(project, args, expected):
    project.migrate("0001")
    (project.root / "broken.toml").write_text("[[approval]\nmigration = ")
    run = project.lint(*args)
    assert run.code == 2, (run.code, run.out, run.err)
    assert expected in run.err


def test_malformed_config_exits_2(project):
    project.config("[tool.migration_guard]\nthreshold_rows = 'many'\n")
    run = project.lint()
    assert run.code == 2 and "threshold_rows must be a whole number" in run.err
    project.config("[tool.migration_guard]\ntreshold_rows = 5\n")
    run = project.lint()
    assert run.code == 2 and "unknown setting 'treshold_rows'" in run.err


def test_unreachable_database_exits_2(project):
    run = project.lint(env={"FIXTURE_DB_HOST": "/nonexistent-socket-dir"})
    assert run.code == 2
    assert "cannot read database 'default'" in run.err and "--since REF --stats FILE" in run.err


def test_a_migration_that_fails_to_apply_blocks(project):
    project.migrate("0004")
    project.add_migration("0005_boom", BROKEN_RENDER)
    run = project.lint("--scratch", "--format", "json", "--assume-rows", "0")
    assert run.code == 1
    finding = _finding(run, "MG901")[0]
    assert "data check failed" in finding["message"] and finding["blocking"]


def test_unparsable_runsql_blocks(project):
    project.migrate("0004")
    project.add_migration("0005_typo", '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunSQL("ALTER TABEL inventory_item ADD COLUMN x int")]
''')
    run = project.lint("--format", "json", "--assume-rows", "0")
    assert run.code == 1
    finding = _finding(run, "MG902")[0]
    assert "syntax error" in finding["message"] and finding["line"] == 7


def test_nothing_pending_passes(project):
    project.migrate("0004")
    run = project.lint()
    assert run.code == 0, run.err
    assert "note: no migrations to lint" in run.out


def test_concurrent_index_in_a_non_atomic_migration_renders_without_a_transaction(project):
    project.migrate("0004")
    project.config(SMALL_THRESHOLD)
    project.fill_items(3000)
    project.add_migration("0005_concurrently", '''
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [AddIndexConcurrently("item", models.Index(fields=["name"], name="item_name_idx"))]
''')
    for mode in ((), ("--scratch",)):
        run = project.lint(*mode, "--format", "json")
        assert run.code == 0, run.out + run.err
        [statement] = run.json()["migrations"][0]["statements"]
        assert statement["sql"].startswith('CREATE INDEX CONCURRENTLY "item_name_idx"')
        assert statement["in_transaction"] is False
        assert statement["locks"] == [{"relation": "inventory_item", "relkind": "table", "mode": "ShareUpdateExclusiveLock"}]


def test_unrenderable_findings_can_be_approved_from_the_printed_command(project):
    project.migrate("0004")
    project.add_migration("0005_boom", BROKEN_RENDER)
    run = project.lint("--scratch", "--format", "json")
    [finding] = _finding(run, "MG901")
    assert re.fullmatch(r"[0-9a-f]{16}", finding["fingerprint"])


CHECK_VALIDATED = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.RunSQL(
            'ALTER TABLE "inventory_item" ADD CONSTRAINT "quantity_nn" CHECK ("quantity" IS NOT NULL) NOT VALID'
        ),
        migrations.RunSQL('ALTER TABLE "inventory_item" VALIDATE CONSTRAINT "quantity_nn"'),
    ]
'''

SET_NOT_NULL = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_quantity_check")]
    operations = [migrations.AlterField("item", "quantity", models.IntegerField())]
'''


@pytest.mark.parametrize("mode", [(), ("--scratch",)])
def test_a_check_validated_by_an_earlier_deploy_spares_set_not_null_its_scan(project, mode):
    project.migrate("0004")
    # the running code's quantity is null=True, which MG026 blocks whatever the locks (tests/compat)
    project.config(SMALL_THRESHOLD + 'disable = ["MG026"]\n')
    project.fill_items(3000)
    project.add_migration("0005_quantity_check", CHECK_VALIDATED)
    project.add_migration("0006_quantity_not_null", SET_NOT_NULL)
    before = project.lint("inventory", "0006", *mode, "--format", "json")
    assert _finding(before, "MG003") == [], "the check validated in the same plan proves it"
    project.migrate("0005")  # the check was deployed earlier
    after = project.lint(*mode, "--format", "json")
    assert after.code == 0, after.out + after.err
    assert [m["migration"] for m in after.json()["migrations"]] == ["inventory.0006_quantity_not_null"]
    assert _finding(after, "MG003") == []
    project.sql('ALTER TABLE "inventory_item" DROP CONSTRAINT "quantity_nn"')
    without = project.lint(*mode, "--format", "json")
    if mode:  # the scratch database applies 0005 again, so the check is there
        assert without.code == 0 and not _finding(without, "MG003")
    else:  # production lost the check: SET NOT NULL scans again
        assert without.code == 1 and _finding(without, "MG003")


@pytest.mark.parametrize("source, expected", [
    ("from django.db import migrations\nclass Migration(migrations.Migration:\n", "0005_bad.py:2: SyntaxError"),
    ("from django.db import migrations\nimport no_such_module\n", "ModuleNotFoundError: No module named 'no_such_module'"),
    ("from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n"
     "    dependencies = [('inventory', '0099_missing')]\n", "0099_missing"),
])
def test_a_migration_that_does_not_load_exits_2_naming_the_file(project, source, expected):
    project.migrate("0004")
    project.add_migration("0005_bad", source)
    run = project.lint()
    assert run.code == 2, (run.out, run.err)
    assert "the migrations could not be loaded" in run.err and expected in run.err


@pytest.mark.parametrize("args, error", [
    (("inventory", "0099_nope"), "0099_nope"),  # after the migrations loaded, before rendering
    (("--stats", "missing.json"), "missing.json"),  # before anything
])
def test_scratch_database_made_meanwhile_is_dropped_when_the_run_stops_early(project, args, error):
    """--scratch creates its throwaway database while the migrations load: a run that stops
    before rendering drops it too."""
    run = project.lint("--scratch", *args)
    assert run.code == 2, (run.out, run.err)
    assert error in run.err
    leftovers = project.sql("SELECT count(*) FROM pg_database WHERE datname LIKE 'migration_guard_scratch_%'")
    assert leftovers == [(0,)]


def test_render_state_mismatch_when_a_later_pending_migration_reads_a_changed_table(project):
    project.migrate("0004")
    project.add_migration("0005_unique_name", '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AlterField("item", "name", models.CharField(max_length=200, unique=True))]
''')
    project.add_migration("0006_not_unique", '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_unique_name")]
    operations = [migrations.AlterField("item", "name", models.CharField(max_length=200))]
''')
    run = project.lint("--format", "json", "--assume-rows", "0")
    assert run.code == 1
    rules = {(f["migration"], f["rule"]) for f in run.json()["findings"] if f["blocking"]}
    # Rendering 0006 looks up the unique constraint 0005 creates; the database does not have it yet.
    assert ("inventory.0006_not_unique", "MG901") in rules or ("inventory.0006_not_unique", "MG904") in rules
    scratch = project.lint("--scratch", "--format", "json", "--assume-rows", "0")
    assert scratch.code == 0, scratch.out
    sql = [s["sql"] for m in scratch.json()["migrations"] for s in m["statements"]]
    assert any(s.startswith('ALTER TABLE "inventory_item" DROP CONSTRAINT') for s in sql)



OWNER_FK = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AddField("item", "owner", models.ForeignKey("inventory.warehouse", null=True,
                                                                         on_delete=models.CASCADE))]
"""


@pytest.mark.parametrize("earlier, stale", [
    # another column of the table: the foreign key looked up on "owner_id" is as the database has it
    ('migrations.AddField("item", "extra", models.IntegerField(null=True))', False),
    # the same column: its constraints may differ by then
    ('migrations.AlterField("item", "owner", models.ForeignKey("inventory.warehouse", null=True, '
     'on_delete=models.CASCADE, db_index=False))', True),
    # a constraint renamed by name (its columns unknown): the whole table
    ('migrations.RunSQL("ALTER TABLE inventory_item RENAME CONSTRAINT inventory_item_pkey TO item_pk", '
     'migrations.RunSQL.noop)', True),
])
def test_render_state_mismatch_only_where_the_catalog_read_was_changed(project, earlier, stale):
    """NetBox v4.0 -> HEAD: 8 migrations blocked as MG904 because an earlier pending migration added
    columns to a table whose foreign key on another column a RemoveField looked up."""
    project.add_migration("0005_item_owner", OWNER_FK)
    project.migrate("0005")
    project.add_migration("0006_earlier", f"""
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_item_owner")]
    operations = [{earlier}]
""")
    project.add_migration("0007_remove_owner", """
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_earlier")]
    operations = [migrations.RemoveField("item", "owner")]
""")
    run = project.lint("--format", "json", "--assume-rows", "0")
    mg904 = [f for f in run.json()["findings"] if f["rule"] == "MG904"]
    assert [f["migration"] for f in mg904] == (["inventory.0007_remove_owner"] if stale else []), run.out
    if stale:
        assert mg904[0]["blocking"] and 'inventory_item' in mg904[0]["message"]


SCHEMA_EDITOR_AND_CURSOR = '''
from django.db import migrations


def run(apps, schema_editor):
    schema_editor.execute('ALTER TABLE "inventory_item" ALTER COLUMN "name" SET DEFAULT \\'\\'')
    with schema_editor.connection.cursor() as cursor:
        cursor.execute('UPDATE "inventory_item" SET "quantity" = %s WHERE "quantity" IS NULL', [0])


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunPython(run, migrations.RunPython.noop)]
'''


@pytest.mark.parametrize("mode", ["--scratch", "--embedded"])
def test_each_statement_runpython_executes_is_recorded_once(project, mode):
    # schema_editor.execute goes through the schema editor's hook and the connection's query hook:
    # one execution is one statement (wagtailcore.0027's ALTER TABLE was reported twice).
    project.migrate("0004")
    project.add_migration("0005_run_python_sql", SCHEMA_EDITOR_AND_CURSOR)
    run = project.lint(mode, "--format", "json", "--assume-rows", "0")
    assert run.code in (0, 1), run.out + run.err
    [migration] = [m for m in run.json()["migrations"] if m["migration"] == "inventory.0005_run_python_sql"]
    assert [s["sql"] for s in migration["statements"]] == [
        migration["statements"][0]["sql"],  # the RunPython itself
        'ALTER TABLE "inventory_item" ALTER COLUMN "name" SET DEFAULT \'\'',
        'UPDATE "inventory_item" SET "quantity" = $1 WHERE "quantity" IS NULL',
    ]
    assert migration["statements"][0]["kind"] == "run_python"


def test_lint_in_a_process_that_goes_on_leaves_no_session_behind(pg_server, fresh_db):
    """The gate's second session (the catalog, read while the migrations load) closes all it opened in
    its thread, django.contrib.postgres's look-up of hstore's OIDs included: right after lint_migrations,
    in a process that goes on (safe_migrate, a test runner), no session of it is left on the database,
    which can then be the template of another."""
    import psycopg

    from tests.recipe_apply import driver
    from tests.test_sample_project import SAMPLE, demo, migrate

    for app_label, name in demo.BASE_MIGRATIONS:
        migrate(pg_server, fresh_db, app_label, name)
    try:
        _, lint, _ = driver(pg_server, SAMPLE, "shopsite.settings",
                            [{"database": fresh_db}, {"manage": ["lint_migrations"]}, {"clone": f"{fresh_db}_copy"}])
        assert lint["code"] == 1, lint  # it ran: the sample's pending migrations block
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh_db}_copy"')
