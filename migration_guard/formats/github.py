"""GitHub Actions workflow commands: one annotation per finding, on the line of its operation in the
migration file, then the verdict as a plain line for the log.

``::error file=shop/migrations/0004_add_index.py,line=16,title=MG002 add-index-non-concurrently::Building ...``

Blocking findings are ``error``, warnings ``warning``, approved and informational findings
``notice``. Escaping follows GitHub's runner: ``%``, CR and LF in the message; also ``:`` and ``,``
in properties. https://docs.github.com/actions/reference/workflow-commands-for-github-actions
"""

from __future__ import annotations

from pathlib import Path

from migration_guard.formats.common import finding_body, label_of, relative_path
from migration_guard.model import Finding, Severity
from migration_guard.pipeline import MigrationResult
from migration_guard.report import Report, summary_line

__all__ = ["escape_data", "escape_property", "render_github"]


def escape_data(text: str) -> str:
    """Escape a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report, *, root: Path) -> str:
    """The findings as workflow commands, paths relative to ``root`` (the repository root)."""
    lines = [_annotation(label_of(report, result), result, finding, root)
             for result in report.migrations for finding in result.findings]
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def _annotation(label: str, result: MigrationResult, finding: Finding, root: Path) -> str:
    if finding.blocking:
        command = "error"
    elif finding.severity is Severity.WARNING:
        command = "warning"
    else:
        command = "notice"  # approved, or informational
    properties = {}
    path = relative_path(result.path, root) or result.path
    if path:
        properties["file"] = path
        line = result.line_of(finding)
        if line:
            properties["line"] = str(line)
    properties["title"] = f"{finding.rule} {finding.slug}" + (" (approved)" if finding.approval else "")
    rendered = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{command} {rendered}::{escape_data(_message(label, finding))}"


def _message(label: str, finding: Finding) -> str:
    return "\n".join([f"{label}: {finding.message}", *finding_body(finding)])
