"""Collect mode renders only the models the pending migrations need (``partial_state``): the SQL
of every migration must be the same as with every model rendered. ``partial_state_check.py``
compares both renderings at each migration's own database state, on real projects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_sample_project import SAMPLE, demo

CHECK = Path(__file__).resolve().parent / "partial_state_check.py"

# A model referencing Item and Warehouse, then changes that alter the columns referencing them:
# Item's key becomes bigint (Django alters inventory_shipment.item_id too) and Warehouse is renamed.
SHIPMENT = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.CreateModel(
            name="Shipment",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("item", models.ForeignKey(on_delete=models.CASCADE, to="inventory.item")),
                ("depots", models.ManyToManyField(to="inventory.warehouse")),
            ],
        ),
    ]
'''
CHANGES = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_shipment")]
    operations = [
        migrations.AlterField("item", "id", models.BigAutoField(primary_key=True, serialize=False)),
        migrations.RenameModel("Warehouse", "Depot"),
        migrations.AddField("item", "note2", models.TextField(null=True)),
    ]
'''


def _check(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    paths = [str(cwd), str(CHECK.parent.parent), env.get("PYTHONPATH", "")]
    env = {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}  # the project's own modules
    return subprocess.run([sys.executable, str(CHECK), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def _summary(result: subprocess.CompletedProcess) -> tuple[int, int, int]:
    words = result.stdout.strip().splitlines()[-1].split()
    return int(words[0]), int(words[2]), int(words[5])  # migrations, rendered partially, different


def test_sample_project_renders_the_same_sql_with_partial_models(pg_server, fresh_db):
    result = _check(SAMPLE, demo.project_env(pg_server, fresh_db))
    assert result.returncode == 0, result.stdout + result.stderr
    migrations, partial, different = _summary(result)
    assert different == 0
    assert migrations >= 25 and partial >= 5  # the partial rendering was really used (few models: often all)


def test_changes_to_referenced_models_render_the_same_sql(project):
    project.add_migration("0005_shipment", SHIPMENT)
    project.add_migration("0006_changes", CHANGES)
    env = {**project.env, "DJANGO_SETTINGS_MODULE": "fixtureproj.settings"}
    result = _check(project.root, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _summary(result)[2] == 0


def test_the_check_fails_when_referencing_models_are_left_out(project):
    project.add_migration("0005_shipment", SHIPMENT)
    project.add_migration("0006_changes", CHANGES)
    env = {**project.env, "DJANGO_SETTINGS_MODULE": "fixtureproj.settings"}
    result = _check(project.root, env, "--without-referencing-models")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "DIFFERENT inventory.0006_changes" in result.stdout
    assert "inventory_shipment" in result.stdout  # the foreign key column the sabotage loses
