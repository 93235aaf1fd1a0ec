"""The lock model from SQL strings alone (no server): the contract rules and the pipeline rely on.

What the server really does is proven in ``test_traced.py``; these tests pin the API, the
details rules read, version differences and the catalog threading between statements.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pglast import ast, parse_sql

from migration_guard.locks import FACTS, SUPPORTED_VERSIONS, Catalog, ForeignKey, advance, analyse, fact
from migration_guard.locks.modes import LockMode
from migration_guard.model import Action, ActionKind, Effects

AE = LockMode.ACCESS_EXCLUSIVE
SRE = LockMode.SHARE_ROW_EXCLUSIVE
SUE = LockMode.SHARE_UPDATE_EXCLUSIVE


def run(sql: str, pg: int = 16, catalog: Catalog | None = None) -> Effects:
    (raw,) = parse_sql(sql)
    return analyse(raw.stmt, pg_version=pg, catalog=catalog or Catalog.empty())


def plan(*sqls: str, pg: int = 16, catalog: Catalog | None = None) -> tuple[Effects, Catalog]:
    """Analyse statements in order, threading the catalog; the last statement's effects."""
    catalog = catalog or Catalog.empty()
    effects = Effects()
    for sql in sqls:
        effects = run(sql, pg, catalog)
        catalog = advance(catalog, effects)
    return effects, catalog


def one(effects: Effects, kind: ActionKind) -> Action:
    (action,) = [a for a in effects.actions if a.kind is kind]
    return action


def locks(effects: Effects) -> dict[str, LockMode]:
    return {lock.relation: lock.mode for lock in effects.locks}


# -- ADD COLUMN ----------------------------------------------------------------------------------


@pytest.mark.parametrize("default", ["random()", "clock_timestamp()", "gen_random_uuid()", "nextval('s')"])
def test_volatile_default_rewrites_and_says_why(default):
    action = one(run(f'ALTER TABLE "shop_order" ADD COLUMN "x" text DEFAULT {default}'), ActionKind.ADD_COLUMN)
    assert action.rewrites and not action.scans and action.mode is AE
    assert action.detail["volatile_default"] is True
    fn = default.split("(")[0]
    assert action.reason == f'the default {fn}() is volatile, so PostgreSQL rewrites every row of "shop_order"'


@pytest.mark.parametrize("default", ["0", "'x'", "now()", "CURRENT_TIMESTAMP", "STATEMENT_TIMESTAMP()",
                                     "'6f70'::uuid", "md5('a') || lower('B')"])
def test_non_volatile_default_is_catalog_only(default):
    effects = run(f"ALTER TABLE t ADD COLUMN x text DEFAULT {default} NOT NULL")
    action = one(effects, ActionKind.ADD_COLUMN)
    assert not (action.rewrites or action.scans or action.builds_index)
    assert action.detail["volatile_default"] is False and action.detail["not_null"] is True
    assert locks(effects) == {"t": AE}


def test_unknown_function_default_is_assumed_volatile():
    action = one(run("ALTER TABLE t ADD COLUMN x int DEFAULT my_counter()"), ActionKind.ADD_COLUMN)
    assert action.rewrites and "assumed volatile" in action.reason and "my_counter()" in action.reason
    qualified = one(run("ALTER TABLE t ADD COLUMN x int DEFAULT public.lower('a')"), ActionKind.ADD_COLUMN)
    assert qualified.rewrites  # a user schema's "lower" is not the built-in one


@pytest.mark.parametrize("sql, flag", [
    ("ALTER TABLE t ADD COLUMN x serial", "serial"),
    ("ALTER TABLE t ADD COLUMN x bigserial", "serial"),
    ("ALTER TABLE t ADD COLUMN x bigint GENERATED ALWAYS AS IDENTITY", "identity"),
    ("ALTER TABLE t ADD COLUMN x int GENERATED ALWAYS AS (y * 2) STORED", "generated_stored"),
])
def test_columns_filled_row_by_row_rewrite(sql, flag):
    action = one(run(sql), ActionKind.ADD_COLUMN)
    assert action.rewrites and action.detail[flag] is True


def test_virtual_generated_column_is_free_from_18_only():
    sql = "ALTER TABLE t ADD COLUMN x int GENERATED ALWAYS AS (y * 2) VIRTUAL"
    assert not one(run(sql, pg=18), ActionKind.ADD_COLUMN).rewrites
    assert one(run(sql, pg=17), ActionKind.ADD_COLUMN).rewrites  # before 18 only STORED exists


def test_inline_check_scans_and_inline_fk_locks_the_referenced_table():
    check = one(run('ALTER TABLE "t" ADD COLUMN "q" integer NULL CHECK ("q" >= 0)'), ActionKind.ADD_COLUMN)
    assert check.scans and not check.rewrites and check.detail["check"] is True

    effects = run('ALTER TABLE "t" ADD COLUMN "p_id" bigint NULL CONSTRAINT "fk" REFERENCES "p"("id") '
                  "DEFERRABLE INITIALLY DEFERRED")
    fk = one(effects, ActionKind.ADD_COLUMN)
    assert not fk.scans and fk.detail["references"] == "p"
    assert locks(effects) == {"t": AE, "p": SRE}

    with_default = one(run("ALTER TABLE t ADD COLUMN p_id bigint DEFAULT 1 REFERENCES p"), ActionKind.ADD_COLUMN)
    assert with_default.scans


def test_inline_unique_builds_an_index():
    action = one(run('ALTER TABLE "t" ADD COLUMN "code" varchar(10) NULL UNIQUE'), ActionKind.ADD_COLUMN)
    assert action.builds_index and action.detail["type"] == "varchar(10)"


def test_strongest_mode_per_relation_over_subcommands():
    effects = run("ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (b_id) REFERENCES b NOT VALID, ADD COLUMN y int")
    assert locks(effects) == {"a": AE, "b": SRE}
    assert [a.kind for a in effects.actions] == [ActionKind.ADD_CONSTRAINT, ActionKind.ADD_COLUMN]


def test_names_stay_as_written():
    effects = run('ALTER TABLE "shop"."Order" ADD COLUMN x int')
    assert locks(effects) == {"shop.Order": AE}
    assert one(effects, ActionKind.ADD_COLUMN).table == "shop.Order"


# -- ALTER COLUMN TYPE ---------------------------------------------------------------------------


def typed(old: str, sql: str, **catalog_kw) -> Action:
    catalog = Catalog.empty().with_column_types({("t", "c"): old})
    if "timezone" in catalog_kw:
        catalog = catalog.with_timezone(catalog_kw["timezone"])
    return one(run(sql, catalog=catalog), ActionKind.ALTER_COLUMN_TYPE)


@pytest.mark.parametrize("old, new, rewrites", [
    ("varchar(20)", "varchar(40)", False),
    ("varchar(20)", "varchar(20)", False),
    ("varchar(20)", "varchar(10)", True),
    ("varchar(20)", "text", False),
    ("varchar(20)", "varchar", False),
    ("text", "varchar(30)", True),
    ("text", "varchar", False),
    ("character varying(20)", "text", False),
    ("integer", "bigint", True),
    ("bigint", "integer", True),
    ("integer", "integer", False),
    ("serial", "integer", False),
    ("numeric(8, 2)", "numeric(10, 2)", False),
    ("numeric(8, 2)", "numeric", False),
    ("numeric(8, 2)", "numeric(8, 3)", True),
    ("numeric", "numeric(10, 2)", True),
    ("timestamp(3)", "timestamp(6)", False),
    ("timestamp(3)", "timestamp", False),
    ("timestamp", "timestamp(1)", True),
    ("cidr", "inet", False),
    ("char(5)", "char(10)", True),
    ("varchar(20)[]", "varchar(40)[]", True),
    ("uuid", "text", True),
])
def test_type_change_rewrites_unless_binary_coercible(old, new, rewrites):
    action = typed(old, f"ALTER TABLE t ALTER COLUMN c TYPE {new}")
    assert action.rewrites is rewrites, action.reason
    assert action.detail["old_type"] == old and action.detail["new_type"]


def test_unknown_old_type_assumes_a_rewrite():
    action = one(run('ALTER TABLE "t" ALTER COLUMN "c" TYPE varchar(40)'), ActionKind.ALTER_COLUMN_TYPE)
    assert action.rewrites and "old type is unknown" in action.reason and action.detail["old_type"] is None


def test_using_a_plain_cast_is_the_default_conversion():
    assert not typed("varchar(20)", 'ALTER TABLE "t" ALTER COLUMN "c" TYPE text USING "c"::text').rewrites
    computed = typed("varchar(20)", "ALTER TABLE t ALTER COLUMN c TYPE text USING c || ''")
    assert computed.rewrites and "USING" in computed.reason and computed.detail["using"] == "c || ''"


def test_timestamp_to_timestamptz_is_free_only_in_utc():
    sql = "ALTER TABLE t ALTER COLUMN c TYPE timestamptz"
    assert not typed("timestamp", sql, timezone="UTC").rewrites
    assert not typed("timestamp", sql, timezone="Etc/UTC").rewrites
    assert typed("timestamp", sql, timezone="Europe/Paris").rewrites
    assert "not known to be UTC" in typed("timestamp", sql).reason


def test_type_change_on_a_foreign_key_column_reaches_the_other_table():
    catalog = (Catalog.empty().with_column_types({("o", "customer_id"): "bigint", ("c", "id"): "bigint"})
               .with_foreign_keys([ForeignKey("o", ("customer_id",), "c", "o_fk", ("id",))]))
    free = run("ALTER TABLE o ALTER COLUMN customer_id TYPE bigint", catalog=catalog)
    assert locks(free) == {"o": AE, "c": AE} and not free.rewrites
    referenced = run("ALTER TABLE c ALTER COLUMN id TYPE integer", catalog=catalog)
    assert referenced.rewrites == ("c",) and referenced.scans == ("o",)  # the foreign key is checked again


# -- NOT NULL and the catalog ----------------------------------------------------------------------


def test_set_not_null_scans_without_a_proof():
    action = one(run('ALTER TABLE "t" ALTER COLUMN "c" SET NOT NULL'), ActionKind.SET_NOT_NULL)
    assert action.scans and action.mode is AE and action.column == "c"


def test_not_valid_check_then_validate_lets_set_not_null_skip_its_scan():
    add = 'ALTER TABLE "t" ADD CONSTRAINT "c_nn" CHECK ("c" IS NOT NULL) NOT VALID'
    set_nn = 'ALTER TABLE "t" ALTER COLUMN "c" SET NOT NULL'
    validate = 'ALTER TABLE "t" VALIDATE CONSTRAINT "c_nn"'
    effects, _ = plan(add, set_nn)
    assert one(effects, ActionKind.SET_NOT_NULL).scans  # NOT VALID proves nothing yet
    effects, catalog = plan(add, validate, set_nn)
    action = one(effects, ActionKind.SET_NOT_NULL)
    assert not action.scans and '"c_nn"' in action.reason and action.detail["proven_by"] == "c_nn"
    effects, _ = plan('ALTER TABLE "t" DROP CONSTRAINT "c_nn"', set_nn, catalog=catalog)
    assert one(effects, ActionKind.SET_NOT_NULL).scans


def test_validated_check_with_more_conditions_still_proves_not_null():
    effects, _ = plan("ALTER TABLE t ADD CONSTRAINT k CHECK (c IS NOT NULL AND c > 0)", "ALTER TABLE t ALTER c SET "
        "NOT NULL")
    assert not one(effects, ActionKind.SET_NOT_NULL).scans
    effects, _ = plan("ALTER TABLE t ADD CONSTRAINT k CHECK (c > 0)", "ALTER TABLE t ALTER c SET NOT NULL")
    assert one(effects, ActionKind.SET_NOT_NULL).scans  # NULL passes a CHECK


def test_catalog_follows_renames_and_is_never_mutated():
    start = Catalog.empty().with_column_types({("t", "c"): "varchar(20)"})
    _, catalog = plan('ALTER TABLE "t" RENAME COLUMN "c" TO "d"', 'ALTER TABLE "t" RENAME TO "u"', catalog=start)
    assert catalog.column_type("u", "d") == "varchar(20)" and catalog.column_type("t", "c") is None
    assert start.column_type("t", "c") == "varchar(20)"
    _, catalog = plan("ALTER TABLE u ALTER COLUMN d TYPE text", "ALTER TABLE u ADD COLUMN e bigint", catalog=catalog)
    assert catalog.column_type("u", "d") == "text" and catalog.column_type("u", "e") == "bigint"


def test_column_types_known_already_give_the_same_catalog_and_consumed_ones_the_same_answers():
    start = Catalog.empty().with_column_types({("t", "c"): "varchar(20)", ("t", "d"): "text"})
    assert start.with_column_types({("public.t", "c"): "varchar(20)"}) is start
    _, walked = plan("ALTER TABLE t ADD COLUMN e integer", catalog=start)  # made by advance: owns its parts
    kept = dict(walked.column_types)
    plain = walked.with_column_types({("t", "c"): "varchar(30)", ("u", "x"): "bigint"})
    assert dict(walked.column_types) == kept  # not consumed: unchanged
    consumed = walked.with_column_types({("t", "c"): "varchar(30)", ("u", "x"): "bigint"}, consume=True)
    assert consumed == plain and dict(consumed.column_types) == {**kept, ("t", "c"): "varchar(30)", ("u", "x"): "bigint"}
    assert start.column_type("t", "c") == "varchar(20)"


def test_create_table_is_remembered_and_locks_only_what_others_see():
    effects, catalog = plan('CREATE TABLE "shop_review" ("id" bigint PRIMARY KEY, "customer_id" bigint NOT NULL '
                            'REFERENCES "shop_customer" ("id") DEFERRABLE INITIALLY DEFERRED, "body" varchar(200))')
    assert locks(effects) == {"shop_customer": SRE}
    action = one(effects, ActionKind.CREATE_TABLE)
    assert action.table == "shop_review" and action.mode is AE and action.detail["references"] == ("shop_customer",)
    assert catalog.created_tables == {"shop_review"} and catalog.is_created("public.shop_review")
    assert catalog.column_type("shop_review", "body") == "varchar(200)" and catalog.is_not_null("shop_review", "id")
    later = one(run("CREATE INDEX i ON shop_review (body)", catalog=catalog), ActionKind.CREATE_INDEX)
    assert later.detail["new_table"] is True


def test_timezone_setting_is_tracked():
    _, catalog = plan("SET TIME ZONE 'UTC'")
    assert catalog.timezone_is_utc
    _, catalog = plan("SET timezone = 'America/New_York'", catalog=catalog)
    assert not catalog.timezone_is_utc


# -- constraints -----------------------------------------------------------------------------------


def test_foreign_key_locks_both_tables_and_scans_unless_not_valid():
    sql = ('ALTER TABLE "o" ADD CONSTRAINT "o_fk" FOREIGN KEY ("customer_id") REFERENCES "c" ("id") '
           "DEFERRABLE INITIALLY DEFERRED")
    effects = run(sql)
    action = one(effects, ActionKind.ADD_CONSTRAINT)
    assert locks(effects) == {"o": SRE, "c": SRE} and action.scans
    assert action.detail == {**action.detail, "contype": "foreign_key", "name": "o_fk", "not_valid": False,
                             "columns": ("customer_id",), "references": "c", "deferrable": True}
    not_valid = run(sql.replace(" DEFERRABLE INITIALLY DEFERRED", " NOT VALID"))
    assert locks(not_valid) == {"o": SRE, "c": SRE} and not not_valid.scans


def test_validate_foreign_key_takes_row_share_on_the_referenced_table():
    effects, _ = plan("ALTER TABLE o ADD CONSTRAINT o_fk FOREIGN KEY (c_id) REFERENCES c NOT VALID",
                      "ALTER TABLE o VALIDATE CONSTRAINT o_fk")
    assert locks(effects) == {"o": SUE, "c": LockMode.ROW_SHARE}
    assert one(effects, ActionKind.VALIDATE_CONSTRAINT).scans
    unknown = run("ALTER TABLE o VALIDATE CONSTRAINT o_fk")  # not known to be a foreign key
    assert locks(unknown) == {"o": SUE}


def test_check_constraint_details():
    action = one(run('ALTER TABLE "t" ADD CONSTRAINT "k" CHECK ("total" >= 0)'), ActionKind.ADD_CONSTRAINT)
    assert action.scans and action.mode is AE
    assert action.detail["contype"] == "check" and action.detail["expression"] == "total >= 0"
    assert not one(run("ALTER TABLE t ADD CONSTRAINT k CHECK (x > 0) NOT VALID"), ActionKind.ADD_CONSTRAINT).scans
    not_enforced = "ALTER TABLE t ADD CONSTRAINT k CHECK (x > 0) NOT ENFORCED"
    assert not one(run(not_enforced, pg=18), ActionKind.ADD_CONSTRAINT).scans


def test_unique_and_primary_key_build_under_access_exclusive():
    unique = one(run('ALTER TABLE "t" ADD CONSTRAINT "u" UNIQUE ("a", "b")'), ActionKind.ADD_CONSTRAINT)
    assert unique.builds_index and unique.mode is AE and unique.detail["columns"] == ("a", "b") and not unique.scans
    using = one(run('ALTER TABLE "t" ADD CONSTRAINT "u" UNIQUE USING INDEX "u_idx"'), ActionKind.ADD_CONSTRAINT)
    assert not using.builds_index and using.detail["using_index"] == "u_idx"
    pk = one(run("ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY (n)"), ActionKind.ADD_CONSTRAINT)
    assert pk.builds_index and pk.scans  # n is not known to be NOT NULL
    known = Catalog.empty().with_not_null_columns([("t", "n")])
    pk_known = one(run("ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY (n)", catalog=known), ActionKind.ADD_CONSTRAINT)
    assert not pk_known.scans


def test_not_null_constraints_exist_from_18():
    sql = "ALTER TABLE t ADD CONSTRAINT nn NOT NULL c NOT VALID"
    assert not one(run(sql, pg=18), ActionKind.ADD_CONSTRAINT).scans
    effects = run(sql, pg=17)
    assert not effects.known and locks(effects) == {"t": AE}


def test_dropping_a_foreign_key_locks_the_referenced_table():
    catalog = Catalog.empty().with_foreign_keys([ForeignKey("o", ("c_id",), "c", "o_fk")])
    assert locks(run('ALTER TABLE "o" DROP CONSTRAINT "o_fk"', catalog=catalog)) == {"o": AE, "c": AE}
    assert locks(run('DROP TABLE "c" CASCADE', catalog=catalog)) == {"c": AE, "o": AE}
    assert locks(run('ALTER TABLE "o" DROP COLUMN "c_id" CASCADE', catalog=catalog)) == {"o": AE, "c": AE}
    assert locks(run('ALTER TABLE "o" DROP COLUMN "other"', catalog=catalog)) == {"o": AE}


# -- indexes -----------------------------------------------------------------------------------------


def test_create_index_details():
    effects = run('CREATE UNIQUE INDEX "i" ON "t" USING gin ("a" gin_trgm_ops, (lower("b"))) INCLUDE ("c") WHERE '
        '"d" > 0')
    action = one(effects, ActionKind.CREATE_INDEX)
    assert locks(effects) == {"t": LockMode.SHARE} and action.builds_index and not effects.needs_no_transaction
    assert action.detail["name"] == "i" and action.detail["unique"] is True and action.detail["concurrently"] is False
    assert action.detail["columns"] == ("a", "lower(b)") and action.detail["include"] == ("c",)


def test_concurrently_family_runs_outside_a_transaction():
    effects = run('CREATE INDEX CONCURRENTLY IF NOT EXISTS "i" ON "t" ("a")')
    assert effects.needs_no_transaction and locks(effects) == {"t": SUE}
    assert one(effects, ActionKind.CREATE_INDEX).detail["concurrently"] is True
    catalog = Catalog.empty().with_indexes({"i": "t"})
    dropped = run('DROP INDEX CONCURRENTLY IF EXISTS "i"', catalog=catalog)
    assert dropped.needs_no_transaction and locks(dropped) == {"i": AE, "t": SUE}


def test_drop_index_finds_its_table_in_the_catalog():
    _, catalog = plan('CREATE INDEX "i" ON "t" ("a")')
    effects = run('DROP INDEX IF EXISTS "i"', catalog=catalog)
    assert locks(effects) == {"i": AE, "t": AE} and one(effects, ActionKind.DROP_INDEX).table == "t"
    unknown = run('DROP INDEX IF EXISTS "i"')
    assert locks(unknown) == {"i": AE} and "not known here" in one(unknown, ActionKind.DROP_INDEX).reason


def test_rename_index_locks_only_the_index():
    effects = run('ALTER INDEX "i" RENAME TO "j"')
    assert [(lock.relation, lock.relkind, lock.mode) for lock in effects.locks] == [("i", "index", SUE)]


def test_create_index_if_not_exists_on_an_existing_index_builds_nothing():
    catalog = Catalog.empty().with_indexes({"i": "t"})
    action = one(run("CREATE INDEX IF NOT EXISTS i ON t (a)", catalog=catalog), ActionKind.CREATE_INDEX)
    assert not action.builds_index and "already exists" in action.reason


# -- other statements --------------------------------------------------------------------------------


def test_dml_is_a_backfill_under_row_exclusive():
    effects = run('UPDATE "t" SET "q" = 0 FROM "u" WHERE "t"."q" IS NULL')
    action = one(effects, ActionKind.DML)
    assert locks(effects) == {"t": LockMode.ROW_EXCLUSIVE, "u": LockMode.ACCESS_SHARE}
    # no key range bounds it, but how its rows are found is the planner's choice: no scan claimed
    assert action.detail["verb"] == "update" and action.detail["where"] and not action.scans
    assert not action.detail["bounded"]
    insert = one(run("INSERT INTO t SELECT * FROM u"), ActionKind.DML)
    assert insert.detail["verb"] == "insert" and insert.detail["source"] == ("u",) and not insert.scans
    delete = one(run("DELETE FROM t"), ActionKind.DML)
    assert delete.detail["verb"] == "delete" and not delete.detail["where"] and delete.scans


@pytest.mark.parametrize("where, bounded", [
    ("id = 5", True), ("id IN (1, 2)", True), ("id = ANY('{1,2}')", True), ("id BETWEEN 1 AND 9", True),
    ("t.id >= 1 AND t.id < 9 AND q IS NULL", True), ("9 > id AND id >= 1", True),
    ("id IN (SELECT id FROM t WHERE q IS NULL LIMIT 100)", True), ("id = 1 OR id = 2", True),
    ("q IS NULL", False), ("id > 5", False), ("id >= 1 AND q < 9", False), ("id NOT IN (1, 2)", False),
    ("id IN (SELECT id FROM t WHERE q IS NULL)", False), ("id = 1 OR q IS NULL", False),
    ("u.id = 5", False), ("t.id = u.id", False), ("q = 5", False), ("code = 'x'", True),
])
def test_a_key_range_bounds_an_update(where, bounded):
    catalog = Catalog.empty().with_unique_constraints({("t", "t_code_key"): ("code",)})
    (raw,) = parse_sql(f"UPDATE t SET q = 0 FROM u WHERE {where}")
    action = one(analyse(raw.stmt, pg_version=16, catalog=catalog), ActionKind.DML)
    assert action.detail["bounded"] is bounded and not action.scans


def test_sequences():
    effects = run("SELECT setval(pg_get_serial_sequence('\"shop_tag\"','id'), coalesce(max(\"id\"), 1)) FROM "
        "\"shop_tag\"")
    assert locks(effects) == {"shop_tag": LockMode.ACCESS_SHARE, "shop_tag_id_seq": LockMode.ROW_EXCLUSIVE}
    owned = run('ALTER SEQUENCE "s" OWNED BY "t"."c"')
    assert locks(owned) == {"s": SRE, "t": LockMode.ACCESS_SHARE}
    assert {lock.relkind for lock in owned.locks} == {"sequence", "table"}


@pytest.mark.parametrize("sql, name, value", [
    ("SET lock_timeout = '5s'", "lock_timeout", "5s"),
    ("SET LOCAL statement_timeout TO 0", "statement_timeout", "0"),
    ("RESET lock_timeout", "lock_timeout", None),
])
def test_settings_lock_nothing(sql, name, value):
    effects = run(sql)
    action = one(effects, ActionKind.SET_SETTING)
    assert effects.locks == () and action.detail["name"] == name and action.detail["value"] == value


@pytest.mark.parametrize("sql, verb", [("BEGIN", "begin"), ("COMMIT", "commit"), ("ROLLBACK", "rollback")])
def test_transaction_statements(sql, verb):
    effects = run(sql)
    assert effects.locks == () and one(effects, ActionKind.TRANSACTION).detail["verb"] == verb


def test_comment_takes_share_update_exclusive():
    assert locks(run('COMMENT ON COLUMN "t"."c" IS \'x\'')) == {"t": SUE}
    assert locks(run("COMMENT ON TABLE s.t IS NULL")) == {"s.t": SUE}


# -- unknown statements: fail closed ------------------------------------------------------------------


@pytest.mark.parametrize("sql, relations", [
    ("COPY shop_order FROM STDIN", ["shop_order"]),
    ("CREATE PUBLICATION p FOR TABLE shop_order, s.t", ["shop_order", "s.t"]),
    ("DROP VIEW s.v CASCADE", ["s.v"]),
    ("ALTER TABLE shop_order ALTER CONSTRAINT shop_order_fk ENFORCED", ["shop_order"]),
    ("REINDEX SYSTEM", []),
])
def test_unknown_statements_assume_access_exclusive_on_every_relation(sql, relations):
    effects = run(sql, pg=18)
    assert not effects.known
    assert locks(effects) == {r: AE for r in relations}
    assert all(a.kind is ActionKind.UNKNOWN and a.mode is AE and a.reason for a in effects.actions)


@pytest.mark.parametrize("sql, outside", [
    ("VACUUM", True), ("REINDEX SCHEMA CONCURRENTLY public", True), ("REINDEX SCHEMA public", True),
    ("ANALYZE", False),
])
def test_unknown_statements_still_say_when_they_cannot_run_in_a_transaction(sql, outside):
    effects = run(sql)
    assert not effects.known and effects.needs_no_transaction is outside


@pytest.mark.parametrize("sql, outside", [
    ("VACUUM t", True), ("VACUUM (FULL) t", True), ("REINDEX INDEX CONCURRENTLY i", True), ("REINDEX TABLE t", False),
    ("ANALYZE t", False), ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", True), ("CLUSTER t USING i", False),
])
def test_modelled_maintenance_says_when_it_cannot_run_in_a_transaction(sql, outside):
    effects = run(sql)
    assert effects.known and effects.needs_no_transaction is outside


def test_a_statement_naming_no_table_is_still_unknown():
    effects = run("CHECKPOINT")
    assert not effects.known and effects.actions[0].kind is ActionKind.UNKNOWN


@pytest.mark.parametrize("sql", ["SELECT my_function()", "SELECT public.now()", "SELECT 1 FROM t WHERE f(t.a)",
                                 "CALL archive_orders()", "DO $$ BEGIN PERFORM my_function(); END $$"])
def test_code_the_model_cannot_see_into_is_a_call(sql):
    effects = run(sql)
    assert effects.known and one(effects, ActionKind.CALL).detail["function"]


@pytest.mark.parametrize("sql", ["SELECT set_config('lock_timeout', '2s', true)", "SELECT count(*) FROM t",
                                 "SELECT pg_catalog.now()", "SELECT setval('s', 5)", "SELECT 1"])
def test_built_in_functions_are_no_call(sql):
    assert not [a for a in run(sql).actions if a.kind is ActionKind.CALL]


def test_analyse_never_raises():
    for node in (ast.A_Const(), ast.AlterTableStmt(), ast.IndexStmt(), None):
        effects = analyse(node, pg_version=16)
        assert effects.known is False and effects.actions[0].kind is ActionKind.UNKNOWN


# -- the facts table ---------------------------------------------------------------------------------


def test_every_fact_has_a_source_and_a_valid_range():
    for f in FACTS:
        assert f.source and f.summary, f.key
        assert f.until is None or f.until >= f.since, f.key


def test_facts_do_not_overlap_for_any_version():
    for version in SUPPORTED_VERSIONS:
        seen: dict[str, int] = {}
        for f in FACTS:
            if f.holds_for(version):
                seen[f.key] = seen.get(f.key, 0) + 1
        assert all(count == 1 for count in seen.values()), (version, seen)


def test_every_fact_the_analyser_reads_exists():
    locks = Path(__file__).parents[2] / "migration_guard" / "locks"
    source = "\n".join(p.read_text() for p in [locks / "analyze.py", *sorted((locks / "statements").glob("*.py"))])
    keys = set(re.findall(r'fact\("([a-z_.]+)"', source))
    keys |= {k for pair in re.findall(r'"([a-z_.]+)" if [^"]+ else "([a-z_.]+)"', source) for k in pair}
    known = {f.key for f in FACTS}
    assert keys and keys <= known, keys - known
    assert fact("set_not_null.proven", 14).scans is False


# -- version conditions: both sides of every fact that changes between majors --------------------------


@pytest.mark.parametrize("sql, before, after, version", [
    # GRANT on a named table locks nothing before 18, ACCESS SHARE from 18 (traced on 14..18)
    ("GRANT SELECT ON shop_order TO reader", {}, {"shop_order": LockMode.ACCESS_SHARE}, 18),
    # SET ACCESS METHOD exists from 15
    ("ALTER TABLE shop_order SET ACCESS METHOD heap", None, {"shop_order": AE}, 15),
    # SET EXPRESSION exists from 17
    ("ALTER TABLE shop_order ALTER COLUMN d SET EXPRESSION AS (total * 3)", None, {"shop_order": AE}, 17),
    # MERGE exists from 15
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", None,
     {"t": LockMode.ROW_EXCLUSIVE, "s": LockMode.ACCESS_SHARE}, 15),
    # NOT NULL constraints (and NOT VALID ones) exist from 18
    ("ALTER TABLE shop_order ADD CONSTRAINT qty_nn NOT NULL qty NOT VALID", None, {"shop_order": AE}, 18),
])
def test_version_conditions_show_both_sides(sql, before, after, version):
    old, new = run(sql, pg=version - 1), run(sql, pg=version)
    assert new.known and locks(new) == after
    if before is None:  # the form does not exist yet: unknown, assumed ACCESS EXCLUSIVE (fail closed)
        assert not old.known
    else:
        assert old.known and locks(old) == before


def test_version_conditions_change_rewrites_and_scans():
    virtual = "ALTER TABLE t ADD COLUMN d integer GENERATED ALWAYS AS (n * 2) VIRTUAL"
    # before 18 there are no virtual columns: the model takes the cautious reading (stored, rewritten)
    assert run(virtual, pg=18).rewrites == () and run(virtual, pg=17).rewrites == ("t",)
    expression = "ALTER TABLE t ALTER COLUMN d SET EXPRESSION AS (n * 3)"
    assert run(expression, pg=17).rewrites == ("t",)
    assert fact("grant", 17).mode is None and fact("grant", 18).mode is LockMode.ACCESS_SHARE


def test_not_valid_foreign_key_on_a_partitioned_table_from_18():
    catalog = Catalog.empty().with_relations({"ev": "partitioned table", "ev_1": "table"}).with_children("ev", ("ev_1",))
    sql = "ALTER TABLE ev ADD CONSTRAINT ev_fk FOREIGN KEY (c) REFERENCES shop_customer (id) NOT VALID"
    assert not run(sql, pg=17, catalog=catalog).known  # refused by the server: fail closed
    assert locks(run(sql, pg=18, catalog=catalog)) == {"ev": SRE, "ev_1": SRE, "shop_customer": SRE}


def test_partitioned_table_statements_reach_every_partition():
    catalog = (Catalog.empty().with_relations({"ev": "partitioned table", "ev_1": "table", "ev_2": "table"})
               .with_database_read(("ev", "ev_1", "ev_2"))
               .with_children("ev", ("ev_1", "ev_2")).with_indexes({"ev_created_idx": "ev"}, {"ev_created_idx": ("c",)}))
    effects = run("ALTER TABLE ev ADD COLUMN s float8 DEFAULT random()", catalog=catalog)
    assert locks(effects) == {"ev": AE, "ev_1": AE, "ev_2": AE}
    assert effects.rewrites == ("ev_1", "ev_2")
    only = run("LOCK TABLE ONLY ev IN SHARE MODE", catalog=catalog)
    assert locks(only) == {"ev": LockMode.SHARE}
    attach = run("ALTER TABLE ev ATTACH PARTITION ev_3 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
                 catalog=catalog)
    assert locks(attach) == {"ev": SUE, "ev_3": AE} and attach.scans == ("ev_3",) and attach.index_builds == ("ev_3",)
    _, after = plan("ALTER TABLE ev DETACH PARTITION ev_2", catalog=catalog)
    assert after.children_of("ev") == ("ev_1",)


def test_constraints_grouped_by_table_follow_every_step_as_a_scan_would():
    """Catalog.unique_constraints_on / checks_on are kept grouped by table and handed on step to step; at each
    step of a walk that consumes the catalog (as the pipeline does), read mid-walk so the grouping is handed on,
    they must equal a scan of the whole catalog."""
    def scanned(mapping, table):
        return {name: value for (owner, name), value in mapping.items() if owner == table}

    steps = [
        "ALTER TABLE a ADD CONSTRAINT a_pkey PRIMARY KEY (id)",
        "ALTER TABLE a ADD CONSTRAINT a_code_key UNIQUE (code)",
        "ALTER TABLE b ADD CONSTRAINT b_pkey PRIMARY KEY (id)",
        "ALTER TABLE a ADD CONSTRAINT a_n_positive CHECK (n >= 0) NOT VALID",
        "ALTER TABLE a VALIDATE CONSTRAINT a_n_positive",
        "ALTER TABLE b ADD CONSTRAINT b_x_key UNIQUE (id)",
        "ALTER TABLE a DROP CONSTRAINT a_code_key",
        "ALTER TABLE public.a ADD CONSTRAINT a_code_n_key UNIQUE (code, n)",
        "DROP TABLE b",
        "ALTER TABLE b ADD CONSTRAINT b_pkey PRIMARY KEY (id)",
        "ALTER TABLE b ADD CONSTRAINT b_m_check CHECK (m <> 0)",
        "ALTER TABLE b DROP CONSTRAINT b_m_check",
    ]
    catalog = Catalog.empty()
    for number, sql in enumerate(steps):
        catalog = advance(catalog, run(sql, catalog=catalog), consume=True)
        for table in ("a", "public.a", "b"):
            if number % 2:  # read on every other step: handed on both built and not yet built
                key = table.removeprefix("public.")
                assert catalog.unique_constraints_on(table) == scanned(catalog.unique_constraints, key), (sql, table)
                assert catalog.checks_on(table) == scanned(catalog.checks, key), (sql, table)
    assert catalog.unique_constraints_on("a") == {"a_pkey": ("id",), "a_code_n_key": ("code", "n")}
    assert catalog.primary_key("b") == ("id",) and catalog.checks_on("a")["a_n_positive"] == ("n >= 0", True)
    assert catalog.checks_on("b") == {} and catalog.unique_constraints_on("b") == {"b_pkey": ("id",)}
