"""The sample project behind the demo (``sample_migrations/``): every migration, dangerous or safe,
applies on a real server with rows in the tables, unapplies back to the demo's base, and the
models match the migrations.

The project runs in subprocesses (``manage.py`` with ``MIGRATION_GUARD_DEMO_DB_*``), so its settings
never mix with this process's.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parent.parent / "sample_migrations"

# Enough rows for the data-dependent migrations (SET NOT NULL, VALIDATE, backfills) to do real work.
SMALL_SIZES = {"customers": 200, "products": 50, "warehouses": 3, "orders": 3_000, "order_lines": 500,
               "invoices": 100}


def _load_demo():
    spec = importlib.util.spec_from_file_location("sample_demo", SAMPLE / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


def manage(pg_server, dbname: str, *args: str) -> subprocess.CompletedProcess:
    """``python sample_migrations/manage.py <args>`` against ``dbname``."""
    return subprocess.run(
        [sys.executable, str(SAMPLE / "manage.py"), *args],
        cwd=SAMPLE, env=demo.project_env(pg_server, dbname), capture_output=True, text=True, timeout=300,
    )


def migrate(pg_server, dbname: str, *args: str) -> None:
    result = manage(pg_server, dbname, "migrate", *args, "--no-input")
    assert result.returncode == 0, result.stdout + result.stderr


def unapplied(pg_server, dbname: str) -> list[str]:
    """Lines of ``showmigrations --plan`` for migrations not applied."""
    result = manage(pg_server, dbname, "showmigrations", "--plan")
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if not line.startswith("[X]")]


@pytest.fixture
def filled_db(pg_server, fresh_db):
    """A database at the demo's base migrations, its tables filled the way the demo fills them."""
    for app_label, name in demo.BASE_MIGRATIONS:
        migrate(pg_server, fresh_db, app_label, name)
    demo.fill_tables(pg_server.dsn(fresh_db), SMALL_SIZES)
    return fresh_db


def test_every_sample_migration_applies_on_filled_tables(pg_server, filled_db):
    assert len(unapplied(pg_server, filled_db)) > 10  # the pending migrations the demo lints

    migrate(pg_server, filled_db)

    assert unapplied(pg_server, filled_db) == []


def test_sample_migrations_unapply_to_the_base_and_apply_again(pg_server, filled_db):
    migrate(pg_server, filled_db)

    for app_label, name in demo.BASE_MIGRATIONS:
        migrate(pg_server, filled_db, app_label, name)
    migrate(pg_server, filled_db)

    assert unapplied(pg_server, filled_db) == []


def test_sample_models_match_their_migrations(pg_server, fresh_db):
    result = manage(pg_server, fresh_db, "makemigrations", "--check", "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout
