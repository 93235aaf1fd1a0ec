"""``migration-guard explain``'s output: per statement, the relations it locks (and what each lock
blocks), whether it rewrites, scans or builds an index, then the rules' findings."""

from __future__ import annotations

import json
from collections.abc import Sequence

from migration_guard.model import Severity
from migration_guard.pipeline import MigrationResult
from migration_guard.stats import format_size

__all__ = ["explain_json", "explain_text"]

EXPLAIN_SCHEMA_VERSION = 1


def explain_json(results: Sequence[MigrationResult], pg_version: int) -> str:
    """The documented JSON: ``{"schema_version", "pg_version", "statements": [...]}``."""
    statements = []
    for result in results:
        for item in result.statements:
            statement = item.parsed.statement
            statements.append({
                "index": len(statements),
                "file": result.label,
                "sql": statement.sql,
                "line": statement.line,
                "parse_error": item.parsed.error,
                "modelled": item.effects.known,
                "locks": [
                    {"relation": lock.relation, "relkind": lock.relkind, "mode": lock.mode.pg_name}
                    for lock in item.effects.locks
                ],
                "rewrites": list(item.effects.rewrites),
                "scans": list(item.effects.scans),
                "index_builds": list(item.effects.index_builds),
                "findings": [
                    {"rule": f.rule, "slug": f.slug, "severity": f.severity.value, "blocking": f.blocking,
                     "message": f.message, "table": f.table,
                     "rows": f.size.rows if f.size else None, "duration": f.duration, "recipe": f.recipe}
                    for f in item.findings
                ],
            })
    return json.dumps({"schema_version": EXPLAIN_SCHEMA_VERSION, "pg_version": pg_version,
                       "statements": statements}, indent=2) + "\n"


def explain_text(results: Sequence[MigrationResult], pg_version: int, *, color: bool = False) -> str:
    """The same, for people."""

    def bold(text: str) -> str:
        return f"\033[1m{text}\033[0m" if color else text

    out = [f"PostgreSQL {pg_version}"]
    for result in results:
        for item in result.statements:
            statement = item.parsed.statement
            sql = " ".join(statement.sql.split())
            out.append("")
            out.append(bold(f"{result.label}:{statement.line}  {sql if len(sql) <= 120 else sql[:117] + '...'}"))
            if item.parsed.error:
                out.append(f"  does not parse: {item.parsed.error}")
            elif not item.effects.known:
                out.append("  not modelled: assumed ACCESS EXCLUSIVE on every relation it names")
            for lock in item.effects.locks:
                out.append(f"  {lock.mode.label:<22} on {lock.relkind} {lock.relation}: blocks {lock.mode.blocks}")
            effects = [("rewrites", item.effects.rewrites), ("scans", item.effects.scans),
                       ("builds an index on", item.effects.index_builds)]
            for label, tables in effects:
                if tables:
                    out.append(f"  {label} {', '.join(tables)}")
            for finding in item.findings:
                level = "error" if finding.severity is Severity.ERROR else finding.severity.value
                size = f" [{format_size(finding.size)}]" if finding.size else ""
                out.append(f"  {finding.rule} {finding.slug} ({level}){size}: {finding.message}")
                if finding.duration:
                    out.append(f"    time: {finding.duration}")
    blocking = sum(1 for r in results for f in r.findings if f.blocking)
    out.append("")
    out.append(f"{'BLOCKED' if blocking else 'PASSED'}: {blocking} blocking finding(s).")
    return "\n".join(out) + "\n"
