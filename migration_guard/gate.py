"""The gate, end to end, for a Django project: plan -> render -> (parse, locks, rules) ->
approvals -> report. The one place that wires the edges (Django, the database, files) to the pure
middle; ``lint_migrations`` is a thin shell around :func:`run_gate`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.migrations.exceptions import InconsistentMigrationHistory
from django.db.migrations.executor import MigrationExecutor

from migration_guard.approvals import apply_approvals, load_approvals
from migration_guard.config import Config, find_pyproject, load_config
from migration_guard.locks import Catalog
from migration_guard.locks.introspect import catalog_from_database
from migration_guard.pipeline import MigrationResult, analyse_migrations
from migration_guard.plan import PlanError, build_plan, changed_files_since
from migration_guard.render import render_plan, scratch_database
from migration_guard.report import Report
from migration_guard.rules import rule_ids
from migration_guard.stats import Snapshot, TableSizes, load_snapshot, read_database_stats

__all__ = ["GateError", "GateOptions", "run_gate"]

DEFAULT_PG_VERSION = 16


class GateError(Exception):
    """The gate could not run (exit code 2); the message says what to do next."""


@dataclass(frozen=True)
class GateOptions:
    """What ``lint_migrations`` was asked to do."""

    database: str = "default"
    app_label: str | None = None
    migration_name: str | None = None
    since: str | None = None
    scratch: bool = False
    stats_file: Path | None = None
    assume_rows: int | None = None
    pg_version: int | None = None
    approvals_file: Path | None = None
    config_file: Path | None = None
    today: dt.date | None = None


def load_project_config(config_file: Path | None) -> Config:
    """The configuration from ``pyproject.toml`` (given, or the nearest one to the working
    directory) and the ``MIGRATION_GUARD`` setting."""
    pyproject = config_file if config_file is not None else find_pyproject(Path.cwd())
    if config_file is not None and not config_file.is_file():
        raise GateError(f"{config_file}: no such configuration file")
    return load_config(pyproject, getattr(settings, "MIGRATION_GUARD", None), known_rules=rule_ids())


def run_gate(options: GateOptions) -> Report:
    """Lint the chosen migrations and return the report. Raises GateError (exit 2) when the gate
    cannot run: bad arguments, an unreachable database, malformed configuration or files."""
    from migration_guard.approvals import ApprovalsError
    from migration_guard.config import ConfigError
    from migration_guard.stats import StatsError

    try:
        config = load_project_config(options.config_file)
        if options.assume_rows is not None:
            config = _with(config, assume_rows=options.assume_rows)
        approvals_path = options.approvals_file or config.approvals_file
        approvals = load_approvals(approvals_path)
        snapshot = load_snapshot(options.stats_file) if options.stats_file else None
    except (ConfigError, ApprovalsError, StatsError) as exc:
        raise GateError(str(exc)) from None

    if options.database not in connections:
        raise GateError(f"no database '{options.database}' in DATABASES; choose one with --database")
    connection = connections[options.database]
    if connection.vendor != "postgresql":
        raise GateError(f"database '{options.database}' is {connection.vendor}; migration_guard checks PostgreSQL only")
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        executor.loader.check_consistent_history(connection)
    except InconsistentMigrationHistory as exc:
        raise GateError(f"the migration history of database '{options.database}' is inconsistent: {exc}") from None
    except DatabaseError as exc:
        raise GateError(_connection_problem(connection, exc)) from None
    except Exception as exc:  # a migration file that does not import, a missing dependency, ...
        raise GateError(f"the migrations could not be loaded: {_load_problem(exc)}") from None

    scratch = options.scratch or options.since is not None
    try:
        since_files = changed_files_since(options.since) if options.since else None
        plan = build_plan(
            executor,
            app_label=options.app_label,
            migration_name=options.migration_name,
            since_files=since_files,
            include_applied=scratch,
        )
    except PlanError as exc:
        raise GateError(str(exc)) from None

    server_version = connection.pg_version // 10000 if getattr(connection, "pg_version", None) else None
    pg_version, pg_source = _pg_version(options, snapshot, config, None if options.since else server_version)
    sizes_source = "none: every existing table counts as large (give --stats FILE or --assume-rows N)"
    # With --since the database is CI's empty one: its sizes say nothing about production.
    if snapshot is None and options.since is None:
        try:
            snapshot = read_database_stats(connection)
        except DatabaseError as exc:
            raise GateError(f"cannot read table sizes from database '{options.database}': {exc}") from None
        sizes_source = f'database "{options.database}" (pg_class)'
    elif snapshot is not None:
        sizes_source = f"snapshot {options.stats_file} (taken {snapshot.taken_at})"
    elif config.assume_rows is not None:
        sizes_source = f"none: tables with no figure are assumed to have {config.assume_rows:,} rows"
    sizes = TableSizes(snapshot=snapshot, assume_rows=config.assume_rows)

    notes = []
    if not plan.lint:
        notes.append("no migrations to lint")
    catalogs: list[Catalog] = []

    def read_catalog(conn) -> None:
        catalogs.append(_read_catalog(conn))

    try:
        if scratch:
            with scratch_database(connection) as name:
                notes.append(f"rendered by applying the migrations to the throwaway database {name} (dropped)")
                rendered = list(render_plan(executor, plan, execute=True, before_first=read_catalog))
        else:
            rendered = list(render_plan(executor, plan, execute=False, before_first=read_catalog))
    except DatabaseError as exc:
        hint = " (the scratch database needs a role with CREATEDB)" if scratch else ""
        raise GateError(f"rendering failed on database '{options.database}'{hint}: {exc}") from None

    # What the database already has before the first linted migration (column types, validated
    # NOT NULL checks, foreign keys, indexes), so that e.g. SET NOT NULL after an earlier deploy's
    # VALIDATE CONSTRAINT is known not to scan.
    catalog = catalogs[0] if catalogs else Catalog.empty()
    results = analyse_migrations(rendered, sizes=sizes, pg_version=pg_version, config=config, catalog=catalog)
    findings, outcomes = apply_approvals(
        [f for r in results for f in r.findings],
        approvals,
        linted={r.label for r in results},
        today=options.today or dt.date.today(),
    )
    results = _with_findings(results, findings)
    return Report(
        migrations=tuple(results),
        config=config,
        pg_version=pg_version,
        pg_version_source=pg_source,
        sizes_source=sizes_source,
        database=options.database,
        approvals=tuple(outcomes),
        notes=tuple(notes),
    )


def _read_catalog(connection) -> Catalog:
    """The catalog of the database as it is now, read in a READ ONLY transaction."""
    connection.ensure_connection()
    with transaction.atomic(using=connection.alias):
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute("SET LOCAL statement_timeout = 30000")
        catalog = catalog_from_database(connection.connection)
        transaction.set_rollback(True, using=connection.alias)
    return catalog


def _pg_version(options: GateOptions, snapshot: Snapshot | None, config: Config, server: int | None) -> tuple[int, str]:
    if options.pg_version is not None:
        return options.pg_version, "--pg-version"
    if server is not None:
        return server, "the server's own version"
    if snapshot is not None and snapshot.pg_version:
        return snapshot.pg_version, "from the snapshot"
    if config.pg_version is not None:
        return config.pg_version, "from the configuration"
    return DEFAULT_PG_VERSION, "assumed; set --pg-version"


def _with_findings(results: list[MigrationResult], findings) -> list[MigrationResult]:
    from dataclasses import replace

    by_migration: dict[str, list] = {}
    for finding in findings:
        by_migration.setdefault(finding.migration, []).append(finding)
    return [replace(r, findings=tuple(by_migration.get(r.label, ()))) for r in results]


def _with(config: Config, **changes) -> Config:
    from dataclasses import replace

    return replace(config, **changes)


def _load_problem(exc: Exception) -> str:
    """Where loading failed (file and line) and why, for a migration that does not import."""
    import traceback

    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {type(exc).__name__}: {exc.msg}; fix the file and run again"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/migrations/" in f.filename]
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return f"{where}{type(exc).__name__}: {exc}; fix it and run again"


def _connection_problem(connection, exc: Exception) -> str:
    params = connection.settings_dict
    where = f"{params.get('NAME')} on {params.get('HOST') or 'localhost'}:{params.get('PORT') or 5432}"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"cannot read database '{connection.alias}' ({where}): {first_line}. "
        "Check DATABASES and that the server is reachable, or lint without production access: "
        "--since REF --stats FILE"
    )
