"""The stats stage: reading table sizes from a real server, snapshots, lookups and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from click.testing import CliRunner

from migration_guard.cli import main
from migration_guard.model import Runs, TableSize
from migration_guard.stats import (
    Snapshot,
    StatsError,
    TableSizes,
    format_bytes,
    format_size,
    is_large,
    load_snapshot,
    parse_search_path,
    qualified_name,
    read_database_stats,
    split_name,
    write_snapshot,
)

CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "migration-guard")


# -- helpers -----------------------------------------------------------------------------------


def _wait_for_live_tuples(dsn: str, expected: dict[str, int]) -> None:
    """Wait until the cumulative statistics show ``expected`` n_live_tup (they are flushed lazily)."""
    deadline = time.monotonic() + 20
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            seen = dict(conn.execute(
                "SELECT coalesce(nullif(schemaname, 'public') || '.', '') || relname, n_live_tup"
                " FROM pg_stat_user_tables").fetchall())
            if all(seen.get(name) == count for name, count in expected.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"statistics never showed {expected}; last seen {seen}")
            time.sleep(0.1)


def _write_rows(dsn: str, sql: str) -> None:
    """Run ``sql`` and make its row counts reach pg_stat_user_tables now rather than in 10 s."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)
        if conn.info.server_version >= 150000:
            conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")  # the flush happens when the backend goes idle


@pytest.fixture
def shop(fresh_dsn):
    """A database with one table in every state the row estimate distinguishes."""
    _write_rows(fresh_dsn, """
        -- analysed: reltuples is exact
        CREATE TABLE shop_order (id bigint PRIMARY KEY, note text);
        INSERT INTO shop_order SELECT g, 'x' FROM generate_series(1, 2000) g;
        ANALYZE shop_order;
        -- never analysed, with rows: only the cumulative statistics know
        CREATE TABLE shop_item (id int);
        INSERT INTO shop_item SELECT generate_series(1, 300);
        -- never analysed and never written: empty
        CREATE TABLE shop_empty (id int PRIMARY KEY);
        -- partitioned, two levels, analysed through the parent
        CREATE TABLE shop_event (id int, at int) PARTITION BY RANGE (at);
        CREATE TABLE shop_event_a PARTITION OF shop_event FOR VALUES FROM (0) TO (100);
        CREATE TABLE shop_event_b PARTITION OF shop_event FOR VALUES FROM (100) TO (1000) PARTITION BY RANGE (at);
        CREATE TABLE shop_event_b1 PARTITION OF shop_event_b FOR VALUES FROM (100) TO (1000);
        INSERT INTO shop_event SELECT g, g FROM generate_series(0, 999) g;
        ANALYZE shop_event;
        -- another schema, a case-sensitive name
        CREATE SCHEMA billing;
        CREATE TABLE billing."Invoice" (id int);
        INSERT INTO billing."Invoice" SELECT generate_series(1, 40);
        ANALYZE billing."Invoice";
        -- not tables
        CREATE VIEW shop_order_view AS SELECT * FROM shop_order;
        CREATE SEQUENCE shop_seq;
    """)
    _wait_for_live_tuples(fresh_dsn, {"shop_item": 300})
    return fresh_dsn


# -- reading the database ----------------------------------------------------------------------


def test_reads_every_table_with_its_figures(shop, fresh_db, tmp_path):
    snapshot = read_database_stats(shop)

    with psycopg.connect(shop) as conn:
        def total(name: str) -> int:
            return conn.execute("SELECT pg_total_relation_size(%s::regclass)", [name]).fetchone()[0]

        version_num = conn.info.server_version
        expected_bytes = {
            "public.shop_order": total("shop_order"),
            "public.shop_item": total("shop_item"),
            "public.shop_empty": total("shop_empty"),
            'billing."Invoice"': total('billing."Invoice"'),
            "public.shop_event_a": total("shop_event_a"),
            "public.shop_event_b1": total("shop_event_b1"),
        }
    expected_bytes["public.shop_event_b"] = expected_bytes["public.shop_event_b1"]
    expected_bytes["public.shop_event"] = expected_bytes["public.shop_event_a"] + expected_bytes["public.shop_event_b1"]

    assert {qualified_name(*key): size.rows for key, size in snapshot.tables.items()} == {
        "public.shop_order": 2000,
        "public.shop_item": 300,  # from n_live_tup: never analysed
        "public.shop_empty": 0,  # never analysed, but its heap is empty
        "public.shop_event": 1000,  # the sum of its leaf partitions
        "public.shop_event_a": 100,
        "public.shop_event_b": 900,
        "public.shop_event_b1": 900,
        'billing."Invoice"': 40,
    }
    assert {qualified_name(*key): size.total_bytes for key, size in snapshot.tables.items()} == expected_bytes
    # how many indexes a rewrite rebuilds (a partitioned table: its partitions' most)
    indexes = {qualified_name(*key): size.indexes for key, size in snapshot.tables.items()}
    assert (indexes["public.shop_order"], indexes["public.shop_empty"], indexes["public.shop_item"]) == (1, 1, 0)
    # ... and a snapshot keeps them, and still reads one written before it had them
    (tmp_path / "with.json").write_text(snapshot.to_json())
    again = load_snapshot(tmp_path / "with.json")
    assert {key: size.indexes for key, size in again.tables.items()} == {
        key: size.indexes for key, size in snapshot.tables.items()}
    document = json.loads(snapshot.to_json())
    for entry in document["tables"].values():
        entry.pop("indexes", None)
    (tmp_path / "without.json").write_text(json.dumps(document))
    assert {size.indexes for size in load_snapshot(tmp_path / "without.json").tables.values()} == {None}
    assert snapshot.search_path == ("public",)  # "$user" names no schema here
    assert {size.source for size in snapshot.tables.values()} == {"database"}
    assert snapshot.server_version_num == version_num
    assert snapshot.pg_version == version_num // 10000
    assert snapshot.database == fresh_db
    taken_at = datetime.fromisoformat(snapshot.taken_at)
    assert taken_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - taken_at) < timedelta(minutes=1)


def test_rows_never_counted_are_unknown(fresh_dsn):
    _write_rows(fresh_dsn, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 50)")
    _wait_for_live_tuples(fresh_dsn, {"t": 50})
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        # As after a crash or a statistics reset: no ANALYZE, no counters, but a non-empty heap.
        conn.execute("SELECT pg_stat_reset_single_table_counters('t'::regclass)")
    _wait_for_live_tuples(fresh_dsn, {"t": 0})

    size = read_database_stats(fresh_dsn).tables[("public", "t")]

    assert size.rows is None
    assert size.total_bytes > 0


def test_rows_added_since_analyze_count(fresh_dsn):
    _write_rows(fresh_dsn, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100); ANALYZE t")
    _write_rows(fresh_dsn, "INSERT INTO t SELECT generate_series(1, 400)")
    _wait_for_live_tuples(fresh_dsn, {"t": 500})

    assert read_database_stats(fresh_dsn).tables[("public", "t")].rows == 500


def test_skips_other_sessions_temporary_tables_and_empty_database(fresh_dsn):
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TEMPORARY TABLE scratch (id int)")
        assert read_database_stats(conn).tables == {}


def test_statements_run_read_only_with_timeouts(shop):
    seen: list[tuple[str, str, str, str]] = []

    class Probe(psycopg.Connection):
        """Records, after each statement, the settings it ran under."""

        def execute(self, query, params=None, **kwargs):
            cursor = super().execute(query, params, **kwargs)
            if self.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                settings = super().execute("SELECT current_setting('transaction_read_only'),"
                                           " current_setting('lock_timeout'),"
                                           " current_setting('statement_timeout')").fetchone()
                seen.append((" ".join(str(query).split())[:40], *settings))
            return cursor

    with Probe.connect(shop, autocommit=True) as conn:
        read_database_stats(conn, statement_timeout_ms=4000, lock_timeout_ms=700)
        # Nothing lingers on the caller's connection.
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT current_setting('transaction_read_only'), current_setting('lock_timeout'),"
                            " current_setting('statement_timeout')").fetchone() == ("off", "0", "0")

    reads = [entry for entry in seen if entry[0].startswith("SELECT")]
    assert len(reads) >= 3
    assert {entry[1:] for entry in reads} == {("on", "700ms", "4s")}


def test_inside_a_callers_transaction_leaves_it_as_it_was(fresh_dsn):
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TABLE mine (id int)")
        conn.execute("INSERT INTO mine VALUES (1)")

        snapshot = read_database_stats(conn)

        assert ("public", "mine") in snapshot.tables  # its own uncommitted table is visible to it
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("0",)
        conn.execute("INSERT INTO mine VALUES (2)")  # still writable
        conn.commit()
        assert conn.execute("SELECT count(*) FROM mine").fetchone() == (2,)


def test_refuses_a_failed_transaction(fresh_dsn):
    with psycopg.connect(fresh_dsn) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        with pytest.raises(StatsError, match="failed transaction; roll it back first"):
            read_database_stats(conn)


def test_a_table_locked_by_a_migration_costs_only_its_bytes(shop):
    # pg_total_relation_size needs ACCESS SHARE, which waits behind a migration's ACCESS
    # EXCLUSIVE; lock_timeout bounds the wait and the row figure, from pg_class, needs no lock.
    holder = psycopg.connect(shop)
    holder.execute("LOCK TABLE shop_order IN ACCESS EXCLUSIVE MODE")
    try:
        with psycopg.connect(shop) as caller:
            caller.execute("SELECT 1")  # the caller is inside a transaction: it must survive
            started = time.monotonic()
            snapshot = read_database_stats(caller, lock_timeout_ms=300)
            elapsed = time.monotonic() - started
            assert caller.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            assert caller.execute("SELECT 2").fetchone() == (2,)
    finally:
        holder.close()

    assert elapsed < 3  # the bulk try and the per-table retry each wait 0.3 s at most
    assert snapshot.tables[("public", "shop_order")] == TableSize(2000, None, source="database", indexes=1)  # the count is from the catalog: no lock
    assert all(size.total_bytes is not None for name, size in snapshot.tables.items() if name != ("public", "shop_order"))


def test_sizes_are_read_in_batches_and_a_locked_table_costs_only_its_own(shop, monkeypatch):
    # A schema per tenant makes tens of thousands of tables: one query for all of them outlasted the
    # statement_timeout, and every table then got a query of its own (52 s for 36,000 tables).
    import migration_guard.stats as stats

    monkeypatch.setattr(stats, "_SIZES_PER_QUERY", 3)
    queries: list[str] = []

    class Counting(psycopg.Connection):
        def execute(self, query, params=None, **kwargs):
            queries.append(str(query))
            return super().execute(query, params, **kwargs)

    holder = psycopg.connect(shop)
    holder.execute("LOCK TABLE shop_order IN ACCESS EXCLUSIVE MODE")
    try:
        with Counting.connect(shop) as conn:
            snapshot = read_database_stats(conn, lock_timeout_ms=300)
    finally:
        holder.close()
    assert snapshot.tables[("public", "shop_order")].total_bytes is None
    assert all(size.total_bytes is not None for key, size in snapshot.tables.items() if key != ("public", "shop_order"))
    size_queries = [q for q in queries if "pg_total_relation_size" in q]
    # 6 leaf tables: 2 batches of 3, and the locked one's batch again table by table.
    assert len(size_queries) == 2 + 3


def test_a_queued_access_exclusive_request_also_blocks_the_size_read(shop):
    # The lock queue is fair: ACCESS SHARE waits behind an ALTER that is itself waiting.
    reader = psycopg.connect(shop)
    reader.execute("SELECT 1 FROM shop_item LIMIT 1")  # holds ACCESS SHARE
    alter = psycopg.connect(shop, autocommit=True)
    waiting = threading.Thread(target=alter.execute,
                               args=("SET lock_timeout = '10s'; ALTER TABLE shop_item ADD COLUMN x int",))
    waiting.start()
    try:
        with psycopg.connect(shop, autocommit=True) as watcher:
            deadline = time.monotonic() + 10
            while not watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
                assert time.monotonic() < deadline, "the ALTER never queued"
                time.sleep(0.05)
        snapshot = read_database_stats(shop, lock_timeout_ms=300)
    finally:
        reader.close()
        waiting.join()
        alter.close()

    assert snapshot.tables[("public", "shop_item")].total_bytes is None
    assert snapshot.tables[("public", "shop_item")].rows == 300  # n_live_tup needs no lock
    assert snapshot.tables[("public", "shop_order")].total_bytes is not None


def test_unreachable_database_names_host_and_database_never_the_password():
    with pytest.raises(StatsError) as caught:
        read_database_stats("host=/nonexistent dbname=shop user=app password=hunter2")
    message = str(caught.value)
    assert 'database "shop" on host "/nonexistent"' in message
    assert "check the DSN" in message
    assert "hunter2" not in message


def test_unparsable_dsn_is_not_echoed():
    with pytest.raises(StatsError, match="not a valid libpq connection string") as caught:
        read_database_stats("host=x password=hunter2 = nonsense")
    assert "hunter2" not in str(caught.value)


def test_django_connection_is_left_as_it_was(pg_server, fresh_db):
    # A subprocess: Django settings are process-wide and other test modules configure their own.
    script = textwrap.dedent(f"""
        import json
        import django
        from django.conf import settings
        settings.configure(DATABASES={{"default": {pg_server.django_database(fresh_db)!r}}})
        django.setup()
        from django.db import connection, transaction
        from migration_guard.stats import read_database_stats

        result = {{}}
        snapshot = read_database_stats(connection)  # autocommit, not yet connected
        result["autocommit"] = [snapshot.database, connection.get_autocommit(),
                                connection.connection.info.transaction_status.name]
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE inside (id int)")
                cursor.execute("INSERT INTO inside SELECT generate_series(1, 5)")
            snapshot = read_database_stats(connection)
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO inside VALUES (6)")
            result["atomic"] = [("public", "inside") in snapshot.tables, connection.in_atomic_block,
                                connection.needs_rollback]
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM inside")
            result["committed"] = cursor.fetchone()[0]
        print(json.dumps(result))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "autocommit": [fresh_db, True, "IDLE"],
        "atomic": [True, True, False],
        "committed": 6,
    }


def test_rejects_what_it_cannot_read():
    with pytest.raises(TypeError, match="needs a DSN"):
        read_database_stats(42)


# -- snapshots ---------------------------------------------------------------------------------


SNAPSHOT = Snapshot(
    pg_version=16,
    server_version_num=160004,
    taken_at="2025-01-31T12:00:00+00:00",
    database="shop",
    tables={
        ("public", "shop_order"): TableSize(2_000_000, 123_456_789, "database"),
        ("billing", "Invoice"): TableSize(None, 8192, "database"),
        ("public", "shop_item"): TableSize(300, None, "database"),
    },
    search_path=("public",),
)


def test_snapshot_json_is_the_documented_format():
    assert json.loads(SNAPSHOT.to_json()) == {
        "schema_version": 2,
        "pg_version": 16,
        "server_version_num": 160004,
        "taken_at": "2025-01-31T12:00:00+00:00",
        "database": "shop",
        "search_path": ["public"],
        "tables": {
            'billing."Invoice"': {"rows": None, "total_bytes": 8192},
            "public.shop_item": {"rows": 300, "total_bytes": None},
            "public.shop_order": {"rows": 2000000, "total_bytes": 123456789},
        },
    }
    assert list(json.loads(SNAPSHOT.to_json())["tables"]) == ['billing."Invoice"', "public.shop_item",
                                                              "public.shop_order"]


def test_snapshot_round_trip(tmp_path):
    path = tmp_path / "stats.json"
    write_snapshot(SNAPSHOT, path)

    loaded = load_snapshot(path)

    assert loaded.pg_version == 16
    assert loaded.server_version_num == 160004
    assert loaded.taken_at == SNAPSHOT.taken_at
    assert loaded.database == "shop"
    assert loaded.search_path == ("public",)
    assert loaded.tables == {name: TableSize(s.rows, s.total_bytes, "snapshot") for name, s in SNAPSHOT.tables.items()}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_database_snapshot_round_trip(shop, tmp_path):
    snapshot = read_database_stats(shop)
    write_snapshot(snapshot, tmp_path / "stats.json")
    loaded = load_snapshot(tmp_path / "stats.json")
    assert {n: (s.rows, s.total_bytes) for n, s in loaded.tables.items()} == {
        n: (s.rows, s.total_bytes) for n, s in snapshot.tables.items()
    }


def _document(**changes):
    document = json.loads(SNAPSHOT.to_json())
    document.update(changes)
    return document


def _with_table(entry):
    return _document(tables={"public.shop_order": entry})


def _without(key):
    document = _document()
    del document[key]
    return document


MALFORMED = {
    "invalid JSON": ('{"schema_version": 1,\n  "tables": }', "invalid JSON at line 2, column 13"),
    "empty file": ("", "invalid JSON at line 1, column 1"),
    "not an object": ([], "expected a JSON object at the top level, found an array"),
    "missing tables": (_without("tables"), "the top level is missing tables"),
    "missing pg_version": (_without("pg_version"), "the top level is missing pg_version"),
    "unknown top-level key": (_document(table={}), "the top level has unknown key 'table'"),
    "newer schema_version": (_document(schema_version=3), "schema_version is 3, this migration-guard reads 1 and 2"),
    "no schema_version": (_without("schema_version"), "schema_version is null"),
    "missing search_path": (_without("search_path"), "the top level is missing search_path"),
    "search_path not a list": (_document(search_path="app, public"), "search_path must be an array"),
    "empty schema in search_path": (_document(search_path=["app", ""]), "search_path must be an array"),
    "unqualified key": (_document(tables={"shop_order": {"rows": 1, "total_bytes": 1}}),
                        "table 'shop_order' must be keyed schema.name"),
    "key with three parts": (_document(tables={"a.b.c": {"rows": 1, "total_bytes": 1}}),
                             "table 'a.b.c' must be keyed schema.name"),
    "a table twice": (_document(tables={"public.t": {"rows": 1, "total_bytes": 1},
                                        'public."t"': {"rows": 5, "total_bytes": 1}}), "'public.\"t\"' appears twice"),
    "string schema_version": (_document(schema_version="1"), 'schema_version is "1"'),
    "string pg_version": (_document(pg_version="16"),
                          'pg_version must be a positive integer (the major version, e.g. 16), found "16"'),
    "boolean pg_version": (_document(pg_version=True), "pg_version must be a positive integer"),
    "float server_version_num": (_document(server_version_num=160004.0),
                                 "server_version_num must be a positive integer or null"),
    "mismatched versions": (_document(server_version_num=150002),
                            "pg_version 16 does not match server_version_num 150002"),
    "numeric taken_at": (_document(taken_at=0), "taken_at must be a string"),
    "numeric database": (_document(database=1), "database must be a string or null"),
    "tables as array": (_document(tables=[]), "tables must be a JSON object, found an array"),
    "empty table name": (_document(tables={"": {"rows": 1, "total_bytes": 1}}), "an entry with an empty name"),
    "table entry not an object": (_with_table(5), "table 'public.shop_order' must be a JSON object, found a number"),
    "float rows": (_with_table({"rows": 2e6, "total_bytes": 1}),
                   "table 'public.shop_order' has rows 2000000.0, expected a non-negative integer or null"),
    "string rows": (_with_table({"rows": "2000000", "total_bytes": 1}), 'has rows "2000000"'),
    "boolean rows": (_with_table({"rows": True, "total_bytes": 1}), "has rows true"),
    "negative rows": (_with_table({"rows": -1, "total_bytes": 1}), "has rows -1"),
    "negative bytes": (_with_table({"rows": 1, "total_bytes": -5}), "has total_bytes -5"),
    "missing total_bytes": (_with_table({"rows": 1}), "table 'public.shop_order' is missing total_bytes"),
    "typo in a table entry": (_with_table({"row": 1, "rows": 1, "total_bytes": 1}),
                              "table 'public.shop_order' has unknown key 'row'"),
}


@pytest.mark.parametrize("content, expected", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_snapshot_fails_closed_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "prod-stats.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))

    with pytest.raises(StatsError) as caught:
        load_snapshot(path)

    message = str(caught.value)
    assert message.startswith(f"snapshot {path}: ")
    assert expected in message
    assert f"regenerate it with `migration-guard stats dump --dsn DSN --output {path}`" in message


def test_missing_snapshot_file(tmp_path):
    with pytest.raises(StatsError, match=r"prod-stats\.json: no such file; regenerate it"):
        load_snapshot(tmp_path / "prod-stats.json")


def test_snapshot_that_is_not_text(tmp_path):
    path = tmp_path / "prod-stats.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(StatsError, match=r"prod-stats\.json: cannot be read"):
        load_snapshot(path)


def test_snapshot_that_is_a_folder(tmp_path):
    with pytest.raises(StatsError, match="cannot be read"):
        load_snapshot(tmp_path)


def test_stats_error_is_a_value_error():
    assert issubclass(StatsError, ValueError)


# -- lookups -----------------------------------------------------------------------------------


def test_sizes_from_a_snapshot():
    sizes = TableSizes(SNAPSHOT)
    assert sizes.of("shop_order") == TableSize(2_000_000, 123_456_789, "database", schema="public")
    assert sizes.of("public.shop_order") == sizes.of('"shop_order"') == sizes.of("shop_order")
    assert sizes.of('billing."Invoice"') == TableSize(None, 8192, "database", schema="billing")
    # Case-sensitive, as PostgreSQL is for quoted names.
    assert sizes.of("SHOP_ORDER") == TableSize(None, None, "unknown")
    assert sizes.of("billing.invoice") == TableSize(None, None, "unknown", schema="billing")


def _sizes(search_path, created=(), **tables):
    """Sizes of tables given as schema__name=rows, on ``search_path`` (None: not known)."""
    snapshot = Snapshot(16, None, "2025-01-31T12:00:00+00:00", "shop", search_path=search_path, tables={
        tuple(key.split("__")): TableSize(rows, rows * 100, "snapshot") for key, rows in tables.items()})
    return TableSizes(snapshot).with_created(created)


@pytest.mark.parametrize("search_path", [("app", "public"), None])
def test_sizes_asked_for_follow_every_table_created_as_fresh_sizes_would(search_path):
    """with_created hands the sizes already asked for on to the next step, without those of the names it
    adds: at every step of a walk that creates tables one after another, every spelling of every name has
    the size a TableSizes made afresh with the same created tables gives it."""
    base = _sizes(search_path, app__t=5_000_000, public__t=10, public__u=20, app__v=30)
    spellings = ["t", '"t"', "public.t", "app.t", "u", "public.u", "v", "app.v", "w", "app.w", "public.w"]
    walk, created = base, []
    for name in ["w", "public.t", "u", "app.v", "t", "app.w", "public.w"]:
        for spelling in spellings:  # asked for before each step: what a stale hand-on would keep
            walk.of(spelling)
        walk = walk.with_created([name])
        created.append(name)
        fresh = TableSizes(base.snapshot).with_created(created)
        assert {s: walk.of(s) for s in spellings} == {s: fresh.of(s) for s in spellings}, name
        assert {s: walk.is_new(s) for s in spellings} == {s: fresh.is_new(s) for s in spellings}, name


def test_an_unqualified_name_is_the_first_table_on_the_search_path():
    sizes = _sizes(("app", "public"), app__t=5_000_000, public__t=10, public__other=7)
    assert (sizes.of("t").rows, sizes.of("t").schema) == (5_000_000, "app")
    assert (sizes.of("public.t").rows, sizes.of("public.t").schema) == (10, "public")
    assert sizes.of("other").schema == "public"
    assert TableSizes(sizes.snapshot, search_path=("public", "app")).of("t").rows == 10  # given: wins


def test_a_name_on_no_schema_of_the_search_path_counts_as_large_with_a_note():
    size = _sizes(("public",), app__t=10).of("t")
    assert (size.rows, size.source) == (None, "unknown")
    assert '"t" is in no schema of the search_path (public) but exists in schema app' in size.note
    # --assume-rows is for tables nobody has a figure for, not for a name that resolved wrongly.
    assert TableSizes(_sizes(("public",), app__t=10).snapshot, assume_rows=0).of("t").rows is None
    assert TableSizes(_sizes(("public",)).snapshot, assume_rows=0).of("t").rows == 0


def test_a_table_created_in_the_plan_shadows_one_later_on_the_search_path():
    sizes = _sizes(("app", "public"), ["t"], public__t=5_000_000)
    assert sizes.of("t") == TableSize(0, 0, "new in this plan", schema="app")
    assert sizes.is_new("t") and sizes.is_new("app.t")
    assert sizes.of("public.t").rows == 5_000_000 and not sizes.is_new("public.t")


def test_a_table_created_in_a_later_schema_does_not_shadow_the_first():
    sizes = _sizes(("app", "public"), ["public.t"], app__t=5_000_000)
    assert sizes.of("t").rows == 5_000_000 and not sizes.is_new("t")
    assert sizes.is_new("public.t")


def test_without_a_search_path_a_name_in_one_schema_is_that_one():
    sizes = _sizes(None, app__t=5_000_000, public__order=10)
    assert (sizes.of("t").rows, sizes.of("t").schema) == (5_000_000, "app")
    assert sizes.of("order").rows == 10
    assert sizes.of("nowhere") == TableSize(None, None, "unknown")


def test_without_a_search_path_a_name_in_several_schemas_is_ambiguous():
    sizes = _sizes(None, app__t=10, public__t=20)
    size = sizes.of("t")
    assert (size.rows, size.source) == (None, "ambiguous")
    assert '"t" is a table in schemas app, public and the search_path is not known' in size.note
    assert "dump the snapshot again" in size.note
    assert sizes.of("app.t").rows == 10  # qualified: no question
    # Created earlier in the plan (unqualified): as before, the new table.
    assert sizes.with_created(["t"]).is_new("t")


def test_tenant_runs_take_the_largest_copy():
    sizes = _sizes(("public",), t1__item=10, t2__item=3_000, t3__item=200, public__client=4)
    tenants = sizes.running(Runs(("t1", "t2", "t3"), ("public",), label="tenant schemas"))
    size = tenants.of("item")
    assert (size.rows, size.schema, size.runs) == (3_000, "t2", 3)
    # A name a tenant schema lacks is found further on the path (the shared table), once.
    assert (tenants.of("client").rows, tenants.of("client").schema) == (4, "public")
    assert tenants.of("public.client").runs == 3  # locked once per tenant run
    assert sizes.of("item").source == "unknown"  # in public: no such table
    # Created by a tenant migration: in every tenant schema, and nowhere else.
    created = tenants.with_created(["item_note"])
    assert created.is_new("item_note") and created.of("item_note").runs == 3
    assert not created.running(None).is_new("item_note")


def test_tenant_runs_where_one_copy_is_unknown():
    sizes = _sizes(("public",), t1__item=10, t2__item=20)
    size = sizes.running(Runs(("t1", "t2", "t3"), ("public",))).of("item")  # t3 has none, public neither
    assert (size.rows, size.source) == (None, "unknown")


def test_created_tables_and_tenant_runs_are_plain_data():
    sizes = TableSizes(SNAPSHOT, created=frozenset({"public.shop_order", "x"}))
    assert sizes.created == frozenset({("public", "shop_order"), ("public", "x")})
    assert sizes.of("shop_order") == TableSize(0, 0, "new in this plan", schema="public")


def test_with_created_returns_a_new_lookup():
    sizes = TableSizes(SNAPSHOT)
    more = sizes.with_created(['"shop_item"', 'billing."Invoice"'])
    assert more.of("shop_item").source == "new in this plan"
    assert more.of('billing."Invoice"').source == "new in this plan"
    assert sizes.of("shop_item").source == "database"
    assert more.snapshot is SNAPSHOT
    assert more.with_created(["shop_item"]) is more


def test_unknown_tables_are_assumed_or_unknown():
    assert TableSizes(SNAPSHOT, assume_rows=5000).of("nowhere") == TableSize(5000, None, "assumed")
    assert TableSizes(assume_rows=0).of("nowhere") == TableSize(0, None, "assumed")
    assert TableSizes().of("nowhere") == TableSize(None, None, "unknown")
    # A table the snapshot knows keeps its figure, even an unknown one.
    assert TableSizes(SNAPSHOT, assume_rows=5000).of('billing."Invoice"').rows is None


@pytest.mark.parametrize("setting, user, schemas", [
    ('"$user", public', "deploy", ("deploy", "public")),
    ('"$user", public', None, ("public",)),
    ("$user,public", "deploy", ("deploy", "public")),
    ("App, public", None, ("app", "public")),  # unquoted: folded to lower case
    ('"App", "has,comma", "a""b"', None, ("App", "has,comma", 'a"b')),
    ('""', None, ()),
    ("", None, ()),
    ("app, public, app", None, ("app", "public")),
])
def test_parse_search_path(setting, user, schemas):
    assert parse_search_path(setting, user) == schemas


@pytest.mark.parametrize("written, parts", [
    ("t", (None, "t")),
    ('"T"', (None, "T")),
    ("app.t", ("app", "t")),
    ('"My App"."T"', ("My App", "T")),
    ("db.app.t", ("app", "t")),
    ('"has.dot"', (None, "has.dot")),
    ('"Odd""Name"', (None, 'Odd"Name')),
    ('"public"."shop_order"', ("public", "shop_order")),
])
def test_split_name(written, parts):
    assert split_name(written) == parts


@pytest.mark.parametrize("parts, key", [
    (("public", "t"), "public.t"),
    (("billing", "Invoice"), 'billing."Invoice"'),
    (("app", "has.dot"), 'app."has.dot"'),
    (("app", 'a"b'), 'app."a""b"'),
    (("app", "t_1$"), "app.t_1$"),
    (("app", "1t"), 'app."1t"'),
    (("app", "é"), 'app."é"'),
])
def test_qualified_name(parts, key):
    assert qualified_name(*parts) == key
    assert split_name(key) == parts


def test_a_schema_version_1_snapshot_is_still_read(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({
        "schema_version": 1, "pg_version": 16, "server_version_num": None, "taken_at": "2025-01-31T12:00:00+00:00",
        "database": "shop", "tables": {"shop_order": {"rows": 5, "total_bytes": 1},
                                       "billing.Invoice": {"rows": 7, "total_bytes": 2},
                                       "billing.shop_order": {"rows": 9, "total_bytes": 3}}}))
    snapshot = load_snapshot(path)
    assert snapshot.search_path is None
    assert set(snapshot.tables) == {("public", "shop_order"), ("billing", "Invoice"), ("billing", "shop_order")}
    sizes = TableSizes(snapshot)
    assert sizes.of("Invoice").rows == 7
    assert sizes.of("shop_order").source == "ambiguous"
    assert TableSizes(snapshot, search_path=("public",)).of("shop_order").rows == 5
    # Written again, it is a schema_version 2 snapshot that still says it does not know the path.
    write_snapshot(snapshot, path)
    assert json.loads(path.read_text())["search_path"] is None
    assert load_snapshot(path).tables.keys() == snapshot.tables.keys()


def test_table_sizes_are_frozen_and_hashable():
    sizes = TableSizes(SNAPSHOT)
    with pytest.raises(AttributeError):
        sizes.assume_rows = 3
    assert hash(sizes) == hash(TableSizes(SNAPSHOT))


@pytest.mark.parametrize("size, max_rows, max_bytes, large", [
    (TableSize(None, None, "unknown"), 1_000_000, None, True),
    (TableSize(None, 10, "database"), 1_000_000, 10**9, True),
    (TableSize(1_000_000, None), 1_000_000, None, False),
    (TableSize(1_000_001, None), 1_000_000, None, True),
    (TableSize(10, 2 * 10**9), 1_000_000, 10**9, True),
    (TableSize(10, 2 * 10**9), 1_000_000, None, False),
    (TableSize(10, None), 1_000_000, 10**9, False),
    (TableSize(0, 0, "new in this plan"), 0, 0, False),
])
def test_is_large(size, max_rows, max_bytes, large):
    assert is_large(size, max_rows, max_bytes) is large


def test_formatting():
    assert [format_bytes(n) for n in (None, 0, 1023, 1024, 8192, 123_456_789, 5 * 1024**5, 3 * 1024**6)] == [
        "unknown", "0 bytes", "1023 bytes", "1.0 kB", "8.0 kB", "117.7 MB", "5.0 PB", "3072.0 PB"]
    assert format_size(TableSize(2_000_000, 123_456_789)) == "2,000,000 rows, 117.7 MB"
    assert format_size(TableSize(300, None)) == "300 rows"
    assert format_size(TableSize(None, 8192)) == "unknown rows, 8.0 kB"
    assert format_size(TableSize(None, None, "unknown")) == "unknown size"
    assert format_size(TableSize(5000, None, "assumed")) == "5,000 rows (assumed)"


# -- command line ------------------------------------------------------------------------------


def test_cli_dump_to_stdout(shop):
    result = CliRunner().invoke(main, ["stats", "dump", "--dsn", shop])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["tables"]["public.shop_order"]["rows"] == 2000
    assert result.stderr == ""


def test_cli_dump_to_a_file_then_show(shop, fresh_db, tmp_path):
    path = tmp_path / "stats.json"
    dumped = CliRunner().invoke(main, ["stats", "dump", "--dsn", shop, "--output", str(path)])
    assert dumped.exit_code == 0, dumped.stderr
    assert dumped.stdout == ""
    assert f"wrote 8 tables of database '{fresh_db}'" in dumped.stderr

    shown = CliRunner().invoke(main, ["stats", "show", str(path)])
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1].split() == ["table", "rows", "size"]
    assert [line.split()[0] for line in lines[2:]] == [
        "public.shop_order", "public.shop_event", "public.shop_event_b", "public.shop_event_b1", "public.shop_item",
        "public.shop_event_a", 'billing."Invoice"', "public.shop_empty"]


def test_cli_dsn_from_the_environment(shop):
    result = CliRunner().invoke(main, ["stats", "dump"], env={"MIGRATION_GUARD_DSN": shop})
    assert result.exit_code == 0, result.stderr
    assert "public.shop_order" in json.loads(result.stdout)["tables"]


def test_cli_show_exact_text(tmp_path):
    path = tmp_path / "stats.json"
    write_snapshot(SNAPSHOT, path)
    result = CliRunner().invoke(main, ["stats", "show", str(path)])
    assert result.exit_code == 0
    assert result.stdout == textwrap.dedent("""\
        database shop, PostgreSQL 16, taken 2025-01-31T12:00:00+00:00, 3 tables, search_path public
        table                   rows      size
        billing."Invoice"    unknown    8.0 kB
        public.shop_order  2,000,000  117.7 MB
        public.shop_item         300   unknown
    """)


def test_cli_show_bad_snapshot_exits_2(tmp_path):
    path = tmp_path / "stats.json"
    path.write_text("{")
    result = CliRunner().invoke(main, ["stats", "show", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"migration-guard: error: snapshot {path}: invalid JSON at line 1")


def test_cli_dump_unreachable_exits_2():
    result = CliRunner().invoke(main, ["stats", "dump", "--dsn", "host=/nonexistent dbname=x password=hunter2"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert 'cannot connect to database "x" on host "/nonexistent"' in result.stderr
    assert "hunter2" not in result.stderr


def test_cli_dump_unwritable_output_exits_2(shop, tmp_path):
    result = CliRunner().invoke(main, ["stats", "dump", "--dsn", shop, "--output", str(tmp_path / "no" / "x.json")])
    assert result.exit_code == 2
    assert "cannot write the snapshot to" in result.stderr


def test_console_script_exit_codes(shop, tmp_path):
    path = tmp_path / "stats.json"
    ok = subprocess.run([CONSOLE_SCRIPT, "stats", "dump", "--dsn", shop, "--output", str(path)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert load_snapshot(path).tables[("public", "shop_order")].rows == 2000

    unreachable = subprocess.run([CONSOLE_SCRIPT, "stats", "dump", "--dsn", "host=/nonexistent dbname=x"],
                                 capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 2
    assert unreachable.stdout == ""
    assert 'cannot connect to database "x" on host "/nonexistent"' in unreachable.stderr
