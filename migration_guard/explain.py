"""``migration-guard explain``'s output: per statement, the relations it locks (and what each lock
blocks), whether it rewrites, scans or builds an index, then the rules' findings."""

from __future__ import annotations

import json
from collections.abc import Sequence

from migration_guard.model import ParsedStatement, Severity, Statement
from migration_guard.pipeline import MigrationResult
from migration_guard.stats import format_schema, format_size

__all__ = ["catalog_from_dsn", "explain_json", "explain_text", "parse_script"]

EXPLAIN_SCHEMA_VERSION = 1


def catalog_from_dsn(dsn: str, search_path: tuple[str, ...] | None = None):
    """The lock model's catalog (column types, validated checks, foreign keys, indexes, partitions) of the
    database at ``dsn``, read in a read-only transaction with short timeouts; tables named as SQL run
    with ``search_path`` (default: the session's) names them."""
    import psycopg
    from psycopg import sql

    from migration_guard.locks.introspect import catalog_from_database

    with psycopg.connect(dsn, connect_timeout=10) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SET LOCAL statement_timeout = 30000")
        conn.execute("SET LOCAL lock_timeout = 1000")
        if search_path is not None:
            conn.execute(sql.SQL("SELECT set_config('search_path', {}, true)").format(
                sql.Literal(", ".join(sql.Identifier(schema).as_string(conn) for schema in search_path))))
        catalog = catalog_from_database(conn)
        conn.rollback()
    return catalog


def parse_script(text: str, source: str) -> list[ParsedStatement]:
    """The statements of a SQL script, each with its line. psql meta-commands (``\\i``, ``\\set``, ...: a
    line starting with a backslash) are not SQL: each is kept, in place, as a statement that is
    reported as not analysed, and the SQL around it is parsed without it."""
    from migration_guard.parse import parse_sql_text

    lines = text.splitlines(keepends=True)
    meta = [(number, line.strip()) for number, line in enumerate(lines, 1) if line.lstrip().startswith("\\")]
    if not meta:
        return parse_sql_text(text, source)
    blanked = "".join("\n" if line.lstrip().startswith("\\") else line for line in lines)
    parsed = parse_sql_text(blanked, source)
    for number, command in meta:
        statement = Statement(sql=command, migration=source, line=number, transaction=None, in_transaction=False)
        parsed.append(ParsedStatement(statement=statement, error=f"psql meta-command {command.split()[0]} is not SQL: "
                                      "not analysed (run the SQL it stands for through explain on its own)"))
    return sorted(parsed, key=lambda p: p.statement.line or 0)


def _timeouts(result: MigrationResult) -> list[dict[str, str | None]]:
    """``lock_timeout`` and ``statement_timeout`` in force when each statement runs (the pipeline
    follows the script's own SET / SET LOCAL / RESET)."""
    return [{name: item.settings.get(name) for name in ("lock_timeout", "statement_timeout")}
            for item in result.statements]


def explain_json(results: Sequence[MigrationResult], pg_version: int) -> str:
    """The documented JSON: ``{"schema_version", "pg_version", "statements": [...]}``."""
    statements = []
    for result in results:
        for item, timeouts in zip(result.statements, _timeouts(result), strict=True):
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
                "lock_timeout": timeouts["lock_timeout"],
                "statement_timeout": timeouts["statement_timeout"],
                "findings": [
                    {"rule": f.rule, "slug": f.slug, "severity": f.severity.value, "blocking": f.blocking,
                     "message": f.message, "table": f.table,
                     "rows": f.size.rows if f.size else None, "schema": f.size.schema if f.size else None,
                     "duration": f.duration, "recipe": f.recipe}
                    for f in item.findings
                ],
            })
    # One statement per line: readable, diffable, and written by json's C encoder (indent= makes
    # json fall back to its pure-Python one, the slowest part of explain on a long script).
    out = ["{", f'  "schema_version": {json.dumps(EXPLAIN_SCHEMA_VERSION)},', f'  "pg_version": {json.dumps(pg_version)},']
    if statements:
        out += ['  "statements": [', ",\n".join(f"    {json.dumps(statement)}" for statement in statements), "  ]"]
    else:
        out.append('  "statements": []')
    out.append("}")
    return "\n".join(out) + "\n"


def explain_text(results: Sequence[MigrationResult], pg_version: int, *, color: bool = False) -> str:
    """The same, for people."""

    def bold(text: str) -> str:
        return f"\033[1m{text}\033[0m" if color else text

    out = [f"PostgreSQL {pg_version}"]
    for result in results:
        for item, timeouts in zip(result.statements, _timeouts(result), strict=True):
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
            if any(lock.mode.blocks_traffic for lock in item.effects.locks):
                if timeouts["lock_timeout"]:
                    out.append(f"  waits at most {timeouts['lock_timeout']} for its locks (lock_timeout), then fails")
                else:
                    out.append("  no lock_timeout: while it waits for its locks, every later query on those "
                               "relations queues behind it")
            effects = [("rewrites", item.effects.rewrites), ("scans", item.effects.scans),
                       ("builds an index on", item.effects.index_builds)]
            for label, tables in effects:
                if tables:
                    out.append(f"  {label} {', '.join(tables)}")
            for finding in item.findings:
                level = "error" if finding.severity is Severity.ERROR else finding.severity.value
                where = format_schema(finding.size) if finding.size else ""
                size = f" [{format_size(finding.size)}{', ' + where if where else ''}]" if finding.size else ""
                out.append(f"  {finding.rule} {finding.slug} ({level}){size}: {finding.message}")
                if finding.duration:
                    out.append(f"    time: {finding.duration}")
    blocking = sum(1 for r in results for f in r.findings if f.blocking)
    out.append("")
    out.append(f"{'BLOCKED' if blocking else 'PASSED'}: {blocking} blocking finding(s).")
    return "\n".join(out) + "\n"
