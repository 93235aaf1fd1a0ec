"""Configuration: pyproject and the Django setting, validated key by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_guard.config import ConfigError, load_config, parse_bytes
from migration_guard.model import Severity

RULES = frozenset({"MG001", "MG005", "MG008"})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_section(tmp_path):
    config = load_config(write(tmp_path, "[project]\nname = 'x'\n"))
    assert config.threshold_rows == 1_000_000 and config.threshold_bytes is None
    assert config.approvals_file == tmp_path / "migration-approvals.toml"  # next to it, from any directory


def test_every_key(tmp_path):
    config = load_config(write(tmp_path, """
[tool.migration_guard]
threshold_rows = 5000
threshold_bytes = "2GiB"
approvals_file = "deploy/approvals.toml"
pg_version = 15
assume_rows = 10
disable = ["mg008"]
severity = { MG005 = "warning" }
"""), known_rules=RULES)
    assert config.threshold_rows == 5000
    assert config.threshold_bytes == 2 * 2**30
    assert config.approvals_file == tmp_path / "deploy" / "approvals.toml"
    assert config.pg_version == 15 and config.assume_rows == 10
    assert config.disable == {"MG008"}
    assert config.severity == {"MG005": Severity.WARNING}


def test_django_setting_wins_key_by_key(tmp_path):
    config = load_config(write(tmp_path, "[tool.migration_guard]\nthreshold_rows = 5\npg_version = 15\n"),
                         {"threshold_rows": 7}, known_rules=RULES)
    assert config.threshold_rows == 7 and config.pg_version == 15


@pytest.mark.parametrize("body, message", [
    ("threshold_rows = -1", "threshold_rows must be a whole number"),
    ("threshold_rows = true", "threshold_rows must be a whole number"),
    ("threshold_bytes = 'lots'", "is not a size"),
    ("pg_version = 13", "not a supported PostgreSQL major version"),
    ("disable = 'MG001'", "must be a list of rule ids"),
    ("disable = ['MG777']", "no rule 'MG777'"),
    ("severity = { MG001 = 'fatal' }", "use \"error\", \"warning\" or \"info\""),
    ("approvals = 'x.toml'", "unknown setting 'approvals'"),
])
def test_invalid_values_are_errors_naming_the_file(tmp_path, body, message):
    path = write(tmp_path, f"[tool.migration_guard]\n{body}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, known_rules=RULES)
    assert message in str(error.value) and str(path) in str(error.value)


def test_broken_toml_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[tool.migration_guard\n"))


def test_setting_must_be_a_dict():
    with pytest.raises(ConfigError, match="settings.MIGRATION_GUARD: must be a table"):
        load_config(None, ["threshold_rows"])


@pytest.mark.parametrize("text, expected", [("500MB", 500_000_000), ("10 GiB", 10 * 2**30), (123, 123), ("1.5kB", 1500)])
def test_sizes(text, expected):
    assert parse_bytes(text, "x") == expected
