"""The ``migration-guard`` command line: one click group, one subcommand per task.

Data goes to stdout, messages to stderr. Exit codes: 0 success, 1 something blocks,
2 the command could not run (bad input, unreachable database).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from migration_guard.stats import StatsError, format_bytes, load_snapshot, read_database_stats, write_snapshot

__all__ = ["main"]

EXIT_CANNOT_RUN = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"migration-guard: error: {message}", err=True)
    sys.exit(EXIT_CANNOT_RUN)


@click.group()
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
    ``--stats FILE``.
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
    click.echo(f"database {snapshot.database or '(unnamed)'}, PostgreSQL {snapshot.pg_version}, "
               f"taken {snapshot.taken_at or '(unknown)'}, {len(snapshot.tables)} tables")
    # Unknown row counts first: the rules treat them as the largest of all.
    ordered = sorted(snapshot.tables.items(),
                     key=lambda item: (item[1].rows is not None, -(item[1].rows or 0), item[0]))
    rows = [("table", "rows", "size")] + [
        (name, "unknown" if size.rows is None else f"{size.rows:,}", format_bytes(size.total_bytes))
        for name, size in ordered
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for name, count, size in rows:
        click.echo(f"{name:<{widths[0]}}  {count:>{widths[1]}}  {size:>{widths[2]}}".rstrip())
