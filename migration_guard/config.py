"""Configuration: ``[tool.migration_guard]`` in ``pyproject.toml`` and/or the ``MIGRATION_GUARD``
Django setting (which wins, key by key). Invalid configuration is an error, never a default.

```toml
[tool.migration_guard]
threshold_rows = 1_000_000          # tables above this many rows are "large"
threshold_bytes = "10GB"            # ... or above this size (table + indexes), if set
approvals_file = "migration-approvals.toml"   # relative to this pyproject.toml (the default's place too)
pg_version = 16                     # assumed when no database or snapshot says
assume_rows = 0                     # size of tables with no figure (unset: they count as large)
disable = ["MG008"]                 # rules turned off
severity = { MG005 = "warning" }    # rules' severities changed
preflight_max_age_seconds = 60      # older transactions holding a conflicting lock block the deploy
stats_max_age_days = 7              # an older --stats snapshot is reported
search_path = ["app", "public"]     # the schemas migrate's session searches (default: read from the
                                    # database, or the --stats snapshot's)
deploy_order = "migrate_first"      # or "code_first": which runs first in a deploy (MG020-MG027)
base_cache = true                   # keep scratch databases at the base state between runs (CI)
base_cache_max_bytes = "1GB"        # ... at most this much of them per server (oldest dropped first)
max_findings = 50                   # the text report details this many findings, one line each after
show_warnings = true                # the text report gives each warning on a table below the threshold
                                    # in full (default: counted per rule at the end)
```
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from migration_guard.model import Severity

__all__ = [
    "DEPLOY_ORDERS", "Config", "ConfigError", "find_pyproject", "load_config", "parse_bytes", "project_root",
    "read_toml", "search_path_value",
]

SUPPORTED_PG_VERSIONS = range(14, 19)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*$", re.IGNORECASE)
DEPLOY_ORDERS = ("migrate_first", "code_first")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


# PostgreSQL counts rows and bytes in bigints: a larger figure is a typo, not a threshold.
MAX_BIGINT = 2**63 - 1
# No table is larger than an exabyte: a size with more digits is a typo, not a threshold.
_MAX_SIZE_DIGITS = 20


class ConfigError(ValueError):
    """The configuration is invalid; the message names where and what to fix."""


@dataclass(frozen=True)
class Config:
    """The settings every stage reads."""

    threshold_rows: int = 1_000_000
    threshold_bytes: int | None = None
    # Default: migration-approvals.toml next to the pyproject.toml holding the configuration, else at the
    # project root (the git checkout's), whatever the working directory.
    approvals_file: Path = Path("migration-approvals.toml")
    approvals_source: str = "the default"  # where approvals_file came from, for the note when it is missing
    pg_version: int | None = None
    assume_rows: int | None = None
    disable: frozenset[str] = frozenset()
    severity: dict[str, Severity] = field(default_factory=dict, hash=False, compare=False)
    # Pre-flight: a session whose transaction is older than this, holding a lock that a pending
    # migration's lock would wait for, blocks the deploy (younger ones are warnings).
    preflight_max_age_seconds: int = 60
    # A --stats snapshot older than this many days is reported.
    stats_max_age_days: int = 7
    # The effective search_path of the session migrate runs in, when the gate cannot read it (another
    # role, a snapshot taken by another role); None: read from the database, or the snapshot's.
    search_path: tuple[str, ...] | None = None
    # Which comes first in a deploy: "migrate_first" (migrate, then roll out the code: the old code
    # meets the new schema) or "code_first" (roll out the code, then migrate: the new code meets the
    # old schema). The backward-compatibility rules (MG020-MG027) check the code the order implies.
    deploy_order: str = "migrate_first"
    # --scratch/--since/--files/--embedded keep the database at the base state as a template for the
    # next run (migration_guard.base_cache), at most this many bytes of templates per server.
    base_cache: bool = True
    base_cache_max_bytes: int = 10**9
    # The text report gives this many findings in full, then one line each (None: all in full); JSON,
    # SARIF and the other formats always carry every finding.
    max_findings: int | None = None
    # The text and markdown reports give each warning on a table below the threshold in full (default: one
    # line per rule, with counts and tables); JSON, SARIF and the other formats always carry each one.
    show_warnings: bool = False
    source: str = "defaults"  # where it came from, for messages


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` that holds ``[tool.migration_guard]``, else the
    nearest one at all (a ``netbox/`` folder inside a repository configured at its root finds the root's).
    One that cannot be read is returned as it is: loading it reports why."""
    nearest = None
    for folder in (start.resolve(), *start.resolve().parents):
        candidate = folder / "pyproject.toml"
        if not candidate.is_file():
            continue
        nearest = nearest or candidate
        try:
            tool = tomllib.loads(candidate.read_text(encoding="utf-8")).get("tool")
        except (OSError, ValueError, RecursionError):
            return candidate
        if isinstance(tool, dict) and "migration_guard" in tool:
            return candidate
    return nearest


def project_root(start: Path) -> Path:
    """The root of the git checkout holding ``start``, else ``start`` itself."""
    start = start.resolve()
    return next((folder for folder in (start, *start.parents) if (folder / ".git").exists()), start)


def load_config(pyproject: Path | None = None, setting: Any = None, *, known_rules: frozenset[str] = frozenset()) -> Config:
    """Read ``[tool.migration_guard]`` from ``pyproject`` (if given) and then the Django setting
    ``MIGRATION_GUARD`` (``setting``, a dict, if given), validating every key."""
    base = pyproject.parent if pyproject is not None else project_root(Path.cwd())
    config = Config(approvals_file=base / "migration-approvals.toml",
                    approvals_source="the default, next to pyproject.toml" if pyproject is not None
                    else "the default, at the project root")
    if pyproject is not None:
        data = read_toml(pyproject, ConfigError, "fix the file")
        tool = data.get("tool", {})
        if not isinstance(tool, dict):
            raise ConfigError(f"{pyproject}: 'tool' must be a table ([tool.migration_guard]), got {type(tool).__name__}")
        section = tool.get("migration_guard")
        if section is not None:
            config = _apply(config, section, f"{pyproject} [tool.migration_guard]", pyproject.parent, known_rules)
    if setting is not None:
        config = _apply(config, setting, "settings.MIGRATION_GUARD", base, known_rules)
    return config


def read_toml(path: Path, error: type[Exception], fix: str) -> dict:
    """A TOML file's contents; ``error`` naming the file, and ``fix`` as the next step, when it
    cannot be read or is not valid TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc}); {fix}") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits, arrays nested thousands deep
        raise error(f"{path}: not valid TOML ({type(exc).__name__}: {str(exc)[:200]}); {fix}") from None


def _apply(config: Config, values: Any, where: str, base: Path, known_rules: frozenset[str]) -> Config:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: must be a table (dict) of settings, got {type(values).__name__}")
    changes: dict[str, Any] = {}
    for key, value in values.items():
        key_name = key.lower().replace("-", "_") if isinstance(key, str) else None
        if key_name == "threshold_rows":
            changes[key_name] = _non_negative_int(value, where, key)
        elif key_name == "threshold_bytes":
            changes[key_name] = None if value is None else parse_bytes(value, f"{where}: {key}")
        elif key_name == "approvals_file":
            if not isinstance(value, str) or not value or "\0" in value:
                raise ConfigError(f"{where}: {key} must be a file path (string)")
            changes[key_name] = (base / value) if not Path(value).is_absolute() else Path(value)
            changes["approvals_source"] = f"approvals_file in {where}"
        elif key_name == "pg_version":
            changes[key_name] = pg_version_value(value, f"{where}: {key}")
        elif key_name in {"preflight_max_age_seconds", "stats_max_age_days", "max_findings"}:
            changes[key_name] = _non_negative_int(value, where, key)
        elif key_name == "assume_rows":
            changes[key_name] = None if value is None else _non_negative_int(value, where, key)
        elif key_name == "search_path":
            changes[key_name] = search_path_value(value, f"{where}: {key}")
        elif key_name == "deploy_order":
            if value not in DEPLOY_ORDERS:
                raise ConfigError(f"{where}: {key} = {value!r}: use \"migrate_first\" or \"code_first\"")
            changes[key_name] = value
        elif key_name in {"base_cache", "show_warnings"}:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
            changes[key_name] = value
        elif key_name == "base_cache_max_bytes":
            changes[key_name] = parse_bytes(value, f"{where}: {key}")
        elif key_name == "disable":
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: {key} must be a list of rule ids such as [\"MG008\"]")
            changes[key_name] = frozenset(_rule_id(v, where, key, known_rules) for v in value)
        elif key_name == "severity":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key} must map rule ids to \"error\", \"warning\" or \"info\"")
            severities = dict(config.severity)
            for rule, level in value.items():
                rule_id = _rule_id(rule, where, key, known_rules)
                try:
                    severities[rule_id] = Severity(level.lower() if isinstance(level, str) else None)
                except ValueError:
                    raise ConfigError(
                        f"{where}: {key}.{_shown(rule)} = {_shown(level)}: use \"error\", \"warning\" or \"info\""
                    ) from None
            changes[key_name] = severities
        else:
            raise ConfigError(
                f"{where}: unknown setting {_shown(key)}; known: threshold_rows, threshold_bytes, approvals_file, "
                "pg_version, assume_rows, disable, severity, preflight_max_age_seconds, stats_max_age_days, "
                "search_path, deploy_order, base_cache, base_cache_max_bytes, max_findings, show_warnings"
            )
    return replace(config, **changes, source=where)


def pg_version_value(value: Any, where: str) -> int:
    """A supported PostgreSQL major version, or ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in SUPPORTED_PG_VERSIONS:
        raise ConfigError(f"{where}: {_shown(value)} is not a supported PostgreSQL major version (14 to 18)")
    return value


def search_path_value(value: Any, where: str) -> tuple[str, ...]:
    """A search_path given by the user: a list of schema names, or one string as PostgreSQL writes it
    (``'app, "Other", public'``), or ConfigError. ``$user`` is refused: which role it stands for is
    exactly what the gate cannot know here."""
    from migration_guard.stats import parse_search_path

    if isinstance(value, str):
        names = list(parse_search_path(value, "$user"))
    elif isinstance(value, list | tuple) and all(isinstance(v, str) and v for v in value):
        names = list(dict.fromkeys(value))
    else:
        raise ConfigError(f"{where}: {value!r} is not a search_path; write the schemas in order, "
                          "e.g. [\"app\", \"public\"] or \"app, public\"")
    if "$user" in names:
        raise ConfigError(f"{where}: name the schema that $user stands for (the role migrate runs as)")
    return tuple(names)


def parse_bytes(value: Any, where: str) -> int:
    """``123``, ``"500MB"``, ``"10 GiB"`` -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value > MAX_BIGINT:
            raise ConfigError(f"{where}: {_shown(value)} is too large for a size")
        return value
    match = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f"{where}: {_shown(value)} is not a size; write bytes or e.g. \"500MB\", \"10GiB\"")
    number, unit = match.groups()
    whole, _, fraction = number.partition(".")
    if len(whole) > _MAX_SIZE_DIGITS:  # float() would overflow, int() of it fail
        raise ConfigError(f"{where}: {_shown(value)} is too large for a size")
    scale = _UNITS[(unit or "").upper()]
    size = int(whole) * scale + int(fraction or "0") * scale // 10 ** len(fraction)
    if size > MAX_BIGINT:
        raise ConfigError(f"{where}: {_shown(value)} is too large for a size")
    return size


def _non_negative_int(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: {key} must be a whole number, got {_shown(value)}")
    if value > MAX_BIGINT:
        raise ConfigError(f"{where}: {key} is larger than any table can be (at most {MAX_BIGINT:,})")
    return value


def _shown(value: Any) -> str:
    """``repr`` of a value for a message, cut short (a huge number or string would flood it)."""
    try:
        text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else "a huge number"
    except (ValueError, RecursionError):  # a number of thousands of digits inside a list
        return f"a {type(value).__name__} holding a huge number"
    return text if len(text) <= 80 else text[:77] + "..."


def _rule_id(value: Any, where: str, key: str, known_rules: frozenset[str]) -> str:
    rule = value.upper() if isinstance(value, str) else None
    if rule is None or (known_rules and rule not in known_rules):
        raise ConfigError(f"{where}: {key}: no rule {_shown(value)}; `migration-guard rules` lists them")
    return rule
