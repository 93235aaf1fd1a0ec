"""Schema-per-tenant projects (django-tenants, from PyPI): a tenant app's migration runs once in every
tenant schema, so the table that decides the outage is the largest tenant's copy; a shared app's runs
in public. On a real server, with three tenant schemas of different sizes."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import psycopg
import pytest

from tests.projects import Project
from tests.test_lint_migrations import SMALL_THRESHOLD, _finding

TENANTS_PROJECT = Path(__file__).parent / "tenants_project"

ADD_INDEX = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.AddIndex("order", models.Index(fields=["created"], name="order_created_idx"))]
'''

SHARED_INDEX = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]
    operations = [migrations.AddIndex("client", models.Index(fields=["name"], name="client_name_idx"))]
'''


@pytest.fixture(scope="module")
def migrated(pg_server, tmp_path_factory):
    """A database of the django-tenants project migrated with migrate_schemas: public and tenant schemas
    t1, t2, t3 (made once: each test gets a copy)."""
    name = f"tenants_{os.getpid()}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    project = Project(tmp_path_factory.mktemp("tenants") / "project", pg_server, name, source=TENANTS_PROJECT)
    run = project.manage("migrate_schemas", "--shared")
    assert run.code == 0, run.err
    project.sql("INSERT INTO customers_client (schema_name, name) VALUES "
                "('t1', 'One'), ('t2', 'Two'), ('t3', 'Three'); CREATE SCHEMA t1; CREATE SCHEMA t2; CREATE SCHEMA t3")
    run = project.manage("migrate_schemas", "--tenant")
    assert run.code == 0, run.err
    yield name
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def tenants(tmp_path, pg_server, migrated):
    """A copy of the migrated tenants database, and the project on it; ``fill({"t1": rows, ...})`` puts
    rows in each tenant's shop_order."""
    name = f"{migrated}_{next(_copies)}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated}"')
    project = Project(tmp_path / "tenants", pg_server, name, source=TENANTS_PROJECT)
    project.config(SMALL_THRESHOLD)

    def fill(rows: dict[str, int]) -> None:
        for schema, count in rows.items():
            project.sql(f"INSERT INTO {schema}.shop_order (customer_name, total, created) "
                        f"SELECT 'c' || g, g, now() FROM generate_series(1, {count}) g; ANALYZE {schema}.shop_order")

    project.fill = fill
    yield project
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_copies = itertools.count()


def test_a_tenant_migration_is_as_large_as_its_largest_tenant(tenants):
    tenants.fill({"t1": 10, "t2": 3000, "t3": 200})
    tenants.add_migration("0002_order_created_idx", ADD_INDEX, app="shop")
    run = tenants.lint("--format", "json")
    assert run.code == 1, run.out + run.err
    [finding] = _finding(run, "MG002")
    assert (finding["rows"], finding["schema"], finding["runs"], finding["blocking"]) == (3000, "t2", 3, True)
    report = run.json()
    assert report["migrations"][0]["statements"][0]["sql"].startswith('CREATE INDEX "order_created_idx" ON "shop_order"')
    assert any("django-tenants: shared apps' migrations run in public, tenant apps' in each of 3 tenant schemas"
               in note for note in report["notes"])
    text = tenants.lint().out
    assert "table   shop_order (3,000 rows" in text
    assert "in schema t2, the largest copy (the statement runs 3 times, in one schema after the other)" in text
    sarif = tenants.root / "report.sarif"
    markdown = tenants.lint("--output", "markdown:-", "--output", f"sarif:{sarif}").out
    assert "in schema t2, the largest copy" in markdown
    properties = json.loads(sarif.read_text())["runs"][0]["results"][0]["properties"]
    assert (properties["schema"], properties["runs"]) == ("t2", 3)


def test_passes_when_every_tenant_is_small(tenants):
    tenants.fill({"t1": 10, "t2": 900, "t3": 200})
    tenants.add_migration("0002_order_created_idx", ADD_INDEX, app="shop")
    run = tenants.lint("--format", "json")
    assert run.code == 0, run.out + run.err
    [finding] = _finding(run, "MG002")
    assert (finding["rows"], finding["schema"], finding["severity"]) == (900, "t2", "warning")


def test_a_shared_migration_runs_in_public_only(tenants):
    tenants.fill({"t2": 3000})
    tenants.sql("INSERT INTO customers_client (schema_name, name) SELECT 'x' || g, 'x' FROM generate_series(1, 20) g;"
                "ANALYZE customers_client")
    tenants.add_migration("0002_client_name_idx", SHARED_INDEX, app="customers")
    run = tenants.lint("--format", "json")
    assert run.code == 0, run.out + run.err  # 23 clients: small
    [finding] = _finding(run, "MG002")
    assert (finding["rows"], finding["schema"], finding["runs"]) == (23, "public", 1)


TAGS_INDEX = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tags", "0001_initial")]
    operations = [migrations.AddIndex("tag", models.Index(fields=["name"], name="tag_name_idx"))]
'''


def _tags(project, rows: dict[str, int]) -> None:
    for schema, count in rows.items():
        project.sql(f"INSERT INTO {schema}.tags_tag (name) SELECT 'tag ' || g FROM generate_series(1, {count}) g;"
                    f"ANALYZE {schema}.tags_tag")


def test_an_app_both_shared_and_per_tenant_runs_in_public_and_every_tenant(tenants):
    _tags(tenants, {"public": 5000, "t1": 1, "t2": 2, "t3": 3})
    tenants.add_migration("0002_tag_name_idx", TAGS_INDEX, app="tags")
    run = tenants.lint("--format", "json")
    assert run.code == 1, run.out + run.err
    [finding] = _finding(run, "MG002")
    assert (finding["rows"], finding["schema"], finding["runs"]) == (5000, "public", 4)


def test_the_ci_check_takes_the_tenants_from_a_snapshot(tenants, tmp_path):
    tenants.fill({"t1": 10, "t2": 200, "t3": 3000})
    _tags(tenants, {"public": 1, "t1": 1, "t2": 2000, "t3": 3})
    snapshot = tmp_path / "prod-stats.json"
    assert tenants.cli("stats", "dump", "--dsn", tenants.dsn, "-o", str(snapshot)).code == 0
    shop = tenants.add_migration("0002_order_created_idx", ADD_INDEX, app="shop")
    tags = tenants.add_migration("0002_tag_name_idx", TAGS_INDEX, app="tags")
    # Rendered by applying the migrations to a throwaway database, as migrate_schemas would: the shop
    # migrations in a tenant schema there (in public the router skips them, and nothing would render),
    # the tags migrations in public and in that tenant schema.
    run = tenants.lint("--files", str(shop), str(tags), "--stats", str(snapshot), "--format", "json")
    assert run.code == 1, run.out + run.err
    found = {f["migration"]: (f["rows"], f["schema"], f["runs"]) for f in _finding(run, "MG002")}
    assert found == {"shop.0002_order_created_idx": (3000, "t3", 3), "tags.0002_tag_name_idx": (2000, "t2", 4)}
    assert any("every schema of the snapshot but public" in note for note in run.json()["notes"])


def test_preflight_sees_a_session_holding_a_tenants_copy(tenants):
    tenants.fill({"t1": 10, "t2": 20, "t3": 30})
    tenants.config(SMALL_THRESHOLD + "preflight_max_age_seconds = 0\n")
    tenants.add_migration("0002_order_created_idx", ADD_INDEX, app="shop")
    idle = psycopg.connect(tenants.dsn, application_name="tenant-report")
    try:
        idle.execute("BEGIN")
        idle.execute("UPDATE t3.shop_order SET total = 0 WHERE id = 1")  # ROW EXCLUSIVE, idle in transaction
        run = tenants.lint("--format", "json")
    finally:
        idle.close()
    assert run.code == 1, run.out + run.err
    [finding] = _finding(run, "MG009")
    assert finding["table"] == "t3.shop_order" and "tenant-report" in finding["message"]


def test_multi_type_tenants_run_the_apps_of_their_type():
    from migration_guard.tenants import TenantLayout, TenantSchema

    layout = TenantLayout(
        package="django-tenants", tenant_table="customers_client", type_column="type", extra=("extensions",),
        public_apps=frozenset({"customers"}),
        tenant_apps={"shop": frozenset({"orders", "common"}), "school": frozenset({"lessons", "common"})},
        tenants=(TenantSchema("a", "shop"), TenantSchema("b", "school"), TenantSchema("c", "shop"),
                 TenantSchema("d", "gone")),  # a type the settings no longer name: every type's apps
    )
    assert layout.runs("orders").schemas == ("a", "c", "d")
    assert layout.runs("lessons").schemas == ("b", "d")
    assert layout.runs("common").schemas == ("a", "b", "c", "d")
    assert layout.runs("customers").schemas == ("public",)
    assert layout.runs("orders").tail == ("public", "extensions")
    assert layout.runs("unlisted").schemas == ()  # migrated nowhere: the router skips it everywhere


def test_the_first_deploy_has_no_tenant_table_yet(tmp_path, pg_server, fresh_db):
    # Nothing is migrated: the tenant table itself is created by a pending shared migration.
    project = Project(tmp_path / "tenants", pg_server, fresh_db, source=TENANTS_PROJECT)
    run = project.lint("--format", "json")
    assert run.code in (0, 1), run.err
    notes = run.json()["notes"]
    assert "public.customers_client does not exist yet: no tenant schemas" in notes
    assert "shop.0001_initial" in [m["migration"] for m in run.json()["migrations"]]
