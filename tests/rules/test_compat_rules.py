"""MG020-MG027, the backward-compatibility rules, from SQL strings and hand-made Django facts (no server:
the lock model and the rules are pure). Each rule: the dangerous case, the safe alternative (the same
SQL once the running code no longer has what it touches), the new-table exemption, the code-first
mirror, and what ``explain`` says with no code. ``tests/compat`` proves the verdicts on a real server."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from migration_guard.config import Config, ConfigError, load_config
from migration_guard.model import (
    Deploy,
    FieldFacts,
    ModelChange,
    ModelFacts,
    Operation,
    Severity,
    StateFacts,
    Statement,
)
from migration_guard.parse import parse_statement
from migration_guard.pipeline import analyse_statements
from migration_guard.rules import ALL_RULES
from migration_guard.rules.compat import holds_every_value
from migration_guard.stats import TableSizes


def _field(name: str, path: str, db_type: str | None, **facts) -> FieldFacts:
    kwargs = tuple((key, value) for key, value in facts.pop("kwargs", {}).items())
    return FieldFacts(name=name, path=f"django.db.models.{path}", kwargs=kwargs, column=facts.pop("column", name),
                      db_type=db_type, imports=("from django.db import models",), **facts)


ID = _field("id", "BigAutoField", "bigint", primary_key=True, kwargs={"primary_key": "True"})
NUMBER = _field("number", "CharField", "varchar(200)", max_length=200, kwargs={"max_length": "200"})
NOTE = _field("note", "TextField", "text", null=True, kwargs={"null": "True"})
QUANTITY = _field("quantity", "IntegerField", "integer")
CUSTOMER = _field("customer", "ForeignKey", "bigint", column="customer_id", related_model="shop.customer",
                  kwargs={"on_delete": "django.db.models.deletion.CASCADE", "to": "'shop.customer'"})
TAGS = _field("tags", "ManyToManyField", None, column=None, m2m_table="shop_order_tags", related_model="shop.tag",
              kwargs={"to": "'shop.tag'"})
ORDER = ModelFacts("shop", "Order", "shop_order", (ID, NUMBER, NOTE, QUANTITY, CUSTOMER, TAGS))
COUPON = ModelFacts("shop", "Coupon", "shop_coupon", (ID, _field("code", "CharField", "varchar(20)", max_length=20)))
RUNNING = StateFacts((ORDER, COUPON))


def without(model: ModelFacts, *names: str) -> ModelFacts:
    return replace(model, fields=tuple(f for f in model.fields if f.name not in names))


def with_fields(model: ModelFacts, *fields: FieldFacts) -> ModelFacts:
    names = {f.name for f in fields}
    return replace(model, fields=tuple(f for f in model.fields if f.name not in names) + fields)


def lint(sql: str, *, running: StateFacts | None = RUNNING, release: StateFacts | None = None,
         order: str = "migrate_first", changes: tuple[ModelChange, ...] = (), config: Config | None = None):
    """The MG02x findings of ``sql`` as a statement of a migration with this running code (None: raw SQL
    through ``explain``)."""
    deploy = Deploy(running=running, basis="test", release=release) if running is not None else None
    operation = Operation(index=0, name="Test", description="test", line=1, changes=changes)
    statement = Statement(sql=sql, migration="shop.0002_test", operation=operation, deploy=deploy)
    parsed = parse_statement(statement) if deploy is not None else parse_statement(replace(statement, operation=None))
    config = replace(config or Config(), deploy_order=order)
    result = analyse_statements(parsed, source="shop.0002_test", sizes=TableSizes(), pg_version=16, config=config)
    return [f for f in result.findings if f.rule.startswith("MG02")]


def rules(sql: str, **kwargs) -> list[tuple[str, str]]:
    return [(f.rule, f.severity.value) for f in lint(sql, **kwargs)]


# -- migrate first: the running code meets the new schema -----------------------------------------

DANGEROUS = {
    "MG020": 'ALTER TABLE "shop_order" DROP COLUMN "note" CASCADE',
    "MG021": 'DROP TABLE "shop_coupon" CASCADE',
    "MG022": 'ALTER TABLE "shop_order" RENAME COLUMN "note" TO "remark"',
    "MG023": 'ALTER TABLE "shop_coupon" RENAME TO "shop_voucher"',
    "MG025": "ALTER TABLE shop_order ADD COLUMN status varchar(20) NOT NULL",
    "MG026": 'ALTER TABLE "shop_order" ALTER COLUMN "note" SET NOT NULL',
    "MG027": 'ALTER TABLE "shop_order" ALTER COLUMN "number" TYPE varchar(100)',
}
# The running code once it no longer has what the statement touches (the second release of the recipe).
SAFE_RUNNING = {
    "MG020": StateFacts((without(ORDER, "note"), COUPON)),
    "MG021": StateFacts((ORDER,)),
    "MG022": StateFacts((without(ORDER, "note"), COUPON)),
    "MG023": StateFacts((ORDER,)),
    "MG025": StateFacts((with_fields(ORDER, _field("status", "CharField", "varchar(20)", max_length=20)), COUPON)),
    "MG026": StateFacts((with_fields(ORDER, replace(NOTE, null=False)), COUPON)),
    "MG027": StateFacts((with_fields(ORDER, replace(NUMBER, db_type="varchar(100)", max_length=100)), COUPON)),
}


@pytest.mark.parametrize("rule", sorted(DANGEROUS))
def test_dangerous_case_blocks_whatever_the_table_size(rule):
    assert rules(DANGEROUS[rule]) == [(rule, "error")]


@pytest.mark.parametrize("rule", sorted(DANGEROUS))
def test_the_same_sql_passes_once_the_running_code_no_longer_uses_it(rule):
    assert rules(DANGEROUS[rule], running=SAFE_RUNNING[rule]) == []


@pytest.mark.parametrize("rule", sorted(DANGEROUS))
def test_tables_created_in_the_plan_are_exempt(rule):
    sql = DANGEROUS[rule].replace("shop_order", "shop_new").replace("shop_coupon", "shop_new")
    created = "CREATE TABLE shop_new (id bigint, note text, number varchar(200)); "
    assert [f.rule for f in lint(created + sql)] == []


@pytest.mark.parametrize("rule", sorted(DANGEROUS))
def test_severity_and_disabling_are_configurable(rule):
    assert rules(DANGEROUS[rule], config=Config(severity={rule: Severity.WARNING})) == [(rule, "warning")]
    assert rules(DANGEROUS[rule], config=Config(disable=frozenset({rule}))) == []


def test_findings_bind_to_the_statement_for_approvals():
    [finding] = lint(DANGEROUS["MG020"])
    [again] = lint(DANGEROUS["MG020"].replace('"note"', "note"))
    [other] = lint('ALTER TABLE "shop_order" DROP COLUMN "quantity"')
    assert len(finding.fingerprint) == 16 and finding.fingerprint == again.fingerprint != other.fingerprint


def test_drop_column_message_and_recipe_name_the_users_model_and_field():
    [finding] = lint(DANGEROUS["MG020"])
    assert finding.message == ('Dropping column "note" of "shop_order" breaks the running code, whose model '
                               'shop.Order still has the field "note": every query on Order selects it.')
    assert finding.recipe == "\n".join([
        "# --- deploy 1: the code stops using the field; the column stays ---",
        "migrations.SeparateDatabaseAndState(state_operations=[",
        '    migrations.RemoveField("order", "note"),',
        "]),",
        "# --- deploy 2: drop the column, once no running code has the field ---",
        "migrations.RunSQL(",
        """    'ALTER TABLE "shop_order" DROP COLUMN "note"',""",
        """    reverse_sql='ALTER TABLE "shop_order" ADD COLUMN "note" text NULL',""",
        "),",
    ])


def test_dropping_a_required_column_first_makes_it_nullable():
    [finding] = lint('ALTER TABLE "shop_order" DROP COLUMN "quantity"')
    assert 'migrations.AlterField("order", "quantity", models.IntegerField(null=True)),' in finding.recipe
    assert finding.recipe.index("AlterField") < finding.recipe.index("RemoveField") < finding.recipe.index("DROP")


def test_foreign_key_column_and_many_to_many_table():
    [column] = lint('ALTER TABLE "shop_order" DROP COLUMN "customer_id" CASCADE')
    assert (column.rule, '"customer"') == ("MG020", column.message.split("the field ")[1].split(":")[0])
    [table] = lint('DROP TABLE "shop_order_tags" CASCADE')
    assert table.rule == "MG021" and "shop.Order.tags" in table.message
    assert 'migrations.RemoveField("order", "tags")' in table.recipe


def test_schema_qualified_and_unquoted_names_are_the_same_table():
    assert rules("ALTER TABLE public.shop_order DROP COLUMN note") == [("MG020", "error")]
    assert rules("DROP TABLE IF EXISTS public.shop_coupon") == [("MG021", "error")]


def test_rename_recipe_keeps_the_column_with_db_column():
    after = replace(NOTE, name="remark", column="remark")
    change = ModelChange("RenameField", "both", "shop", "order", before=ORDER,
                         after=with_fields(without(ORDER, "note"), after), field="remark", old_field="note")
    [finding] = lint(DANGEROUS["MG022"], changes=(change,))
    assert finding.message == ('Renaming column "note" of "shop_order" to "remark" breaks the running code, whose '
                               'model shop.Order still selects "note".')
    assert 'migrations.RenameField("order", "note", "remark")' in finding.recipe
    assert """migrations.AlterField("order", "remark", models.TextField(db_column='note', null=True))""" in finding.recipe


def test_rename_model_recipe_keeps_the_table():
    voucher = replace(COUPON, name="Voucher", db_table="shop_voucher")
    change = ModelChange("RenameModel", "both", "shop", "voucher", before=COUPON, after=voucher)
    [finding] = lint(DANGEROUS["MG023"], changes=(change,))
    assert 'migrations.RenameModel("Coupon", "Voucher")' in finding.recipe
    assert 'migrations.AlterModelTable("voucher", "shop_coupon")' in finding.recipe


def test_not_null_without_db_default_when_django_drops_the_default():
    status = _field("status", "CharField", "varchar(20)", max_length=20, has_default=True,
                    kwargs={"default": "'new'", "max_length": "20"})
    change = ModelChange("AddField", "both", "shop", "order", before=ORDER, after=with_fields(ORDER, status),
                         field="status", old_field="status")
    add = """ALTER TABLE "shop_order" ADD COLUMN "status" varchar(20) DEFAULT 'new' NOT NULL"""
    drop_default = 'ALTER TABLE "shop_order" ALTER COLUMN "status" DROP DEFAULT'
    assert rules(add, changes=(change,)) == []  # with its default the old INSERTs still work
    [finding] = lint(drop_default, changes=(change,))
    assert finding.rule == "MG025" and "the running code's INSERTs" in finding.message
    assert """models.CharField(db_default='new', default='new', max_length=20)""" in finding.recipe
    # nullable: the old INSERTs leave it NULL; with a db_default Django keeps the default
    nullable = replace(change, after=with_fields(ORDER, replace(status, null=True)))
    assert rules(drop_default, changes=(nullable,)) == []
    # raw SQL, nothing says whether it is NOT NULL: assumed so
    assert rules(drop_default) == [("MG025", "error")]


def test_a_constraint_that_rejects_null_is_the_same_as_set_not_null():
    check = 'ALTER TABLE "shop_order" ADD CONSTRAINT "note_nn" CHECK ("note" IS NOT NULL) NOT VALID'
    assert rules(check) == [("MG026", "error")]
    assert rules(check, running=SAFE_RUNNING["MG026"]) == []
    assert rules('ALTER TABLE "shop_order" ADD CONSTRAINT "q_pos" CHECK ("quantity" > 0) NOT VALID') == []


@pytest.mark.parametrize(("written", "column", "holds"), [
    ("varchar(200)", "varchar(100)", False), ("varchar(100)", "varchar(200)", True), ("varchar(100)", "text", True),
    ("text", "varchar(50)", False), ("integer", "bigint", True), ("bigint", "integer", False),
    ("smallint", "integer", True), ("numeric(10, 2)", "numeric(8, 2)", False), ("numeric(10, 2)", "numeric(12, 2)", True),
    ("numeric(10, 2)", "numeric(10, 3)", False), ("numeric(10, 2)", "numeric", True), ("numeric", "numeric(30, 2)", False),
    ("integer", "numeric(12, 2)", True), ("bigint", "numeric(12, 2)", False), ("integer", "varchar(20)", False),
    ("real", "double precision", True), ("double precision", "real", False), ("uuid", "uuid", True),
    ("timestamp with time zone", "timestamptz", True), ("timestamptz(3)", "timestamptz", True),
    ("timestamptz", "timestamptz(3)", False), ("jsonb", "json", False), ("integer[]", "bigint[]", False),
    ("character varying(10)", "varchar(10)", True), (None, "integer", False), ("integer", "not a type (", False),
])
def test_type_holds_every_value(written, column, holds):
    assert holds_every_value(written, column) is holds


def test_narrowing_names_both_types():
    [finding] = lint(DANGEROUS["MG027"])
    assert finding.message == ('Changing "number" of "shop_order" to varchar(100) breaks writes of the running code, '
                               "whose shop.Order.number is varchar(200).")
    assert 'TYPE varchar(200)' in finding.recipe
    assert rules('ALTER TABLE "shop_order" ALTER COLUMN "number" TYPE varchar(300)') == []


def test_adding_a_column_is_no_concern_of_the_running_code():
    assert rules('ALTER TABLE "shop_order" ADD COLUMN "status" varchar(20) NULL') == []
    assert rules('CREATE TABLE "shop_invoice" (id bigint)') == []


# -- code first: the new code meets the old schema, then the new one ------------------------------

WITH_STATUS = StateFacts((with_fields(ORDER, _field("status", "CharField", "varchar(20)", null=True)), COUPON))


def test_code_first_adding_a_column_the_new_code_selects():
    add = 'ALTER TABLE "shop_order" ADD COLUMN "status" varchar(20) NULL'
    assert rules(add, release=WITH_STATUS, order="code_first") == [("MG024", "error")]
    assert rules(add, release=RUNNING, order="code_first") == []  # the column only: the safe first release
    assert rules(add, release=WITH_STATUS) == []  # migrate first: nothing uses it before it exists
    [finding] = lint(add, release=WITH_STATUS, order="code_first")
    assert "database_operations" in finding.recipe and "state_operations" in finding.recipe


def test_code_first_creating_a_table_the_new_code_queries():
    invoice = ModelFacts("shop", "Invoice", "shop_invoice", (ID,))
    create = 'CREATE TABLE "shop_invoice" ("id" bigint NOT NULL PRIMARY KEY)'
    [finding] = lint(create, release=StateFacts((ORDER, invoice)), order="code_first")
    assert finding.rule == "MG024" and 'name="Invoice"' in finding.recipe
    assert rules(create, release=StateFacts((ORDER,)), order="code_first") == []


def test_code_first_removing_a_required_column_the_new_code_no_longer_writes():
    release = StateFacts((without(ORDER, "quantity", "note"), COUPON))
    assert rules('ALTER TABLE "shop_order" DROP COLUMN "quantity"', release=release, order="code_first") == [
        ("MG025", "error")]
    assert rules('ALTER TABLE "shop_order" DROP COLUMN "note"', release=release, order="code_first") == []
    # a drop that the new code still needs is MG020 in either order
    assert rules('ALTER TABLE "shop_order" DROP COLUMN "note"', release=RUNNING, order="code_first") == [
        ("MG020", "error")]


def test_code_first_mirrors_null_and_width():
    nullable = StateFacts((with_fields(ORDER, replace(QUANTITY, null=True)), COUPON))
    drop_not_null = 'ALTER TABLE "shop_order" ALTER COLUMN "quantity" DROP NOT NULL'
    assert rules(drop_not_null, release=nullable, order="code_first") == [("MG026", "error")]
    assert rules(drop_not_null, release=nullable) == []
    set_not_null = 'ALTER TABLE "shop_order" ALTER COLUMN "note" SET NOT NULL'
    assert rules(set_not_null, release=SAFE_RUNNING["MG026"], order="code_first") == []
    wider = StateFacts((with_fields(ORDER, replace(NUMBER, db_type="varchar(300)")), COUPON))
    widen = 'ALTER TABLE "shop_order" ALTER COLUMN "number" TYPE varchar(300)'
    assert rules(widen, release=wider, order="code_first") == [("MG027", "error")]
    assert rules(widen, release=wider) == []
    narrower = SAFE_RUNNING["MG027"]
    assert rules(DANGEROUS["MG027"], release=narrower, order="code_first") == []


def test_code_first_renames_break_the_new_code():
    renamed = StateFacts((with_fields(without(ORDER, "note"), replace(NOTE, name="remark", column="remark")), COUPON))
    assert rules(DANGEROUS["MG022"], release=renamed, order="code_first") == [("MG022", "error")]
    voucher = StateFacts((ORDER, replace(COUPON, name="Voucher", db_table="shop_voucher")))
    assert rules(DANGEROUS["MG023"], release=voucher, order="code_first") == [("MG023", "error")]


# -- explain: raw SQL, no code ----------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["MG020", "MG021", "MG022", "MG023"])
def test_explain_warns_on_drops_and_renames(rule):
    [finding] = lint(DANGEROUS[rule], running=None)
    assert (finding.rule, finding.severity, finding.blocking) == (rule, Severity.WARNING, False)
    assert "explain cannot see your code" in finding.message


@pytest.mark.parametrize("rule", ["MG025", "MG026", "MG027"])
def test_explain_says_nothing_where_only_the_code_can_tell(rule):
    assert lint(DANGEROUS[rule], running=None) == []


def test_declared_actions_skip_only_statements_the_rule_finds_nothing_in():
    compat = [rule for rule in ALL_RULES if rule.id.startswith("MG02")]
    assert len(compat) == 8
    statements = [*DANGEROUS.values(), 'ALTER TABLE "shop_order" ALTER COLUMN "quantity" DROP NOT NULL',
                  'ALTER TABLE "shop_order" ADD COLUMN "status" varchar(20) NULL', "SELECT 1"]
    for rule in compat:
        for order in ("migrate_first", "code_first"):
            for sql in statements:
                def found(r, sql=sql, order=order):
                    deploy = Deploy(running=RUNNING, basis="test", release=WITH_STATUS)
                    parsed = parse_statement(Statement(sql=sql, migration="m", deploy=deploy))
                    result = analyse_statements(parsed, source="m", sizes=TableSizes(), pg_version=16,
                                                config=Config(deploy_order=order), rules=[r])
                    return [(f.rule, f.message) for f in result.findings]
                assert found(rule) == found(replace(rule, actions=None)), (rule.id, order, sql)


# -- the shared facts and the configuration ---------------------------------------------------------


def test_facts_are_plain_data_that_pickles():
    change = ModelChange("AddField", "state", "shop", "order", before=ORDER, after=ORDER, field="note", old_field="note")
    deploy = Deploy(running=RUNNING, basis="the 3 migration(s) applied", release=WITH_STATUS)
    assert deploy.running.table("shop_order_tags") == (ORDER, TAGS)  # builds the lookup, which pickles too
    for value in (change, deploy, Operation(0, "AddField", "d", 1, changes=(change,))):
        assert pickle.loads(pickle.dumps(value)) == value
    assert change.field_before == NOTE and change.field_after == NOTE


def test_field_source_prints_the_users_field():
    assert CUSTOMER.source() == ("models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, "
                                 "to='shop.customer')")
    assert NUMBER.source(null="True", max_length=None) == "models.CharField(null=True)"
    custom = FieldFacts(name="x", path="myapp.fields.MoneyField", args=("12",), kwargs=(("currency", "'EUR'"),))
    assert custom.source() == "myapp.fields.MoneyField(12, currency='EUR')"


def test_deploy_order_is_configured_and_checked(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.migration_guard]\ndeploy_order = "code_first"\n')
    assert load_config(pyproject).deploy_order == "code_first"
    assert Config().deploy_order == "migrate_first"
    pyproject.write_text('[tool.migration_guard]\ndeploy_order = "whenever"\n')
    with pytest.raises(ConfigError, match='deploy_order = .whenever.: use "migrate_first" or "code_first"'):
        load_config(pyproject)


def test_a_compatibility_finding_leaves_the_lock_backstop_its_say():
    """MG020-MG027 speak of the code around the deploy, not of the statement's own work: a table they
    report is still the backstop's (MG010) when the statement rewrites it."""
    sql = 'ALTER TABLE "shop_order" DROP COLUMN "note", SET TABLESPACE fast'
    deploy = Deploy(running=RUNNING, basis="test")
    parsed = parse_statement(Statement(sql=sql, migration="shop.0002_test", deploy=deploy))
    result = analyse_statements(parsed, source="shop.0002_test", sizes=TableSizes(), pg_version=16, config=Config())
    assert sorted(f.rule for f in result.findings) == ["MG010", "MG020"]
