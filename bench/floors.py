"""Django's own ways of rendering migrations to SQL, timed by the bench as floors and baselines.

Run inside a project folder (``DJANGO_SETTINGS_MODULE`` set, as ``manage.py`` would):

    python floors.py collect                  # every migration in one pass, one threaded state
    python floors.py sqlmigrate --cap 120     # ``sqlmigrate`` in-process, once per migration

``collect`` is ``MigrationLoader.collect_sql`` over the whole plan: one loader, one project
state advanced through every migration with ``schema_editor(collect_sql=True)`` (what ``migrate
--plan``-style tools would do "rendering once"). ``sqlmigrate`` is what existing Django linters do:
``call_command("sqlmigrate", app, name)`` per migration, each building a fresh loader and replaying
the history up to that migration. It stops at the time cap and reports what it did, on a sample
spread evenly over the plan (a migration late in the plan costs more than an early one). The
bench projects the whole process: its wall time, less the sample's ``loop_s``, plus ``mean_s``
times every migration (so start-up and Django's setup count once, as they do for the gate).

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time


def _setup():
    sys.path.insert(0, os.getcwd())
    import django

    django.setup()


def collect() -> dict:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    statements = executor.loader.collect_sql(plan)
    return {"migrations": len(plan), "statements": len(statements)}


def sqlmigrate(cap: float) -> dict:
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    started = time.perf_counter()
    executor = MigrationExecutor(connection)
    plan = [(m.app_label, m.name) for m, _ in
            executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)]
    # Evenly spread positions, coarse to fine (0, 1/2, 1/4, 3/4, ...), so any prefix of the
    # sample covers the whole plan.
    order, seen, step = [], set(), len(plan)
    while step >= 1 and len(order) < len(plan):
        for position in range(0, len(plan), step):
            if position not in seen:
                seen.add(position)
                order.append(position)
        step //= 2
    order += [p for p in range(len(plan)) if p not in seen]
    done, times = 0, []
    for position in order:
        if time.perf_counter() - started > cap:
            break
        app, name = plan[position]
        t0 = time.perf_counter()
        call_command("sqlmigrate", app, name, stdout=io.StringIO())
        times.append(time.perf_counter() - t0)
        done += 1
    mean = sum(times) / len(times) if times else None
    return {"migrations": len(plan), "done": done, "capped": done < len(plan), "mean_s": mean,
            "elapsed_s": time.perf_counter() - started, "loop_s": sum(times),
            "projected_s": mean * len(plan) if mean is not None else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["collect", "sqlmigrate"])
    parser.add_argument("--cap", type=float, default=120.0, help="sqlmigrate: stop after this many seconds")
    args = parser.parse_args(argv)
    _setup()
    result = collect() if args.mode == "collect" else sqlmigrate(args.cap)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
