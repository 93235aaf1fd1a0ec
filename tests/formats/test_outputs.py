"""``--output FORMAT:PATH``: one run feeds several consumers; a bad destination exits 2 before the
gate does any work."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

# Any database work would fail with a connection error: these must stop before it.
NO_DATABASE = {"FIXTURE_DB_HOST": "/nonexistent-socket-dir"}


@pytest.mark.parametrize("args, message", [
    (["--output", "yaml:report.yaml"], "unknown format 'yaml'; choose one of text, json, sarif, github, markdown"),
    (["--output", "sarif"], "expected FORMAT:PATH"),
    (["--output", "sarif:no-such-folder/report.sarif"], "the folder no-such-folder does not exist"),
    (["--output", "sarif:inventory"], "inventory is a folder"),
    (["--output", "text:-", "--output", "json:-"], "only one report can go to stdout, not text and json"),
    (["--format", "json", "--output", "github:-"], "only one report can go to stdout, not json and github"),
    (["--output", "sarif:a.sarif", "--output", "junit:./a.sarif"], "two --output reports name the same file"),
])
def test_a_bad_destination_exits_2_before_any_work(project, args, message):
    run = project.lint(*args, env=NO_DATABASE)
    assert run.code == 2, run.out + run.err
    assert message in run.err
    assert "cannot read database" not in run.err
    assert run.out == ""


def test_files_only_leave_stdout_empty_and_format_adds_stdout(project):
    project.migrate("0001")
    only_files = project.lint("--output", "junit:gate.xml", "--output", "json:gate.json")
    assert only_files.out == "", only_files.out
    report = json.loads((project.root / "gate.json").read_text())
    assert only_files.code == report["exit_code"]
    cases = ET.parse(project.root / "gate.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == [m["migration"].split(".", 1)[1] for m in report["migrations"]]

    both = project.lint("--format", "text", "--output", "sarif:gate.sarif")
    assert both.out.rstrip().endswith(f"Exit {report['exit_code']}.")
    sarif = json.loads((project.root / "gate.sarif").read_text())
    assert len(sarif["runs"][0]["results"]) == len(report["findings"])
