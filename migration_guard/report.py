"""Stage *report*: the analysed plan -> text (for people) or JSON (for tools), and the exit code.
The other formats (SARIF, GitHub annotations, markdown, JUnit) are in ``migration_guard.formats``.

Exit codes: 0 nothing blocks; 1 at least one blocking finding; 2 the gate could not run (raised
before a report exists, see the entry points).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from migration_guard import __version__
from migration_guard.approvals import ApprovalOutcome
from migration_guard.config import Config
from migration_guard.model import Finding, Severity
from migration_guard.pipeline import MigrationResult
from migration_guard.stats import format_schema, format_size

__all__ = ["JSON_SCHEMA_VERSION", "DatabaseInfo", "Report", "below_threshold_lines", "counted_only", "render_json",
           "render_text"]

JSON_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DatabaseInfo:
    """One database alias the run linted for, and what it knew about it."""

    alias: str
    pg_version: int
    pg_version_source: str
    sizes_source: str
    search_path: tuple[str, ...] | None = None  # migrate's session's, as the gate resolves names
    search_path_source: str = "not known"  # "the session's", "the snapshot's", "from the configuration"


@dataclass(frozen=True)
class Report:
    """Everything one run found, ready to print."""

    migrations: tuple[MigrationResult, ...]
    config: Config
    pg_version: int
    pg_version_source: str  # "server", "snapshot", "--pg-version", "configuration", "default"
    sizes_source: str  # e.g. 'database "default"', "snapshot prod-stats.json", "none"
    database: str | None = None
    approvals: tuple[ApprovalOutcome, ...] = ()
    notes: tuple[str, ...] = field(default=())
    databases: tuple[DatabaseInfo, ...] = ()  # one per alias; the fields above describe the first
    each: bool = False  # every migration judged as its own deploy (--each)

    @property
    def findings(self) -> list[Finding]:
        """Every finding, migration by migration."""
        return [f for m in self.migrations for f in m.findings]

    @property
    def exit_code(self) -> int:
        """0 when nothing blocks, 1 otherwise."""
        return 1 if any(f.blocking for f in self.findings) else 0


def migration_status(result: MigrationResult) -> str:
    """``blocked``, ``approved``, ``warning`` or ``ok``."""
    if any(f.blocking for f in result.findings):
        return "blocked"
    if any(f.approval for f in result.findings):
        return "approved"
    if any(f.severity is Severity.WARNING for f in result.findings):
        return "warning"
    return "ok"


# -- text ---------------------------------------------------------------------------------------

# Tables named on a rule's line of warnings below the threshold (the others are counted).
_TABLES_NAMED = 5
_COLOURS = {"blocked": "31;1", "approved": "33", "warning": "33", "ok": "32", "error": "31", "dim": "2"}


def render_text(report: Report, *, color: bool = False) -> str:
    """The report people read: grouped by migration, each finding with table, size, lock, what it
    blocks, a rough duration, the message and the safe recipe."""

    def paint(text: str, style: str) -> str:
        return f"\033[{_COLOURS[style]}m{text}\033[0m" if color else text

    out: list[str] = []
    threshold = f"more than {report.config.threshold_rows:,} rows"
    if report.config.threshold_bytes is not None:
        threshold += f" or {report.config.threshold_bytes:,} bytes"
    several = len(report.databases) > 1
    if several:
        out.append(f"migration_guard {__version__}: {len(report.migrations)} migration(s) on "
                   f"{len(report.databases)} databases; large means {threshold}")
        for info in report.databases:
            out.append(f"  {info.alias}: PostgreSQL {info.pg_version} ({info.pg_version_source}); "
                       f"sizes: {info.sizes_source}{_search_path_text(info, '; ')}")
    else:
        where = f' on database "{report.database}"' if report.database else ""
        out.append(
            f"migration_guard {__version__}: {len(report.migrations)} migration(s){where}, "
            f"PostgreSQL {report.pg_version} ({report.pg_version_source})"
        )
        out.append(f"sizes: {report.sizes_source}; large means {threshold}")
        if report.databases and _search_path_text(report.databases[0], ""):
            out.append(_search_path_text(report.databases[0], ""))
    for note in report.notes:
        out.append(f"note: {note}")
    room = report.config.max_findings
    short = 0
    counted: list[tuple[MigrationResult, Finding]] = []
    for result in report.migrations:
        out.append("")
        status = migration_status(result)
        summary = _locks_summary(result)
        label = f"{result.label} [{result.database}]" if several and result.database else result.label
        small = [f for f in result.findings if counted_only(report, f)]
        if small:
            summary = f"({len(small)} warning(s) on tables below the threshold: {', '.join(_per_rule(small))})"
        out.append(f"{paint(label, 'dim' if status == 'ok' else status)}  {paint(status.upper(), status)}"
                   + (f"  {summary}" if summary and (status == "ok" or small) else ""))
        counted.extend((result, f) for f in small)
        for finding in result.findings:
            if counted_only(report, finding):
                continue
            if room is None or room > 0:
                out.extend(_finding_text(result, finding, paint))
                room = None if room is None else room - 1
            else:
                out.append(_finding_line(finding, paint))
                short += 1
    if short:
        out.append("")
        out.append(f"note: {short} finding(s) after the first {report.config.max_findings} are given in one line "
                   "each (max_findings); --format json has every detail, and `migration-guard approve "
                   "--all-blocking REPORT.json --reason ...` approves them at once")
    if counted:
        out.append("")
        out.append(f"{len(counted)} warning(s) on tables below the threshold, counted per rule (they would block on "
                   "a large table; --show-warnings gives each in full, --format json has them all):")
        out.extend(f"  {line}" for line in below_threshold_lines(counted))
    if report.approvals:
        out.append("")
        out.append("approvals:")
        for outcome in report.approvals:
            text = f"  {outcome.status}: {outcome.approval.key} (#{outcome.approval.number}, by {outcome.approval.approved_by})"
            if outcome.detail:
                text += f": {outcome.detail}"
            out.append(paint(text, "ok" if outcome.status == "used" else "warning"))
    out.append("")
    by_rule = rule_counts(report)
    if by_rule:
        out.append("findings by rule: " + ", ".join(by_rule))
    out.append(summary_line(report))
    return "\n".join(out) + "\n"


def rule_counts(report: Report) -> list[str]:
    """``MG002 16``, ``MG008 3 (1 blocking)``: each rule's findings, and how many block when not all do."""
    counts: dict[str, list[int]] = {}
    for finding in report.findings:
        count = counts.setdefault(finding.rule, [0, 0])
        count[0] += 1
        count[1] += finding.blocking
    return [f"{rule} {total}" + ("" if blocking == total else f" ({blocking} blocking)")
            for rule, (total, blocking) in sorted(counts.items())]


def counted_only(report: Report, finding: Finding) -> bool:
    """Whether a human-readable report counts this finding instead of giving it in full: a warning only
    because its table is below the threshold, unless ``show_warnings`` asks for each."""
    return (finding.below_threshold and finding.severity is Severity.WARNING and finding.approval is None
            and not report.config.show_warnings)


def below_threshold_lines(counted: list[tuple[MigrationResult, Finding]]) -> list[str]:
    """One line per rule: ``MG002 add-index-non-concurrently: 213 in 61 migration(s), on 87 table(s): a (30),
    b (12), ... and 82 more``; the tables with the most findings first."""
    by_rule: dict[str, list[tuple[MigrationResult, Finding]]] = {}
    for result, finding in counted:
        by_rule.setdefault(finding.rule, []).append((result, finding))
    lines = []
    for rule, items in sorted(by_rule.items()):
        tables: dict[str, int] = {}
        for _, finding in items:
            if finding.table:
                tables[finding.table] = tables.get(finding.table, 0) + 1
        ranked = sorted(tables.items(), key=lambda item: (-item[1], item[0]))
        named = ", ".join(f"{table} ({count})" for table, count in ranked[:_TABLES_NAMED])
        more = f" and {len(ranked) - _TABLES_NAMED} more" if len(ranked) > _TABLES_NAMED else ""
        migrations = len({id(result) for result, _ in items})
        lines.append(f"{rule} {items[0][1].slug}: {len(items)} in {migrations} migration(s)"
                     + (f", on {len(ranked)} table(s): {named}{more}" if ranked else ""))
    return lines


def _per_rule(findings: list[Finding]) -> list[str]:
    """``MG002 3``, ``MG005 1``: how many of ``findings`` each rule made."""
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.rule] = counts.get(finding.rule, 0) + 1
    return [f"{rule} {count}" for rule, count in sorted(counts.items())]


def _finding_line(finding: Finding, paint) -> str:
    """A finding in one line: rule, severity and message."""
    label = "approved" if finding.approval else finding.severity.value
    style = "approved" if finding.approval else "error" if finding.severity is Severity.ERROR else "warning"
    return f"  {paint(f'{finding.rule} ({label})', style)} {finding.message}"


def _search_path_text(info: DatabaseInfo, prefix: str) -> str:
    """``search_path: app, public (the session's)``, when it is anything but plain ``public``."""
    if info.search_path is None or info.search_path == ("public",):
        return ""
    return f"{prefix}search_path: {', '.join(info.search_path) or '(empty)'} ({info.search_path_source})"


def _finding_text(result: MigrationResult, finding: Finding, paint) -> list[str]:
    if finding.approval:
        label, style = "approved", "approved"
    elif finding.severity is Severity.ERROR:
        label, style = "error", "error"
    else:
        label, style = finding.severity.value, "warning"
    lines = [f"  {paint(f'{finding.rule} {finding.slug}', style)} ({label})"]
    lines.append(f"    {finding.message}")
    statement = None
    if finding.statement_index is not None and finding.statement_index < len(result.statements):
        statement = result.statements[finding.statement_index].parsed.statement
    location = _location(result, finding, statement)
    if location:
        lines.append(f"    where   {location}")
    if finding.table:
        size = f" ({format_size(finding.size)})" if finding.size else ""
        where = format_schema(finding.size) if finding.size else ""
        lines.append(f"    table   {finding.table}{size}{' ' + where if where else ''}")
    if finding.lock:
        lines.append(f"    lock    {finding.lock.label} ({finding.lock.pg_name}): blocks {finding.lock.blocks}")
    if finding.duration:
        lines.append(f"    time    {finding.duration}")
    if statement is not None:
        sql = " ".join(statement.sql.split())
        lines.append(f"    sql     {sql if len(sql) <= 160 else sql[:157] + '...'}")
    if finding.approval:
        lines.append(f"    {finding.approval}")
    elif finding.recipe:
        lines.append("    use instead:")
        lines.extend(f"      {line}" for line in finding.recipe.splitlines())
    if finding.blocking:
        lines.append(
            f"    approve: migration-guard approve {finding.migration} {finding.rule} "
            f"--fingerprint {finding.fingerprint} --reason \"...\""
        )
    return lines


def _location(result: MigrationResult, finding: Finding, statement) -> str:
    parts = []
    line = result.line_of(finding)
    if result.path:
        path = _display_path(result.path)
        parts.append(f"{path}:{line}" if line else path)
    if statement is not None and statement.operation is not None:
        parts.append(f"operation {statement.operation.index + 1} {statement.operation.name}")
    if statement is not None:
        if statement.deferred:
            parts.append("deferred to the end of the migration")
        parts.append("inside the migration's transaction" if statement.in_transaction and result.atomic
                     else ("in its own transaction" if statement.in_transaction else "outside any transaction"))
    return ", ".join(parts)


def _display_path(path: str) -> str:
    """Relative to the working directory when under it, as editors and terminals link it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _locks_summary(result: MigrationResult) -> str:
    strongest = {}
    for statement in result.statements:
        for lock in statement.effects.locks:
            if lock.relkind == "table":
                strongest[lock.relation] = max(strongest.get(lock.relation, lock.mode), lock.mode)
    if not strongest:
        return ""
    parts = [f"{mode.label} on {table}" for table, mode in sorted(strongest.items())]
    return "(" + "; ".join(parts[:3]) + (f"; +{len(parts) - 3} more" if len(parts) > 3 else "") + ")"


def summary_line(report: Report) -> str:
    """The verdict in one line: blocked migrations, blocking findings, warnings, approvals, exit code."""
    findings = report.findings
    blocked = sum(1 for m in report.migrations if migration_status(m) == "blocked")
    blocking = sum(1 for f in findings if f.blocking)
    warnings = sum(1 for f in findings if f.severity is Severity.WARNING)
    approved = sum(1 for f in findings if f.approval)
    verdict = "BLOCKED" if report.exit_code else "PASSED"
    return (
        f"{verdict}: {blocked} of {len(report.migrations)} migration(s) blocked; {blocking} blocking finding(s), "
        f"{warnings} warning(s), {approved} approved. Exit {report.exit_code}."
    )


# -- json ---------------------------------------------------------------------------------------


def render_json(report: Report) -> str:
    """The report as JSON (schema in docs/reports.md, version ``schema_version``)."""
    migrations = []
    for result in report.migrations:
        migrations.append({
            "migration": result.label,
            "database": result.database,
            "path": result.path,
            "atomic": result.atomic,
            "rendered_by": result.how,
            "status": migration_status(result),
            "error": result.error,
            "statements": [_statement_json(i, s) for i, s in enumerate(result.statements)],
        })
    document = {
        "schema_version": JSON_SCHEMA_VERSION,
        "tool": {"name": "migration_guard", "version": __version__},
        "pg_version": report.pg_version,
        "pg_version_source": report.pg_version_source,
        "database": report.database,
        "databases": [
            {"alias": i.alias, "pg_version": i.pg_version, "pg_version_source": i.pg_version_source,
             "sizes_source": i.sizes_source,
             "search_path": None if i.search_path is None else list(i.search_path),
             "search_path_source": i.search_path_source}
            for i in report.databases
        ],
        "sizes_source": report.sizes_source,
        "each": report.each,
        "threshold": {"rows": report.config.threshold_rows, "bytes": report.config.threshold_bytes},
        "exit_code": report.exit_code,
        "summary": {
            "migrations": len(report.migrations),
            "blocked_migrations": sum(1 for m in report.migrations if migration_status(m) == "blocked"),
            "blocking": sum(1 for f in report.findings if f.blocking),
            "errors": sum(1 for f in report.findings if f.severity is Severity.ERROR),
            "warnings": sum(1 for f in report.findings if f.severity is Severity.WARNING),
            "approved": sum(1 for f in report.findings if f.approval),
        },
        "migrations": migrations,
        "findings": [_finding_json(m, f) for m in report.migrations for f in m.findings],
        "approvals": [
            {
                "migration": o.approval.migration,
                "rule": o.approval.rule,
                "fingerprint": o.approval.fingerprint,
                "entry": o.approval.number,
                "status": o.status,
                "detail": o.detail,
            }
            for o in report.approvals
        ],
        "notes": list(report.notes),
    }
    return json.dumps(document, indent=2) + "\n"


def _statement_json(index: int, result) -> dict:
    statement = result.parsed.statement
    operation = statement.operation
    return {
        "index": index,
        "sql": statement.sql,
        "kind": statement.kind.value,
        "operation": None if operation is None else {
            "index": operation.index, "name": operation.name,
            "description": operation.description, "line": operation.line,
        },
        "in_transaction": statement.in_transaction,
        "deferred": statement.deferred,
        "parse_error": result.parsed.error,
        "fingerprint": result.parsed.fingerprint,
        "locks": [{"relation": l.relation, "relkind": l.relkind, "mode": l.mode.pg_name} for l in result.effects.locks],
        "rewrites": list(result.effects.rewrites),
        "scans": list(result.effects.scans),
        "index_builds": list(result.effects.index_builds),
        "modelled": result.effects.known,
    }


def _finding_json(result: MigrationResult, finding: Finding) -> dict:
    return {
        "migration": finding.migration,
        "database": result.database,
        "rule": finding.rule,
        "slug": finding.slug,
        "severity": finding.severity.value,
        "blocking": finding.blocking,
        "message": finding.message,
        "statement_index": finding.statement_index,
        "path": result.path,
        "line": result.line_of(finding),
        "table": finding.table,
        "rows": finding.size.rows if finding.size else None,
        "bytes": finding.size.total_bytes if finding.size else None,
        "size_source": finding.size.source if finding.size else None,
        "schema": finding.size.schema if finding.size else None,
        "runs": finding.size.runs if finding.size else None,
        "lock": finding.lock.pg_name if finding.lock else None,
        "blocks": finding.lock.blocks if finding.lock else None,
        "duration": finding.duration,
        "recipe": finding.recipe,
        "fingerprint": finding.fingerprint,
        "approval": finding.approval,
        "below_threshold": finding.below_threshold,
    }
