"""The gate, end to end, for a Django project: plan -> render -> (parse, locks, rules) ->
pre-flight -> approvals -> report. The one place that wires the edges (Django, the database,
files) to the pure middle; ``lint_migrations`` is a thin shell around :func:`run_gate`."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.migrations.exceptions import InconsistentMigrationHistory
from django.db.migrations.executor import MigrationExecutor

from migration_guard.approvals import (
    Approval,
    ApprovalsError,
    apply_approvals,
    load_approvals,
)
from migration_guard import interrupt
from migration_guard.config import SUPPORTED_PG_VERSIONS, Config, ConfigError, find_pyproject, load_config
from migration_guard.guard import READ_ONLY, SCRATCH, Guard, StatementRefused
from migration_guard.base_cache import BaseCache, EmbeddedCluster, enabled, template_rows
from migration_guard.locks import Catalog
from migration_guard.locks.introspect import catalog_from_database
from migration_guard.model import ActionKind
from migration_guard.pipeline import MigrationResult, analyse_migrations
from migration_guard.plan import PlanError, build_plan, changed_files_since, migrations_before
from migration_guard.preflight import planned_locks, read_sessions
from migration_guard.progress import Progress
from migration_guard.redact import redact_dsn
from migration_guard.render import bulk_load, render_plan
from migration_guard.report import DatabaseInfo, Report
from migration_guard.rules import rule_ids
from migration_guard.rules.mg009_session_holding_conflicting_lock import RULE as PREFLIGHT_RULE
from migration_guard.rules.mg009_session_holding_conflicting_lock import check_sessions
from migration_guard.scratch import ScratchCreation, scratch_database
from migration_guard.tenants import TenantLayout, detect_layout, read_tenant_schemas, tenants_from_snapshot
from migration_guard.stats import (
    Snapshot,
    StatsError,
    TableSizes,
    load_snapshot,
    read_database_stats,
    read_search_path,
)

__all__ = ["GateError", "GateOptions", "base_cache_key", "run_gate"]

DEFAULT_PG_VERSION = 16
# Every query the gate runs on a target database is bounded (the catalog reads set their own).
_SESSION_STATEMENT_TIMEOUT = "30s"
_SESSION_LOCK_TIMEOUT = "5s"


class GateError(Exception):
    """The gate could not run (exit code 2); the message says what to do next."""


@dataclass(frozen=True)
class GateOptions:
    """What ``lint_migrations`` was asked to do."""

    databases: tuple[str, ...] = ("default",)
    app_label: str | None = None
    migration_name: str | None = None
    since: str | None = None
    files: tuple[Path, ...] | None = None  # lint exactly the migrations in these files (pre-commit)
    # Lint exactly these unapplied migrations: the plan safe_migrate is about to apply.
    migrations: tuple[tuple[str, str], ...] | None = None
    # The lock_timeout every statement will run under (safe_migrate sets it): pre-flight (MG009)
    # counts the wait as bounded unless the migration itself changes it.
    lock_timeout: str | None = None
    scratch: bool = False
    embedded: bool = False
    # Every migration judged as its own deploy: tables earlier ones created are production tables.
    each: bool = False
    stats_file: Path | None = None
    assume_rows: int | None = None
    pg_version: int | None = None
    approvals_file: Path | None = None
    config_file: Path | None = None
    # Operator approvals for this run only: ((migration, rule), ...) with one reason.
    approve: tuple[tuple[str, str], ...] = ()
    approve_reason: str | None = None
    approve_by: str | None = None
    today: dt.date | None = None
    now: dt.datetime | None = None
    # Where progress lines go (one line a call) while a long plan renders; None: nowhere.
    progress: Callable[[str], None] | None = None


def load_project_config(config_file: Path | None) -> Config:
    """The configuration from ``pyproject.toml`` (given, or the nearest one to the working
    directory) and the ``MIGRATION_GUARD`` setting."""
    if config_file is not None and not config_file.is_file():
        raise GateError(f"{config_file}: no such configuration file")
    pyproject = config_file if config_file is not None else find_pyproject(Path.cwd())
    return load_config(pyproject, getattr(settings, "MIGRATION_GUARD", None), known_rules=rule_ids())


def run_gate(options: GateOptions) -> Report:
    """Lint the chosen migrations on each chosen database and return one report. Raises
    GateError (exit 2) when the gate cannot run: bad arguments, an unreachable database,
    malformed configuration or files."""
    try:
        config = load_project_config(options.config_file)
        if options.assume_rows is not None:
            config = replace(config, assume_rows=options.assume_rows)
        approvals_file = options.approvals_file or config.approvals_file
        approvals = load_approvals(approvals_file)
        snapshot = load_snapshot(options.stats_file) if options.stats_file else None
    except (ConfigError, ApprovalsError, StatsError) as exc:
        raise GateError(str(exc)) from None
    operator = _operator_approvals(options)
    for alias in options.databases:
        if alias not in connections:
            raise GateError(f"no database '{alias}' in DATABASES; choose one with --database")

    notes: list[str] = []
    selected = options.app_label or options.since is not None or options.files is not None
    if options.embedded and not options.each and not selected:
        # From an empty database everything is pending, and every table is created by a migration
        # before the one that changes it: linted as one plan, each would pass. Only --each says
        # something about deploying them.
        options = replace(options, each=True)
        notes.append("--embedded with no --since, --files or app label lints every migration, each as its "
                     "own deploy (--each)")
    if options.each:
        notes.append("--each: every migration is judged as if deployed alone, onto a database where the "
                     "migrations before it are applied; every table it did not create itself is a production "
                     "table, sized by --stats or --assume-rows, else large")
    if snapshot is not None:
        notes.extend(_snapshot_age_note(snapshot, options, config))
    results: list[MigrationResult] = []
    infos: list[DatabaseInfo] = []
    for alias in options.databases:
        with _embedded_server(alias, config) if options.embedded else contextlib.nullcontext() as server:
            alias_results, info, alias_notes = _lint_database(alias, options, config, snapshot, server=server)
        if server is not None:  # the server that really rendered, whatever version is modelled
            alias_notes.insert(0, f"--embedded: rendered on {server.describe()}; another build or major: "
                                  "MIGRATION_GUARD_PG_BIN=/path/to/postgresql/bin")
        results.extend(alias_results)
        infos.append(info)
        prefix = f"{alias}: " if len(options.databases) > 1 else ""
        notes.extend(prefix + note for note in alias_notes)

    findings, outcomes = apply_approvals(
        [f for r in results for f in r.findings],
        approvals,
        linted={r.label for r in results},
        today=options.today or dt.date.today(),
        operator=operator,
    )
    results = _with_findings(results, findings)
    if not approvals_file.exists() and (options.approvals_file or "default" not in config.approvals_source
                                        or any(f.blocking for f in findings)):
        source = "--approvals" if options.approvals_file else config.approvals_source
        shown = os.path.relpath(approvals_file.resolve())
        shown = str(approvals_file.resolve()) if shown.startswith("..") else shown
        notes.append(f"no approvals file at {shown} ({source}): no approval applies")
    first = infos[0]
    return Report(
        migrations=tuple(results),
        config=config,
        pg_version=first.pg_version,
        pg_version_source=first.pg_version_source,
        sizes_source=first.sizes_source,
        database=", ".join(info.alias for info in infos),
        approvals=tuple(outcomes),
        notes=tuple(notes),
        databases=tuple(infos),
        each=options.each,
    )


def base_cache_key(options: GateOptions) -> str:
    """The key of the base this run would build on its first database (``lint_migrations
    --print-cache-key``): what a CI cache keeps the base cache under. Loads the migration files and
    plans as the run does, without a database (with --embedded, the PostgreSQL version is the
    binaries'; with --scratch the server's is read); ``none`` when there is no base or no cache."""

    try:
        config = load_project_config(options.config_file)
    except ConfigError as exc:
        raise GateError(str(exc)) from None
    alias = options.databases[0]
    if alias not in connections:
        raise GateError(f"no database '{alias}' in DATABASES; choose one with --database")
    connection = connections[alias]
    if not enabled(config):
        return "none"
    # The migration modules load as in a run: every session of the project read-only, guarded.
    with _guarded(connection) as (guard, writable_options):
        try:
            with bulk_load():
                executor = MigrationExecutor(connection=None)
            since_files = changed_files_since(options.since) if options.since else None
            plan = build_plan(executor, app_label=options.app_label, migration_name=options.migration_name,
                              since_files=since_files, files=options.files, include_applied=True)
        except PlanError as exc:
            raise GateError(str(exc)) from None
        except BaseException as exc:  # a migration file that does not import, or calls sys.exit()
            if interrupt.requested() is not None:
                raise
            raise GateError(f"the migrations could not be loaded: {_load_problem(exc)}") from None
        nodes = plan.full[:plan.first_lint_position]
        if not nodes:
            return "none"
        params = {**connection.settings_dict, "OPTIONS": writable_options}
        return _base_key(executor, nodes, connection, params, options, guard)


def _base_key(executor, nodes, connection, params: dict, options: GateOptions, guard: Guard) -> str:
    """The key of the base ``nodes`` make on the server the run would use (the embedded one, or
    ``connection``'s, whose version is read on a read-only session)."""
    from migration_guard.base_cache import Undescribed, describe_base

    if options.embedded:
        from migration_guard.embedded import EMBEDDED_USER, EmbeddedPostgresError, default_bin_dir, server_major

        try:
            version = server_major(default_bin_dir())
        except EmbeddedPostgresError as exc:
            raise GateError(f"--embedded: {exc}") from None
        params = {**params, "USER": EMBEDDED_USER, "OPTIONS": {}}
    else:
        try:
            _connect_read_only(connection, guard)
        except DatabaseError as exc:
            raise GateError(_connection_problem(connection, exc)) from None
        version = str(connection.pg_version // 10000)
    try:
        base = describe_base(executor, nodes, connection, version, params)
    except Undescribed:
        return "none"
    return base.key[:40] if base is not None else "none"


def _lint_database(alias: str, options: GateOptions, config: Config, snapshot: Snapshot | None, *, server=None):
    """Plan, render and analyse the migrations of one database alias (``server``: the embedded one
    it points at, with --embedded)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        raise GateError(f"database '{alias}' is {connection.vendor}; migration_guard checks PostgreSQL only")
    by_files = options.since is not None or options.files is not None
    scratch = options.scratch or by_files or options.embedded
    # With --since, --files or --embedded the database is CI's (or a laptop's) own: its sizes and
    # version say nothing about production.
    production = not by_files and not options.embedded
    try:
        layout = detect_layout(connection)
    except Exception as exc:  # LookupError (TENANT_MODEL), FieldDoesNotExist (MULTI_TYPE_DATABASE_FIELD)
        raise GateError(f"the schema-per-tenant settings of database '{alias}' cannot be read: {exc}") from None
    # Scratch mode: the throwaway database is created on a second session meanwhile (with the
    # connection's own settings: the read-only ones below would forbid CREATE DATABASE).
    # With --embedded from a kept data folder, a template usually becomes the scratch database: an
    # empty one is made only if none does.
    creation = ScratchCreation(connection, now=server is None or not server.copied) if scratch else None
    prefetch = None
    try:
        with _guarded(connection) as (guard, writable_options):
            # Collect mode renders against the database as it is now: its catalog (and sizes) can be
            # read on a second session while this one loads the migrations.
            if not scratch:
                prefetch = _Prefetch(alias, stats=snapshot is None and production and not options.each,
                                     layout=layout, privileges=production)
            return _lint_database_with(connection, prefetch, options, config, snapshot, scratch=creation,
                                       by_files=by_files, production=production, layout=layout, guard=guard,
                                       writable_options=writable_options, server=server)
    finally:
        if prefetch is not None:
            prefetch.close()
        if creation is not None and not creation.used:
            creation.discard()


# The target session is read-only from its first statement, before any migration module is
# imported, with every query bounded: settings sent when the session starts (libpq "options").
_READ_ONLY_OPTIONS = (f"-c default_transaction_read_only=on -c statement_timeout={_SESSION_STATEMENT_TIMEOUT} "
                      f"-c lock_timeout={_SESSION_LOCK_TIMEOUT}")


@contextlib.contextmanager
def _guarded(connection):
    """For the run: ``connection``'s sessions start read-only (connection options), and a
    :class:`~migration_guard.guard.Guard` checks every statement sent on it and, read-only, on
    every other alias's connection (migration code may use them). Yields the guard and the
    connection's own OPTIONS (for the scratch database, which must be writable)."""
    original = connection.settings_dict.get("OPTIONS") or {}
    options = dict(original)
    options["options"] = f"{options.get('options', '')} {_READ_ONLY_OPTIONS}".strip()
    guard = Guard(READ_ONLY)
    others = guard.companion(READ_ONLY)  # another alias stays read-only, even in scratch mode
    connection.close()
    connection.settings_dict["OPTIONS"] = options
    try:
        with contextlib.ExitStack() as stack:
            for alias in connections:
                other = connections[alias]
                stack.enter_context(other.execute_wrapper(guard if other is connection else others))
            yield guard, original
    finally:
        connection.close()
        connection.settings_dict["OPTIONS"] = original


def _lint_database_with(connection, prefetch: _Prefetch | None, options: GateOptions, config: Config,
                        snapshot: Snapshot | None, *, scratch: ScratchCreation | None, by_files: bool,
                        production: bool, layout: TenantLayout | None, guard: Guard, writable_options: dict,
                        server=None):
    alias = connection.alias
    try:
        _connect_read_only(connection, guard)
        with bulk_load():
            executor = MigrationExecutor(connection)
        executor.loader.check_consistent_history(connection)
    except InconsistentMigrationHistory as exc:
        raise GateError(f"the migration history of database '{alias}' is inconsistent: {exc}") from None
    except StatementRefused as exc:
        raise GateError(f"the migrations could not be loaded: {_load_problem(exc)}") from None
    except DatabaseError as exc:
        raise GateError(_connection_problem(connection, exc)) from None
    except BaseException as exc:  # a migration file that does not import, or calls sys.exit() when it does
        if interrupt.requested() is not None:
            raise
        raise GateError(f"the migrations could not be loaded: {_load_problem(exc)}") from None
    loading = guard.take(None)
    if loading:  # refused while a module loaded, and the module caught the exception
        raise GateError(f"a migration module sent {loading[0].sql!r} while it was imported, which the gate "
                        f"refused ({loading[0].reason}); the gate never writes: fix the module")

    try:
        since_files = changed_files_since(options.since) if options.since else None
        plan = build_plan(
            executor,
            app_label=options.app_label,
            migration_name=options.migration_name,
            since_files=since_files,
            files=options.files,
            nodes=options.migrations,
            include_applied=scratch is not None,
        )
    except PlanError as exc:
        raise GateError(str(exc)) from None

    server_version = connection.pg_version // 10000 if getattr(connection, "pg_version", None) else None
    pg_version, pg_source = _pg_version(options, snapshot, config, server_version, production=production)
    sizes_source = "none: every existing table counts as large (give --stats FILE or --assume-rows N)"
    if snapshot is None and production and not options.each:
        try:
            snapshot = prefetch.stats() if prefetch is not None else read_database_stats(connection)
        except (DatabaseError, StatsError) as exc:
            raise GateError(f"cannot read table sizes from database '{alias}': {exc}") from None
        sizes_source = f'database "{alias}" (pg_class)'
    elif snapshot is not None:
        sizes_source = f"snapshot {options.stats_file} (taken {snapshot.taken_at})"
    elif config.assume_rows is not None:
        sizes_source = f"none: tables with no figure are assumed to have {config.assume_rows:,} rows"
    search_path, path_source = _search_path(config, snapshot, prefetch, connection, production)
    sizes = TableSizes(snapshot=snapshot, assume_rows=config.assume_rows, search_path=search_path)

    notes = []
    if prefetch is not None and production:
        notes.extend(prefetch.privileges_note(alias))
    if layout is not None:
        layout, tenant_notes = _tenants(layout, connection, prefetch, snapshot, production)
        notes.append(layout.describe())
        notes.extend(tenant_notes)
    if not plan.lint:
        notes.append("no migrations to lint")
    catalogs: list[Catalog] = []

    def read_catalog(conn) -> None:
        catalogs.append(prefetch.catalog() if prefetch is not None else _read_catalog(conn))

    running, basis = _running_code(executor, plan, options, alias, by_files=by_files)
    compat = {"running": running, "basis": basis, "release": config.deploy_order == "code_first",
              "each": options.each}
    progress = Progress(options.progress, alias) if options.progress is not None and plan.lint else None
    if progress is not None:
        compat["progress"] = progress.migration
    try:
        if scratch:
            # A kept base (not for schema-per-tenant projects: their scratch layout is not in the key)
            cache = None if layout else BaseCache.open(
                executor, plan, connection, config, scratch.server_cursor, embedded=server,
                params={**connection.settings_dict, "OPTIONS": writable_options})
            start = cache.start(executor, scratch) if cache is not None else None
            with scratch_database(connection, scratch, options=writable_options) as name:
                notes.append(f"rendered by applying the migrations to the throwaway database {name} (dropped)")
                if scratch.dropped_leftovers:
                    notes.append(f"dropped {len(scratch.dropped_leftovers)} scratch database(s) that earlier "
                                 f"runs left behind: {', '.join(scratch.dropped_leftovers)}")
                placement = _placement(layout, connection, execute=True) if layout else None
                guard.mode = SCRATCH
                try:
                    rendered = list(render_plan(executor, plan, execute=True, before_first=read_catalog,
                                                placement=placement, guard=guard, start=start,
                                                at_base=cache.at_base if cache is not None else None, **compat))
                finally:
                    guard.mode = READ_ONLY
            if cache is not None:
                notes.extend(cache.notes)
        else:
            placement = _placement(layout, connection, execute=False) if layout else None
            rendered = list(render_plan(executor, plan, execute=False, before_first=read_catalog,
                                        placement=placement, guard=guard, **compat))
    except DatabaseError as exc:
        hint = " (the scratch database needs a role with CREATEDB)" if scratch else ""
        raise GateError(f"rendering failed on database '{alias}'{hint}: {exc}") from None
    finally:
        if layout is not None:
            connection.set_schema_to_public()
    if layout is not None:
        rendered = [replace(r, runs=layout.runs(r.app_label)) for r in rendered]

    if plan.lint:
        notes.append(_compat_note(rendered, config, each=options.each))
    # What the database already has before the first linted migration (column types, validated
    # NOT NULL checks, foreign keys, indexes), so that e.g. SET NOT NULL after an earlier deploy's
    # VALIDATE CONSTRAINT is known not to scan.
    catalog = catalogs[0] if catalogs else Catalog.empty()
    if progress is not None:
        progress.analysing(len(rendered), sum(len(r.statements) for r in rendered))
    results = analyse_migrations(rendered, sizes=sizes, pg_version=pg_version, config=config, catalog=catalog,
                                 each=options.each)
    if progress is not None:
        progress.analysed()
    if prefetch is not None:
        prefetch.close()  # its session must be gone before pre-flight reads pg_locks
    if not scratch and PREFLIGHT_RULE.id not in config.disable:
        with guard.trusted():  # the gate's own read-only transaction; no migration code runs any more
            results = _preflight(connection, results, config, sizes, {r.label: r.runs for r in rendered},
                                  options.lock_timeout)
    results = [replace(r, database=alias) for r in results]
    # A name that did not resolve (or resolved in several schemas) is counted as large: say why, once.
    notes.extend(dict.fromkeys(f.size.note for r in results for f in r.findings if f.size and f.size.note))
    return results, DatabaseInfo(alias, pg_version, pg_source, sizes_source, search_path, path_source), notes


def _tenants(layout: TenantLayout, connection, prefetch: _Prefetch | None, snapshot: Snapshot | None,
             production: bool) -> tuple[TenantLayout, list[str]]:
    """The layout with its tenant schemas: read from the tenant table of the target database, else
    every schema of the snapshot but public."""
    if production:
        try:
            if prefetch is not None:
                tenants, notes = prefetch.tenants()
            else:
                connection.ensure_connection()
                tenants, notes = read_tenant_schemas(connection.connection, layout)
        except (DatabaseError, psycopg.Error) as exc:
            raise GateError(f"cannot read the tenants of database '{connection.alias}' from "
                            f"{layout.public}.{layout.tenant_table}: {' '.join(str(exc).split())}") from None
        return layout.with_tenants(tenants, f"the rows of {layout.tenant_table}"), notes
    if snapshot is not None:
        return layout.with_tenants(tenants_from_snapshot(snapshot, layout), "every schema of the snapshot "
                                   f"but {', '.join((layout.public, *layout.extra))}"), []
    return layout.with_tenants((), "none known without a database or a snapshot"), []


# The tenant schema of a scratch database: the tenant apps' migrations run there, the shared ones in public.
_SCRATCH_TENANT = "migration_guard_tenant"


def _placement(layout: TenantLayout, connection, *, execute: bool):
    """Where each migration runs on ``connection``, as ``migrate_schemas`` runs it: in public for a
    shared app, in a tenant schema for a tenant app (the first tenant having it when rendering against
    the target; a schema of the scratch database when applying there), in both for an app in both."""
    created = []

    def public():
        connection.set_schema_to_public()

    def tenant(schema: str, tenant_type: str | None):
        def switch():
            if execute and not created:
                with connection.cursor() as cursor:
                    cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{_SCRATCH_TENANT}"')
                created.append(True)
            if tenant_type is not None:
                connection.set_schema(schema, tenant_type=tenant_type)
            else:
                connection.set_schema(schema)
        return switch

    def place(migration):
        label = migration.app_label
        targets = [public] if layout.runs_in_public(label) else []
        if execute:
            types = [t for t, apps in layout.tenant_apps.items() if label in apps]
            if types:
                targets.append(tenant(_SCRATCH_TENANT, types[0]))
        else:
            tenants = layout.tenant_schemas_of(label)
            if tenants:
                targets.append(tenant(tenants[0].name, tenants[0].type))
        # An app in neither list: the router skips its operations everywhere; rendered in public.
        return targets or [public]

    return place


def _search_path(config: Config, snapshot: Snapshot | None, prefetch: _Prefetch | None, connection,
                 production: bool) -> tuple[tuple[str, ...] | None, str]:
    """The search_path migrate's session will have, and where that comes from: the configuration, else
    a session of the target database opened as Django opens it (settings of its role and database,
    OPTIONS, assume_role), else the snapshot's."""
    if config.search_path is not None:
        return config.search_path, "from the configuration"
    if production:
        try:
            path = prefetch.search_path() if prefetch is not None else read_search_path(connection)
        except (DatabaseError, StatsError) as exc:
            raise GateError(f"cannot read the search_path of database '{connection.alias}': {exc}") from None
        return path, "the session's"
    if snapshot is not None and snapshot.search_path is not None:
        return snapshot.search_path, "the snapshot's"
    return None, "not known"


def _running_code(executor, plan, options: GateOptions, alias: str, *, by_files: bool):
    """The migrations whose models the running code has, for the backward-compatibility rules, and
    how to say so: the ones applied on the database (collect mode, and --scratch, which lints what
    the database has not applied); with --since/--files, every migration that neither is linted nor
    depends on a linted one (the base ref's); with a named migration, None: the ones before it; with
    --each, the ones before each migration (render says so)."""
    if options.migration_name is not None or options.each:
        return None, None
    if by_files:
        running = migrations_before(executor.loader.graph, plan.lint)
        where = f"at the merge base with {options.since}" if options.since else "not among the given files"
        return running, f"the {len(running)} migration(s) {where} (and not depending on a linted one)"
    return plan.applied, f'the {len(plan.applied)} migration(s) applied on database "{alias}"'


def _compat_note(rendered, config: Config, *, each: bool) -> str:
    """Which code the backward-compatibility rules took to be running, as a note on the report."""
    basis = next((m.deploy.basis for m in rendered if m.linted and m.deploy is not None), None)
    if basis is not None and each:
        basis = "the migrations before each one (--each: every migration its own deploy)"
    if basis is None:
        return "backward compatibility (MG020-MG027): not checked, no migration was rendered"
    if config.deploy_order == "code_first":
        return (f"backward compatibility (MG020-MG027, deploy_order = code_first): the new code runs against "
                f"the schema of {basis} before migrate")
    return (f"backward compatibility (MG020-MG027, deploy_order = migrate_first): the running code is that of "
            f"{basis}")


def _preflight(connection, results: list[MigrationResult], config: Config, sizes: TableSizes,
               runs: dict, lock_timeout: str | None) -> list[MigrationResult]:
    """Add MG009 findings: sessions holding locks the pending migrations would queue behind, on every
    copy of a table the migrations reach (the schema the search_path resolves it to; every tenant's)."""
    created = {a.table for r in results for s in r.statements for a in s.effects.actions
               if a.kind is ActionKind.CREATE_TABLE and a.table}
    planned = planned_locks(results, created, sizes=sizes, runs=runs, lock_timeout=lock_timeout)
    try:
        sessions = read_sessions(connection, {lock.relation for lock in planned})
    except DatabaseError as exc:
        raise GateError(f"pre-flight: cannot read pg_locks/pg_stat_activity on '{connection.alias}': {exc}") from None
    found = check_sessions(sessions, planned, max_age_seconds=config.preflight_max_age_seconds,
                           severity_override=config.severity.get(PREFLIGHT_RULE.id))
    by_migration: dict[str, list] = {}
    for finding in found:
        by_migration.setdefault(finding.migration, []).append(finding)
    return [replace(r, findings=r.findings + tuple(by_migration.get(r.label, ()))) for r in results]


def _operator_approvals(options: GateOptions) -> list[Approval]:
    """``--approve MIGRATION:RULE --reason ...``: deploy-time approvals for this run only."""
    if options.approve and not (options.approve_reason or "").strip():
        raise GateError("--approve needs --reason: say why this is acceptable; the report records it")
    known = rule_ids()
    approvals = []
    for number, (migration, rule) in enumerate(options.approve, start=1):
        if rule.upper() not in known:
            raise GateError(f"--approve {migration}:{rule}: no rule {rule!r}; `migration-guard rules` lists them")
        approvals.append(Approval(
            migration=migration, rule=rule.upper(), fingerprint="*", reason=options.approve_reason.strip(),
            approved_by=options.approve_by or "the operator (--approve)", number=-number,
        ))
    return approvals


def _snapshot_age_note(snapshot: Snapshot, options: GateOptions, config: Config) -> list[str]:
    try:
        taken = dt.datetime.fromisoformat(snapshot.taken_at)
    except ValueError:
        return [f"the snapshot {options.stats_file} has no readable date ({snapshot.taken_at!r})"]
    if taken.tzinfo is None:
        taken = taken.replace(tzinfo=dt.timezone.utc)
    now = options.now or dt.datetime.now(dt.timezone.utc)
    age = now - taken
    if age > dt.timedelta(days=config.stats_max_age_days):
        return [f"the snapshot {options.stats_file} is {age.days} days old (more than stats_max_age_days = "
                f"{config.stats_max_age_days}): refresh it with `migration-guard stats dump`"]
    return []


@contextlib.contextmanager
def _embedded_server(alias: str, config: Config):
    """Point ``alias`` at a throwaway PostgreSQL from the embedded wheel for the run (CI with no
    database service). With the base cache, the server starts from a copy of the data folder kept
    by earlier runs (their templates), and a run that made a template keeps its own."""
    try:
        from migration_guard.embedded import EmbeddedPostgres, EmbeddedPostgresError, default_bin_dir
        bin_dir = default_bin_dir()
        cluster = EmbeddedCluster.for_binaries(bin_dir) if enabled(config) else None
        server = EmbeddedPostgres(bin_dir)
        kept = cluster is not None and cluster.usable()
        try:
            # The templates' folders are copied when the run uses them (most runs use the newest,
            # copied while the migrations load).
            if kept:
                later, newest = cluster.later()
                server.start(data_from=cluster.data, later=later, soon=newest)
            else:
                server.start()
        except EmbeddedPostgresError:
            if not kept:
                raise
            server.stop()
            server.start()  # the kept folder does not start: a fresh one, and it is replaced at the end
        before = _embedded_templates(server) if cluster is not None else None
    except ImportError:
        raise GateError("--embedded needs the embedded server: pip install 'migration-guard[embedded]'") from None
    except Exception as exc:  # EmbeddedPostgresError, missing binaries
        raise GateError(f"--embedded: the embedded PostgreSQL did not start: {exc}") from None
    connection = connections[alias]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(server.django_database("postgres"))
    connection.settings_dict["PASSWORD"] = ""
    connection.settings_dict["OPTIONS"] = {}
    try:
        yield server
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        keep = None
        if cluster is not None and before is not None:
            after = _embedded_templates(server)
            # Kept when the run made a template (one it used as its scratch database is gone from
            # this copy only); complete, or not at all.
            if after is not None and {t["name"] for t in after} - {t["name"] for t in before}:
                with contextlib.suppress(EmbeddedPostgresError):
                    server.copy_later()
                if server.complete:
                    keep = functools.partial(cluster.keep, templates=after)
        try:
            server.stop(keep=keep)
        except (EmbeddedPostgresError, OSError):  # the run's result stands; the temp folder is removed anyway
            pass


def _embedded_templates(server) -> list[dict] | None:
    """The templates in the embedded server (None: they cannot be read)."""
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn, conn.cursor() as cursor:
            return template_rows(cursor)
    except psycopg.Error:
        return None


def _read_catalog(connection) -> Catalog:
    """The catalog of the database as it is now, read in a READ ONLY transaction (a savepoint
    inside a caller's transaction), rolled back at the end."""
    connection.ensure_connection()
    raw = connection.connection
    with raw.transaction(force_rollback=True):
        raw.execute("SET TRANSACTION READ ONLY")
        raw.execute("SET LOCAL statement_timeout = 30000")
        return catalog_from_database(raw)


class _Prefetch:
    """Reads the catalog (and the table sizes, when they come from the database) on a second
    session of the same database, in a thread, while the main one loads the migrations: a few
    tens of milliseconds of server time that would otherwise add to every run (collect mode only,
    where the database already is at the state the catalog must describe). The session is a
    Django connection of the same alias, so it starts as the main one does (time zone, role,
    OPTIONS), gets the same timeouts, reads only, and is closed as soon as it is done."""

    def __init__(self, alias: str, *, stats: bool, layout: TenantLayout | None = None, privileges: bool = False):
        self._results: dict[str, object] = {}
        self._thread = threading.Thread(target=self._run, args=(alias, stats, layout, privileges), daemon=True,
                                        name="migration-guard-prefetch")
        self._thread.start()

    def _run(self, alias: str, stats: bool, layout: TenantLayout | None, privileges: bool) -> None:
        wrapper = connections.create_connection(alias)  # this thread's own, never the shared one
        try:
            wrapper.ensure_connection()
            with wrapper.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = '{_SESSION_STATEMENT_TIMEOUT}'")
                cursor.execute(f"SET lock_timeout = '{_SESSION_LOCK_TIMEOUT}'")
            if stats:
                self._results["stats"] = _attempt(read_database_stats, wrapper)
            self._results["search_path"] = _attempt(read_search_path, wrapper)
            if layout is not None:
                self._results["tenants"] = _attempt(lambda w: read_tenant_schemas(w.connection, layout), wrapper)
                tenants = self._results["tenants"]
                if not isinstance(tenants, Exception) and tenants[0]:
                    # The catalog as a tenant migration sees it: its tenant's tables, then public's.
                    first = tenants[0][0]
                    if first.type is not None:
                        wrapper.set_schema(first.name, tenant_type=first.type)
                    else:
                        wrapper.set_schema(first.name)
                    wrapper.cursor().close()  # the tenants backend sets search_path for a new cursor
            self._results["catalog"] = _attempt(_read_catalog, wrapper)
            if privileges:
                self._results["privileges"] = _attempt(_write_privileges, wrapper)
        except Exception as exc:  # the connection itself: every read fails with it
            for name in ("stats", "search_path", "tenants", "catalog", "privileges"):
                self._results.setdefault(name, exc)
        finally:
            with contextlib.suppress(Exception):
                wrapper.close()
            # django.contrib.postgres looks up hstore's OIDs through connections[alias] when a connection
            # starts: in this thread that opens one more session, left idle (CREATE DATABASE ... TEMPLATE
            # of this database then fails) unless closed here.
            with contextlib.suppress(Exception):
                connections.close_all()

    def _get(self, name: str):
        self._thread.join()
        value = self._results[name]
        if isinstance(value, Exception):
            raise value
        return value

    def stats(self) -> Snapshot:
        """The sizes read (raises what reading them raised)."""
        return self._get("stats")

    def search_path(self) -> tuple[str, ...]:
        """The session's effective search_path (raises what reading it raised)."""
        return self._get("search_path")

    def tenants(self):
        """The tenant schemas read, and notes (raises what reading them raised)."""
        return self._get("tenants")

    def catalog(self) -> Catalog:
        """The catalog read (raises what reading it raised)."""
        return self._get("catalog")

    def privileges_note(self, alias: str) -> list[str]:
        """Whether the role could write, for the report's start (release-gate mode)."""
        self._thread.join()
        found = self._results.get("privileges")
        if found is None or isinstance(found, Exception):
            return [f"could not read the role's privileges on database '{alias}': only a read-only role stops "
                    "migration code that opens its own connection"]
        role, can = found
        if not can:
            return [f'the role "{role}" has no write privilege on database \'{alias}\': nothing can write there '
                    "through the gate, not even migration code that opens its own connection"]
        return [f'the role "{role}" can write to database \'{alias}\' ({", ".join(can)}): the gate refuses writes '
                "on its own sessions, but only a read-only role stops migration code that opens its own connection"]

    def close(self) -> None:
        """Wait for the second session to end (pre-flight must not see it in pg_locks)."""
        self._thread.join()


_PRIVILEGES_SQL = """
SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
       has_database_privilege(current_database(), 'CREATE'),
       (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_%'
          AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')),
       (SELECT count(*) FROM pg_catalog.pg_namespace n
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
          AND has_schema_privilege(n.oid, 'CREATE'))
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""


def _write_privileges(connection) -> tuple[str, list[str]]:
    """(role, the ways it could write): superuser, CREATEROLE, CREATEDB, CREATE on the database,
    writes on tables, CREATE in schemas."""
    raw = connection.connection
    with raw.transaction(force_rollback=True):
        raw.execute("SET TRANSACTION READ ONLY")
        role, superuser, createrole, createdb, create_db, tables, schemas = raw.execute(_PRIVILEGES_SQL).fetchone()
    can = [label for flag, label in ((superuser, "superuser"), (createrole, "CREATEROLE"), (createdb, "CREATEDB"),
                                     (create_db, "CREATE on the database")) if flag]
    if tables:
        can.append(f"INSERT/UPDATE/DELETE/TRUNCATE on {tables:,} table(s)")
    if schemas:
        can.append(f"CREATE in {schemas:,} schema(s)")
    return role, can


def _connect_read_only(connection, guard: Guard) -> None:
    """Open the target session read-only. A pooler that refuses start-up options (PgBouncer without
    ``ignore_startup_parameters = options``) gets the same settings as the first statements instead,
    still before any migration module is imported."""
    try:
        connection.ensure_connection()
        return
    except DatabaseError as exc:
        if "startup parameter" not in str(exc) and "options" not in str(exc):
            raise
    options = dict(connection.settings_dict["OPTIONS"])
    options["options"] = options["options"].replace(_READ_ONLY_OPTIONS, "").strip()
    if not options["options"]:
        del options["options"]
    connection.settings_dict["OPTIONS"] = options
    connection.ensure_connection()
    with guard.trusted(), connection.cursor() as cursor:
        cursor.execute("SET default_transaction_read_only = on")
        cursor.execute(f"SET statement_timeout = '{_SESSION_STATEMENT_TIMEOUT}'")
        cursor.execute(f"SET lock_timeout = '{_SESSION_LOCK_TIMEOUT}'")


def _attempt(read, connection):
    try:
        return read(connection)
    except Exception as exc:
        return exc


def _pg_version(options: GateOptions, snapshot: Snapshot | None, config: Config, server: int | None, *,
                production: bool) -> tuple[int, str]:
    """The PostgreSQL major to model and where it came from. A server that is not production's
    (--embedded's, or CI's with --since/--files) counts only when nothing says what production runs."""
    if options.pg_version is not None:
        return options.pg_version, "--pg-version"
    if server is not None and production:
        return _supported(server), "the server's own version"
    if snapshot is not None and snapshot.pg_version:
        return snapshot.pg_version, "from the snapshot"
    if config.pg_version is not None:
        return config.pg_version, "from the configuration"
    if server is not None:
        which = "the embedded server's" if options.embedded else "the CI server's"
        return _supported(server), f"{which} own version; production's may differ: set --pg-version"
    return DEFAULT_PG_VERSION, "assumed; set --pg-version"


def _supported(server: int) -> int:
    if server not in SUPPORTED_PG_VERSIONS:
        raise GateError(f"the server runs PostgreSQL {server}; migration_guard models 14 to 18: give "
                        "--pg-version N to model one of them")
    return server


def _with_findings(results: list[MigrationResult], findings) -> list[MigrationResult]:
    """Put the (approval-marked) findings back on their migrations, in order."""
    remaining = list(findings)
    updated = []
    for result in results:
        count = len(result.findings)
        updated.append(replace(result, findings=tuple(remaining[:count])))
        remaining = remaining[count:]
    return updated


def _load_problem(exc: BaseException) -> str:
    """Where loading failed (file and line) and why, for a migration that does not import."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {type(exc).__name__}: {exc.msg}; fix the file and run again"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/migrations/" in f.filename]
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    if isinstance(exc, SystemExit):
        return f"{where}it called sys.exit({exc.code!r}) while it was imported; remove the call and run again"
    return f"{where}{type(exc).__name__}: {exc}; fix it and run again"


def _connection_problem(connection, exc: Exception) -> str:
    params = connection.settings_dict
    where = f"{redact_dsn(str(params.get('NAME')))} on {params.get('HOST') or 'localhost'}:{params.get('PORT') or 5432}"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if params.get("PASSWORD"):
        first_line = first_line.replace(str(params["PASSWORD"]), "***")
    return (
        f"cannot read database '{connection.alias}' ({where}): {first_line}. "
        "Check DATABASES and that the server is reachable, or lint without production access: "
        "--since REF --stats FILE"
    )
