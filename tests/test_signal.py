"""The report a team reads on a long history: one finding per hazard (no-op RunPython is no work),
counts per rule, a bounded text report."""

from __future__ import annotations

import json
import subprocess

import pytest

from migration_guard.config import Config
from migration_guard.model import TableSize
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.report import Report, render_json, render_text
from migration_guard.stats import Snapshot, TableSizes
from tests.projects import MIGRATION_GUARD

BIG = 5_000_000

NOOPS = '''
from django.db import migrations, models


def nothing(apps, schema_editor):
    """Nothing to do forwards."""


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]

    operations = [
        migrations.AddField(model_name="item", name="flag", field=models.BooleanField(null=True)),
        migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop),
        migrations.RunPython(nothing),
        migrations.RunPython(lambda apps, schema_editor: None),
    ]
'''


@pytest.mark.parametrize("mode", [(), ("--scratch",)], ids=["collect", "scratch"])
def test_noop_runpython_is_not_long_work(project, mode):
    project.migrate("0004")
    project.add_migration("0005_noops", NOOPS)
    run = project.lint(*mode, "--format", "json")
    assert run.code == 0, run.out + run.err
    [migration] = run.json()["migrations"]
    assert [s["kind"] for s in migration["statements"]] == ["sql"]  # the ADD COLUMN alone
    assert run.json()["findings"] == []


def _report(sql: str, **config):
    snapshot = Snapshot(pg_version=16, server_version_num=None, taken_at="2026-11-22T00:00:00+00:00",
                        database="prod", tables={"shop_order": TableSize(BIG, BIG * 100, "snapshot")})
    result = analyse_statements(parse_sql_text(sql, "t.sql"), source="t.sql", sizes=TableSizes(snapshot=snapshot),
                                pg_version=16, config=Config(**config))
    return Report(migrations=(result,), config=Config(**config), pg_version=16, pg_version_source="default",
                  sizes_source="snapshot")


INDEXES = "\n".join(f'CREATE INDEX "i{n}" ON "shop_order" ("c{n}");' for n in range(5)) + \
    '\nALTER TABLE shop_order ADD COLUMN t uuid DEFAULT gen_random_uuid();\nCREATE INDEX i ON shop_small (a);'


def test_text_summary_counts_findings_per_rule():
    text = render_text(_report(INDEXES, threshold_rows=1_000_000))
    assert "findings by rule: MG001 1, MG002 6\n" in text
    assert text.count("approve: migration-guard approve") == 7


def test_max_findings_gives_the_rest_in_one_line_each():
    report = _report(INDEXES, max_findings=2)
    text = render_text(report)
    assert text.count("approve: migration-guard approve") == 2
    one_line = [line for line in text.splitlines() if line.startswith("  MG00") and "(error) " in line]
    assert len(one_line) == 5 and all('"shop_' in line for line in one_line)
    assert "note: 5 finding(s) after the first 2 are given in one line each" in text
    assert len(text.splitlines()) < len(render_text(_report(INDEXES)).splitlines()) - 30
    assert len(json.loads(render_json(report))["findings"]) == 7  # JSON keeps everything


# -- one failure does not hide the rest of the plan ----------------------------------------------------

BOOM = '''
from django.db import migrations
from django.db.migrations.operations.base import Operation


class Boom(Operation):
    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        raise RuntimeError("the ledger is closed")

    def describe(self):
        return "boom"


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [Boom()]
'''

AFTER_BOOM = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_boom")]
    operations = [migrations.AddIndex("item", models.Index(fields=["quantity"], name="item_quantity_idx"))]
'''

LEDGER_MODELS = '''
from django.db import models


class Entry(models.Model):
    amount = models.IntegerField()
'''

LEDGER = {
    "0001_initial": '''
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    operations = [migrations.CreateModel("Entry", [("id", models.BigAutoField(primary_key=True)),
                                                   ("amount", models.IntegerField())])]
''',
    # does not depend on inventory: analysed as usual
    "0002_amount_idx": '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    operations = [migrations.AddIndex("entry", models.Index(fields=["amount"], name="entry_amount_idx"))]
''',
    # depends on inventory's failed migration through 0006
    "0003_after_inventory": '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_amount_idx"), ("inventory", "0006_after_boom")]
    operations = [migrations.AddField("entry", "note", models.TextField(null=True))]
''',
}


def _with_ledger(project):
    app = project.root / "ledger"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "migrations" / "__init__.py").write_text("")
    (app / "models.py").write_text(LEDGER_MODELS)
    for name, source in LEDGER.items():
        project.add_migration(name, source, app="ledger")
    settings = project.root / "fixtureproj" / "settings.py"
    settings.write_text(settings.read_text() + '\nINSTALLED_APPS = [*INSTALLED_APPS, "ledger"]\n')


@pytest.mark.parametrize("mode", [(), ("--scratch",)], ids=["collect", "scratch"])
def test_a_failed_migration_blocks_only_what_depends_on_it(project, mode):
    _with_ledger(project)
    project.add_migration("0005_boom", BOOM)
    project.add_migration("0006_after_boom", AFTER_BOOM)
    project.migrate("0004")
    migrated = project.manage("migrate", "ledger", "0001")
    assert migrated.code == 0, migrated.err
    run = project.lint(*mode, "--format", "json")
    assert run.code == 1, run.err
    findings = {(f["migration"], f["rule"]) for f in run.json()["findings"]}
    assert findings == {
        ("inventory.0005_boom", "MG901"),
        ("inventory.0006_after_boom", "MG920"),
        ("ledger.0002_amount_idx", "MG002"),  # analysed normally: it does not depend on inventory
        ("ledger.0003_after_inventory", "MG920"),
    }, run.out
    messages = {f["migration"]: f["message"] for f in run.json()["findings"] if f["rule"] == "MG920"}
    assert all("because inventory.0005_boom, which it depends on, failed" in m for m in messages.values())
    text = project.lint(*mode)
    assert text.out.count("approve: migration-guard approve") == 3  # MG901 and each MG920 (MG002 warns: 0 rows)


# -- approvals: found from any directory, several at once ----------------------------------------------


def test_the_approvals_file_sits_next_to_the_pyproject_holding_the_configuration(tmp_path, monkeypatch):
    from migration_guard.config import find_pyproject, load_config

    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text("[tool.migration_guard]\nthreshold_rows = 10\n")
    app = tmp_path / "netbox"
    app.mkdir()
    (app / "pyproject.toml").write_text("[tool.ruff]\nline-length = 120\n")  # another tool's, not ours
    monkeypatch.chdir(app)
    found = find_pyproject(app)
    assert found == tmp_path / "pyproject.toml"
    assert load_config(found).approvals_file == tmp_path / "migration-approvals.toml"
    # no configuration anywhere: the project root, not the working directory
    (tmp_path / "pyproject.toml").unlink()
    (app / "pyproject.toml").unlink()
    assert load_config(find_pyproject(app)).approvals_file == tmp_path / "migration-approvals.toml"


def test_approve_all_blocking_from_a_subfolder_then_lint_passes(project):
    project.migrate("0001")
    project.config("[tool.migration_guard]\nthreshold_rows = 1000\n")
    project.fill_items(3000)
    blocked = project.lint("--format", "json")
    assert blocked.code == 1
    assert any("no approvals file at migration-approvals.toml (the default, next to" in n
               for n in blocked.json()["notes"])
    (project.root / "report.json").write_text(blocked.out)
    sub = project.root / "inventory"
    approved = subprocess.run([MIGRATION_GUARD, "approve", "--all-blocking", "../report.json", "--reason",
                               "maintenance window", "--by", "dba@example.com"],
                              cwd=sub, env=project.env, capture_output=True, text=True, timeout=120)
    assert approved.returncode == 0, approved.stderr
    blocking = [f for f in blocked.json()["findings"] if f["blocking"]]
    assert approved.stderr.count("approved ") == len(blocking) == 2
    text = (project.root / "migration-approvals.toml").read_text()
    assert text.count("[[approval]]") == 2 and text.count('reason = "maintenance window"') == 2
    assert not (sub / "migration-approvals.toml").exists()
    run = project.lint("--format", "json")
    assert run.code == 0, run.out
    assert [a["status"] for a in run.json()["approvals"]] == ["used", "used"]


def test_a_configured_approvals_file_that_is_missing_is_a_note(project):
    project.migrate("0004")
    project.config('[tool.migration_guard]\napprovals_file = "deploy/approvals.toml"\n')
    run = project.lint("--format", "json")
    assert run.code == 0, run.out
    assert any(n.startswith("no approvals file at deploy/approvals.toml (approvals_file in ") for n in run.json()["notes"])


def test_approve_all_blocking_refuses_what_is_not_a_report(project):
    (project.root / "report.json").write_text('{"findings": [{"rule": "MG002"}]}')
    run = project.cli("approve", "--all-blocking", "report.json", "--reason", "x")
    assert run.code == 2 and "not a JSON report of lint_migrations" in run.err
    run = project.cli("approve", "--reason", "x")
    assert run.code == 2 and "--all-blocking REPORT.json" in run.err


# -- migration-guard lint: no INSTALLED_APPS change ---------------------------------------------------

PLAIN_SETTINGS = '''
from fixtureproj.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "migration_guard"]  # noqa: F405
'''


def test_migration_guard_lint_runs_the_gate_without_the_app_installed(project):
    project.migrate("0001")
    (project.root / "fixtureproj" / "plain_settings.py").write_text(PLAIN_SETTINGS)
    env = {key: value for key, value in project.env.items() if key != "DJANGO_SETTINGS_MODULE"}
    # the app is not installed: manage.py has no lint_migrations
    plain = project.manage("lint_migrations", "--settings", "fixtureproj.plain_settings")
    assert plain.code != 0 and "Unknown command" in plain.err
    cli = subprocess.run([MIGRATION_GUARD, "lint", "--settings", "fixtureproj.plain_settings", "--format", "json"],
                         cwd=project.root, env=env, capture_output=True, text=True, timeout=300)
    same = project.lint("--format", "json")
    assert cli.returncode == same.code == 0, cli.stderr  # empty tables: warnings
    found = [(f["migration"], f["rule"], f["fingerprint"]) for f in json.loads(cli.stdout)["findings"]]
    assert found and found == [(f["migration"], f["rule"], f["fingerprint"]) for f in same.json()["findings"]]
    # with DJANGO_SETTINGS_MODULE instead, from another folder with --pythonpath
    other = subprocess.run([MIGRATION_GUARD, "lint", "--pythonpath", str(project.root), "inventory", "0002"],
                           cwd=project.root / "inventory", env={**env, "DJANGO_SETTINGS_MODULE": "fixtureproj.plain_settings"},
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 0 and "MG002" in other.stdout and "1 migration(s)" in other.stdout, other.stderr
    missing = subprocess.run([MIGRATION_GUARD, "lint"], cwd=project.root, env=env, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and "--settings myproject.settings" in missing.stderr


# -- durations count indexes and TOAST --------------------------------------------------------------


def test_a_rewrite_estimate_counts_the_tables_indexes_and_bytes():
    from migration_guard.rules.base import estimate_duration

    # the report behind it: 1.1M rows, 23 indexes, a UUID default, 19.6-21.4 s for real
    assert estimate_duration(TableSize(1_100_000, None, indexes=23), "rewrite") == "~31 s"
    assert estimate_duration(TableSize(1_100_000, None, indexes=1), "rewrite") == "~9 s"
    assert estimate_duration(TableSize(1_100_000, None), "rewrite") == "~9 s"  # indexes unknown: rows alone
    assert estimate_duration(TableSize(1_100_000, None, indexes=23), "index") == "~2 s"  # one index: rows alone
    # few rows, much TOAST: the bytes copied decide
    assert estimate_duration(TableSize(10_000, 40 * 10**9, indexes=1), "rewrite") == "~22 min"


# -- small ones -------------------------------------------------------------------------------------


def test_alter_table_rename_of_a_sequence_created_in_the_plan_is_a_sequence_rename():
    from tests.rules.test_rules import lint

    backfill = "UPDATE shop_order SET note = '' WHERE id < 5"
    for created in ("CREATE TABLE x (id serial PRIMARY KEY)",
                    "CREATE TABLE x (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)",
                    "CREATE SEQUENCE x_id_seq"):
        findings = lint(f"BEGIN; {created}; ALTER TABLE x_id_seq RENAME TO y_seq; {backfill}; COMMIT")
        assert "MG008" not in [f.rule for f in findings], (created, [f.message for f in findings])
    # a name the gate cannot place is still a table of unknown size
    assert "MG008" in [f.rule for f in lint(f"BEGIN; ALTER TABLE other_seq RENAME TO y_seq; {backfill}; COMMIT")]


DO_BLOCK = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RunSQL(
        "DO $$ BEGIN EXECUTE format('LOCK TABLE %I IN SHARE MODE', 'inventory_item'); "
        "UPDATE inventory_warehouse SET name = name WHERE id < 0; END $$",
        migrations.RunSQL.noop)]
'''


def test_a_do_block_under_scratch_reports_the_locks_it_really_took(project):
    project.migrate("0004")
    project.add_migration("0005_do", DO_BLOCK)
    scratch = project.lint("--scratch", "--format", "json")
    [finding] = [f for f in scratch.json()["findings"] if f["rule"] == "MG905"]
    assert finding["message"].endswith('it took SHARE on "inventory_item", ROW EXCLUSIVE on "inventory_warehouse".'), \
        finding["message"]
    assert (finding["table"], finding["lock"]) == ("inventory_item", "ShareLock")
    # rendered only, the block stays unknown (the table it locks is a value given when it runs)
    collect = project.lint("--format", "json")
    [unknown] = [f for f in collect.json()["findings"] if f["rule"] == "MG905"]
    assert unknown["message"].endswith("it may take any lock and run DDL.")
