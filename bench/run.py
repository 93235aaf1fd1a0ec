"""``make bench``: how long the gate takes, side by side with what Django itself takes.

For each size N (generated projects, see ``generate.py``) and for a realistic project assembled
from pip-installed Django apps (``realistic/``), every figure is one ``python manage.py ...``
subprocess on an embedded PostgreSQL, timed by wall clock, its peak memory read from the kernel's
resource usage of that child (``os.wait4``), as ``/usr/bin/time`` would:

- ``migrate`` on an empty database (floor of the CI mode) and ``lint_migrations --scratch`` on an
  empty database (every migration linted by applying it to a throwaway database);
- ``collect_sql`` in one pass (``MigrationExecutor.collect_sql`` over the whole plan, floor of
  the release-gate mode) and ``lint_migrations`` with every migration pending (collect mode);
- ``migrate --plan`` with N-1 applied (floor of the PR case) and ``lint_migrations`` of the one
  pending migration (the PR case);
- ``sqlmigrate`` once per migration, in process, as other Django linters do, up to a time cap,
  on a sample spread over the plan, projected to all N;
- ``migration-guard explain`` on a generated SQL script, against pglast parsing the same file.

Fast figures (under ``--repeat-below`` seconds) are the median of ``--repeat`` runs. Prints a
table, writes JSON (``--out``) and, with ``--page``, the performance page's section.

    python bench/run.py [--sizes 100,1000,5000] [--out bench-results.json] [--page docs/performance.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from generate import apps_for, generate, generate_sql  # noqa: E402

from migration_guard.embedded import EmbeddedPostgres  # noqa: E402

__all__ = ["main"]

MIGRATION_GUARD = str(Path(sys.executable).with_name("migration-guard"))


@dataclass
class Measure:
    """One command: wall seconds, peak resident memory, exit code; ``capped`` when killed at the cap."""

    wall_s: float
    peak_mb: float
    code: int
    capped: bool = False
    runs: int = 1
    detail: dict | None = None


def run_measured(cmd: list[str], *, cwd: Path, env: dict, cap: float, stdout_path: Path | None = None,
                 codes: tuple[int, ...] = (0, 1)) -> Measure:
    """Run ``cmd`` once; wall time and the child's own peak RSS (``ru_maxrss`` from ``wait4``). An exit
    code outside ``codes`` (1 is the gate's "blocked") is an error, unless the run was stopped at the cap."""
    out = open(stdout_path or os.devnull, "w")
    err = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
    timer = threading.Timer(cap, proc.kill)
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    timer.cancel()
    capped = not timer.is_alive() and wall >= cap
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    out.close()
    if code not in codes and not capped:
        err.seek(0)
        tail = err.read().decode(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} in {cwd} exited {code}:\n{tail}")
    err.close()
    return Measure(wall_s=wall, peak_mb=usage.ru_maxrss / 1024, code=code, capped=capped)


def repeated(make, repeat: int, below: float) -> Measure:
    """``make()`` once, and again up to ``repeat`` times in all when it is quick; the median run."""
    runs = [make()]
    if runs[0].wall_s < below and not runs[0].capped:
        runs += [make() for _ in range(repeat - 1)]
    return _median(runs)


def _median(runs: list[Measure]) -> Measure:
    runs = sorted(runs, key=lambda m: m.wall_s)
    median = runs[len(runs) // 2]
    median.runs = len(runs)
    median.wall_s = statistics.median(m.wall_s for m in runs)
    return median


class Bench:
    def __init__(self, server: EmbeddedPostgres, work: Path, *, cap: float, sqlmigrate_cap: float,
                 repeat: int, below: float, python: str, ci: bool = True, only_ci: bool = False):
        self.server, self.work, self.cap = server, work, cap
        self.sqlmigrate_cap, self.repeat, self.below, self.python = sqlmigrate_cap, repeat, below, python
        self.databases = 0
        self.ci = ci
        self.only_ci = only_ci
        self._plan_db = ""

    def database(self, template: str = "template1") -> str:
        self.databases += 1
        name = f"bench_{self.databases}"
        with psycopg.connect(self.server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def applied(self, db: str) -> set[tuple[str, str]]:
        """The migrations recorded as applied in ``db``."""
        with psycopg.connect(self.server.dsn(db)) as conn:
            return set(conn.execute("SELECT app, name FROM django_migrations").fetchall())

    def drop(self, name: str) -> None:
        with psycopg.connect(self.server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def env(self, project: Path, settings: str, db: str) -> dict:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "BENCH_DB_NAME": db,
            "BENCH_DB_HOST": self.server.host,
            "BENCH_DB_PORT": str(self.server.port),
            "BENCH_DB_USER": self.server.user,
            "PYTHONPATH": os.pathsep.join([str(project), str(REPO)]),
            # The gate's cache of the applied project state: the bench's own, so a run starts cold.
            "MIGRATION_GUARD_CACHE_DIR": str(self.work / "state-cache"),
        }

    def manage(self, project: Path, settings: str, db: str, *args: str, out: Path | None = None,
               cap: float | None = None, env: dict | None = None) -> Measure:
        # Only the gate exits 1 on success (blocked); Django's commands exit 1 when they fail (a
        # migrate --plan that cannot connect exits 1 after loading the migrations, as fast as a plan).
        return run_measured([self.python, "-m", "django", *args], cwd=project,
                            env={**self.env(project, settings, db), **(env or {})}, cap=cap or self.cap,
                            stdout_path=out, codes=(0, 1) if args[0] == "lint_migrations" else (0,))

    def floor(self, project: Path, settings: str, db: str, *args: str, out: Path, cap: float | None = None) -> Measure:
        """``floors.py`` in the project's settings; its JSON becomes the measure's detail."""
        measure = run_measured([self.python, str(HERE / "floors.py"), *args], cwd=project,
                               env=self.env(project, settings, db), cap=cap or self.cap, stdout_path=out)
        if not measure.capped:
            try:
                measure.detail = json.loads(out.read_text())
            except ValueError:  # floors.py failed on this project: recorded as such, the rest goes on
                measure.detail = {"failed": True}
        return measure

    def project(self, project: Path, settings: str) -> dict:
        """Every figure for one project."""
        results: dict[str, Measure] = {}
        # Byte-compile first, as an installed project is: no figure pays for compiling migrations.
        subprocess.run([self.python, "-m", "compileall", "-q", str(project), str(REPO / "migration_guard")],
                       check=True)

        def step(name: str, measure: Measure) -> Measure:
            results[name] = measure
            flag = " (capped)" if measure.capped else ""
            print(f"  {project.name} {name}: {measure.wall_s:.2f} s, {measure.peak_mb:.0f} MB{flag}",
                  file=sys.stderr, flush=True)
            return measure

        # Floor of CI mode: Django's own migrate on an empty database; keep the database (all applied).
        applied_db = self.database()
        step("migrate", self.manage(project, settings, applied_db, "migrate", "-v0"))
        if results["migrate"].capped:
            self.drop(applied_db)
            applied_db = None

        def fresh(*args, out=None, cap=None, floor=False):
            def make():
                db = self.database()
                try:
                    if floor:
                        return self.floor(project, settings, db, *args, out=out, cap=cap)
                    return self.manage(project, settings, db, *args, out=out, cap=cap)
                finally:
                    self.drop(db)
            return make

        if not self.only_ci:
            step("lint_scratch", repeated(fresh("lint_migrations", "--scratch", "--format", "json",
                                                out=self.work / f"{project.name}-scratch.json"), self.repeat,
                                          self.below))
            step("collect_floor", repeated(fresh("collect", out=self.work / "collect.json", floor=True),
                                           self.repeat, self.below))
        count = ((results["collect_floor"].detail or {}).get("migrations") if "collect_floor" in results else None) \
            or _count_migrations(self.work / f"{project.name}-scratch.json", project)
        if not self.only_ci:
            step("lint_collect", repeated(fresh("lint_migrations", "--format", "json",
                                                out=self.work / f"{project.name}-collect.json"), self.repeat,
                                          self.below))
        faked = applied_db is None
        if faked:
            # migrate did not finish within the cap: record every migration as applied without
            # running it (the PR case then reads an empty catalog, which only flatters it a little).
            applied_db = self.database()
            self.manage(project, settings, applied_db, "migrate", "--fake", "-v0", cap=self.cap * 4)
        if applied_db is not None:
            # The PR case: every migration applied but the last one in migrate's order.
            last = self._unapply_last(project, settings, applied_db, fake=faked)
            step("migrate_plan", repeated(lambda: self.manage(project, settings, applied_db, "migrate", "--plan"),
                                          self.repeat, self.below))
            self._plan_db = applied_db  # the pull request in CI mode has migrate --plan next to it
            def lint_last(**env):
                return lambda: self.manage(project, settings, applied_db, "lint_migrations", "--format", "json",
                                           out=self.work / f"{project.name}-last.json", env=env)

            # Without the state cache (a first run), then with it (every later run on the same history).
            if self.only_ci:
                return self._ci_only(project, settings, step, results, applied_db, count)
            step("lint_last_cold", repeated(lint_last(MIGRATION_GUARD_CACHE="0"), self.repeat, self.below))
            lint_last()()  # fills the cache
            step("lint_last", repeated(lint_last(), self.repeat, self.below))
            results["lint_last"].detail = {"migration": last, "faked": faked}
        step("sqlmigrate", fresh("sqlmigrate", "--cap", str(self.sqlmigrate_cap), out=self.work / "sqlmigrate.json",
                                 cap=self.sqlmigrate_cap + 120, floor=True)())
        if self.ci and applied_db is not None:
            self.ci_case(project, settings, step)
        if applied_db is not None:
            self.drop(applied_db)
        return {"migrations": count, **{name: asdict(m) for name, m in results.items()}}

    def _ci_only(self, project: Path, settings: str, step, results: dict, applied_db: str, count: int) -> dict:
        """``--only-ci``: migrate, migrate --plan and the pull request in CI mode."""
        try:
            self.ci_case(project, settings, step)
        finally:
            self.drop(applied_db)
        if not count:
            count = results["ci_warm"].detail["base"] + 1
        return {"migrations": count, **{name: asdict(m) for name, m in results.items()}}

    def ci_case(self, project: Path, settings: str, step) -> None:
        """The pull request in CI mode (``lint_migrations --embedded``, the base cache): a new app's
        migration that depends on every app's last migration, so that its base is the whole history
        (one new migration on top of all the others), linted with no base cache (as before it), cold
        (an empty cache: the base is built and kept), after a merge of the base's last ten migrations
        (a template without them) and warm (the template at the base). Cold and no cache are run in
        pairs side by side, and warm beside ``migrate --plan``, so that their ratios hold on a machine
        whose speed drifts; then what Django's own ``migrate`` pays for the ten merged migrations
        (``merged_migrate``), the floor of the merge run. The migration is named with ``--files``
        (what ``--since`` selects from git, without git). ``self._plan_db`` is left at the base without
        the ten; the caller drops it next."""
        layout = self._ci_layout(project, settings)
        new, merged = layout["new"], layout["merged"]
        caches = iter(range(1_000_000))

        def lint(cache: Path | None, *files: str, out: str = "ci"):
            env = {"MIGRATION_GUARD_CACHE_DIR": str(cache)} if cache else {"MIGRATION_GUARD_BASE_CACHE": "0"}
            return self.manage(project, settings, "unused", "lint_migrations", "--embedded", "--format", "json",
                               "--files", *files, out=self.work / f"{project.name}-{out}.json", env=env)

        def empty_cache() -> Path:
            return self.work / f"{project.name}-base-cache-{next(caches)}"  # one work folder for every project

        first = (lint(None, new, out="ci-off"), lint(empty_cache(), new, out="ci-cold"))
        pairs = [first] + [(lint(None, new, out="ci-off"), lint(empty_cache(), new, out="ci-cold"))
                           for _ in range(self.repeat - 1 if first[0].wall_s < self.below * 6 else 1)]
        off, cold = (_median([pair[i] for pair in pairs]) for i in (0, 1))
        cold.detail = {"ratio": statistics.median(c.wall_s / o.wall_s for o, c in pairs)}
        step("ci_off", off)
        step("ci_cold", cold)
        # Before the merge: main lacks the merged migrations; a run with them new keeps that base.
        before = empty_cache()
        lint(before, *merged, new, out="ci-before-merge")
        merges = []
        for _ in range(self.repeat):
            cache = empty_cache()
            shutil.copytree(before, cache, symlinks=True)
            merges.append(lint(cache, new, out="ci-merge"))
        step("ci_merge", _median(merges))
        # cache now holds the base itself (kept by the last merge run): warm, beside migrate --plan.
        pairs = [(self.manage(project, settings, self._plan_db, "migrate", "--plan"),
                  lint(cache, new, out="ci-warm")) for _ in range(self.repeat)]
        warm = _median([pair[1] for pair in pairs])
        warm.detail = {"ratio": statistics.median(w.wall_s / p.wall_s for p, w in pairs),
                       "plan_s": statistics.median(p.wall_s for p, _ in pairs),
                       "base": layout["base"], "merged": len(merged)}
        reports = [json.loads((self.work / f"{project.name}-{name}.json").read_text())["migrations"]
                   for name in ("ci-off", "ci-cold", "ci-merge", "ci-warm")]
        warm.detail["same_report"] = all(report == reports[0] for report in reports)
        step("ci_warm", warm)
        step("ci_merged_migrate", self.merged_migrate(project, layout["base_settings"], layout["merged_labels"]))

    def merged_migrate(self, project: Path, settings: str, merged: list[list[str]]) -> Measure:
        """Django's own cost of the migrations a merge brings: ``manage.py migrate`` as a user runs it
        after the merge (``settings``: the project without the pull request's app, so that it applies
        exactly those), on a copy of ``self._plan_db`` brought to the base without them, beside a
        ``migrate`` with nothing to apply on the same copy right after it (Django's start-up, the
        migration graph, the project state of the applied migrations and its models rendered: what any
        ``migrate`` pays before it applies anything). ``--repeat`` pairs side by side; the measure is
        the median ``migrate`` of the ten, its detail the median of the pairs' differences
        (``ten_s``). ``self._plan_db`` is itself unapplied to the base without the ten, once, by
        Django's ``MigrationExecutor`` (``_UNMERGE``)."""
        unmerge = run_measured([self.python, "-c", _UNMERGE, json.dumps(merged)], cwd=project,
                               env=self.env(project, settings, self._plan_db), cap=self.cap * 4, codes=(0,))
        if unmerge.capped:
            raise RuntimeError(f"unapplying the merged migrations did not finish in {self.cap * 4:.0f} s")
        pairs = []
        for _ in range(self.repeat):
            copy = self.database(template=self._plan_db)
            try:
                before = self.applied(copy)
                ten = self.manage(project, settings, copy, "migrate", "-v0")
                if self.applied(copy) - before != {tuple(label) for label in merged}:
                    raise RuntimeError(f"migrate applied {sorted(self.applied(copy) - before)}, not {merged}")
                pairs.append((self.manage(project, settings, copy, "migrate", "-v0"), ten))
            finally:
                self.drop(copy)
        measure = _median([ten for _, ten in pairs])
        measure.detail = {"ten_s": statistics.median(ten.wall_s - noop.wall_s for noop, ten in pairs),
                          "noop_s": statistics.median(noop.wall_s for noop, _ in pairs), "migrations": len(merged)}
        return measure

    def _ci_layout(self, project: Path, settings: str) -> dict:
        """Add the pull request's app (``prapp``: one migration on top of every app's last one) to
        the project; its migration's file, how many migrations its base has, the files and the
        (app, name) labels of the base's last ten in migrate's order (the rest is closed under
        dependencies), and a settings module of the project without the pull request's app (the
        base as main has it: its ``migrate`` applies no ``prapp`` migration)."""
        app = project / "prapp"
        (app / "migrations").mkdir(parents=True, exist_ok=True)
        (app / "__init__.py").write_text("")
        (app / "migrations" / "__init__.py").write_text("")
        out = self.work / "ci-layout.json"

        def layout() -> dict:
            measure = run_measured([self.python, "-c", _CI_LAYOUT], cwd=project,
                                   env=self.env(project, settings, "unused"), cap=self.cap, stdout_path=out)
            assert measure.code == 0
            return json.loads(out.read_text())

        leaves = [tuple(leaf) for leaf in layout()["leaves"]]
        (app / "migrations" / "0001_pr.py").write_text(_PR_MIGRATION.format(dependencies=leaves))
        settings_file = project / (settings.replace(".", "/") + ".py")
        settings_file.write_text(settings_file.read_text() + '\nINSTALLED_APPS = [*INSTALLED_APPS, "prapp"]\n')
        base_settings = settings + "_without_pr"
        settings_file.with_name(base_settings.rsplit(".", 1)[-1] + ".py").write_text(
            f"from {settings} import *\n\nINSTALLED_APPS = [app for app in INSTALLED_APPS if app != 'prapp']\n")
        return {**layout(), "new": str(app / "migrations" / "0001_pr.py"), "base_settings": base_settings}

    def _unapply_last(self, project: Path, settings: str, db: str, fake: bool = False) -> str:
        """Unapply the last migration in migrate's order (a leaf); return its label."""
        plan_out = self.work / "plan.txt"
        self.manage(project, settings, db, "showmigrations", "--plan", out=plan_out)
        last = [line.split("]", 1)[1].strip() for line in plan_out.read_text().splitlines() if "]" in line][-1]
        app, name = last.split(".", 1)
        previous = self._previous_in_app(project, settings, db, app, name)
        self.manage(project, settings, db, "migrate", app, previous, "-v0", *(["--fake"] if fake else []),
                    cap=self.cap * 4)
        return last

    def _previous_in_app(self, project: Path, settings: str, db: str, app: str, name: str) -> str:
        out = self.work / "app-plan.txt"
        self.manage(project, settings, db, "showmigrations", app, out=out)
        names = [line.split("]", 1)[1].strip() for line in out.read_text().splitlines() if "]" in line]
        index = names.index(name)
        return names[index - 1] if index else "zero"

    def explain(self, statements: int) -> dict:
        path = generate_sql(self.work / f"script-{statements}.sql", statements)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        # Side by side, parse then explain, --repeat times: the ratio is the median of the pairs' ratios,
        # which holds when the machine's speed drifts between runs.
        pairs = [(run_measured([self.python, "-c", _PGLAST, str(path)], cwd=self.work, env=env, cap=self.cap),
                  run_measured([MIGRATION_GUARD, "explain", "--format", "json", str(path)], cwd=self.work, env=env,
                               cap=self.cap))
                 for _ in range(self.repeat)]
        parse, explain = (_median([pair[i] for pair in pairs]) for i in (0, 1))
        explain.detail = {"ratio": statistics.median(e.wall_s / p.wall_s for p, e in pairs)}
        for name, m in (("pglast", parse), ("explain", explain)):
            print(f"  explain {statements}: {name} {m.wall_s:.2f} s, {m.peak_mb:.0f} MB", file=sys.stderr, flush=True)
        return {"statements": statements, "pglast_parse": asdict(parse), "explain": asdict(explain)}


def _count_migrations(scratch_report: Path, project: Path) -> int:
    """When the floor that counts them failed or was stopped: the migrations the --scratch lint
    reported, else the project's own migration files (the generated projects hold all of theirs)."""
    try:
        return len(json.loads(scratch_report.read_text())["migrations"])
    except (OSError, ValueError, KeyError):
        return sum(1 for path in project.glob("*/migrations/[0-9]*.py"))


_CI_LAYOUT = """
import json, sys
import django
django.setup()
from django.db.migrations.executor import MigrationExecutor
executor = MigrationExecutor(None)
graph = executor.loader.graph
order = [(m.app_label, m.name) for m, _ in executor.migration_plan(graph.leaf_nodes(), clean_start=True)]
base = [node for node in order if node[0] != "prapp"]  # the pull request's app comes last: it needs all
path = lambda node: sys.modules[type(graph.nodes[node]).__module__].__file__
print(json.dumps({"leaves": sorted(graph.leaf_nodes()), "base": len(base), "merged": [path(n) for n in base[-10:]],
                  "merged_labels": base[-10:]}))
"""

# Bring the database to the base without the merged migrations (argv[1]: their labels), with Django's
# own executor: back, each app of theirs to its last migration not merged (zero when none), which also
# unapplies whatever depends on them (nothing else: the rest is closed under dependencies); then forth,
# any other migration not applied (the bench unapplied the last one for migrate --plan). Checked.
_UNMERGE = """
import json, sys
import django
django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
merged = {tuple(label) for label in json.loads(sys.argv[1])}
executor = MigrationExecutor(connection)
graph = executor.loader.graph
order = [(m.app_label, m.name) for m, _ in executor.migration_plan(graph.leaf_nodes(), clean_start=True)]
assert merged <= set(order), sorted(merged - set(order))
kept = [node for node in order if node not in merged]
last = {app: name for app, name in kept}  # migrate's order: an app's last kept migration comes last
applied = set(executor.loader.applied_migrations)
back = [(app, last.get(app)) for app in sorted({app for app, _ in merged})]
executor.migrate([target for target in back if target[1] is None or target in applied])
MigrationExecutor(connection).migrate(sorted(last.items()))
applied = {node for node in MigrationRecorder(connection).applied_migrations() if node in graph.nodes}
assert applied == set(kept), sorted(applied ^ set(kept))[:10]
"""

_PR_MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = {dependencies!r}
    operations = [
        migrations.CreateModel("Note", [("id", models.BigAutoField(primary_key=True)), ("text", models.TextField())]),
    ]
"""

_PGLAST = "import sys, pglast; pglast.parse_sql(open(sys.argv[1], encoding='utf-8').read())"


def growth(a: tuple[int, float], b: tuple[int, float]) -> float | None:
    """The exponent k in time ~ N^k between two sizes."""
    (n1, t1), (n2, t2) = a, b
    if t1 <= 0 or t2 <= 0 or n1 == n2:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import django

    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError):
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gb": memory, "python": platform.python_version(),
            "django": django.get_version(), "os": platform.platform(), "postgresql": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="numbers of migrations, comma-separated")
    parser.add_argument("--statements", default="5000,50000", help="sizes of the explain SQL scripts")
    parser.add_argument("--realistic", default=str(HERE / "realistic"),
                        help="folder of the realistic project ('' to skip)")
    parser.add_argument("--cap", type=float, default=240, help="seconds before a command is stopped")
    parser.add_argument("--sqlmigrate-cap", type=float, default=60, help="seconds of per-migration sqlmigrate")
    parser.add_argument("--repeat", type=int, default=3, help="runs of a quick figure (median)")
    parser.add_argument("--repeat-below", type=float, default=10, help="a figure is quick below this many seconds")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results.json")
    parser.add_argument("--page", type=Path, help="rewrite the performance section of this page (docs/performance.md)")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects and outputs")
    parser.add_argument("--no-ci", action="store_true", help="skip the pull request in CI mode (base cache)")
    parser.add_argument("--no-explain", action="store_true", help="skip the explain scripts")
    parser.add_argument("--only-ci", action="store_true",
                        help="only migrate, migrate --plan and the pull request in CI mode (base cache)")
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    statements = [int(s) for s in args.statements.split(",") if s.strip()]
    work = Path(tempfile.mkdtemp(prefix="migration-guard-bench-"))
    os.chmod(work, 0o755)
    started = time.perf_counter()
    document = {"machine": machine(), "sizes": [], "explain": [], "realistic": None, "only_ci": args.only_ci}
    with EmbeddedPostgres() as server:
        with psycopg.connect(server.dsn()) as conn:
            document["machine"]["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        bench = Bench(server, work, cap=args.cap, sqlmigrate_cap=args.sqlmigrate_cap, repeat=args.repeat,
                      below=args.repeat_below, python=sys.executable, ci=not args.no_ci,
                      only_ci=args.only_ci)
        def save() -> None:  # after every project, so a stopped run keeps what it measured
            document["total_s"] = time.perf_counter() - started
            args.out.write_text(json.dumps(document, indent=2) + "\n")

        for count in [] if args.no_explain or args.only_ci else statements:
            document["explain"].append(bench.explain(count))
            save()
        for count in sizes:
            project = generate(work / f"generated-{count}", count)
            print(f"generated {count} migrations in {apps_for(count)} apps", file=sys.stderr, flush=True)
            document["sizes"].append(bench.project(project, "benchproj.settings"))
            save()
        if args.realistic:
            realistic = Path(args.realistic)
            target = work / "realistic"
            shutil.copytree(realistic, target, ignore=shutil.ignore_patterns("__pycache__"))
            document["realistic"] = bench.project(target, "realproj.settings")
    save()
    from report import render_performance_page, render_table

    print(render_table(document))
    if args.page:
        from report import write_page

        write_page(args.page, render_performance_page(document))
    if args.keep:
        print(f"kept {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
