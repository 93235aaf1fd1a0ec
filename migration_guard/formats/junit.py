"""JUnit XML, for CI systems that show test reports (GitLab merge requests, Jenkins, Azure).

One test case per linted migration: ``classname`` the app label, ``name`` the migration. A blocked
migration fails (``message`` the first blocking finding, the text all of its findings); a migration
that passes only because of an approval is skipped, with the approval as the reason; others pass.
Warnings go in the test case's ``system-out``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from migration_guard import __version__
from migration_guard.formats.common import finding_body, label_of, relative_path
from migration_guard.model import Finding, Severity
from migration_guard.pipeline import MigrationResult
from migration_guard.report import Report, migration_status

__all__ = ["render_junit"]

_SUITE = "migration_guard"
# Characters XML 1.0 cannot carry, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def render_junit(report: Report, *, root: Path) -> str:
    """The report as a JUnit XML document; ``file`` attributes relative to ``root``."""
    statuses = [migration_status(m) for m in report.migrations]
    counts = {
        "tests": str(len(statuses)),
        "failures": str(statuses.count("blocked")),
        "errors": "0",
        "skipped": str(statuses.count("approved")),
    }
    suites = ET.Element("testsuites", {"name": _SUITE, **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": _SUITE, **counts})
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("tool.version", __version__),
        ("pg_version", f"{report.pg_version} ({report.pg_version_source})"),
        ("sizes", report.sizes_source),
        ("database", report.database or ""),
        ("exit_code", str(report.exit_code)),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _clean(value)})
    for result, status in zip(report.migrations, statuses):
        suite.append(_testcase(label_of(report, result), result, status, root))
    if report.notes:
        ET.SubElement(suite, "system-out").text = _clean("\n".join(report.notes))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _testcase(label: str, result: MigrationResult, status: str, root: Path) -> ET.Element:
    app_label, _, name = label.partition(".")
    attributes = {"classname": app_label, "name": name or label}
    path = relative_path(result.path, root) or result.path
    if path:
        attributes["file"] = path
    case = ET.Element("testcase", attributes)
    blocking = [f for f in result.findings if f.blocking]
    if status == "blocked":
        first = blocking[0]
        failure = ET.SubElement(case, "failure", {
            "message": _clean(f"{first.rule} {first.slug}: {first.message}"),
            "type": first.rule,
        })
        failure.text = _clean("\n\n".join(_finding_text(result, f, root) for f in result.findings))
    elif status == "approved":
        approvals = "; ".join(f"{f.rule} {f.approval}" for f in result.findings if f.approval)
        ET.SubElement(case, "skipped", {"message": _clean(f"approved: {approvals}")})
    warnings = [f for f in result.findings if f.severity is Severity.WARNING]
    if warnings:
        ET.SubElement(case, "system-out").text = _clean(
            "\n\n".join(_finding_text(result, f, root) for f in warnings)
        )
    return case


def _finding_text(result: MigrationResult, finding: Finding, root: Path) -> str:
    label = "approved" if finding.approval else finding.severity.value
    lines = [f"{finding.rule} {finding.slug} ({label})", finding.message]
    path = relative_path(result.path, root) or result.path
    line = result.line_of(finding)
    if path:
        lines.append(f"where: {path}:{line}" if line else f"where: {path}")
    lines += finding_body(finding)
    return "\n".join(lines)


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
