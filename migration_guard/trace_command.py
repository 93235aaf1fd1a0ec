"""``migration-guard trace``: run SQL on a throwaway database and set what really happened next to
what the lock model predicted, statement by statement.

The database is always a scratch database (:mod:`migration_guard.scratch` creates and drops it): on
an embedded server started for the run (the default), or, with a DSN, on that server (``CREATE
DATABASE`` needed). It never runs a statement in a database that is not a scratch database.

Each statement is measured by :func:`migration_guard.locks.tracer.trace` (in ``BEGIN ... ROLLBACK``, or
from a second connection for the CONCURRENTLY family), then applied for real so that the next
statement sees it. Before each one, the model's catalog is read from the scratch database, so the
prediction knows what the earlier statements did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from migration_guard.guard import READ_ONLY, SCRATCH, Guard, StatementRefused, check_statement
from migration_guard.locks import analyse
from migration_guard.locks.introspect import catalog_from_database
from migration_guard.locks.modes import LockMode
from migration_guard.locks.tracer import Trace, TraceError, trace
from migration_guard.model import ActionKind, Effects, ParsedStatement
from migration_guard.redact import mask_sql
from migration_guard.scratch import ScratchError, copy_strategy, is_scratch_name, scratch_database, scratch_name

__all__ = ["TracedStatement", "differences", "trace_migrations", "trace_statements", "traced_json", "traced_text"]


@dataclass(frozen=True)
class TracedStatement:
    """One statement: the model's prediction, the server's measurement and how they differ."""

    parsed: ParsedStatement
    effects: Effects | None = None
    measured: Trace | None = None
    differences: tuple[str, ...] = ()
    skipped: str | None = None  # why it was not traced (does not parse, transaction control, failed, ...)

    failed: bool = False  # the server refused the statement (or the setup before it left it unable to run)

    @property
    def matches(self) -> bool:
        """Whether the model and the server agree (a skipped statement does not count as a difference)."""
        return not self.differences


@dataclass
class _Comparison:
    model: dict[str, LockMode]
    server: dict[str, object]
    found: list[str] = field(default_factory=list)


def differences(effects: Effects, measured: Trace, racy: Sequence[str] = ()) -> list[str]:
    """Where the model and the server disagree, in words; empty when they agree.

    Locks: every relation the model names is locked in exactly that mode; every other lock is on a
    relation the statement created, or on an index, toast table or sequence of a table the model
    locks at least as strongly. Rewrites, truncations and index builds must be the same tables.
    Scans: the tables read sequentially, except where the planner chooses how to read (tables only
    read under ACCESS SHARE / ROW SHARE, the target of UPDATE/DELETE, the other end of a foreign
    key check). ``racy`` relations may show a weaker lock than the model's (a last step too quick
    to sample).
    """
    model = {lock.relation: lock.mode for lock in effects.locks}
    # a relation the statement created may bear the name of one it replaced (REINDEX CONCURRENTLY)
    server = {lock.relation: lock for lock in sorted(measured.locks, key=lambda lock: not lock.created)}
    found: list[str] = []
    for relation, mode in model.items():
        if relation in racy:
            if relation in server and server[relation].mode > mode:
                found.append(f"{relation}: model {mode.pg_name}, server {server[relation].mode.pg_name}")
            continue
        if relation not in server:
            found.append(f"{relation}: model {mode.pg_name}, server took no lock")
        elif server[relation].mode != mode:
            found.append(f"{relation}: model {mode.pg_name}, server {server[relation].mode.pg_name}")
    for lock in measured.locks:
        if lock.relation in model or lock.created or lock.relation in racy:
            continue
        owner = _owning_table(lock, server)
        if owner not in model:
            found.append(f"{lock.relation}: server {lock.mode.pg_name}, model takes no lock")
            continue
        limit = max([model[owner]] + [m for r, m in model.items() if lock.relation.startswith("pg_toast.")
                                      and r in server and server[r].of_table == owner])
        if lock.mode > limit:
            found.append(f"{lock.relation} ({lock.relkind} of {owner}): server {lock.mode.pg_name}, above the "
                         f"model's {limit.pg_name} on {owner}")

    _same(found, "rewrites", set(effects.rewrites), set(measured.rewritten))
    truncated = {a.table for a in effects.actions if a.detail.get("truncates") and a.table}
    _same(found, "empties", truncated, set(measured.truncated))
    copied = {a.table for a in effects.actions if a.detail.get("copies") and a.rewrites}
    _same(found, "builds an index on", set(effects.index_builds) | (set(effects.rewrites) - copied),
          set(measured.index_built))
    claimed = {a.table for a in effects.actions
               if a.table and (a.scans or ((a.rewrites or a.builds_index) and not a.detail.get("copies")))}
    joined = {a.detail.get("references") for a in effects.actions if a.scans or a.rewrites}
    joined |= {t for a in effects.actions if a.scans or a.rewrites for t in a.detail.get("reads", ())}
    read_only = {relation for relation, mode in model.items() if mode <= LockMode.ROW_SHARE}
    read_only |= {a.table for a in effects.actions if a.kind is ActionKind.DML}
    _same(found, "reads in full", claimed, set(measured.scanned) - ((joined | read_only) - claimed))
    if effects.needs_no_transaction == measured.in_transaction:
        found.append("transaction block: model says it " + ("cannot" if effects.needs_no_transaction else "can")
                     + " run in one, the server " + ("ran it in one" if measured.in_transaction else "refused"))
    return found


def _same(found: list[str], what: str, model: set, server: set) -> None:
    if model != server:
        found.append(f"{what}: model {sorted(t for t in model if t) or 'nothing'}, "
                     f"server {sorted(server) or 'nothing'}")


def _owning_table(lock, server: dict) -> str | None:
    """The table an index, toast table or sequence belongs to (through a toast table's index too)."""
    owner = lock.of_table
    while owner in server and server[owner].of_table:
        owner = server[owner].of_table
    return owner


def trace_statements(parsed: Sequence[ParsedStatement], scratch_dsn: str, *, setup: str | None = None,
                     pg_version: int | None = None) -> list[TracedStatement]:
    """Trace each statement on the scratch database at ``scratch_dsn``, in order, applying each one.

    Refuses (raises :class:`ScratchError`) a database whose name does not say this module created it.
    """
    if not is_scratch_name(conninfo_to_dict(scratch_dsn).get("dbname", "")):
        raise ScratchError("trace runs statements only in a scratch database it created itself")
    results: list[TracedStatement] = []
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        version = pg_version or conn.info.server_version // 10000
        if setup:
            try:
                conn.execute(setup)
            except psycopg.Error as exc:
                raise ScratchError(f"the setup SQL failed: {str(exc).strip()}") from None
        for item in parsed:
            results.append(_trace_one(item, conn, scratch_dsn, version))
    return results


def _trace_one(item: ParsedStatement, conn: psycopg.Connection, dsn: str, version: int) -> TracedStatement:
    if item.node is None:
        return TracedStatement(item, skipped=f"does not parse ({item.error})" if item.error else
                               "Python code: the SQL statements it ran are traced after it")
    catalog = catalog_from_database(conn)
    effects = analyse(item.node, pg_version=version, catalog=catalog)
    if any(a.kind is ActionKind.TRANSACTION for a in effects.actions):
        return TracedStatement(item, effects, skipped="transaction control: each statement is traced on its own")
    sql = item.statement.executed or item.statement.sql
    outside = check_statement(sql, SCRATCH)
    if outside is not None:
        return TracedStatement(item, effects, skipped=f"not run: {outside}", failed=True)
    try:
        measured = trace(dsn, sql)
    except TraceError as exc:
        return TracedStatement(item, effects, skipped=str(exc), failed=True)
    if measured.in_transaction:  # rolled back after measuring: apply it for the statements after it
        try:
            conn.execute(sql)
        except psycopg.Error as exc:
            return TracedStatement(item, effects, measured, skipped=f"could not be applied: {exc}", failed=True)
    found = differences(effects, measured) if effects.known else ["not modelled: the model assumes ACCESS EXCLUSIVE "
                                                                  "on every relation it names"]
    return TracedStatement(item, effects, measured, tuple(found))


# -- output -------------------------------------------------------------------------------------------


def traced_json(results: Sequence[TracedStatement], pg_version: int) -> str:
    """``{"schema_version": 1, "pg_version", "matches", "statements": [...]}``, one entry per statement."""
    statements = []
    for index, item in enumerate(results):
        statement = item.parsed.statement
        entry: dict = {"index": index, "file": statement.migration, "sql": mask_sql(statement.sql), "line": statement.line,
                       "skipped": item.skipped, "failed": item.failed, "matches": item.matches,
                       "differences": list(item.differences)}
        if item.effects is not None:
            entry["model"] = {
                "locks": [{"relation": lock.relation, "relkind": lock.relkind, "mode": lock.mode.pg_name}
                          for lock in item.effects.locks],
                "rewrites": list(item.effects.rewrites), "scans": list(item.effects.scans),
                "index_builds": list(item.effects.index_builds), "modelled": item.effects.known,
            }
        if item.measured is not None:
            m = item.measured
            entry["server"] = {
                "locks": [{"relation": lock.relation, "relkind": lock.relkind, "mode": lock.mode.pg_name,
                           "of_table": lock.of_table, "created": lock.created} for lock in m.locks],
                "rewrites": sorted(m.rewritten), "truncated": sorted(m.truncated), "index_builds": sorted(m.index_built),
                "seq_scans": dict(m.seq_scans), "in_transaction": m.in_transaction,
            }
        statements.append(entry)
    return json.dumps({"schema_version": 1, "pg_version": pg_version,
                       "matches": all(r.matches for r in results), "statements": statements}, indent=2) + "\n"


def traced_text(results: Sequence[TracedStatement], pg_version: int) -> str:
    """The same, for people: per statement the server's locks and work, then each difference."""
    out = [f"traced on PostgreSQL {pg_version} (a scratch database, dropped afterwards)"]
    for item in results:
        statement = item.parsed.statement
        sql = " ".join(mask_sql(statement.sql).split())
        out.append("")
        line = statement.line or (statement.operation.line if statement.operation else None)
        where = f"{statement.migration}:{line}" if line else statement.migration
        out.append(f"{where}  {sql if len(sql) <= 120 else sql[:117] + '...'}")
        if item.measured is not None:
            m = item.measured
            for lock in m.locks:
                if lock.created:
                    continue
                owner = f" ({lock.relkind} of {lock.of_table})" if lock.of_table else f" ({lock.relkind})"
                out.append(f"  server  {lock.mode.label:<22} on {lock.relation}{owner}")
            for label, tables in (("rewrote", m.rewritten), ("emptied", m.truncated), ("built an index on",
                                  m.index_built), ("read in full", m.scanned)):
                if tables:
                    out.append(f"  server  {label} {', '.join(sorted(tables))}")
            if not m.in_transaction:
                out.append("  server  ran outside a transaction block (measured from a second connection)")
        if item.skipped:
            out.append(f"  not traced: {item.skipped}")
        elif item.matches:
            out.append("  model   matches")
        for difference in item.differences:
            out.append(f"  DIFFERS {difference}")
    differing = sum(1 for r in results if not r.matches)
    skipped = sum(1 for r in results if r.skipped)
    failed = sum(1 for r in results if r.failed)
    out.append("")
    out.append(f"{'DIFFERENT' if differing else 'FAILED' if failed else 'SAME'}: {differing} of {len(results)} "
               f"statement(s) differ from the model; {skipped} not traced ({failed} failed on the server).")
    return "\n".join(out) + "\n"


# -- lint_migrations --trace ------------------------------------------------------------------------


def trace_migrations(database: str = "default", *, app_label: str | None = None,
                     migration_name: str | None = None) -> tuple[list[TracedStatement], int]:
    """Trace the statements of the pending migrations (or one app's, or one migration's) of a Django
    project, the way ``migration-guard trace`` traces SQL: returns the results and the server's major.

    Rendering applies the migrations to a scratch database (needs CREATEDB, like ``--scratch``); at the
    state just before the first traced migration that database is copied, and every SQL statement
    the migrations ran is traced, in order, on the copy. Both databases are dropped.
    """
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    from migration_guard.parse import parse_statement
    from migration_guard.plan import build_plan
    from migration_guard.render import render_plan

    connection = connections[database]
    guard = Guard(READ_ONLY)  # the migration files load on the real database: nothing may write there
    try:
        with connection.execute_wrapper(guard):
            executor = MigrationExecutor(connection)
    except StatementRefused:
        pass  # the refusal is recorded
    if guard.refused:  # also when the module caught the exception
        raise ScratchError(f"a migration module sent {guard.refused[0].sql!r} while it was imported, which was "
                           f"refused ({guard.refused[0].reason}): fix the module")
    plan = build_plan(executor, app_label=app_label, migration_name=migration_name, include_applied=True)
    guard.mode = SCRATCH  # nothing the migrations run reaches outside the scratch database
    copy = scratch_name()
    copied: list[str] = []

    def copy_state(conn) -> None:
        # the database is at the state just before the first traced migration: keep a copy of it
        conn.close()
        with conn._nodb_cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{conn.settings_dict["NAME"]}"{copy_strategy(cursor)}')
        copied.append(copy)

    try:
        with scratch_database(connection), connection.execute_wrapper(guard):
            rendered = [m for m in render_plan(executor, plan, execute=True, before_first=copy_state, guard=guard)
                        if m.linted]
        if not copied:  # nothing to trace
            return [], connection.pg_version // 10000
        settings = connection.settings_dict
        dsn = make_conninfo("", host=settings.get("HOST") or None, port=str(settings.get("PORT") or "") or None,
                            user=settings.get("USER") or None, password=settings.get("PASSWORD") or None, dbname=copy)
        parsed = [p for m in rendered for s in m.statements for p in parse_statement(s)]
        with psycopg.connect(dsn) as conn:
            version = conn.info.server_version // 10000
        results = trace_statements(parsed, dsn, pg_version=version)
        failed = [m for m in rendered if m.error]
        for migration in failed:  # say so rather than trace half a migration silently
            statement = ParsedStatement(statement=_note(migration.label, f"the migration failed: {migration.error}"))
            results.append(TracedStatement(statement, skipped=f"{migration.label} failed on the scratch database: "
                                                              f"{migration.error}"))
        return results, version
    finally:
        if copied:
            connection.close()
            with connection._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


def _note(label: str, text: str):
    from migration_guard.model import Statement, StatementKind

    return Statement(sql=text, migration=label, kind=StatementKind.RUN_PYTHON)
