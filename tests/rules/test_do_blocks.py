"""DO blocks: judged as the statements they may run when the model can list them all, else MG905
blocks them (fail closed). NetBox's dcim.0228 renames constraints in a loop (harmless: judged as the
renames); dcim.0131 renames indexes whose names it reads from pg_indexes (a relation known only at
run time: stays opaque)."""

from __future__ import annotations

import pytest

from tests.rules.test_rules import lint, rules

# NetBox dcim.0228_rack_group, as written
RENAME_CONSTRAINTS = """DO $$
DECLARE
    r RECORD;
BEGIN
    FOR r IN (
        SELECT old_name, new_name FROM (VALUES
            ('dcim_rackgroup_level_check', 'dcim_location_level_check'),
            ('dcim_rackgroup_site_id_13520e89_fk', 'dcim_location_site_id_b55e975f_fk_dcim_site_id')
        ) AS m(old_name, new_name)
        WHERE EXISTS (
            SELECT 1 FROM pg_constraint
            WHERE conrelid = to_regclass('shop_order') AND conname = m.old_name
        )
    ) LOOP
        EXECUTE format('ALTER TABLE shop_order RENAME CONSTRAINT %I TO %I', r.old_name, r.new_name);
    END LOOP;
END $$"""
# NetBox dcim.0131_squashed_0159
RENAME_INDEXES = """DO $$
DECLARE idx record;
BEGIN
    FOR idx IN
        SELECT indexname AS old_name, replace(indexname, 'module', 'inventoryitem') AS new_name
        FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'shop_order' AND indexname LIKE 'shop_%'
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I;', idx.old_name, idx.new_name);
    END LOOP;
END$$"""


def test_a_block_the_model_can_list_is_judged_as_its_statements():
    assert rules(RENAME_CONSTRAINTS) == []
    # ... and what it locks counts: a backfill later in the same transaction holds that lock (MG008)
    [held] = [f for f in lint(f"BEGIN;\n{RENAME_CONSTRAINTS};\nUPDATE shop_customer SET name = '';\nCOMMIT")
              if f.rule == "MG008"]
    assert held.table == "shop_order" and "ACCESS EXCLUSIVE" in held.message


@pytest.mark.parametrize("sql, rule", [
    ("DO $$ BEGIN ALTER TABLE shop_order ADD CONSTRAINT total_gte_0 CHECK (total >= 0); END $$", "MG005"),
    ("DO $$ BEGIN IF true THEN CREATE INDEX order_note_idx ON shop_order (note); END IF; END $$", "MG002"),
    ("DO $$ BEGIN EXECUTE 'UPDATE shop_order SET note = ''x'''; END $$", "MG011"),
    ("DO $$ BEGIN EXECUTE format('UPDATE shop_order SET note = %L', 'x'); END $$", "MG011"),
    ("DO $$ DECLARE i int; BEGIN FOR i IN 1..3 LOOP UPDATE shop_order SET note = 'x'; END LOOP; END $$", "MG011"),
    ("DO $$ BEGIN CREATE INDEX order_note_idx ON shop_order (note); "
     "EXCEPTION WHEN duplicate_table THEN NULL; END $$", "MG002"),
])
def test_dangerous_statements_inside_a_block_block_as_they_would_outside(sql, rule):
    assert rules(sql) == [(rule, "error")]
    assert rules(sql, rows=1) == [(rule, "warning")]  # sized as the statement is


@pytest.mark.parametrize("sql, why", [
    (RENAME_INDEXES, "ALTER INDEX ... RENAME on a name known only when it runs"),
    ("DO $$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN x int', 'shop_order'); END $$", "ALTER TABLE"),
    ("DO $$ BEGIN EXECUTE format('UPDATE shop_order SET %I = 1', 'qty'); END $$", "UPDATE on a name"),
    ("DO $$ BEGIN EXECUTE format('ALTER TABLE shop_order ALTER COLUMN note TYPE %s', 'text'); END $$", "name"),
    ("DO $$ BEGIN EXECUTE format('SELECT setval(%L, 1)', 'shop_order_id_seq'); END $$", "SELECT"),
    ("DO $$ BEGIN EXECUTE 'ALTER TABLE ' || quote_ident('shop_order') || ' ADD COLUMN x int'; END $$",
     "a string built at run time"),
    ("DO $$ BEGIN EXECUTE format('%s', 'ALTER TABLE shop_order ADD COLUMN x int'); END $$", "does not parse"),
    ("DO $$ BEGIN PERFORM archive_orders(); END $$", "calls archive_orders()"),
    ("DO $$ DECLARE n int := archive_orders(); BEGIN END $$", "calls archive_orders()"),
    ("DO $$ BEGIN CALL archive_orders(); END $$", "calls archive_orders()"),
    ("DO $$ BEGIN COMMIT; END $$", "commit"),
    ("DO $$ BEGIN SET LOCAL lock_timeout = '1s'; END $$", "session setting"),
    ("DO $$ BEGIN CREATE INDEX CONCURRENTLY i ON shop_order (note); END $$", "cannot run in it"),
    ("DO $$ BEGIN RETURN QUERY SELECT 1; END $$", "compile"),
    ("DO $$ DECLARE c CURSOR FOR SELECT 1; BEGIN OPEN c; END $$", "open"),
    ("DO $$ BEGIN undeclared := 1; END $$", "compile"),
    ("DO LANGUAGE plpython3u $$ plpy.execute('ALTER TABLE shop_order ADD COLUMN x int') $$", "plpython3u"),
])
def test_a_block_the_model_cannot_list_stays_opaque_and_says_why(sql, why):
    for rows in (None, 1):
        [finding] = lint(sql, rows=rows)
        assert (finding.rule, finding.severity.value) == ("MG905", "error")
    assert why in finding.message, finding.message


def test_recipes_come_from_the_statement_inside_the_block():
    [bulk] = lint("DO $$ BEGIN UPDATE shop_order SET note = 'x' WHERE note IS NULL; END $$")
    assert bulk.rule == "MG011" and "UPDATE shop_order SET note = 'x' WHERE note IS NULL AND" in bulk.recipe
    [fk] = lint("DO $$ BEGIN ALTER TABLE shop_order ADD CONSTRAINT order_customer_fk FOREIGN KEY (customer_id) "
                "REFERENCES shop_customer (id); END $$")
    assert fk.rule == "MG004" and "REFERENCES shop_customer (id) NOT VALID" in fk.recipe and "DO" not in fk.recipe
