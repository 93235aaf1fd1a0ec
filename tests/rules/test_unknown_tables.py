"""Fail closed on tables the lock model's catalog does not know: a catalog read from a database knows
every index, CHECK, key and partition of the tables it read, and the plan tells it about the tables it
creates; of any other table it knows nothing, and finding no index there must not mean "no index".
Each test here was seen to fail before the catalog could say which tables it knows."""

from __future__ import annotations

import json

import psycopg
import pytest

from migration_guard.config import Config
from migration_guard.locks import Catalog
from migration_guard.locks.introspect import catalog_from_database
from migration_guard.model import TableSize
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.stats import Snapshot, TableSizes
from tests.rules.test_rules import BIG, CREATE_NEW, rules

COLLATION = 'ALTER TABLE "shop_order" ALTER COLUMN "code" TYPE varchar(20) COLLATE "C"'


def _findings(sql: str, catalog: Catalog):
    snapshot = Snapshot(pg_version=16, server_version_num=None, taken_at="2026-11-22T00:00:00+00:00",
                        database="prod", tables={"shop_order": TableSize(BIG, BIG * 100, "snapshot")})
    result = analyse_statements(parse_sql_text(sql, "t.sql"), source="t.sql", sizes=TableSizes(snapshot=snapshot),
                                pg_version=16, config=Config(), catalog=catalog)
    return [f for f in result.findings if not ("MG030" <= f.rule <= "MG039")]  # schema advice aside


def test_a_collation_change_on_a_table_no_catalog_describes_is_assumed_to_rebuild_its_indexes():
    # What a Django AlterField(db_collation=...) gives when the linting database does not have the table:
    # the old type, from the project state, and nothing of the table's indexes.
    [finding] = _findings(COLLATION, Catalog.empty().with_column_types({("shop_order", "code"): "varchar(20)"}))
    assert finding.rule == "MG010" and finding.blocking and finding.table == "shop_order"
    assert finding.message.startswith('Changing the collation of "shop_order"."code" rewrites no row but rebuilds '
                                      "every index on it while holding ACCESS EXCLUSIVE")
    assert 'its indexes are not known here, so they are assumed (lint against a database that has "shop_order"' \
        in finding.message
    compile(f"operations = [\n{finding.recipe}\n]", "recipe", "exec")  # pasteable Python
    assert 'CREATE INDEX CONCURRENTLY "<index>_new" ON "shop_order" ("code" COLLATE "C")' in finding.recipe


def test_a_collation_change_where_the_database_shows_no_index_passes(fresh_dsn):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE shop_order (id bigint PRIMARY KEY, code varchar(20))")
        catalog = catalog_from_database(conn)
    assert _findings(COLLATION, catalog) == []  # no index to rebuild: no new noise
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX shop_order_code_idx ON shop_order (code)")
        catalog = catalog_from_database(conn)
    [finding] = _findings(COLLATION, catalog)
    assert finding.rule == "MG010" and '"shop_order_code_idx"' in finding.message and "<index>" not in finding.recipe


@pytest.mark.parametrize("sql", [
    "ALTER TABLE IF EXISTS shop_order ADD COLUMN token uuid DEFAULT gen_random_uuid()",
    "ALTER TABLE shop_order ADD COLUMN p shop_posint",  # may be a domain with a CHECK
    "ALTER DOMAIN shop_posint ADD CONSTRAINT positive CHECK (VALUE > 0)",  # which columns it checks
    "DROP TYPE shop_mood CASCADE",  # which columns it drops
    "CREATE TABLE shop_order_2027 PARTITION OF shop_order FOR VALUES FROM (1) TO (2)",  # a DEFAULT partition?
    "ALTER TABLE shop_order ATTACH PARTITION shop_customer FOR VALUES FROM (1) TO (2)",
])
def test_a_table_created_earlier_in_the_file_tells_nothing_about_the_others(sql):
    # explain without --dsn: a CREATE TABLE used to make the catalog look "read from a database", so the
    # table it did not list did not exist (IF EXISTS did nothing), a type no domain, a parent no DEFAULT.
    alone = rules(sql)
    assert any(severity == "error" for _rule, severity in alone)
    assert rules(CREATE_NEW + "\n" + sql) == alone


def test_a_table_renamed_in_the_plan_still_exists_under_its_new_name(fresh_dsn):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE shop_order (id bigint PRIMARY KEY)")
        catalog = catalog_from_database(conn)
    sql = ("ALTER TABLE shop_order RENAME TO shop_order_old;\n"
           "ALTER TABLE IF EXISTS shop_order_old ADD COLUMN token uuid DEFAULT gen_random_uuid()")
    assert [f.rule for f in _findings(sql, catalog) if f.blocking] == ["MG001"]
    assert catalog.knows_table("shop_order") and not catalog.knows_table("shop_order_old")


def test_attach_partition_to_a_parent_no_catalog_describes_assumes_its_default_partition_and_indexes(fresh_dsn):
    sql = "ALTER TABLE ev ATTACH PARTITION ev_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    [effects] = [r.effects for r in analyse_statements(parse_sql_text(sql, "t.sql"), source="t.sql", sizes=TableSizes(),
                                                       pg_version=16, config=Config()).statements]
    on = {action.table: action for action in effects.actions if action.scans or action.builds_index}
    assert on["ev"].detail.get("assumed_default") and on["ev"].scans
    assert on["ev_2026"].builds_index and "not known" in on["ev_2026"].reason
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE ev (created date NOT NULL) PARTITION BY RANGE (created);"
                     "CREATE TABLE ev_2026 (created date NOT NULL)")
        catalog = catalog_from_database(conn)
    [effects] = [r.effects for r in analyse_statements(parse_sql_text(sql, "t.sql"), source="t.sql", sizes=TableSizes(),
                                                       pg_version=16, config=Config(), catalog=catalog).statements]
    assert [(a.table, a.scans, a.builds_index) for a in effects.actions if a.scans or a.builds_index] == [
        ("ev_2026", True, False)]  # the bound is checked; no DEFAULT partition, no index to build


# -- the Django path: lint_migrations --stats where the linting database does not have the table --------------

MIGRATIONS = {
    "0005_item_code_label_price": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.AddField("item", "code", models.CharField(max_length=20, null=True, db_index=True)),
        migrations.AddField("item", "label", models.CharField(max_length=20, null=True)),
        migrations.AddField("item", "price", models.DecimalField(max_digits=8, decimal_places=2, null=True)),
        migrations.AddConstraint("item", models.CheckConstraint(condition=models.Q(price__gte=0),
                                                                name="item_price_gte_0")),
    ]
""",
    "0006_item_code_collation": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0005_item_code_label_price")]
    operations = [migrations.AlterField("item", "code", models.CharField(max_length=20, null=True, db_index=True,
                                                                         db_collation="C"))]
""",
    "0007_item_label_collation": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_item_code_collation")]
    operations = [migrations.AlterField("item", "label", models.CharField(max_length=20, null=True, db_collation="C"))]
""",
    "0008_item_price_wider": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0007_item_label_collation")]
    operations = [migrations.AlterField("item", "price", models.DecimalField(max_digits=12, decimal_places=2,
                                                                             null=True))]
""",
    "0009_item_name_longer": """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0008_item_price_wider")]
    operations = [migrations.AlterField("item", "name", models.CharField(max_length=300))]
""",
}


def _blocking(run) -> dict[str, list[str]]:
    assert run.code in (0, 1), run.out + run.err
    found: dict[str, list[str]] = {}
    for finding in run.json()["findings"]:
        if finding["blocking"]:
            found.setdefault(finding["migration"].split("_")[0].split(".")[1], []).append(finding["message"])
    return found


def test_lint_migrations_with_a_snapshot_fails_closed_where_the_database_has_no_such_table(project, tmp_path):
    for name, source in MIGRATIONS.items():
        project.add_migration(name, source)
    stats = tmp_path / "prod-stats.json"
    stats.write_text(json.dumps({
        "schema_version": 1, "pg_version": 16, "server_version_num": None, "taken_at": "2026-12-01T00:00:00+00:00",
        "database": "prod", "tables": {"inventory_item": {"rows": 5_000_000, "total_bytes": 900_000_000}}}))
    # The migrations up to 0005 recorded as applied, their tables not there (faked, or another database's
    # history): the catalog read knows nothing of inventory_item; the project state knows its columns.
    assert project.manage("migrate", "inventory", "0005", "--fake").code == 0
    found = _blocking(project.lint("--stats", str(stats), "--format", "json"))
    assert sorted(found) == ["0006", "0007", "0008"]  # 0009 lengthens a varchar no CHECK reads: no noise
    assert all("its indexes are not known here, so they are assumed" in m for m in found["0006"] + found["0007"])
    assert 'the validated CHECK "item_price_gte_0" is checked again' in found["0008"][0]  # from the project state

    # The same plan against a database that has the table: what it shows decides, no assumption.
    assert project.manage("migrate", "inventory", "zero", "--fake").code == 0
    assert project.manage("migrate", "inventory", "0005").code == 0
    found = _blocking(project.lint("--stats", str(stats), "--format", "json"))
    assert sorted(found) == ["0006", "0008"]  # label has no index: its collation changes nothing else
    assert "rebuilds its indexes" in found["0006"][0] and "not known" not in found["0006"][0]
    assert 'the validated CHECK "item_price_gte_0" is checked again' in found["0008"][0]


def test_indexes_that_read_the_column_in_an_expression_or_their_where_are_rebuilt_too(fresh_dsn):
    # The catalog knew an index's key columns only: upper(code) and WHERE code <> '' read none, so a
    # database that had only such indexes on the column showed "none" and the collation change passed.
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE shop_order (id bigint PRIMARY KEY, code varchar(20), total int);"
                     "CREATE INDEX shop_order_code_upper ON shop_order (upper(code));"
                     "CREATE INDEX shop_order_total_coded ON shop_order (total) WHERE code <> '';"
                     "CREATE INDEX shop_order_total ON shop_order (total)")
        catalog = catalog_from_database(conn)
    sql = "CREATE INDEX shop_order_code_lower ON shop_order (lower(code));\n" + COLLATION  # one made by the plan
    [finding] = [f for f in _findings(sql, catalog) if f.statement_index == 1]
    assert finding.rule == "MG010" and finding.message.startswith(
        'Changing the collation of "shop_order"."code" rewrites no row but rebuilds its indexes "shop_order_code_lower", '
        '"shop_order_code_upper", "shop_order_total_coded" while holding ACCESS EXCLUSIVE')
    # nothing built beforehand spares them (measured below): the recipe drops them before and builds them after
    assert finding.recipe.count("has an expression or a WHERE: the change rebuilds it") == 3
    assert "RunSQL" not in finding.recipe
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute('CREATE INDEX shop_order_code_upper_new ON shop_order (upper(code COLLATE "C"))')
        before = conn.execute("SELECT relfilenode FROM pg_class WHERE relname = 'shop_order_code_upper_new'").fetchone()
        conn.execute(COLLATION)
        after = conn.execute("SELECT relfilenode FROM pg_class WHERE relname = 'shop_order_code_upper_new'").fetchone()
    assert before != after
