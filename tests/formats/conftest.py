"""One real run of the gate on the fixture project (once per test process), every format written
at once with --output: the report each format test reads back. A blocked migration (MG002 on
3,000 rows over a 1,000-row threshold), an approved one, a warning on a small table and a clean one."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.projects import Project, Run

SMALL_TABLE_INDEX = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]

    operations = [
        migrations.AddIndex(
            model_name="warehouse",
            index=models.Index(fields=["name"], name="warehouse_name_idx"),
        ),
    ]
'''

FORMATS = ("sarif", "github", "markdown", "junit")


@dataclass
class Linted:
    """The project, the run, the JSON report from stdout and each format's file."""

    project: Project
    run: Run
    report: dict
    files: dict[str, Path]

    def text(self, name: str) -> str:
        return self.files[name].read_text(encoding="utf-8")

    def finding(self, rule: str, migration: str) -> dict:
        return next(f for f in self.report["findings"] if f["rule"] == rule and f["migration"] == migration)


@pytest.fixture(scope="session")
def linted(tmp_path_factory, pg_server) -> Linted:
    name = f"formats_{os.getpid()}_{tmp_path_factory.getbasetemp().name}".replace("-", "_")
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    root = tmp_path_factory.mktemp("formats")
    project = Project(root / "project", pg_server, name)
    try:
        # A checkout: paths in the reports are relative to its root.
        subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
        project.migrate("0001")
        # The format tests count findings; the advice (MG030-MG039) in every format: tests/test_advice_live.py.
        project.config("[tool.migration_guard]\nthreshold_rows = 1000\n"
                       f"disable = {[f'MG03{n}' for n in range(10)]}\n".replace("'", '"'))
        project.fill_items(3000)
        project.add_migration("0005_warehouse_name_idx", SMALL_TABLE_INDEX)
        first = project.lint("--format", "json").json()
        held = next(f for f in first["findings"] if f["migration"] == "inventory.0004_item_warehouse_note")
        (project.root / "migration-approvals.toml").write_text(
            f'[[approval]]\nmigration = "{held["migration"]}"\nrule = "{held["rule"]}"\n'
            f'fingerprint = "{held["fingerprint"]}"\nreason = "notes are empty: the backfill touches no row"\n'
            'approved_by = "dba@example.com"\n'
        )
        out = root / "reports"
        out.mkdir()
        files = {fmt: out / f"report.{fmt}" for fmt in FORMATS}
        args = [arg for fmt, path in files.items() for arg in ("--output", f"{fmt}:{path}")]
        run = project.lint(*args, "--output", "json:-")
        assert run.code == 1, run.out + run.err
        yield Linted(project, run, json.loads(run.out), files)
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
