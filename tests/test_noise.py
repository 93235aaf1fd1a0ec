"""What a new user meets on a long history (NetBox v4.0 -> HEAD): warnings on small tables counted
per rule instead of drowning the blocking findings, progress lines during a long lint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from migration_guard.config import Config, ConfigError, load_config
from migration_guard.formats.markdown import render_markdown
from migration_guard.model import Severity, TableSize
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.progress import Progress
from migration_guard.report import Report, render_json, render_text
from migration_guard.stats import Snapshot, TableSizes

SMALL = [f"shop_small{n}" for n in range(7)]
SQL = "\n".join([
    'CREATE INDEX "big_idx" ON "shop_order" ("note");',  # blocks: 5M rows
    *(f'CREATE INDEX "{t}_idx" ON "{t}" ("a");' for t in SMALL),  # warnings: 10 rows each
    'CREATE INDEX "again_idx" ON "shop_small0" ("b");',
    'ALTER TABLE "shop_small0" ADD COLUMN "doc" json NULL;',  # MG031: a warning whatever the size
])


def _report(**config) -> Report:
    tables = {"shop_order": TableSize(5_000_000, 500_000_000, "snapshot")}
    tables.update({t: TableSize(10, 8192, "snapshot") for t in SMALL})
    snapshot = Snapshot(pg_version=16, server_version_num=None, taken_at="2026-11-22T00:00:00+00:00",
                        database="prod", tables=tables)
    result = analyse_statements(parse_sql_text(SQL, "t.sql"), source="t.sql", sizes=TableSizes(snapshot=snapshot),
                                pg_version=16, config=Config(**config))
    return Report(migrations=(result,), config=Config(**config), pg_version=16, pg_version_source="default",
                  sizes_source="snapshot")


def test_warnings_below_the_threshold_are_counted_per_rule_in_the_text_report():
    report = _report()
    text = render_text(report)
    # The blocking finding in full; the warnings only because of the size, counted; MG031 in full.
    assert text.count("approve: migration-guard approve") == 1
    assert text.count("MG002 add-index-non-concurrently (warning)") == 0
    assert "MG031 json-type-instead-of-jsonb (warning)" in text
    assert "t.sql  BLOCKED  (8 warning(s) on tables below the threshold: MG002 8)" in text
    assert ("8 warning(s) on tables below the threshold, counted per rule (they would block on a large table; "
            "--show-warnings gives each in full, --format json has them all):\n"
            "  MG002 add-index-non-concurrently: 8 in 1 migration(s), on 7 table(s): shop_small0 (2), shop_small1 (1), "
            "shop_small2 (1), shop_small3 (1), shop_small4 (1) and 2 more\n") in text
    # The verdict, the counts and the exit code are those of every finding.
    assert "findings by rule: MG002 9 (1 blocking), MG031 1 (0 blocking)" in text
    assert "1 blocking finding(s), 9 warning(s)" in text and report.exit_code == 1

    shown = render_text(replace(report, config=replace(report.config, show_warnings=True)))
    assert shown.count("MG002 add-index-non-concurrently (warning)") == 8
    assert "below the threshold" not in shown
    assert len(text.splitlines()) < len(shown.splitlines()) - 80


def test_json_keeps_every_warning_and_says_which_are_below_the_threshold():
    document = json.loads(render_json(_report()))
    below = [f for f in document["findings"] if f["below_threshold"]]
    assert len(below) == 8 and {f["rule"] for f in below} == {"MG002"}
    assert all(f["severity"] == "warning" and not f["blocking"] for f in below)
    assert [f["table"] for f in document["findings"] if f["blocking"]] == ["shop_order"]
    mg031 = next(f for f in document["findings"] if f["rule"] == "MG031")
    assert mg031["severity"] == "warning" and mg031["below_threshold"] is False


def test_a_severity_from_the_configuration_is_never_below_the_threshold():
    # The team chose "warning" for MG002: each is given in full, on any table.
    report = _report(severity={"MG002": Severity.WARNING})
    assert not any(f.below_threshold for f in report.findings)
    assert render_text(report).count("MG002 add-index-non-concurrently (warning)") == 9


def test_markdown_counts_them_too():
    report = _report()
    text = render_markdown(report, root=Path.cwd())
    assert "- MG002 add-index-non-concurrently: 8 in 1 migration(s), on 7 table(s)" in text
    assert "`t.sql` **MG002" not in text and text.count("`t.sql` **MG031") == 1
    assert text.count("#### `t.sql`: MG002 add-index-non-concurrently") == 1  # the blocking one, in full
    shown = render_markdown(replace(report, config=replace(report.config, show_warnings=True)), root=Path.cwd())
    assert shown.count("`t.sql` **MG002 add-index-non-concurrently**") == 8 and "below the threshold" not in shown


def test_show_warnings_in_the_configuration(tmp_path):
    assert load_config(None, {"show_warnings": True}).show_warnings is True
    with pytest.raises(ConfigError, match="show_warnings must be true or false"):
        load_config(None, {"show_warnings": "yes"})


SMALL_TABLE_INDEX = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AddIndex("warehouse", models.Index(fields=["name"], name="warehouse_name_idx"))]
'''


def test_lint_migrations_counts_them_and_show_warnings_gives_each(project):
    project.migrate("0004")
    project.add_migration("0005_warehouse_name_idx", SMALL_TABLE_INDEX)
    counted = project.lint()
    assert counted.code == 0, counted.out + counted.err
    assert "MG002 add-index-non-concurrently (warning)" not in counted.out
    assert "MG002 add-index-non-concurrently: 1 in 1 migration(s), on 1 table(s): inventory_warehouse (1)" in counted.out
    shown = project.lint("--show-warnings")
    assert shown.code == 0 and "MG002 add-index-non-concurrently (warning)" in shown.out
    assert "below the threshold" not in shown.out


# -- progress ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_are_bounded_in_number():
    clock, lines = Clock(), []
    progress = Progress(lines.append, "default", interval=15, clock=clock)
    for done in range(300):  # 300 migrations, 5 s each: a line every 3 migrations' worth of 15 s
        progress.migration(done, 300, f"app.{done:04d}", failed=1 if done > 100 else 0)
        clock.now += 5
    progress.analysing(300, 3_603)
    clock.now += 31
    progress.analysed()
    assert lines[0] == "migration_guard: database 'default': rendering 300 migration(s)"
    assert lines[1] == "migration_guard: database 'default': 3/300 rendered, 0:15; now app.0003"
    assert "migration_guard: database 'default': 102/300 rendered, 1 failed, 8:30; now app.0102" in lines
    assert lines[-2] == "migration_guard: database 'default': rendered 300 migration(s) in 25:00; analysing 3,603 statement(s)"
    assert lines[-1] == "migration_guard: database 'default': analysed in 0:31"
    assert len(lines) == 1 + 99 + 2  # 1,500 s of rendering: the first line, then one per 15 s


def test_lint_migrations_progress_on_stderr_only_when_asked(project):
    project.migrate("0001")
    asked = project.lint("--progress")
    assert asked.code == 0, asked.err
    progress = [line for line in asked.err.splitlines() if line.startswith("migration_guard: database 'default'")]
    assert progress[0] == "migration_guard: database 'default': rendering 3 migration(s)"
    assert progress[-1].startswith("migration_guard: database 'default': analysed in 0:")
    assert "migration_guard: database" not in asked.out  # data on stdout, logs on stderr
    for args in ((), ("--progress", "-v", "0")):  # stderr is not a terminal here; -v 0 silences it
        quiet = project.lint(*args)
        assert quiet.code == 0 and "migration_guard: database" not in quiet.err, quiet.err
