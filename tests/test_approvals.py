"""Approvals: exact binding to migration, rule and statement; stale, expired, ceiling, unused."""

from __future__ import annotations

import datetime as dt

import pytest

from migration_guard.approvals import Approval, ApprovalsError, append_approval, apply_approvals, load_approvals
from migration_guard.model import Finding, Severity, TableSize

TODAY = dt.date(2026, 11, 22)


def finding(fingerprint="aaaa", rows=5_000_000, rule="MG002", severity=Severity.ERROR):
    return Finding(rule=rule, slug="x", severity=severity, message="m", migration="shop.0002_x",
                   size=TableSize(rows, None, "database"), fingerprint=fingerprint)


def approval(number=1, **kw):
    values = dict(migration="shop.0002_x", rule="MG002", fingerprint="aaaa", reason="ok", approved_by="dba")
    values.update(kw)
    return Approval(number=number, **values)


def apply(findings, approvals):
    return apply_approvals(findings, approvals, linted={"shop.0002_x"}, today=TODAY)


def test_exact_approval_applies():
    [result], [outcome] = apply([finding()], [approval()])
    assert result.approval == "approved by dba: ok" and not result.blocking
    assert outcome.status == "used"


def test_changed_statement_makes_it_stale():
    [result], [outcome] = apply([finding(fingerprint="bbbb")], [approval()])
    assert result.blocking and outcome.status == "stale" and "now bbbb" in outcome.detail


def test_other_rule_does_not_apply_and_is_unused():
    [result], [outcome] = apply([finding(rule="MG001")], [approval()])
    assert result.blocking and outcome.status == "unused"


def test_expired():
    [result], [outcome] = apply([finding()], [approval(expires=dt.date(2026, 11, 21))])
    assert result.blocking and outcome.status == "expired"


def test_expiry_day_itself_still_applies():
    [result], _ = apply([finding()], [approval(expires=TODAY)])
    assert not result.blocking


def test_row_ceiling():
    [result], [outcome] = apply([finding(rows=6_000_000)], [approval(max_rows=5_000_000)])
    assert result.blocking and outcome.status == "over row ceiling"
    [result], [outcome] = apply([finding(rows=None)], [approval(max_rows=5_000_000)])
    assert result.blocking, "an unknown size is above any ceiling"


def test_warnings_need_no_approval_and_approvals_of_other_migrations_are_left_alone():
    other = approval(migration="shop.0001_initial")
    [result], outcomes = apply([finding(severity=Severity.WARNING)], [other])
    assert result.approval is None and outcomes == []


def test_round_trip_through_the_file(tmp_path):
    path = tmp_path / "approvals.toml"
    append_approval(path, approval(reason='quotes "and" ü', expires=dt.date(2027, 1, 1), max_rows=10,
                                   approved_on=TODAY))
    append_approval(path, approval(rule="MG001"))
    loaded = load_approvals(path)
    assert [a.rule for a in loaded] == ["MG002", "MG001"]
    assert loaded[0].reason == 'quotes "and" ü' and loaded[0].expires == dt.date(2027, 1, 1)
    assert loaded[0].max_rows == 10 and loaded[1].number == 2


def test_missing_file_is_no_approvals(tmp_path):
    assert load_approvals(tmp_path / "none.toml") == []


@pytest.mark.parametrize("text, message", [
    ("[[approval]\n", "not valid TOML"),
    ("[[approval]]\nmigration = 'a.b'\n", "'rule' is required"),
    ("[[approval]]\nmigration='a.b'\nrule='MG1'\nfingerprint='f'\nreason='r'\napproved_by='x'\nexpires='soon'\n",
     "'expires' must be a date"),
    ("[[approval]]\nmigration='a.b'\nrule='MG1'\nfingerprint='f'\nreason='r'\napproved_by='x'\ncolour=1\n",
     "unknown key(s) ['colour']"),
    ("approvals = 1\n", "unknown top-level key(s)"),
])
def test_malformed_files_name_the_file_and_entry(tmp_path, text, message):
    path = tmp_path / "approvals.toml"
    path.write_text(text)
    with pytest.raises(ApprovalsError) as error:
        load_approvals(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_append_refuses_a_broken_file(tmp_path):
    path = tmp_path / "approvals.toml"
    path.write_text("[[approval]\n")
    with pytest.raises(ApprovalsError):
        append_approval(path, approval())
    assert path.read_text() == "[[approval]\n"
