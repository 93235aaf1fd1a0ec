"""Which code the backward-compatibility rules (MG020-MG027) take to be running, in each way of choosing
the migrations, as a user runs ``lint_migrations``: the release gate (the migrations applied on the
database), a named migration (the ones before it), ``--since`` (the base ref's), ``--scratch`` (what
the database has applied); the deploy order; approvals; operations the gate does not know."""

from __future__ import annotations

import json
import subprocess

from tests.projects import MIGRATION_GUARD

# Release N of the safe drop: the models stop using "note", the column stays.
STATE_ONLY_REMOVAL = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.SeparateDatabaseAndState(state_operations=[migrations.RemoveField("item", "note")])]
'''
# Release N+1: the column goes.
DROP_NOTE = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_item_note_out_of_the_model")]
    operations = [migrations.RunSQL('ALTER TABLE "inventory_item" DROP COLUMN "note"', migrations.RunSQL.noop)]
'''


def _compat(run) -> list[tuple[str, str]]:
    assert run.code in (0, 1), run.out + run.err
    return [(f["migration"], f["rule"]) for f in run.json()["findings"] if f["rule"].startswith("MG02")]


def _note(run) -> str:
    [note] = [n for n in run.json()["notes"] if n.startswith("backward compatibility")]
    return note


def test_release_gate_takes_the_applied_migrations_as_the_running_code(project):
    project.migrate("0004")
    project.add_migration("0005_item_note_out_of_the_model", STATE_ONLY_REMOVAL)
    project.add_migration("0006_drop_item_note", DROP_NOTE)
    both = project.lint("--format", "json")
    # deployed together, the code running during the deploy still has "note"
    assert _compat(both) == [("inventory.0006_drop_item_note", "MG020")]
    assert _note(both).endswith('the running code is that of the 4 migration(s) applied on database "default"')
    # named: the migrations before it count as deployed
    named = project.lint("inventory", "0006", "--format", "json")
    assert _compat(named) == [] and named.code == 0, named.out
    assert _note(named).endswith("the migrations before inventory.0006_drop_item_note")
    # release N deployed: release N+1 passes
    project.migrate("0005")
    after = project.lint("--format", "json")
    assert _compat(after) == [] and after.code == 0, after.out
    assert _note(after).endswith('the 5 migration(s) applied on database "default"')


def test_scratch_takes_what_the_database_has_applied(project):
    project.migrate("0004")
    project.add_migration("0005_item_note_out_of_the_model", STATE_ONLY_REMOVAL)
    project.add_migration("0006_drop_item_note", DROP_NOTE)
    assert _compat(project.lint("--scratch", "--format", "json")) == [("inventory.0006_drop_item_note", "MG020")]
    project.migrate("0005")
    assert _compat(project.lint("--scratch", "--format", "json")) == []


def test_scratch_of_a_database_with_nothing_applied_checks_no_running_code(project):
    project.add_migration("0005_item_note_out_of_the_model", STATE_ONLY_REMOVAL)
    project.add_migration("0006_drop_item_note", DROP_NOTE)
    run = project.lint("--scratch", "--format", "json")
    assert _compat(run) == []
    assert _note(run).endswith('the running code is that of the 0 migration(s) applied on database "default"')


def test_since_takes_the_base_refs_migrations(project):
    git = lambda *a: subprocess.run(["git", *a], cwd=project.root, check=True, capture_output=True, text=True)
    commit = lambda message: (git("add", "-A"), git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit",
                                                    "-qm", message))
    git("init", "-q", "-b", "main")
    commit("base")
    git("checkout", "-qb", "both")
    project.add_migration("0005_item_note_out_of_the_model", STATE_ONLY_REMOVAL)
    project.add_migration("0006_drop_item_note", DROP_NOTE)
    # both new on the branch: they deploy together, and the base's code has "note"
    run = project.lint("--since", "main", "--format", "json")
    assert _compat(run) == [("inventory.0006_drop_item_note", "MG020")]
    assert "at the merge base with main" in _note(run)
    # release N merged first: the branch with release N+1 passes
    commit("both")
    git("checkout", "-q", "main")
    git("checkout", "-q", "both", "--", "inventory/migrations/0005_item_note_out_of_the_model.py")
    commit("release N")
    git("checkout", "-qb", "drop")
    git("checkout", "-q", "both", "--", "inventory/migrations/0006_drop_item_note.py")
    run = project.lint("--since", "main", "--format", "json")
    assert [m["migration"] for m in run.json()["migrations"]] == ["inventory.0006_drop_item_note"]
    assert _compat(run) == [] and run.code == 0, run.out


ADD_NOTE_2 = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AddField("item", "note_2", models.TextField(null=True))]
'''


def test_deploy_order_code_first_checks_the_new_code_against_the_old_schema(project):
    project.migrate("0004")
    project.add_migration("0005_item_note_2", ADD_NOTE_2)
    assert _compat(project.lint("--format", "json")) == []
    project.config('[tool.migration_guard]\ndeploy_order = "code_first"\n')
    run = project.lint("--format", "json")
    assert _compat(run) == [("inventory.0005_item_note_2", "MG024")]
    assert "deploy_order = code_first" in _note(run)
    project.config('[tool.migration_guard]\ndeploy_order = "code-first"\n')
    bad = project.lint()
    assert bad.code == 2 and 'deploy_order = \'code-first\': use "migrate_first" or "code_first"' in bad.err


def test_a_compatibility_finding_is_approved_like_any_other(project):
    project.migrate("0004")
    project.add_migration("0005_item_note_out_of_the_model", STATE_ONLY_REMOVAL)
    project.add_migration("0006_drop_item_note", DROP_NOTE)
    [finding] = [f for f in project.lint("--format", "json").json()["findings"] if f["rule"] == "MG020"]
    assert "SeparateDatabaseAndState(state_operations=[" in finding["recipe"]
    approve = project.cli("approve", "inventory.0006_drop_item_note", "MG020", "--fingerprint", finding["fingerprint"],
                          "--reason", "the note field is unused since the last release", "--by", "t@example.com")
    assert approve.code == 0, approve.err
    run = project.lint("--format", "json")
    assert run.code == 0 and [f["approval"] is not None for f in run.json()["findings"] if f["rule"] == "MG020"] == [True]


UNKNOWN_OPERATION = '''
from django.db import migrations
from django.db.migrations.operations.base import Operation


class DropNote(Operation):
    """A custom operation the gate does not know, with attributes that look like a model's."""

    reduces_to_sql = True
    reversible = False
    name = 42
    model_name = None

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        schema_editor.execute('ALTER TABLE "inventory_item" DROP COLUMN "note"')

    def describe(self):
        return "drops the note column"


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [DropNote()]
'''


def test_an_operation_the_gate_does_not_know_is_judged_by_its_sql(project):
    project.migrate("0004")
    project.add_migration("0005_drop_note", UNKNOWN_OPERATION)
    for mode in ((), ("--scratch",)):
        run = project.lint(*mode, "--format", "json")
        assert _compat(run) == [("inventory.0005_drop_note", "MG020")], run.err


def test_explain_warns_on_drops_and_renames_it_cannot_check(tmp_path):
    script = tmp_path / "change.sql"
    script.write_text("ALTER TABLE shop_order DROP COLUMN note;\nALTER TABLE shop_order RENAME COLUMN total TO amount;\n"
                      "ALTER TABLE shop_order RENAME TO orders;\nDROP TABLE shop_coupon;\n"
                      "CREATE TABLE scratch (a int);\nALTER TABLE scratch DROP COLUMN a;\nDROP TABLE scratch;\n")
    run = subprocess.run([MIGRATION_GUARD, "explain", str(script), "--format", "json"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr  # warnings: explain cannot see the code
    found = [(s["line"], f["rule"], f["severity"], f["blocking"]) for s in json.loads(run.stdout)["statements"]
             for f in s["findings"]]
    assert found == [(1, "MG020", "warning", False), (2, "MG022", "warning", False), (3, "MG023", "warning", False),
                     (4, "MG021", "warning", False)]


REMOVE_NOTE = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.RemoveField("item", "note")]
'''
RENAME_WAREHOUSE = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_item_note_out_of_the_model")]
    operations = [migrations.RenameModel("Warehouse", "Depot")]
'''
DROP_DEPOT = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_rename_warehouse")]
    operations = [
        migrations.RemoveField("item", "warehouse"),
        migrations.RunSQL('DROP TABLE "inventory_depot"', migrations.RunSQL.noop),
    ]
'''


def test_each_takes_the_migrations_before_every_one_as_the_running_code(project):
    """--each: every migration its own deploy, onto a database with the ones before it (a whole history
    from an empty database): release N's state-only removal makes release N+1's drop pass, a plain
    RemoveField does not, and a table renamed by one migration is known by its new name to the next."""
    project.add_migration("0005_item_note_out_of_the_model", STATE_ONLY_REMOVAL)
    project.add_migration("0006_drop_item_note", DROP_NOTE)
    run = project.lint("--scratch", "--each", "--format", "json")
    assert _compat(run) == []  # (the lock rules block: with --each, every table counts as large)
    assert _note(run).endswith("the migrations before each one (--each: every migration its own deploy)")
    assert _compat(project.lint("--scratch", "--format", "json")) == []  # one deploy from nothing: no running code

    (project.root / "inventory" / "migrations" / "0006_drop_item_note.py").unlink()
    project.add_migration("0006_rename_warehouse", RENAME_WAREHOUSE)
    project.add_migration("0007_drop_depot", DROP_DEPOT)
    run = project.lint("--scratch", "--each", "--format", "json")
    assert _compat(run) == [("inventory.0006_rename_warehouse", "MG023"), ("inventory.0007_drop_depot", "MG020"),
                            ("inventory.0007_drop_depot", "MG021")]
    project.add_migration("0005_item_note_out_of_the_model", REMOVE_NOTE)
    run = project.lint("--scratch", "--each", "--format", "json")
    assert _compat(run)[0] == ("inventory.0005_item_note_out_of_the_model", "MG020")


EXITING_STATE = '''
import sys

from django.db import migrations
from django.db.migrations.operations.base import Operation


class Exit(Operation):
    reduces_to_sql = False
    reversible = False

    def state_forwards(self, app_label, state):
        sys.exit(3)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        pass

    def describe(self):
        return "exits"


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [Exit()]
'''


def test_migration_code_that_exits_while_the_new_codes_state_is_built_is_a_finding(project):
    """code_first builds the new code's state before rendering (and --since the base's): sys.exit() in
    a migration's state change there is left to rendering, which reports it (MG901), as without them."""
    project.migrate("0004")
    project.add_migration("0005_exit", EXITING_STATE)
    project.config('[tool.migration_guard]\ndeploy_order = "code_first"\n')
    run = project.lint("--format", "json")
    assert run.code == 1, run.out + run.err
    [finding] = [f for f in run.json()["findings"] if f["rule"] == "MG901"]
    assert "sys.exit(3)" in finding["message"], finding
