"""SARIF from a real run: valid against the official 2.1.0 schema, each finding on its operation's
line, rules described from their documentation, approvals as suppressions."""

from __future__ import annotations

import json
from pathlib import Path

from migration_guard.config import Config
from migration_guard.formats.sarif import FINGERPRINT_KEY, render_sarif
from migration_guard.model import Finding, Severity
from migration_guard.pipeline import MigrationResult
from migration_guard.report import Report
from migration_guard.rules import ALL_RULES
from tests.formats.schemas import sarif_errors


def _log(linted) -> dict:
    return json.loads(linted.text("sarif"))


def test_valid_against_the_official_schema(linted):
    log = _log(linted)
    assert sarif_errors(log) == []
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1


def test_the_schema_check_catches_a_broken_log(linted):
    log = _log(linted)
    log["runs"][0]["results"][0]["level"] = "fatal"
    del log["version"]
    errors = sarif_errors(log)
    assert any("version" in e for e in errors) and any("fatal" in e for e in errors)


def test_each_finding_is_a_result_on_its_operations_line(linted):
    results = _log(linted)["runs"][0]["results"]
    findings = linted.report["findings"]
    assert len(results) == len(findings) == 3
    for result, finding in zip(results, findings):
        location = result["locations"][0]["physicalLocation"]
        assert result["ruleId"] == finding["rule"]
        assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        # Relative to the checkout's root, as code scanning resolves it.
        assert location["artifactLocation"]["uri"] == Path(finding["path"]).relative_to(linted.project.root).as_posix()
        assert location["region"]["startLine"] == finding["line"]
        assert result["partialFingerprints"][FINGERPRINT_KEY] == finding["fingerprint"]
        assert finding["message"] in result["message"]["text"]
    index = linted.finding("MG002", "inventory.0002_item_created_idx")
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == index["line"] == 8
    assert "AddIndexConcurrently(" in results[0]["message"]["text"]
    assert [r["level"] for r in results] == ["error", "error", "warning"]


def test_rules_come_from_their_documentation(linted):
    run = _log(linted)["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [rule.id for rule in ALL_RULES]
    for described, rule in zip(rules, ALL_RULES):
        assert described["name"] == rule.slug
        assert described["shortDescription"]["text"] == rule.summary
        assert described["help"]["markdown"] == rule.doc
        assert 0 < len(described["fullDescription"]["text"]) <= 1024
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_an_approved_finding_is_an_external_suppression(linted):
    results = {r["properties"]["migration"]: r for r in _log(linted)["runs"][0]["results"]}
    approved = results["inventory.0004_item_warehouse_note"]
    assert approved["suppressions"] == [{
        "kind": "external", "status": "accepted",
        "justification": "approved by dba@example.com: notes are empty: the backfill touches no row",
    }]
    assert "suppressions" not in results["inventory.0002_item_created_idx"]


def test_a_finding_without_a_statement_or_outside_the_root(tmp_path):
    """A migration that does not render points at the top of its file; a file outside the source
    root keeps an absolute URI."""
    inside = tmp_path / "app" / "migrations" / "0001_x.py"
    outside = Path("/opt/site-packages/other/migrations/0001_y.py")
    results = []
    for label, path in (("app.0001_x", inside), ("other.0001_y", outside)):
        finding = Finding(rule="MG901", slug="unrenderable-migration", severity=Severity.ERROR,
                          message="could not be rendered", migration=label, fingerprint="abc")
        results.append(MigrationResult(label=label, path=str(path), atomic=True, how="collect_sql",
                                       statements=(), findings=(finding,)))
    report = Report(migrations=tuple(results), config=Config(), pg_version=16, pg_version_source="default",
                    sizes_source="none")
    log = json.loads(render_sarif(report, root=tmp_path))
    assert sarif_errors(log) == []
    first, second = (r["locations"][0]["physicalLocation"] for r in log["runs"][0]["results"])
    assert first == {"artifactLocation": {"uri": "app/migrations/0001_x.py", "uriBaseId": "%SRCROOT%"},
                     "region": {"startLine": 1}}
    assert second["artifactLocation"] == {"uri": "file:///opt/site-packages/other/migrations/0001_y.py"}
