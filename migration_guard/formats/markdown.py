"""Markdown, for a CI job summary (``$GITHUB_STEP_SUMMARY``) or a pull-request comment: the verdict,
a table of the linted migrations, each blocking finding with its table, size, lock and duration and
the safe recipe folded in a ``<details>`` block, the warnings, and the approvals."""

from __future__ import annotations

import re
from pathlib import Path

from migration_guard import __version__
from migration_guard.formats.common import approve_command, details, label_of, relative_path, statement_of
from migration_guard.model import Finding, Severity
from migration_guard.pipeline import MigrationResult
from migration_guard.report import Report, below_threshold_lines, counted_only, migration_status, summary_line

__all__ = ["render_markdown"]

_VERDICTS = {"blocked": "⛔ blocked", "approved": "✅ approved", "warning": "⚠️ warning", "ok": "✅ ok"}


def render_markdown(report: Report, *, root: Path) -> str:
    """The report as GitHub-flavoured markdown; paths relative to ``root``."""
    blocked = sum(1 for m in report.migrations if migration_status(m) == "blocked")
    out = [
        f"## migration_guard: {'⛔ BLOCKED' if report.exit_code else '✅ PASSED'}",
        "",
        _text(summary_line(report)),
        "",
        f"PostgreSQL {report.pg_version} ({_text(report.pg_version_source)}); sizes: {_text(report.sizes_source)}; "
        f"large means more than {report.config.threshold_rows:,} rows"
        + (f" or {report.config.threshold_bytes:,} bytes" if report.config.threshold_bytes is not None else "")
        + ".",
    ]
    for note in report.notes:
        out += ["", f"> {_text(note)}"]
    if report.migrations:
        out += ["", "| migration | verdict | findings |", "|---|---|---|"]
        for result in report.migrations:
            rules = ", ".join(dict.fromkeys(f.rule for f in result.findings))
            verdict = _VERDICTS[migration_status(result)]
            out.append(f"| `{_cell(label_of(report, result))}` | {verdict} | {_cell(rules)} |")

    blocking = [(r, f) for r in report.migrations for f in r.findings if f.blocking]
    if blocking:
        out += ["", f"### Blocking findings ({len(blocking)} in {blocked} migration(s))"]
        for result, finding in blocking:
            out += ["", *_finding(label_of(report, result), result, finding, root)]
    warnings = [(r, f) for r in report.migrations for f in r.findings if f.severity is Severity.WARNING]
    counted = [(r, f) for r, f in warnings if counted_only(report, f)]
    if warnings:
        out += ["", "### Warnings", ""]
        for result, finding in warnings:
            if counted_only(report, finding):
                continue
            where = _where(result, finding, root)
            out.append(f"- `{label_of(report, result)}` **{finding.rule} {finding.slug}**: {_text(finding.message)}"
                       + (f" ({where})" if where else ""))
    if counted:
        out += ["", f"{len(counted)} warning(s) on tables below the threshold, counted per rule (they would block on "
                    "a large table; `--show-warnings` lists each, the JSON and SARIF reports have them all):", ""]
        out += [f"- {_text(line)}" for line in below_threshold_lines(counted)]
    approved = [(r, f) for r in report.migrations for f in r.findings if f.approval]
    if approved or report.approvals:
        out += ["", "### Approvals", ""]
        for result, finding in approved:
            out.append(f"- `{label_of(report, result)}` **{finding.rule} {finding.slug}**, "
                       f"fingerprint `{finding.fingerprint}`: {_text(finding.approval)}")
        unused = [o for o in report.approvals if o.status != "used"]
        if unused:
            out += ["", "| approval | status | detail |", "|---|---|---|"]
            for outcome in unused:
                out.append(f"| `{_cell(outcome.approval.key)}` (#{outcome.approval.number}) | {outcome.status} | "
                           f"{_cell(outcome.detail)} |")
    out += ["", f"<sub>migration_guard {__version__} · exit {report.exit_code}</sub>"]
    return "\n".join(out) + "\n"


def _finding(label: str, result: MigrationResult, finding: Finding, root: Path) -> list[str]:
    lines = [f"#### `{label}`: {finding.rule} {finding.slug}", "", _text(finding.message), ""]
    rows = [("where", _where(result, finding, root))] + details(finding)
    lines += ["| | |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows if value]
    statement = statement_of(result, finding)
    if finding.recipe or statement is not None:
        lines += ["", "<details><summary>Statement and safe alternative</summary>", ""]
        if statement is not None:
            lines += _code_block(statement.sql.strip(), "sql")
        if finding.recipe:
            lines += ["", "Use instead:", "", *_code_block(finding.recipe, "python")]
        lines += ["", "</details>"]
    lines += ["", f"To approve after review: `{approve_command(finding)}`"]
    return lines


def _where(result: MigrationResult, finding: Finding, root: Path) -> str:
    path = relative_path(result.path, root) or result.path
    if not path:
        return ""
    line = result.line_of(finding)
    return f"{path}:{line}" if line else path


def _code_block(code: str, language: str) -> list[str]:
    """A fenced block whose fence is longer than any run of backticks in ``code``."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", code, fence]


def _text(text: str) -> str:
    """Free text safe in markdown: no HTML tags (messages quote names such as ``<index name>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    """Text for a table cell: one line, pipes escaped."""
    return _text(" ".join(text.split())).replace("|", "\\|")
