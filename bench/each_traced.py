"""``make bench-each``: how many dangerous statements the gate blocks, and how many safe ones it
blocks for nothing, on a project's whole history, each migration as its own deploy.

On an embedded PostgreSQL, two commands of the project, each on an empty database of its own:

- ``lint_migrations --scratch --each --format json``: every migration linted as if deployed alone,
  with no sizes given, so every table that exists before it is large;
- ``lint_migrations --trace --format json``: every statement run on a scratch database, with the
  locks it really took (``pg_locks``), the tables it really rewrote, built an index on or read in
  full.

A statement is **dangerous** when its *traced* effects rewrite, read in full or build an index on a
table that existed before its migration (the migration did not create it), under a lock on that
table that blocks reads or writes (SHARE or stronger): its own, or one that an earlier statement of
the same transaction took and holds until commit (a backfill after an ALTER TABLE in an atomic
migration; the trace runs each statement alone, so these come from the lint report's transactions). For each statement the gate's blocking
findings are set next to that: dangerous and blocked, dangerous and passed (a silent pass), and
blocking findings on statements that are not dangerous (false alarms), by rule. Statements the
trace cannot judge (Python code, statements it skipped or that failed) are counted apart.

    bench/.venv/bin/python bench/each_traced.py [--project bench/realistic --settings realproj.settings]
                                                 [--out each-traced.json] [--keep]

Never in CI: the realistic project's apps come from ``bench/requirements.txt`` (``make bench``'s venv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
from pglast.parser import fingerprint

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from migration_guard.embedded import EmbeddedPostgres  # noqa: E402
from migration_guard.locks.modes import LockMode  # noqa: E402

__all__ = ["classify", "dangerous_tables", "main"]


def dangerous_tables(server: dict, created: set[str] = frozenset(), held: set[str] = frozenset()) -> set[str]:
    """The tables a traced statement rewrote, read in full or built an index on, under a lock on that table
    that blocks reads or writes: its own, or one an earlier statement of its transaction holds (``held``).
    ``created``: tables its migration created (not existing)."""
    worked = set(server["rewrites"]) | set(server["index_builds"])
    worked |= {table for table, count in server["seq_scans"].items() if count}
    return {table for table in worked if table not in created and (table in held or table in _blocking(server))}


def _blocking(server: dict) -> set[str]:
    """The relations a traced statement locked in a mode that blocks reads or writes."""
    return {lock["relation"] for lock in server["locks"] if LockMode.from_pg_name(lock["mode"]).blocks_traffic}


def classify(lint: dict, trace: dict) -> dict:
    """Set the gate's verdict on each statement (``lint``: the JSON report of ``--each``) next to what
    the trace measured (``trace``: the JSON of ``--trace``); both list the same statements in order."""
    traced: dict[str, list[dict]] = {}
    for entry in trace["statements"]:
        traced.setdefault(entry["file"], []).append(entry)
    blocking: dict[tuple[str, int | None], list[str]] = {}
    for finding in lint["findings"]:
        if finding["blocking"]:
            blocking.setdefault((finding["migration"], finding["statement_index"]), []).append(finding["rule"])

    counts = Counter()
    false_alarms: Counter = Counter()
    on_dangerous: Counter = Counter()
    untraced_blocking: Counter = Counter()
    migration_level: Counter = Counter()
    silent: list[dict] = []
    mismatched: list[str] = []
    for migration in lint["migrations"]:
        label = migration["migration"]
        for rule in blocking.get((label, None), []):
            migration_level[rule] += 1
        entries = traced.get(label, [])
        statements = migration["statements"]
        if len(entries) < len(statements) or not all(
                _same(s["sql"], e["sql"]) for s, e in zip(statements, entries)):
            mismatched.append(label)  # rendered differently by the two runs: not compared
            continue
        created: set[str] = set()  # relations created by this migration so far: new, not existing
        held: dict[object, set[str]] = {}  # transaction -> tables locked against traffic until it commits
        for statement, entry in zip(statements, entries):
            rules = blocking.get((label, statement["index"]), [])
            server = entry.get("server")
            counts["statements"] += 1
            if server is None or entry["skipped"]:
                counts["untraced"] += 1
                untraced_blocking.update(rules)
                continue
            created |= {lock["relation"] for lock in server["locks"] if lock["created"]}
            transaction = _transaction(migration, statement)
            tables = dangerous_tables(server, created=created, held=held.get(transaction, set()))
            if transaction is not None:
                held.setdefault(transaction, set()).update(_blocking(server))
            if tables:
                counts["dangerous"] += 1
                on_dangerous.update(rules)
                if rules:
                    counts["dangerous_blocked"] += 1
                else:
                    silent.append({"migration": label, "index": statement["index"], "sql": statement["sql"],
                                   "tables": sorted(tables)})
            else:
                false_alarms.update(rules)
    return {
        "statements": counts["statements"],
        "untraced": counts["untraced"],
        "dangerous": counts["dangerous"],
        "dangerous_blocked": counts["dangerous_blocked"],
        "silent_passes": silent,
        "false_alarms_by_rule": dict(sorted(false_alarms.items())),
        "blocking_on_dangerous_by_rule": dict(sorted(on_dangerous.items())),
        "blocking_on_untraced_by_rule": dict(sorted(untraced_blocking.items())),
        "migration_level_blocking_by_rule": dict(sorted(migration_level.items())),
        "not_compared": mismatched,
    }


def _transaction(migration: dict, statement: dict):
    """Which transaction a statement runs in (the trace runs each alone, so held locks come from here):
    the migration's when it is atomic, else its operation's, or none (autocommit)."""
    if not statement.get("in_transaction", False):
        return None
    if migration.get("atomic"):
        return "migration"
    operation = statement.get("operation") or {}
    return ("operation", operation.get("index"))


def _same(a: str, b: str) -> bool:
    """The same statement, but for its constants (a default of now() or uuid4() differs between runs)."""
    if a == b:
        return True
    try:
        return fingerprint(a) == fingerprint(b)
    except Exception:  # a comment standing for Python code, or SQL pglast does not parse
        return False


def _manage(project: Path, settings: str, server: EmbeddedPostgres, db: str, *args: str, out: Path) -> int:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "BENCH_DB_NAME": db, "BENCH_DB_HOST": server.host, "BENCH_DB_PORT": str(server.port),
        "BENCH_DB_USER": server.user,
        "PYTHONPATH": os.pathsep.join([str(project), str(REPO)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    with open(out, "w") as stdout:
        started = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "django", *args], cwd=project, env=env, stdout=stdout,
                              stderr=subprocess.PIPE, text=True).returncode
    print(f"  {' '.join(args)}: exit {code}, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=HERE / "realistic", help="a Django project folder")
    parser.add_argument("--settings", default="realproj.settings", help="its settings module")
    parser.add_argument("--out", type=Path, help="also write the figures (and the silent passes) as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the two reports (their folder is printed)")
    parser.add_argument("--reports", type=Path, help="compare the lint.json and trace.json a --keep run left "
                                                     "in this folder again, without running anything")
    args = parser.parse_args(argv)
    if args.reports:
        lint, trace = (json.loads((args.reports / f"{name}.json").read_text()) for name in ("lint", "trace"))
        return _print(classify(lint, trace), lint, trace, args.out)

    work = Path(tempfile.mkdtemp(prefix="migration-guard-each-"))
    os.chmod(work, 0o755)
    project = work / args.project.name
    shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("__pycache__"))
    try:
        with EmbeddedPostgres() as server:
            with psycopg.connect(server.dsn(), autocommit=True) as conn:
                print(f"PostgreSQL {conn.execute('SHOW server_version').fetchone()[0]}", file=sys.stderr)
                for name in ("each_lint", "each_trace"):
                    conn.execute(f'CREATE DATABASE "{name}"')
            lint_code = _manage(project, args.settings, server, "each_lint", "lint_migrations", "--scratch",
                                "--each", "--format", "json", out=work / "lint.json")
            if lint_code not in (0, 1):
                raise SystemExit(f"lint_migrations could not run (exit {lint_code}); see {work}")
            _manage(project, args.settings, server, "each_trace", "lint_migrations", "--trace", "--format", "json",
                    out=work / "trace.json")
        lint = json.loads((work / "lint.json").read_text())
        trace = json.loads((work / "trace.json").read_text())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.keep:
        print(f"kept {work}", file=sys.stderr)
    return _print(classify(lint, trace), lint, trace, args.out)


def _print(figures: dict, lint: dict, trace: dict, out: Path | None) -> int:
    figures["postgresql"] = trace["pg_version"]
    figures["migrations"] = len(lint["migrations"])
    figures["each"] = bool(lint.get("each"))
    print(_table(figures))
    if out:
        out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _table(figures: dict) -> str:
    lines = [
        f"{figures['migrations']} migrations, {figures['statements']} statements, "
        + ("each migration as its own deploy" if figures["each"] else "linted as one plan (without --each)")
        + f", every table large, traced on PostgreSQL {figures['postgresql']}",
        f"  dangerous (traced rewrite, full scan or index build of an existing table under a lock that blocks "
        f"reads or writes): {figures['dangerous']}",
        f"  of those blocked by the gate: {figures['dangerous_blocked']}; passed: {len(figures['silent_passes'])}",
        "  blocking findings on them, by rule: "
        + (", ".join(f"{rule} {n}" for rule, n in figures["blocking_on_dangerous_by_rule"].items()) or "none"),
        "  blocking findings on statements that are not dangerous (false alarms), by rule: "
        + (", ".join(f"{rule} {n}" for rule, n in figures["false_alarms_by_rule"].items()) or "none"),
        f"  statements the trace cannot judge (Python code, skipped, failed): {figures['untraced']}; blocking "
        "findings on them: " + (", ".join(f"{r} {n}" for r, n in figures["blocking_on_untraced_by_rule"].items())
                                or "none"),
        "  blocking findings on a whole migration: "
        + (", ".join(f"{r} {n}" for r, n in figures["migration_level_blocking_by_rule"].items()) or "none"),
    ]
    if figures["not_compared"]:
        lines.append(f"  not compared (rendered differently by the two runs): {', '.join(figures['not_compared'])}")
    for item in figures["silent_passes"]:
        sql = " ".join(item["sql"].split())
        lines.append(f"  PASSED {item['migration']} #{item['index']} ({', '.join(item['tables'])}): {sql[:140]}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
