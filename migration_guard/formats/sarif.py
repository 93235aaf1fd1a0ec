"""SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.

Each finding is a result on the line of its operation in the migration file, with the path relative
to the source root (``uriBaseId`` ``%SRCROOT%``), as code scanning resolves it. Rules are described
from their documentation (``Rule.summary``, ``Rule.doc``); approved findings carry an external,
accepted suppression whose justification is the approval; ``partialFingerprints`` carry the
statement's fingerprint, so an alert follows its statement when lines move.

Specification: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from migration_guard import __version__
from migration_guard.formats.common import approve_command, details, relative_path, statement_of
from migration_guard.model import Finding, Severity
from migration_guard.pipeline import MigrationResult
from migration_guard.report import Report
from migration_guard.rules import ALL_RULES, Rule

__all__ = ["FINGERPRINT_KEY", "SARIF_SCHEMA", "render_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
# Versioned, so that a change to how fingerprints are computed does not silently merge alerts.
FINGERPRINT_KEY = "migrationGuard/statement/v1"

_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def render_sarif(report: Report, *, root: Path) -> str:
    """The report as a SARIF 2.1.0 log with one run; paths relative to ``root``."""
    rules = list(ALL_RULES)
    index = {rule.id: i for i, rule in enumerate(rules)}
    run = {
        "tool": {
            "driver": {
                "name": "migration_guard",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": [_rule(rule, report) for rule in rules],
            }
        },
        "originalUriBaseIds": {SRCROOT: {"uri": root.resolve().as_uri() + "/"}},
        "invocations": [{
            "executionSuccessful": True,
            "exitCode": report.exit_code,
            "toolExecutionNotifications": [{"message": {"text": note}, "level": "note"} for note in report.notes],
        }],
        "results": [
            _result(result, finding, index.get(finding.rule), root)
            for result in report.migrations
            for finding in result.findings
        ],
        "properties": {
            "pgVersion": report.pg_version,
            "pgVersionSource": report.pg_version_source,
            "sizesSource": report.sizes_source,
            "database": report.database,
            "thresholdRows": report.config.threshold_rows,
            "thresholdBytes": report.config.threshold_bytes,
        },
    }
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2) + "\n"


def _rule(rule: Rule, report: Report) -> dict:
    severity = report.config.severity.get(rule.id, rule.severity)
    return {
        "id": rule.id,
        "name": rule.slug,
        "shortDescription": {"text": rule.summary},
        # Code scanning shows fullDescription.text at the top of an alert (1,024 characters at most):
        # the "What it does" section; the whole documentation is the help.
        "fullDescription": {"text": _section(rule.doc, "What it does")[:1024]},
        "help": {"text": rule.doc, "markdown": rule.doc},
        "defaultConfiguration": {"level": _LEVELS[severity], "enabled": rule.id not in report.config.disable},
        "properties": {"tags": ["migrations", "postgresql", "locking"]},
    }


def _section(doc: str, heading: str) -> str:
    """The text under ``## heading`` of a rule's documentation, on one line."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", doc, re.MULTILINE | re.DOTALL)
    text = match.group(1) if match else doc
    return " ".join(text.split())


def _result(result: MigrationResult, finding: Finding, rule_index: int | None, root: Path) -> dict:
    sarif = {
        "ruleId": finding.rule,
        "level": _LEVELS[finding.severity],
        "message": {"text": _message(result, finding)},
        "locations": [_location(result, finding, root)],
        "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(finding)},
        "properties": {
            "migration": finding.migration,
            "database": result.database,
            "blocking": finding.blocking,
            "table": finding.table,
            "rows": finding.size.rows if finding.size else None,
            "bytes": finding.size.total_bytes if finding.size else None,
            "schema": finding.size.schema if finding.size else None,
            "runs": finding.size.runs if finding.size else None,
            "lock": finding.lock.pg_name if finding.lock else None,
            "duration": finding.duration,
        },
    }
    if rule_index is not None:
        sarif["ruleIndex"] = rule_index
    if finding.approval:
        sarif["suppressions"] = [{"kind": "external", "status": "accepted", "justification": finding.approval}]
    return sarif


def _message(result: MigrationResult, finding: Finding) -> str:
    lines = [finding.message, ""]
    lines += [f"{name}: {value}" for name, value in details(finding)]
    statement = statement_of(result, finding)
    if statement is not None:
        lines.append(f"sql: {' '.join(statement.sql.split())}")
    if finding.approval:
        lines.append(finding.approval)
    elif finding.recipe:
        lines += ["", "Use instead:", finding.recipe]
    if finding.blocking:
        lines += ["", f"To approve: {approve_command(finding)}"]
    return "\n".join(lines).strip()


def _location(result: MigrationResult, finding: Finding, root: Path) -> dict:
    location: dict = {"logicalLocations": [{"name": finding.migration, "kind": "module"}]}
    if result.path:
        relative = relative_path(result.path, root)
        artifact = ({"uri": relative, "uriBaseId": SRCROOT} if relative is not None
                    else {"uri": Path(result.path).resolve().as_uri()})
        # A migration-level finding (e.g. it does not render) points at the top of the file.
        location["physicalLocation"] = {
            "artifactLocation": artifact,
            "region": {"startLine": result.line_of(finding) or 1},
        }
    return location


def _fingerprint(finding: Finding) -> str:
    """The statement's fingerprint; a digest of migration and rule for a migration-level finding."""
    if finding.fingerprint:
        return finding.fingerprint
    return hashlib.sha256(f"{finding.migration}:{finding.rule}".encode()).hexdigest()[:16]
