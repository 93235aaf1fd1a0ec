"""``make bench-traffic``: what traffic on a 2M-row table feels while migrations are applied.

The sample shop project (``sample_migrations/``, the same database ``make demo`` builds: 2,000,000
orders) gets its pending migrations applied three ways, each on a fresh copy of the database:

1. ``unsafe``: plain ``manage.py migrate`` of the dangerous migrations (the ones the gate blocks);
2. ``safe``: plain ``manage.py migrate`` of their safe twins (the gate's recommended forms);
3. ``safe_migrate``: ``manage.py safe_migrate`` of the same safe twins (``safe_migrate@500ms``:
   with that ``--lock-timeout`` instead of ``--lock-timeout``'s).

The other half of the chain is recorded without running (``migrate --fake``), so each way applies
only its own half, in the chain's order, one ``manage.py`` call per run of consecutive migrations
of its kind. Meanwhile, on localhost:

- a bounded load: ``--readers`` connections each sending a primary-key or customer lookup on
  ``shop_order`` every ``1/--rate`` s, ``--writers`` connections each inserting or updating an order
  at the same pace, each with the application's ``statement_timeout`` (``--app-timeout``). A
  query's latency is counted from when it was due, not from when a stuck connection got round to
  sending it (so a query stuck behind a lock also delays the ones queued after it, as requests
  queue in an application server; no coordinated omission);
- one long-running report query that starts just before the way's first applying command: it scans
  ``shop_order`` and runs for ``--report`` s (``pg_sleep`` stands for the slow part).

Per way: the longest any query waited, p50 and p99 latency, failed queries, and the total time of
the apply commands (process start, the gate for safe_migrate, and the migrations). Prints a
Markdown table and writes JSON (``--out``). Never run in CI: it takes several minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLE = REPO / "sample_migrations"
sys.path.insert(0, str(SAMPLE))
sys.path.insert(0, str(REPO))

import demo  # noqa: E402  (the sample project's database: base migrations, sizes, fill)

from migration_guard.embedded import EmbeddedPostgres  # noqa: E402

__all__ = ["main"]

# The dangerous migrations of the sample chain (sample_migrations/README.md); the rest are their safe twins.
DANGEROUS = {"0002", "0004", "0006", "0010", "0013", "0016", "0018", "0020", "0023"}
SHOP = [f"{n:04d}" for n in range(2, 26)]
BASE_DB = "shop_base"
STATUSES = ["new", "paid", "shipped", "cancelled"]
REPORT_SQL = "SELECT count(*), sum(total_cents), pg_sleep(%s) FROM shop_order"


@dataclass
class Query:
    """One load query: when it was due (seconds since the way started), its latency from then, its
    error class if it failed."""

    due: float
    latency: float
    kind: str
    error: str | None = None


@dataclass
class Step:
    """One manage.py call."""

    command: list[str]
    seconds: float
    code: int
    applies: bool  # False for the --fake calls (not counted in the apply time)
    started: float = 0.0  # seconds since the way started

    def label(self) -> str:
        return " ".join(self.command[:3])


@dataclass
class Way:
    """One way of applying the migrations, and what the load felt."""

    name: str
    lock_timeout: str | None = None  # safe_migrate's
    steps: list[Step] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    report_seconds: float | None = None
    report_error: str | None = None
    apply_window: tuple[float, float] = (0.0, 0.0)
    safe_migrate_logs: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        """The figures of the README's table."""
        start, end = self.apply_window
        window = [q for q in self.queries if start <= q.due <= end]
        latencies = sorted(q.latency for q in window)
        failed = [q for q in window if q.error]
        slow = [q for q in window if q.latency > 1]
        longest = max(window, key=lambda q: q.latency) if window else None
        attempts = {}
        for log in self.safe_migrate_logs:
            for migration in log.get("migrations", []):
                attempts[migration["migration"]] = len(migration.get("attempts", []))
        return {
            "way": self.name,
            "lock_timeout": self.lock_timeout,
            "queries": len(window),
            "longest_wait_s": round(latencies[-1], 3) if latencies else None,
            "p50_ms": round(_percentile(latencies, 50) * 1000, 1) if latencies else None,
            "p99_ms": round(_percentile(latencies, 99) * 1000, 1) if latencies else None,
            "failed": len(failed),
            "failed_by": _count(q.error for q in failed),
            "over_1s": len(slow),
            # Which command was running when they were stuck, and whether they read or wrote.
            "over_1s_during": _count(f"{self._step_at(q.due + q.latency / 2)} ({q.kind})" for q in slow),
            "longest_during": longest and f"{self._step_at(longest.due + longest.latency / 2)} ({longest.kind})",
            "apply_s": round(sum(s.seconds for s in self.steps if s.applies), 1),
            "apply_exit_codes": sorted({s.code for s in self.steps}),
            "report_s": None if self.report_seconds is None else round(self.report_seconds, 1),
            "report_error": self.report_error,
            "safe_migrate_attempts": {k: v for k, v in attempts.items() if v > 1},
        }


    def _step_at(self, moment: float) -> str:
        for step in self.steps:
            if step.started <= moment <= step.started + step.seconds:
                return step.label() + ("" if step.applies else " --fake")
        return "between commands"


def _percentile(sorted_values: list[float], pct: float) -> float:
    index = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


class Load:
    """The readers and writers, each on its own connection, paced by a schedule."""

    def __init__(self, dsn: str, *, readers: int, writers: int, rate: float, app_timeout_ms: int, seed: int):
        self.dsn = dsn
        self.readers, self.writers, self.rate = readers, writers, rate
        self.app_timeout_ms = app_timeout_ms
        self.seed = seed
        self.queries: list[Query] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.t0 = 0.0

    def start(self, t0: float, orders: int) -> None:
        self.t0 = t0
        for number in range(self.readers + self.writers):
            kind = "read" if number < self.readers else "write"
            thread = threading.Thread(target=self._worker, args=(number, kind, orders), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _worker(self, number: int, kind: str, orders: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        interval = 1 / self.rate
        due = time.monotonic() + rng.uniform(0, interval)  # spread the connections over the interval
        made = 0
        # No server-side prepared statements, as Django's default: a prepared SELECT would fail once a
        # migration changes a column's type ("cached plan must not change result type").
        with psycopg.connect(self.dsn, autocommit=True, application_name=f"bench-{kind}-{number}",
                             prepare_threshold=None) as conn:
            conn.execute(f"SET statement_timeout = {self.app_timeout_ms}")
            while not self._stop.is_set():
                now = time.monotonic()
                if now < due:
                    self._stop.wait(due - now)
                    continue
                error = None
                try:
                    if kind == "read":
                        if rng.random() < 0.5:
                            conn.execute("SELECT id, status, total_cents, created_at FROM shop_order WHERE id = %s",
                                         [rng.randint(1, orders)]).fetchall()
                        else:
                            conn.execute("SELECT count(*) FROM shop_order WHERE customer_id = %s",
                                         [rng.randint(1, demo.SIZES["customers"])]).fetchall()
                    elif rng.random() < 0.5:
                        made += 1
                        conn.execute(
                            "INSERT INTO shop_order (customer_id, reference, external_id, status, channel, currency, "
                            "total_cents, shipping_name, created_at, warehouse_id, return_warehouse_id) "
                            "VALUES (%s, %s, %s, 'new', 'web', 'EUR', %s, 'Bench', now(), %s, NULL)",
                            [rng.randint(1, demo.SIZES["customers"]), f"B-{self.seed}-{number}-{made}",
                             f"bench-{self.seed}-{number}-{made}", rng.randint(100, 100_000),
                             rng.randint(1, demo.SIZES["warehouses"])])
                    else:
                        conn.execute("UPDATE shop_order SET status = %s WHERE id = %s",
                                     [rng.choice(STATUSES), rng.randint(1, orders)])
                except psycopg.Error as exc:
                    error = getattr(exc, "sqlstate", None) or type(exc).__name__
                    if conn.broken:
                        break
                done = time.monotonic()
                with self._lock:
                    self.queries.append(Query(due - self.t0, done - due, kind, error))
                due += interval


def report_query(dsn: str, seconds: float, way: Way) -> threading.Thread:
    """The long-running report, in a thread of its own."""

    def run():
        started = time.monotonic()
        try:
            with psycopg.connect(dsn, autocommit=True, application_name="bench-report") as conn:
                conn.execute(REPORT_SQL, [seconds]).fetchall()
        except psycopg.Error as exc:
            way.report_error = getattr(exc, "sqlstate", None) or type(exc).__name__
        way.report_seconds = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def groups() -> list[tuple[bool, str]]:
    """The shop chain as runs of consecutive dangerous or safe migrations: (dangerous, last of the run)."""
    runs: list[tuple[bool, str]] = []
    for name in SHOP:
        dangerous = name in DANGEROUS
        if runs and runs[-1][0] == dangerous:
            runs[-1] = (dangerous, name)
        else:
            runs.append((dangerous, name))
    return runs


def steps_for(way: str) -> list[tuple[list[str], bool]]:
    """The manage.py calls of one way (``unsafe``, ``safe`` or ``safe_migrate``): (arguments, applies)."""
    command = "safe_migrate" if way == "safe_migrate" else "migrate"
    options = ["--log", "{log}"] if way == "safe_migrate" else []
    calls = []
    for dangerous, last in groups():
        runs_it = dangerous == (way == "unsafe")
        calls.append(([command, "shop", last, *options] if runs_it else ["migrate", "shop", last, "--fake"], runs_it))
    # billing.0002: a plain index on a small table, which the gate passes (a safe form).
    calls.append(([command, "billing", "0002", *options] if way != "unsafe"
                  else ["migrate", "billing", "0002", "--fake"], way != "unsafe"))
    return calls


def run_way(name: str, pg: EmbeddedPostgres, args, tmp: Path) -> Way:
    """Apply the migrations one way on a fresh copy of the base database, under load."""
    kind, _, lock_timeout = name.partition("@")
    if kind == "safe_migrate":
        lock_timeout = lock_timeout or args.lock_timeout
    dbname = f"shop_{kind}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{BASE_DB}"')
    dsn = pg.dsn(dbname)
    env = demo.project_env(pg, dbname)
    way = Way(name, lock_timeout or None)
    load = Load(dsn, readers=args.readers, writers=args.writers, rate=args.rate,
                app_timeout_ms=round(args.app_timeout * 1000), seed=len(name))
    t0 = time.monotonic()
    load.start(t0, args.orders)
    time.sleep(args.warmup)
    report = None
    apply_start = time.monotonic() - t0
    for number, (arguments, applies) in enumerate(steps_for(kind)):
        if applies and report is None:
            # Just before this way's first applying command, not before a `--fake` one: how long
            # those take varies with the machine's load, and the report must meet a migration.
            report = report_query(dsn, args.report, way)
            time.sleep(1)  # the report has its lock before the first migration asks for one
        log = tmp / f"{kind}-{lock_timeout}-{number}.json"
        command = [sys.executable, str(demo.MANAGE), *[a.replace("{log}", str(log)) for a in arguments],
                   "--no-input", *(["--lock-timeout", lock_timeout] if arguments[0] == "safe_migrate" else [])]
        started = time.monotonic()
        result = subprocess.run(command, cwd=SAMPLE, env=env, capture_output=True, text=True)
        way.steps.append(Step(command[2:], time.monotonic() - started, result.returncode, applies, started - t0))
        if result.returncode != 0:
            print(f"  {' '.join(command[2:])} exited {result.returncode}:\n{result.stderr[-2000:]}", flush=True)
        if log.exists():
            way.safe_migrate_logs.append(json.loads(log.read_text()))
        print(f"  {name}: {' '.join(command[2:5])} {'' if applies else '(fake) '}"
              f"{way.steps[-1].seconds:.1f} s, exit {result.returncode}", flush=True)
    apply_end = time.monotonic() - t0
    way.apply_window = (apply_start, apply_end)
    time.sleep(1)
    report.join()
    load.stop()
    way.queries = load.queries
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return way


def prepare_base(pg: EmbeddedPostgres, sizes: dict[str, int]) -> None:
    """The demo's database: base migrations applied, tables filled (2M orders), analysed."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{BASE_DB}"')
    env = demo.project_env(pg, BASE_DB)
    for app_label, name in demo.BASE_MIGRATIONS:
        subprocess.run([sys.executable, str(demo.MANAGE), "migrate", app_label, name, "--no-input", "-v", "0"],
                       cwd=SAMPLE, env=env, check=True)
    started = time.monotonic()
    demo.fill_tables(pg.dsn(BASE_DB), sizes)
    print(f"filled {BASE_DB} ({sizes['orders']:,} orders) in {time.monotonic() - started:.0f} s", flush=True)


def markdown(summaries: list[dict], args, machine: str) -> str:
    """The README's table."""
    lines = [
        f"{machine}; {args.readers} readers and {args.writers} writers at {args.rate:g} queries/s each "
        f"(application statement_timeout {args.app_timeout:g} s), one {args.report:g} s report query.",
        "",
        "| applied with | queries | longest wait | p50 | p99 | failed | > 1 s | apply time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    titles = {"unsafe": "`migrate`, unsafe migrations", "safe": "`migrate`, safe twins"}
    for s in summaries:
        title = titles.get(s["way"]) or f"`safe_migrate --lock-timeout {s['lock_timeout']}`, safe twins"
        lines.append(f"| {title} | {s['queries']:,} | {s['longest_wait_s']:.2f} s | {s['p50_ms']:.1f} ms "
                     f"| {s['p99_ms']:,.0f} ms | {s['failed']} | {s['over_1s']} | {s['apply_s']:.1f} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; exit 1 if safe_migrate missed its target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ways", default="unsafe,safe,safe_migrate", help="Which ways, comma-separated.")
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20, help="Queries per second per connection.")
    parser.add_argument("--app-timeout", type=float, default=10, help="The load's statement_timeout, seconds.")
    parser.add_argument("--report", type=float, default=15, help="How long the report query runs, seconds.")
    parser.add_argument("--warmup", type=float, default=2, help="Load before the report and the migrations, s.")
    parser.add_argument("--lock-timeout", default="2s", help="safe_migrate's --lock-timeout.")
    parser.add_argument("--margin", type=float, default=0.5,
                        help="The target: with safe_migrate no query waits longer than lock_timeout + this, s.")
    parser.add_argument("--orders", type=int, default=demo.SIZES["orders"],
                        help="Rows in shop_order (default: the demo's 2,000,000; fewer only to try the script).")
    parser.add_argument("--out", type=Path, help="Write the figures (and every step) as JSON here.")
    args = parser.parse_args(argv)
    ways = [w for w in args.ways.split(",") if w]
    load = os.getloadavg()
    machine = (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores (shared; load average "
               f"{load[0]:.1f} at the start), embedded PostgreSQL 18, fsync off")
    with EmbeddedPostgres() as pg, tempfile.TemporaryDirectory(prefix="migration-guard-traffic-") as tmp:
        prepare_base(pg, {**demo.SIZES, "orders": args.orders})
        results = [run_way(way, pg, args, Path(tmp)) for way in ways]
    summaries = [way.summary() for way in results]
    print()
    print(markdown(summaries, args, machine))
    for s in summaries:
        print(f"{s['way']}: failed {s['failed_by'] or 0}, report {s['report_s']} s"
              f"{' (' + s['report_error'] + ')' if s['report_error'] else ''}, exit codes {s['apply_exit_codes']}"
              + (f", safe_migrate retries {s['safe_migrate_attempts']}" if s['safe_migrate_attempts'] else ""))
    if args.out:
        args.out.write_text(json.dumps({
            "machine": machine, "settings": vars(args) | {"out": str(args.out)}, "summaries": summaries,
            "steps": {w.name: [asdict(s) for s in w.steps] for w in results},
            # The migrations safe_migrate had to retry, with every attempt (who blocked, how long).
            "safe_migrate_retried": {w.name: _retried(w.safe_migrate_logs) for w in results if w.safe_migrate_logs},
        }, indent=1, default=str) + "\n")
    missed = [s for s in summaries if s["lock_timeout"] and (
        s["failed"] or s["longest_wait_s"] > _seconds(s["lock_timeout"]) + args.margin
        or s["apply_exit_codes"] != [0])]
    for s in missed:
        print(f"{s['way']} missed the target: a query waited longer than {s['lock_timeout']} + {args.margin} s, "
              "failed, or an apply command did not exit 0")
    return 1 if missed else 0


def _retried(logs: list[dict]) -> list[dict]:
    return [m for log in logs for m in log.get("migrations", []) if len(m.get("attempts", [])) > 1]


def _seconds(duration: str) -> float:
    from migration_guard.apply import parse_duration

    return parse_duration(duration, "--lock-timeout") / 1000


if __name__ == "__main__":
    raise SystemExit(main())
