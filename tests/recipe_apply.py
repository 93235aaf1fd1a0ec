"""Applying a recipe as a user does: its migrations written as files of the project (one per
``# --- ... ---`` heading, a deploy at a time), each deploy linted by the gate at production size and
then migrated, on a real server; and what the database looks like afterwards, to compare with what
the dangerous migration itself made. Used by ``tests/test_recipes_apply.py``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

DRIVER = Path(__file__).with_name("recipe_driver.py")
REPO = Path(__file__).resolve().parent.parent
LARGE = 5_000_000  # rows of every existing table in the production snapshot

_HEADING = re.compile(r"^\s*# --- (?P<text>.*) ---\s*$")
_DEPLOY = re.compile(r"\bdeploy (\d+)")


@dataclass
class RecipeMigration:
    """One migration of a recipe: the operations under one ``# --- ... ---`` heading."""

    heading: str = ""
    deploy: int = 1
    atomic: bool = True
    imports: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # operations (and the recipe's comments), as printed
    module: str | None = None  # a recipe that is a whole migration module (MG011's)

    @property
    def code(self) -> list[str]:
        """The lines that are not comments (Python's, or SQL's: the advice rules' commentary)."""
        return [line for line in self.lines if line.strip() and not line.lstrip().startswith(("#", "--"))]


def split_recipe(recipe: str) -> list[RecipeMigration]:
    """The migrations a recipe asks for, in order. A heading starts a migration; ``deploy N`` in it
    starts deploy N (else the migration belongs to the deploy before it); ``atomic = False`` or
    ``non-atomic`` in it makes the migration non-atomic. A migration that defines ``class Migration`` is
    a whole module (a RunPython's function with it)."""
    migrations: list[RecipeMigration] = []
    for line in recipe.splitlines():
        heading = _HEADING.match(line)
        if heading:
            text = heading["text"]
            deploy = _DEPLOY.search(text)
            migrations.append(RecipeMigration(
                heading=text,
                deploy=int(deploy[1]) if deploy else (migrations[-1].deploy if migrations else 1),
                atomic="atomic = False" not in text and "non-atomic" not in text,
            ))
            continue
        if not migrations:
            migrations.append(RecipeMigration())
        if re.match(r"\s*(from \S+ import|import) ", line):
            migrations[-1].imports.append(line.strip())
        else:
            migrations[-1].lines.append(line)
    for migration in migrations:
        if any(line.startswith("class Migration(") for line in migration.lines):
            migration.module = "\n".join([*migration.imports, *migration.lines])
            migration.atomic = not any(line.strip() == "atomic = False" for line in migration.lines)
    return migrations


def migration_module(migration: RecipeMigration, dependency: tuple[str, str]) -> str:
    """The migration as a file, depending on ``dependency`` (app label, migration name)."""
    if migration.module is not None:
        module = "\n".join(line for line in migration.module.splitlines() if not _HEADING.match(line))
        return re.sub(r"^(class Migration\(migrations\.Migration\):\n)",
                      rf"\1    dependencies = [{dependency!r}]\n", module, flags=re.M)
    body = textwrap.indent(textwrap.dedent("\n".join(migration.lines)).strip("\n"), " " * 8)
    imports = dict.fromkeys(["from django.db import migrations, models", *migration.imports])
    return "\n".join([
        *imports,
        "",
        "",
        "class Migration(migrations.Migration):",
        f"    atomic = {migration.atomic}",
        f"    dependencies = [{dependency!r}]",
        "    operations = [",
        body,
        "    ]",
        "",
    ])


def driver(server, project: Path, settings: str, steps: list[dict]) -> list[dict]:
    """Run the steps (see ``recipe_driver.py``) in one Django process in ``project``."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "PYTHONDONTWRITEBYTECODE": "1",
           "RECIPE_DRIVER_ADMIN_DSN": server.dsn(),
           "RECIPE_DB_HOST": server.host, "RECIPE_DB_PORT": str(server.port), "RECIPE_DB_USER": server.user,
           "MIGRATION_GUARD_DEMO_DB_HOST": server.host, "MIGRATION_GUARD_DEMO_DB_PORT": str(server.port),
           "MIGRATION_GUARD_DEMO_DB_USER": server.user,
           "PYTHONPATH": os.pathsep.join([str(project), str(REPO)])}
    run = subprocess.run([sys.executable, str(DRIVER)], cwd=project, env=env, input=json.dumps(steps),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def large_snapshot(dsn: str, path: Path) -> Path:
    """A stats snapshot (``migration-guard stats dump``'s format) in which every table of the database
    holds LARGE rows: production size for the gate."""
    with psycopg.connect(dsn) as conn:
        names = [row[0] for row in conn.execute(
            "SELECT quote_ident(nspname) || '.' || quote_ident(relname) FROM pg_class JOIN pg_namespace n "
            "ON n.oid = relnamespace WHERE relkind IN ('r', 'p', 'm') AND nspname NOT IN ('pg_catalog', "
            "'information_schema') AND nspname NOT LIKE 'pg_toast%'")]
        version = conn.info.server_version
    path.write_text(json.dumps({
        "schema_version": 2, "pg_version": version // 10000, "server_version_num": version,
        "taken_at": "2026-01-01T00:00:00+00:00", "database": "production", "search_path": ["public"],
        "tables": {name: {"rows": LARGE, "total_bytes": LARGE * 200} for name in names},
    }))
    return path


@dataclass
class Deployed:
    """What happened to one deploy of a recipe."""

    deploy: int
    files: list[str]
    lint: dict  # lint_migrations' result
    findings: list[dict]  # its JSON report's findings
    migrate: dict  # migrate's result


def deploy_recipe(server, project: Path, settings: str, app: str, database: str, after: str,
                  migrations: list[RecipeMigration], stats: Path, prefix: str, *, first: list[dict] = (),
                  then: list[dict] = ()) -> tuple[list[Deployed], list[dict]]:
    """Write the recipe's migrations into ``app`` after migration ``after``, a deploy at a time: lint
    the deploy's migrations (the pending ones) with the sizes of ``stats``, then migrate. ``first`` and
    ``then``: driver steps before and after, whose results come second."""
    steps: list[dict] = [{"database": database}, *first]
    deploys: list[tuple[int, list[str]]] = []
    previous = after
    for number in sorted({m.deploy for m in migrations}):
        files = {}
        for migration in (m for m in migrations if m.deploy == number):
            name = f"{prefix}_{len(files) + sum(len(f) for _, f in deploys) + 1}"
            files[f"{app}/migrations/{name}.py"] = migration_module(migration, (app, previous))
            previous = name
        deploys.append((number, list(files)))
        steps += [{"write": files},
                  {"manage": ["lint_migrations", "--stats", str(stats), "--format", "json"]},
                  {"manage": ["migrate", "--no-input"]}]
    results = driver(server, project, settings, [*steps, *then])
    around, results = results[1:1 + len(first)] + results[len(steps):], results[1 + len(first):len(steps)]
    done = []
    for index, (number, files) in enumerate(deploys):
        _, lint, migrate = results[3 * index:3 * index + 3]
        try:
            findings = json.loads(lint["out"])["findings"]
        except ValueError:
            findings = []
        done.append(Deployed(number, files, lint, findings, migrate))
    return done, around


def describe(dsn: str, *, data: bool = True) -> dict:
    """The user tables of ``public``: columns (type, NOT NULL, default, generated, collation), indexes and
    constraints by name with their definitions, and (``data``) how many rows and each column's values."""
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT relname, relispopulated FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'p', 'm') AND relname NOT LIKE 'django\\_%' ORDER BY relname").fetchall()
        out = {}
        for table, populated in tables:
            columns = {name: rest for name, *rest in conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(adbin, adrelid), "
                "attgenerated, (SELECT collname FROM pg_collation WHERE oid = attcollation AND collname <> 'default') "
                "FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (table,))}
            indexes = dict(conn.execute(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) || CASE WHEN indisvalid THEN '' "
                "ELSE ' (INVALID)' END FROM pg_index WHERE indrelid = %s::regclass", (table,)).fetchall())
            constraints = {name: rest for name, *rest in conn.execute(
                # (PostgreSQL 18's NOT NULL constraints, named after the column: the columns' NOT NULL says it)
                "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype <> 'n'", (table,))}
            entry = {"columns": columns, "indexes": indexes, "constraints": constraints}
            if data and populated:
                entry["rows"] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                # each column's values (not NULL, then all of them in order): a column renamed or moved compares
                entry["values"] = {column: conn.execute(
                    f'SELECT count("{column}"), md5(coalesce(string_agg("{column}"::text, \',\' ORDER BY '
                    f'"{column}"::text), \'\')) FROM "{table}"').fetchone() for column in columns}
            out[table] = entry
    return out


def differences(expected: dict, got: dict, volatile: str | None = None) -> list[str]:
    """What ``got`` lacks or has otherwise than ``expected`` (and has in more), one line each. The
    ``volatile`` column (of any table: a partitioned table's partitions have it too) has values from a
    volatile default: only how many are not NULL counts."""
    lines = []
    for table in sorted(set(expected) | set(got)):
        if table not in got:
            lines.append(f"{table}: missing")
            continue
        if table not in expected:
            lines.append(f"{table}: not expected")
            continue
        for part in ("columns", "indexes", "constraints"):
            want, have = expected[table][part], got[table][part]
            for name in sorted(set(want) | set(have)):
                if want.get(name) != have.get(name):
                    what = {"columns": "column", "indexes": "index", "constraints": "constraint"}[part]
                    lines.append(f"{table} {what} {name}: expected {want.get(name)}, got {have.get(name)}")
        if expected[table].get("rows") != got[table].get("rows"):
            lines.append(f"{table} rows: expected {expected[table].get('rows')}, got {got[table].get('rows')}")
        want, have = expected[table].get("values", {}), got[table].get("values", {})
        for column in sorted(set(want) & set(have)):
            same = (want[column][0] == have[column][0] if column == volatile
                    else want[column] == have[column])
            if not same:
                lines.append(f"{table} values of {column}: expected {want[column]}, got {have[column]}")
    return lines


def clone(server, source: str, target: str) -> str:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    return target
