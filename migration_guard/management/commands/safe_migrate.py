"""``python manage.py safe_migrate``: run the gate, then apply what it passed, migration by
migration, under a short ``lock_timeout``, retrying a migration whose statement gave up waiting for
a lock (see :mod:`migration_guard.apply`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from importlib import import_module
from pathlib import Path

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, SystemCheckError
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import DatabaseError, connections
from django.db.migrations.exceptions import AmbiguityError, InconsistentMigrationHistory
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ModelState
from django.utils.module_loading import module_has_submodule

from migration_guard import __version__, interrupt
from migration_guard.apply import (
    GaveUp,
    MigrationFailed,
    RetryPolicy,
    SafeExecutor,
    autovacuum_note,
    format_ms,
    invalid_indexes_in_the_way,
    parse_duration,
)
from migration_guard.config import ConfigError
from migration_guard.formats import FORMATS, find_source_root
from migration_guard.gate import GateError, GateOptions, run_gate
from migration_guard.management.commands.lint_migrations import _operator
from migration_guard.report import migration_status

EXIT_APPLIED, EXIT_BLOCKED, EXIT_ERROR, EXIT_GAVE_UP = 0, 1, 2, 3
LOG_SCHEMA_VERSION = 1


class Command(BaseCommand):
    help = (
        "Run the gate on the migrations migrate would apply, then apply them one by one with a short "
        "lock_timeout, retrying (with backoff) a migration whose statement gave up waiting for a lock. "
        "Exit 0: applied; 1: blocked by the gate, nothing applied; 2: could not run; 3: gave up after "
        "the retries."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("app_label", nargs="?", help="Apply only this app's migrations (and what they depend on).")
        parser.add_argument("migration_name", nargs="?",
                            help="Apply up to this migration (a prefix is enough), as migrate does. "
                                 "Unapplying is migrate's job: a target behind the database is refused.")
        parser.add_argument("--database", default="default", metavar="ALIAS",
                            help="The database to apply to (default: 'default'); the gate reads the same one.")
        parser.add_argument("--plan", action="store_true",
                            help="Run the gate and print what would run, with how each migration would be "
                                 "retried (after a text report on stdout, else on stderr); apply nothing.")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help="Tells post_migrate handlers not to prompt, as for migrate.")
        parser.add_argument("--skip-checks", action="store_true", help="Skip Django's system checks.")
        parser.add_argument("--lock-timeout", default="2s", metavar="DURATION",
                            help="How long any statement may wait for a lock before the attempt gives up "
                                 "(SET lock_timeout), e.g. 500ms, 2s (default: 2s).")
        parser.add_argument("--statement-timeout", metavar="DURATION",
                            help="An upper bound on any statement's run time (SET statement_timeout; default: "
                                 "the role's own). A statement that hits it fails the run; it is not retried.")
        parser.add_argument("--attempts", type=int, default=10, metavar="N",
                            help="Attempts per migration before giving up (default: 10).")
        parser.add_argument("--backoff", default="1s", metavar="DURATION",
                            help="The wait after the first failed attempt; it doubles after each one, half "
                                 "of it random (default: 1s).")
        parser.add_argument("--max-backoff", default="30s", metavar="DURATION",
                            help="The longest wait between attempts (default: 30s).")
        parser.add_argument("--log", type=Path, metavar="FILE",
                            help="Write a JSON log of the run (gate verdict, each migration's attempts, waits, "
                                 "blockers and times) to FILE, whatever the outcome.")
        parser.add_argument("--approve", action="append", metavar="MIGRATION:RULE", default=[],
                            help="Let this gate finding through for this run only (e.g. "
                                 "shop.0004_add_index:MG002); needs --reason. Repeatable.")
        parser.add_argument("--reason", help="Why the --approve findings are acceptable (recorded in the report).")
        parser.add_argument("--approvals", metavar="FILE", type=Path,
                            help="The approvals file (default: approvals_file from the configuration, "
                                 "else migration-approvals.toml).")
        parser.add_argument("--config", metavar="PYPROJECT", type=Path,
                            help="A pyproject.toml with [tool.migration_guard] (default: the nearest one).")
        parser.add_argument("--format", choices=list(FORMATS), default="text",
                            help="The gate's report format on stdout (default: text).")

    def handle(self, *args, **options):
        """Gate, then apply; every ending writes the log and is an exit code with one line on
        stderr (or the gate's report), never a traceback. A cancelled pipeline job gets SIGTERM: it
        ends like Ctrl-C (the statement is cancelled, an atomic migration rolled back)."""
        log = _RunLog(options["log"], options["database"])
        with interrupt.handle_signals():
            try:
                code = self._safe_migrate(options, log)
            except CommandError as exc:
                log.finish("failed", exc.returncode, str(exc))
                raise
            except KeyboardInterrupt as exc:
                stopped = str(exc) if isinstance(exc, interrupt.Stopped) else "interrupted"
                log.finish("interrupted", interrupt.exit_code(exc), stopped)
                raise CommandError(f"{stopped}: {log.where_stopped()}", returncode=interrupt.exit_code(exc)) from None
            except BaseException as exc:  # SystemExit from migration code, or a bug
                if log.executor is None:  # in the gate: nothing was checked
                    message = interrupt.unexpected_error(exc)
                elif isinstance(exc, SystemExit):
                    message = f"migration code called sys.exit({exc.code!r}): {log.where_stopped()}"
                else:
                    message = f"stopped on an unexpected error ({type(exc).__name__}): {log.where_stopped()}"
                log.finish("failed", EXIT_ERROR, message)
                raise CommandError(message, returncode=EXIT_ERROR) from None
            finally:
                self._write_log(log)
        if code:
            sys.exit(code)

    def _safe_migrate(self, options, log: _RunLog) -> int:
        policy = _policy(options)
        log.settings(policy)
        approve = _approvals(options["approve"])
        if options["log"] is not None and not _writable(options["log"]):
            raise CommandError(f"--log {options['log']}: cannot write there (no such folder, or no permission)",
                               returncode=EXIT_ERROR)
        alias = options["database"]
        if alias not in connections:
            raise CommandError(f"no database '{alias}' in DATABASES; choose one with --database", returncode=EXIT_ERROR)
        if not options["skip_checks"]:
            try:
                self.check(databases=[alias])
            except SystemCheckError as exc:
                raise CommandError(str(exc), returncode=EXIT_ERROR) from None
        for app_config in apps.get_app_configs():  # as migrate does: their signal handlers
            if module_has_submodule(app_config.module, "management"):
                import_module(".management", app_config.name)
        connection = connections[alias]

        _, _, plan = _plan(MigrationExecutor, connection, options)
        nodes = [(m.app_label, m.name) for m, _ in plan]
        log.planned([f"{a}.{n}" for a, n in nodes])
        if not plan:
            self._say(options, "No migrations to apply.")
            log.finish("nothing_to_apply", EXIT_APPLIED)
            return EXIT_APPLIED

        try:
            report = run_gate(GateOptions(
                databases=(alias,),
                migrations=tuple(nodes),
                approve=tuple(approve),
                approve_reason=options["reason"],
                approve_by=_operator(),
                approvals_file=options["approvals"],
                config_file=options["config"],
                lock_timeout=format_ms(policy.lock_timeout_ms),
            ))
        except (GateError, ConfigError) as exc:
            raise CommandError(f"the gate could not run: {exc}", returncode=EXIT_ERROR) from None
        finally:
            connection.close()  # the gate's session settings (read-only, timeouts) end with it
        color = options.get("force_color") or (not options.get("no_color") and sys.stdout.isatty())
        self.stdout.write(FORMATS[options["format"]].render(report, find_source_root(Path.cwd()), color), ending="")
        log.gate(report)
        if report.exit_code:
            blocked = [r.label for r in report.migrations if migration_status(r) == "blocked"]
            self.stderr.write(f"safe_migrate: the gate blocked {len(blocked)} migration(s) "
                              f"({', '.join(blocked)}); nothing was applied.")
            log.finish("blocked", EXIT_BLOCKED)
            return EXIT_BLOCKED
        if options["plan"]:
            # After a text report on stdout; beside any other format, on stderr (stdout stays one document).
            out = self.stdout if options["format"] == "text" else self.stderr
            out.write(_plan_text(plan, policy, alias, report), ending="")
            log.finish("planned", EXIT_APPLIED)
            return EXIT_APPLIED

        problems = invalid_indexes_in_the_way(
            connection, [s.parsed.statement.sql for r in report.migrations for s in r.statements])
        if problems:
            raise CommandError("; ".join(problems), returncode=EXIT_ERROR)
        note = autovacuum_note(connection, policy)
        if note:
            self._say(options, note)
        return self._apply(connection, options, policy, nodes, log)

    def _apply(self, connection, options, policy: RetryPolicy, gated: list, log: _RunLog) -> int:
        """Apply the plan as migrate does (signals, executor, records), with SafeExecutor."""
        verbosity, interactive = options["verbosity"], options["interactive"]
        executor, targets, plan = _plan(lambda c: SafeExecutor(c, policy, say=lambda line: self._say(options, line)),
                                        connection, options)
        log.executor = executor
        now = [(m.app_label, m.name) for m, _ in plan]
        if set(now) != set(gated):
            executor.close()
            raise CommandError("the migrations to apply changed while the gate ran (another deploy?): "
                               f"gated {_labels(gated)}, now {_labels(now)}; nothing was applied, run again",
                               returncode=EXIT_ERROR)
        try:
            pre_state = executor._create_project_state(with_applied_migrations=True)
            emit_pre_migrate_signal(verbosity, interactive, connection.alias, stdout=self.stdout,
                                    apps=pre_state.apps, plan=plan)
            post_state = executor.migrate(targets, plan=plan, state=pre_state.clone())
            executor.reset_timeouts()
        except GaveUp as exc:
            log.finish("gave_up", EXIT_GAVE_UP, str(exc))
            self.stderr.write(f"safe_migrate: {exc}")
            return EXIT_GAVE_UP
        except MigrationFailed as exc:
            raise CommandError(str(exc), returncode=EXIT_ERROR) from None
        except DatabaseError as exc:
            raise CommandError(f"database '{connection.alias}': {exc}".strip(), returncode=EXIT_ERROR) from None
        finally:
            executor.close()
        # As migrate does: post_migrate handlers see every model, re-rendered with its relations.
        post_state.clear_delayed_apps_cache()
        post_apps = post_state.apps
        with post_apps.bulk_update():
            keys = []
            for model_state in post_apps.real_models:
                key = model_state.app_label, model_state.name_lower
                keys.append(key)
                post_apps.unregister_model(*key)
        post_apps.render_multiple([ModelState.from_model(apps.get_model(*key)) for key in keys])
        emit_post_migrate_signal(verbosity, interactive, connection.alias, stdout=self.stdout, apps=post_apps,
                                 plan=plan)
        log.finish("applied", EXIT_APPLIED)
        self._say(options, f"applied {len(plan)} migration(s) in {log.elapsed():.2f} s")
        return EXIT_APPLIED

    def _say(self, options, line: str) -> None:
        if options["verbosity"] >= 1:
            self.stderr.write(line)

    def _write_log(self, log: _RunLog) -> None:
        if log.path is None:
            return
        try:
            log.path.write_text(json.dumps(log.as_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            self.stderr.write(f"safe_migrate: could not write the log {log.path}: {exc.strerror or exc}")


def _plan(make_executor, connection, options):
    """The executor, migrate's targets and migrate's plan for the command's arguments (forwards
    only)."""
    try:
        connection.prepare_database()
        executor = make_executor(connection)
        executor.loader.check_consistent_history(connection)
    except InconsistentMigrationHistory as exc:
        raise CommandError(f"the migration history of database '{connection.alias}' is inconsistent: {exc}",
                           returncode=EXIT_ERROR) from None
    except DatabaseError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CommandError(f"cannot read database '{connection.alias}': {first}; check DATABASES and that the "
                           "server is reachable", returncode=EXIT_ERROR) from None
    loader = executor.loader
    conflicts = loader.detect_conflicts()
    if conflicts:
        listing = "; ".join(f"{app}: {', '.join(sorted(names))}" for app, names in sorted(conflicts.items()))
        raise CommandError(f"conflicting migrations ({listing}); merge them with `makemigrations --merge` first",
                           returncode=EXIT_ERROR)
    app_label, name = options["app_label"], options["migration_name"]
    if app_label is not None:
        try:
            apps.get_app_config(app_label)
        except LookupError as exc:
            raise CommandError(str(exc), returncode=EXIT_ERROR) from None
        if app_label not in loader.migrated_apps:
            raise CommandError(f"app '{app_label}' has no migrations", returncode=EXIT_ERROR)
    if app_label is not None and name is not None:
        if name == "zero":
            raise CommandError("safe_migrate applies migrations; to unapply them use migrate", returncode=EXIT_ERROR)
        try:
            migration = loader.get_migration_by_prefix(app_label, name)
        except AmbiguityError:
            raise CommandError(f"more than one migration of '{app_label}' matches '{name}'",
                               returncode=EXIT_ERROR) from None
        except KeyError:
            raise CommandError(f"no migration of app '{app_label}' matches '{name}'", returncode=EXIT_ERROR) from None
        target = (app_label, migration.name)
        if target not in loader.graph.nodes and target in loader.replacements:  # as migrate does
            target = loader.replacements[target].replaces[-1]
        targets = [target]
    elif app_label is not None:
        targets = [key for key in loader.graph.leaf_nodes() if key[0] == app_label]
    else:
        targets = loader.graph.leaf_nodes()
    plan = executor.migration_plan(targets)
    backwards = [f"{m.app_label}.{m.name}" for m, back in plan if back]
    if backwards:
        raise CommandError(f"that target would unapply {', '.join(backwards)}; safe_migrate only applies "
                           "migrations: use migrate to unapply", returncode=EXIT_ERROR)
    return executor, targets, plan


def _policy(options) -> RetryPolicy:
    try:
        lock_timeout = parse_duration(options["lock_timeout"], "--lock-timeout")
        statement_timeout = (parse_duration(options["statement_timeout"], "--statement-timeout")
                             if options["statement_timeout"] is not None else None)
        backoff = parse_duration(options["backoff"], "--backoff")
        max_backoff = parse_duration(options["max_backoff"], "--max-backoff")
    except ValueError as exc:
        raise CommandError(str(exc), returncode=EXIT_ERROR) from None
    if lock_timeout <= 0:
        raise CommandError("--lock-timeout must be more than 0 (0 turns the timeout off: use migrate for that)",
                           returncode=EXIT_ERROR)
    if statement_timeout == 0:
        raise CommandError("--statement-timeout must be more than 0 (leave it out for none)", returncode=EXIT_ERROR)
    if options["attempts"] < 1:
        raise CommandError("--attempts must be at least 1", returncode=EXIT_ERROR)
    if max_backoff < backoff:
        raise CommandError("--max-backoff must not be shorter than --backoff", returncode=EXIT_ERROR)
    return RetryPolicy(lock_timeout_ms=lock_timeout, statement_timeout_ms=statement_timeout,
                       attempts=options["attempts"], backoff_ms=backoff, max_backoff_ms=max_backoff)


def _approvals(specs: list[str]) -> list[tuple[str, str]]:
    approve = []
    for spec in specs:
        migration, _, rule = spec.rpartition(":")
        if not migration or "." not in migration or not rule:
            raise CommandError(f"--approve {spec!r}: write MIGRATION:RULE, e.g. shop.0004_add_index:MG002",
                               returncode=EXIT_ERROR)
        approve.append((migration, rule))
    return approve


def _plan_text(plan, policy: RetryPolicy, alias: str, report) -> str:
    """``--plan``: each migration, how it would be retried, and its operations."""
    statuses = {r.label: migration_status(r) for r in report.migrations}
    lines = ["", f"Plan: {len(plan)} migration(s) on database \"{alias}\". Every statement waits at most "
                 f"{format_ms(policy.lock_timeout_ms)} for a lock (lock_timeout)"
                 + (f" and runs at most {format_ms(policy.statement_timeout_ms)}" if policy.statement_timeout_ms
                    else "")
                 + f"; up to {policy.attempts} attempt(s) per migration, waiting {format_ms(policy.backoff_ms)} "
                   f"after the first failed one, doubling up to {format_ms(policy.max_backoff_ms)}, with jitter."]
    for migration, _ in plan:
        label = f"{migration.app_label}.{migration.name}"
        how = ("atomic: a failed attempt is rolled back and the migration retried whole" if migration.atomic else
               "not atomic: a failed attempt is resumed at the operation that failed")
        lines.append(f"  {label}  [gate: {statuses.get(label, 'not linted')}; {how}]")
        for operation in migration.operations:
            try:
                text = operation.describe()
            except Exception:
                text = type(operation).__name__
            lines.append(f"    {text}")
    return "\n".join(lines) + "\n"


def _labels(nodes) -> str:
    return ", ".join(f"{a}.{n}" for a, n in nodes) or "none"


def _writable(path: Path) -> bool:
    folder = path.parent if str(path.parent) else Path(".")
    if path.exists():
        return path.is_file() and os.access(path, os.W_OK)
    return folder.is_dir() and os.access(folder, os.W_OK)


class _RunLog:
    """The JSON log (``--log``): what the run did, written whatever its outcome."""

    def __init__(self, path: Path | None, database: str):
        self.path = path
        self.started = time.monotonic()
        self.data: dict = {
            "schema_version": LOG_SCHEMA_VERSION,
            "tool": {"name": "migration_guard", "version": __version__, "command": "safe_migrate"},
            "database": database,
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "settings": None,
            "gate": None,
            "status": "failed",
            "exit_code": EXIT_ERROR,
            "error": None,
            "seconds": None,
            "migrations": [],
        }
        self.plan: list[str] = []
        self.executor: SafeExecutor | None = None

    def settings(self, policy: RetryPolicy) -> None:
        self.data["settings"] = {
            "lock_timeout_ms": policy.lock_timeout_ms, "statement_timeout_ms": policy.statement_timeout_ms,
            "attempts": policy.attempts, "backoff_ms": policy.backoff_ms, "max_backoff_ms": policy.max_backoff_ms,
        }

    def planned(self, labels: list[str]) -> None:
        self.plan = labels

    def gate(self, report) -> None:
        self.data["gate"] = {
            "exit_code": report.exit_code,
            "blocked": [r.label for r in report.migrations if migration_status(r) == "blocked"],
            "blocking_findings": sum(1 for f in report.findings if f.blocking),
            "warnings": sum(1 for f in report.findings if not f.blocking and f.approval is None),
            "approved": sum(1 for f in report.findings if f.approval is not None),
        }

    def finish(self, status: str, exit_code: int, error: str | None = None) -> None:
        self.data.update(status=status, exit_code=exit_code, error=error)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def where_stopped(self) -> str:
        runs = self.executor.runs if self.executor else []
        if not runs:
            return "nothing was applied"
        last = runs[-1]
        done = [r.migration for r in runs if r.status == "applied"]
        return (f"{len(done)} migration(s) applied; {last.migration} was {last.status}"
                + ("" if last.atomic else f" (non-atomic: {last.operations_done or 0} operation(s) committed)"))

    def as_json(self) -> dict:
        runs = {r.migration: r.as_json() for r in (self.executor.runs if self.executor else [])}
        self.data["migrations"] = [runs.get(label) or {"migration": label, "status": "not_run", "attempts": []}
                                   for label in self.plan]
        self.data["seconds"] = round(self.elapsed(), 3)
        return self.data
