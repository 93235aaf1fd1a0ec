"""The migration_guard demo (``make demo``): lint the sample project's pending migrations against
a database whose orders table holds two million rows, then approve one blocked finding.

Steps: start a throwaway PostgreSQL server; create database ``shop``; ``migrate`` it to the base
migrations (what "production" already runs); fill the tables in SQL and ``ANALYZE`` them; run
``manage.py lint_migrations`` and print its report; approve one blocking finding with
``migration-guard approve`` and lint again with that approvals file.

Exit status: 0 when everything went as the demo expects (the first lint exits 1: blocked),
1 when something else happened (e.g. lint exited 2, or the approval did not take).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from migration_guard.embedded import EmbeddedPostgres

HERE = Path(__file__).resolve().parent
MANAGE = HERE / "manage.py"
DATABASE = "shop"

# What "production" has already applied; every later migration is pending.
BASE_MIGRATIONS = [("shop", "0001_initial"), ("billing", "0001_initial")]

# The blocked finding the demo approves: a rewrite someone might accept in a maintenance window
# (MG007 alter-column-type-rewriting).
APPROVE_MIGRATION = "shop.0018_alter_total_cents_to_bigint"
APPROVE_RULE = "MG007"
APPROVE_REASON = "orders are read-only during the Sunday 02:00 maintenance window"
APPROVE_BY = "demo@example.com"

# Table sizes. Only orders is above the gate's default threshold (1,000,000 rows).
SIZES = {"customers": 50_000, "products": 2_000, "warehouses": 10, "orders": 2_000_000, "order_lines": 20_000,
         "invoices": 5_000}

# Generated rows reference ids 1..n of freshly filled tables, so the per-row foreign key triggers
# (which would double the time to fill orders) are skipped with session_replication_role.
FILL_SQL = {
    "customers": """
        INSERT INTO shop_customer (name, email, created_at)
        SELECT 'Customer ' || g, 'customer' || g || '@example.com', now() - g * interval '1 minute'
        FROM generate_series(1, %(customers)s) AS g
    """,
    "products": """
        INSERT INTO shop_product (name, sku, price_cents)
        SELECT 'Product ' || g, 'SKU-' || g, 100 + (g * 7919) %% 100000
        FROM generate_series(1, %(products)s) AS g
    """,
    "warehouses": """
        INSERT INTO shop_warehouse (code, city)
        SELECT 'WH' || g, 'City ' || g
        FROM generate_series(1, %(warehouses)s) AS g
    """,
    "orders": """
        INSERT INTO shop_order (customer_id, reference, external_id, status, channel, currency,
                                total_cents, shipping_name, created_at, warehouse_id, return_warehouse_id)
        SELECT 1 + g %% %(customers)s, 'ORD-' || g, 'ext-' || g,
               (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + g %% 4], 'web', 'EUR',
               500 + (g * 37) %% 100000, 'Customer ' || (1 + g %% %(customers)s),
               now() - g * interval '1 second', 1 + g %% %(warehouses)s,
               CASE WHEN g %% 4 = 3 THEN 1 + g %% %(warehouses)s END
        FROM generate_series(1, %(orders)s) AS g
    """,
    "order_lines": """
        INSERT INTO shop_orderline (order_id, product_id, quantity, price_cents)
        SELECT 1 + g %% %(orders)s, 1 + g %% %(products)s, 1 + g %% 5, 100 + g %% 10000
        FROM generate_series(1, %(order_lines)s) AS g
    """,
    "invoices": """
        INSERT INTO billing_invoice (order_id, number, amount_cents, issued_at)
        SELECT 1 + g %% %(orders)s, 'INV-' || g, 500 + (g * 37) %% 100000, now() - g * interval '1 minute'
        FROM generate_series(1, %(invoices)s) AS g
    """,
}


# Indexes that are not constraints, to drop before the fill and re-create after it with their
# own definitions: one sorted build is faster than two million scattered index insertions.
SECONDARY_INDEXES_SQL = """
    SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)
    FROM pg_index JOIN pg_class ON pg_class.oid = indrelid
    WHERE relnamespace = 'public'::regnamespace AND NOT indisprimary AND NOT indisunique
"""


def fill_tables(dsn: str, sizes: dict[str, int]) -> dict[str, float]:
    """Fill the base tables (all empty) with generated rows and ANALYZE; returns seconds per step,
    keyed by what the step did."""
    timings = {}
    with psycopg.connect(dsn) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '256MB'")
        indexes = conn.execute(SECONDARY_INDEXES_SQL).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        for table, sql in FILL_SQL.items():
            started = time.perf_counter()
            conn.execute(sql, sizes)
            timings[f"insert {sizes[table]:,} {table}"] = time.perf_counter() - started
        started = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)
        timings[f"re-create {len(indexes)} indexes"] = time.perf_counter() - started
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("ANALYZE")  # pg_class.reltuples is what the gate reads
        timings["ANALYZE"] = time.perf_counter() - started
    return timings


def project_env(pg: EmbeddedPostgres, dbname: str) -> dict[str, str]:
    """The environment that points the sample project's settings at ``dbname`` on ``pg``."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shopsite.settings",
        "MIGRATION_GUARD_DEMO_DB_HOST": pg.host,
        "MIGRATION_GUARD_DEMO_DB_PORT": str(pg.port),
        "MIGRATION_GUARD_DEMO_DB_NAME": dbname,
        "MIGRATION_GUARD_DEMO_DB_USER": pg.user,
    }


def section(title: str) -> None:
    """Print a section header."""
    print(f"\n{'=' * 78}\n== {title}\n{'=' * 78}", flush=True)


def run(command: list[str], env: dict[str, str], *, show: bool = True) -> subprocess.CompletedProcess:
    """Run a command in the sample project's folder; print it and (if ``show``) its output as-is."""
    print(f"$ {shlex.join(_shown(command))}", flush=True)
    result = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True)
    if show:
        sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if show:
        print(f"[exit code {result.returncode}]", flush=True)
    return result


def _shown(command: list[str]) -> list[str]:
    """The command as a reader would type it: ``python manage.py``, ``migration-guard``."""
    program, *args = command
    if program == sys.executable:
        return ["python", *(Path(arg).name if arg == str(MANAGE) else arg for arg in args)]
    return [Path(program).name, *args]


def cli_command() -> list[str]:
    """The ``migration-guard`` console script installed beside this interpreter."""
    script = Path(sys.executable).parent / "migration-guard"
    if script.exists():
        return [str(script)]
    found = shutil.which("migration-guard")
    if found:
        return [found]
    raise SystemExit("migration-guard is not installed: pip install -e . (from the project root)")


def lint(env: dict[str, str], *options: str, show: bool = True) -> subprocess.CompletedProcess:
    """``manage.py lint_migrations`` on the demo database (its pending migrations)."""
    return run([sys.executable, str(MANAGE), "lint_migrations", *options], env, show=show)


def lint_findings(env: dict[str, str], *options: str) -> list[dict] | None:
    """The ``findings`` of ``lint_migrations --format json``, or None if lint did not produce them."""
    result = lint(env, "--format", "json", *options, show=False)
    if result.returncode not in (0, 1):
        print(f"lint --format json exited {result.returncode}")
        return None
    try:
        return json.loads(result.stdout)["findings"]
    except (ValueError, KeyError, TypeError) as exc:
        print(f"lint --format json printed no findings list ({exc!r}):\n{result.stdout[:2000]}")
        return None


def pick_blocking(findings: list[dict]) -> tuple[dict | None, bool]:
    """The blocking finding to approve, and whether it is the one the demo means to approve
    (APPROVE_RULE in APPROVE_MIGRATION); if that one is missing, the first blocking finding."""
    blocking = [f for f in findings if f.get("blocking")]
    for finding in blocking:
        if finding.get("migration") == APPROVE_MIGRATION and finding.get("rule") == APPROVE_RULE:
            return finding, True
    return (blocking[0] if blocking else None), False


def same_finding(a: dict, b: dict) -> bool:
    """Whether two JSON findings are the same statement's finding of the same rule."""
    return all(a.get(key) == b.get(key) for key in ("migration", "rule", "fingerprint"))


def describe_tables(dsn: str) -> None:
    """Print each sample table's row estimate (pg_class.reltuples) and size, as the gate sees them."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT relname, reltuples::bigint, pg_size_pretty(pg_total_relation_size(oid))
            FROM pg_class
            WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace
              AND (relname LIKE 'shop\\_%' OR relname LIKE 'billing\\_%')
            ORDER BY reltuples DESC
            """
        ).fetchall()
    for name, reltuples, size in rows:
        print(f"  {name:<18} {reltuples:>12,} rows  {size:>9}")


def demo(sizes: dict[str, int]) -> int:
    """Run the demo; returns the process exit status."""
    problems: list[str] = []
    started = time.perf_counter()
    with EmbeddedPostgres() as pg, tempfile.TemporaryDirectory(prefix="migration-guard-demo-") as tmp:
        section("Setting up: a throwaway PostgreSQL server and the sample shop database")
        print(f"PostgreSQL started in {time.perf_counter() - started:.1f}s (unix socket in {pg.host})")
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
            version = conn.execute("SHOW server_version").fetchone()[0]
        print(f"created database {DATABASE!r} on PostgreSQL {version}")
        env = project_env(pg, DATABASE)

        step = time.perf_counter()
        for app_label, name in BASE_MIGRATIONS:
            result = run([sys.executable, str(MANAGE), "migrate", app_label, name, "--no-input", "-v", "0"], env)
            if result.returncode != 0:
                print("the base migrations did not apply: the demo cannot go on")
                return 1
        print(f"base migrations applied in {time.perf_counter() - step:.1f}s")

        timings = fill_tables(pg.dsn(DATABASE), sizes)
        print(f"filled the tables in {sum(timings.values()):.1f}s:")
        for what, seconds in timings.items():
            print(f"  {what:<32} {seconds:6.2f}s")
        print("table sizes as the gate reads them (pg_class):")
        describe_tables(pg.dsn(DATABASE))

        section("1. lint_migrations: the pending migrations, against this database")
        first = lint(env)
        if first.returncode != 1:
            problems.append(f"the first lint exited {first.returncode}; the demo expects 1 (blocked)")

        section("2. Approving one blocked finding")
        findings = lint_findings(env)
        chosen, expected = pick_blocking(findings) if findings is not None else (None, False)
        approvals = Path(tmp) / "migration-approvals.toml"
        if chosen is None:
            problems.append("no blocking finding to approve in lint --format json")
        else:
            if not expected:
                problems.append(f"no blocking {APPROVE_RULE} finding in {APPROVE_MIGRATION}; "
                                f"approved {chosen['rule']} in {chosen['migration']} instead")
            approve = run(
                [*cli_command(), "approve", chosen["migration"], chosen["rule"],
                 "--fingerprint", chosen["fingerprint"], "--reason", APPROVE_REASON, "--by", APPROVE_BY,
                 "--file", str(approvals)],
                env,
            )
            if approve.returncode != 0:
                problems.append(f"migration-guard approve exited {approve.returncode}")
            elif approvals.exists():
                print(f"\n--- {approvals} ---\n{approvals.read_text()}", end="")

        if chosen is not None and approvals.exists():
            section("3. lint_migrations again, with the approvals file: the approved migration passes")
            app_label, name = chosen["migration"].split(".", 1)
            second = lint(env, app_label, name, "--approvals", str(approvals))
            if second.returncode != 0:
                problems.append(f"the lint of {chosen['migration']} with its approval exited {second.returncode}, not 0")
            after = lint_findings(env, "--approvals", str(approvals))
            matching = [f for f in after or [] if same_finding(f, chosen)]
            if not matching:
                problems.append("the approved finding is missing from the second lint's JSON")
            elif any(f.get("blocking") for f in matching):
                problems.append("the approved finding still blocks")
            else:
                print(f"\nthe finding {chosen['rule']} in {chosen['migration']} is approved: it no longer blocks")

        section("Done")
        print(f"demo finished in {time.perf_counter() - started:.1f}s")
        for problem in problems:
            print(f"UNEXPECTED: {problem}")
        if not problems:
            print("everything went as the demo expects: blocked first, the approved finding no longer blocks")
        return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """Run the demo (no options; ``--help`` describes it)."""
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    return demo(SIZES)


if __name__ == "__main__":
    raise SystemExit(main())
