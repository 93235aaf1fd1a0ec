"""A copy of the fixture Django project on a fresh database, driven the way a user drives it:
``python manage.py ...`` in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg

FIXTURE = Path(__file__).parent / "fixture_project"
# The installed console script, next to the interpreter running the tests (no venv on PATH needed).
MIGRATION_GUARD = str(Path(sys.executable).with_name("migration-guard"))
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """A finished command."""

    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


class Project:
    """The fixture project copied to ``root``, with its database on the test server."""

    def __init__(self, root: Path, server, dbname: str, source: Path = FIXTURE):
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("__pycache__"))
        self.root = root
        self.server = server
        self.dbname = dbname
        self.dsn = server.dsn(dbname)
        self.env = {
            **os.environ,
            "FIXTURE_DB_NAME": dbname,
            "FIXTURE_DB_HOST": server.host,
            "FIXTURE_DB_PORT": str(server.port),
            "FIXTURE_DB_USER": server.user,
            "PYTHONPATH": str(REPO),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def add_migration(self, name: str, source: str, app: str = "inventory") -> Path:
        """Write ``<app>/migrations/<name>.py``."""
        path = self.root / app / "migrations" / f"{name}.py"
        path.write_text(source)
        return path

    def manage(self, *args: str, env: dict | None = None) -> Run:
        """Run ``python manage.py ARGS`` in the project folder."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=300,
        )
        return Run(result.returncode, result.stdout, result.stderr)

    def migrate(self, target: str = "0001") -> None:
        run = self.manage("migrate", "inventory", target)
        assert run.code == 0, run.err

    def sql(self, statement: str):
        """Run SQL on the project's database (setup only: never inside the gate)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    def fill_items(self, rows: int) -> None:
        """Put ``rows`` rows in inventory_item and ANALYZE it, so pg_class knows."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO inventory_item (name, quantity, created) "
                f"SELECT 'item ' || g, g, now() FROM generate_series(1, {rows}) g"
            )
            # Flush this session's counters first, or n_live_tup counts the rows again after ANALYZE.
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.execute("SELECT 1")
            conn.execute("ANALYZE inventory_item")

    def cli(self, *args: str) -> Run:
        """Run the ``migration-guard`` command line in the project folder."""
        result = subprocess.run([MIGRATION_GUARD, *args], cwd=self.root, env=self.env, capture_output=True,
                                text=True, timeout=300)
        return Run(result.returncode, result.stdout, result.stderr)

    def lint(self, *args: str, env: dict | None = None) -> Run:
        return self.manage("lint_migrations", *args, env=env)

    def config(self, toml: str) -> None:
        """Write the project's pyproject.toml (the gate reads [tool.migration_guard] from it)."""
        (self.root / "pyproject.toml").write_text(toml)
