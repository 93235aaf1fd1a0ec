"""Stage *approvals*: blocking findings -> approved, against explicit approvals in a TOML file.

An approval names the migration, the rule and the fingerprint of the exact statement (a digest of
its canonical SQL), with a reason and who approved it; optionally an expiry date and a row ceiling.
If the statement changes, the approval is *stale* and no longer applies; approvals that match
nothing are reported as *unused*. Keeping them in one file lets teams require a database owner's
review of it (CODEOWNERS).

```toml
[[approval]]
migration = "shop.0004_order_token"
rule = "MG001"
fingerprint = "856f5362e99c8e26"
reason = "shop_order is archived nightly; run in the 02:00 window"
approved_by = "dba@example.com"
approved_on = 2026-11-22
expires = 2026-12-31       # optional: no longer applies after this day
max_rows = 5000000         # optional: no longer applies once the table is bigger
```
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from migration_guard.config import MAX_BIGINT, read_toml
from migration_guard.model import Finding, Severity

__all__ = ["Approval", "ApprovalOutcome", "ApprovalsError", "append_approval", "apply_approvals", "load_approvals"]

_HEADER = (
    "# Approved exceptions to migration_guard's blocking findings.\n"
    "# Each one binds to the exact statement (fingerprint); review changes to this file like code.\n"
)
_REQUIRED = ("migration", "rule", "fingerprint", "reason", "approved_by")
_OPTIONAL = ("approved_on", "expires", "max_rows")


class ApprovalsError(ValueError):
    """The approvals file is malformed; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class Approval:
    """One approval entry."""

    migration: str
    rule: str
    fingerprint: str
    reason: str
    approved_by: str
    approved_on: dt.date | None = None
    expires: dt.date | None = None
    max_rows: int | None = None
    number: int = 0  # its position in the file, 1-based, for messages

    @property
    def key(self) -> str:
        """``migration rule fingerprint``, how messages name it."""
        return f"{self.migration} {self.rule} {self.fingerprint}"


@dataclass(frozen=True)
class ApprovalOutcome:
    """What became of one approval in this run."""

    approval: Approval
    status: str  # "used", "stale", "expired", "over row ceiling", "unused"
    detail: str = ""


def load_approvals(path: Path) -> list[Approval]:
    """Read and validate the approvals file; a missing file means no approvals."""
    if not path.exists():
        return []
    data = read_toml(path, ApprovalsError, "fix the file or restore it from git")
    unknown = set(data) - {"approval"}
    if unknown:
        raise ApprovalsError(f"{path}: unknown top-level key(s) {sorted(unknown)}; entries go in [[approval]] tables")
    entries = data.get("approval", [])
    if not isinstance(entries, list):
        raise ApprovalsError(f"{path}: 'approval' must be an array of tables ([[approval]])")
    return [_approval(entry, number, path) for number, entry in enumerate(entries, start=1)]


def _approval(entry: object, number: int, path: Path) -> Approval:
    where = f"{path}: approval #{number}"
    if not isinstance(entry, dict):
        raise ApprovalsError(f"{where} must be a table")
    unknown = set(entry) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise ApprovalsError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(_REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ApprovalsError(f"{where}: '{key}' is required and must be a non-empty string")
    for key in ("approved_on", "expires"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, dt.date) or isinstance(value, dt.datetime)):
            raise ApprovalsError(f"{where}: '{key}' must be a date such as 2026-12-31 (unquoted)")
    max_rows = entry.get("max_rows")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int)
                                 or not 0 <= max_rows <= MAX_BIGINT):
        raise ApprovalsError(f"{where}: 'max_rows' must be a whole number of rows (at most {MAX_BIGINT:,})")
    return Approval(
        migration=entry["migration"].strip(),
        rule=entry["rule"].strip().upper(),
        fingerprint=entry["fingerprint"].strip(),
        reason=entry["reason"].strip(),
        approved_by=entry["approved_by"].strip(),
        approved_on=entry.get("approved_on"),
        expires=entry.get("expires"),
        max_rows=max_rows,
        number=number,
    )


def apply_approvals(
    findings: Sequence[Finding],
    approvals: Sequence[Approval],
    *,
    linted: set[str],
    today: dt.date,
    operator: Sequence[Approval] = (),
) -> tuple[list[Finding], list[ApprovalOutcome]]:
    """Mark the blocking findings an approval covers; say what became of every approval that
    concerns a linted migration (approvals of migrations not linted in this run are left alone).

    ``operator`` approvals (``--approve MIGRATION:RULE`` at deploy time, for this run only) match
    any statement of that migration and rule; they are always reported, used or not."""
    outcomes: dict[int, ApprovalOutcome] = {}
    result = []
    for finding in findings:
        if finding.severity is not Severity.ERROR:
            result.append(finding)
            continue
        by_operator = [a for a in operator if a.migration == finding.migration and a.rule == finding.rule]
        if by_operator:
            approval = by_operator[0]
            outcomes[approval.number] = ApprovalOutcome(approval, "used", "operator approval for this run only")
            result.append(replace(finding, approval=f"approved for this run by {approval.approved_by}: {approval.reason}"))
            continue
        candidates = [a for a in approvals if a.migration == finding.migration and a.rule == finding.rule]
        exact = [a for a in candidates if a.fingerprint == finding.fingerprint]
        for approval in candidates:
            if approval not in exact and approval.number not in outcomes:
                outcomes[approval.number] = ApprovalOutcome(
                    approval, "stale",
                    f"the statement changed (approved {approval.fingerprint}, now {finding.fingerprint}); "
                    "review it and approve again",
                )
        applied = None
        for approval in exact:
            status, detail = _usable(approval, finding, today)
            if status == "used" and applied is None:
                applied = approval
            outcomes[approval.number] = ApprovalOutcome(approval, status, detail)
        if applied is not None:
            finding = replace(finding, approval=f"approved by {applied.approved_by}: {applied.reason}")
        result.append(finding)
    for approval in approvals:
        if approval.migration in linted and approval.number not in outcomes:
            outcomes[approval.number] = ApprovalOutcome(approval, "unused", "no finding in this run matches it")
    for approval in operator:
        if approval.number not in outcomes:
            outcomes[approval.number] = ApprovalOutcome(approval, "unused", "--approve matched no blocking finding")
    ordered = sorted(outcomes, key=lambda number: (number < 0, abs(number)))
    return result, [outcomes[number] for number in ordered]


def _usable(approval: Approval, finding: Finding, today: dt.date) -> tuple[str, str]:
    if approval.expires is not None and approval.expires < today:
        return "expired", f"expired on {approval.expires.isoformat()}"
    if approval.max_rows is not None:
        rows = finding.size.rows if finding.size else None
        if rows is None or rows > approval.max_rows:
            now = "an unknown size" if rows is None else f"{rows:,} rows"
            return "over row ceiling", f"approved up to {approval.max_rows:,} rows; the table has {now}"
    return "used", ""


def append_approval(path: Path, approval: Approval) -> None:
    """Add an entry to the approvals file (created with a header if missing); the file is read
    back afterwards so a broken file is never left behind silently. A symbolic link is refused,
    even a dangling one: it could point anywhere, outside the repository too."""
    if path.is_symlink():
        raise ApprovalsError(f"{path} is a symbolic link: give the approvals file itself (--file), "
                             "not a link to it")
    existing = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    if path.exists():
        load_approvals(path)  # refuse to append to a file that is already broken
    lines = ["", "[[approval]]"]
    for key in _REQUIRED:
        lines.append(f"{key} = {json.dumps(getattr(approval, key), ensure_ascii=False)}")
    if approval.approved_on:
        lines.append(f"approved_on = {approval.approved_on.isoformat()}")
    if approval.expires:
        lines.append(f"expires = {approval.expires.isoformat()}")
    if approval.max_rows is not None:
        lines.append(f"max_rows = {approval.max_rows}")
    text = existing.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_NOFOLLOW: a link made since the check above is refused too
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ApprovalsError(f"{path} is a symbolic link: give the approvals file itself (--file)") from None
        raise
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    load_approvals(path)
