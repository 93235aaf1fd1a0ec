"""What every report format reads the same way: where a finding is (a path relative to the source
root, a line), the statement behind it, and the facts shown next to its message."""

from __future__ import annotations

import os
from pathlib import Path

from migration_guard.model import Finding
from migration_guard.pipeline import MigrationResult
from migration_guard.stats import format_schema, format_size

__all__ = ["approve_command", "details", "find_source_root", "label_of", "relative_path", "statement_of"]


def find_source_root(start: Path) -> Path:
    """The root of the git checkout holding ``start`` (where code scanning and annotations
    resolve paths), else ``start`` itself."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def relative_path(path: str | None, root: Path) -> str | None:
    """``path`` relative to ``root`` with forward slashes, or None when it is not under ``root``
    (or there is no path)."""
    if not path:
        return None
    relative = os.path.relpath(Path(path).resolve(), root.resolve())
    if relative.startswith(".."):
        return None
    return Path(relative).as_posix()


def label_of(report, result: MigrationResult) -> str:
    """``app.migration``, with the database alias when the run linted for several."""
    if len(report.databases) > 1 and result.database:
        return f"{result.label} [{result.database}]"
    return result.label


def statement_of(result: MigrationResult, finding: Finding):
    """The rendered statement a finding is about, or None for a migration-level finding."""
    if finding.statement_index is None or finding.statement_index >= len(result.statements):
        return None
    return result.statements[finding.statement_index].parsed.statement


def approve_command(finding: Finding) -> str:
    """The command that approves a blocking finding (the reason left for the user to write)."""
    return (f"migration-guard approve {finding.migration} {finding.rule} "
            f'--fingerprint {finding.fingerprint} --reason "..."')


def details(finding: Finding) -> list[tuple[str, str]]:
    """The facts shown under a finding's message: table and size, lock and what it blocks, time."""
    rows = []
    if finding.table:
        where = format_schema(finding.size) if finding.size else ""
        rows.append(("table", finding.table + (f" ({format_size(finding.size)})" if finding.size else "")
                     + (f" {where}" if where else "")))
    if finding.lock:
        rows.append(("lock", f"{finding.lock.label} ({finding.lock.pg_name}): blocks {finding.lock.blocks}"))
    if finding.duration:
        rows.append(("time", finding.duration))
    return rows


def finding_body(finding) -> list[str]:
    """The lines every plain-text format shows under a finding's message: its facts, then the
    approval or the safe recipe, then how to approve it if it blocks."""
    lines = [f"{name}: {value}" for name, value in details(finding)]
    if finding.approval:
        lines.append(finding.approval)
    elif finding.recipe:
        lines += ["use instead:", finding.recipe]
    if finding.blocking:
        lines.append(f"approve: {approve_command(finding)}")
    return lines
