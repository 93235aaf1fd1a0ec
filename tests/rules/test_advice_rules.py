"""MG030-MG039, the schema advice, from SQL and hand-made Django facts (no server: the rules are pure).
The edges of each rule: names that look like secrets but are not, an index that already covers a
foreign key, expression and partial indexes, the plan around the statement. ``tests/test_advice_live.py``
proves the rules on what Django renders on a real server."""

from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner

from migration_guard.cli import main
from migration_guard.config import Config
from migration_guard.model import (
    Deploy,
    FieldFacts,
    ModelChange,
    ModelFacts,
    Operation,
    RenderedMigration,
    Severity,
    StateFacts,
    Statement,
    TableSize,
)
from migration_guard.parse import parse_sql_text, parse_statement
from migration_guard.pipeline import analyse_migrations, analyse_statements
from migration_guard.rules import ALL_RULES
from migration_guard.rules.mg032_secret_in_plain_text_field import holds_secret
from migration_guard.stats import Snapshot, TableSizes

ADVICE = {f"MG03{n}" for n in range(10)}


def advice(sql: str, *, sizes: TableSizes | None = None, config: Config | None = None) -> list[tuple[str, str | None]]:
    """(rule, table) of the advice on a SQL script (as ``explain`` sees it)."""
    result = analyse_statements(parse_sql_text(sql, "f.sql"), source="f.sql", sizes=sizes or TableSizes(),
                                pg_version=16, config=config or Config())
    return [(f.rule, f.table) for f in result.findings if f.rule in ADVICE]


def rules(sql: str, **kwargs) -> list[str]:
    return [rule for rule, _ in advice(sql, **kwargs)]


def _field(name: str, path: str, db_type: str | None, **facts) -> FieldFacts:
    kwargs = tuple(facts.pop("kwargs", {}).items())
    return FieldFacts(name=name, path=f"django.db.models.{path}", kwargs=kwargs, column=facts.pop("column", name),
                      db_type=db_type, **facts)


def django(sql: str, model: ModelFacts, operation: str = "CreateModel", *, label: str = "shop.0002_x",
           running: StateFacts | None = None, sizes: TableSizes | None = None) -> list[str]:
    """The advice on ``sql`` as rendered by a Django operation that leaves ``model``."""
    change = ModelChange(operation=operation, scope="both", app_label=label.split(".")[0], model=model.model_name,
                         after=model)
    op = Operation(index=0, name=operation, description="x", line=1, model_name=model.model_name, changes=(change,))
    deploy = Deploy(running=running or StateFacts(), basis="test")
    parsed = [p for text in sql.split(";\n") if text.strip()
              for p in parse_statement(Statement(sql=text, migration=label, operation=op, deploy=deploy))]
    result = analyse_statements(parsed, source=label, sizes=sizes or TableSizes(), pg_version=16, config=Config())
    return [f.rule for f in result.findings if f.rule in ADVICE]


ID = _field("id", "BigAutoField", "bigint", primary_key=True, kwargs={"primary_key": "True"})


def test_every_advice_rule_is_registered_documented_and_never_blocking_by_default():
    mine = [rule for rule in ALL_RULES if rule.id in ADVICE]
    assert sorted(rule.id for rule in mine) == sorted(ADVICE)
    for rule in mine:
        assert rule.severity in (Severity.INFO, Severity.WARNING)
        assert not rule.claims  # the lock backstop (MG010) still judges the statement's own work
        for heading in ("## What it does", "## Why is this bad?", "## Example", "## Use instead"):
            assert heading in rule.doc, (rule.id, heading)
    result = CliRunner().invoke(main, ["rules", "MG036"])
    assert result.exit_code == 0 and "# MG036 foreign-key-without-index" in result.output
    assert "Default severity: warning (does not block)." in result.output


# -- MG030 / MG031: JSON ----------------------------------------------------------------------------

def test_jsonb_needs_a_gin_index_that_reads_the_column():
    assert advice("CREATE TABLE t (id bigint, data jsonb)") == [("MG030", "t")]
    assert rules("CREATE TABLE t (id bigint, data jsonb); CREATE INDEX i ON t USING gin (data)") == []
    assert rules("CREATE TABLE t (id bigint, data jsonb); CREATE INDEX i ON t USING gin (data jsonb_path_ops)") == []
    assert rules("CREATE TABLE t (id bigint, data jsonb); CREATE INDEX i ON t USING gin ((data -> 'tags'))") == []
    # a GIN index on another column, or a B-tree, does not count
    assert rules("CREATE TABLE t (id bigint, data jsonb, v tsvector); CREATE INDEX i ON t USING gin (v)") == ["MG030"]


def test_jsonb_on_an_existing_table_only_when_it_is_large():
    small = TableSizes(snapshot=_snapshot({"t": 10}))
    large = TableSizes(snapshot=_snapshot({"t": 5_000_000}))
    assert rules("ALTER TABLE t ADD COLUMN data jsonb", sizes=small) == []
    assert rules("ALTER TABLE t ADD COLUMN data jsonb", sizes=large) == ["MG030"]
    assert rules("ALTER TABLE t ADD COLUMN data jsonb") == ["MG030"]  # no figure: counted as large


def test_json_instead_of_jsonb():
    assert rules("CREATE TABLE t (id bigint, doc json)") == ["MG031"]
    assert rules("ALTER TABLE t ALTER COLUMN doc TYPE json") == ["MG031"]
    assert rules("ALTER TABLE t ALTER COLUMN doc TYPE jsonb USING doc::jsonb") == []


# -- MG032 / MG033: secrets -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["password", "api_key", "apikey", "client_secret", "access_token", "private_key",
                                  "reset_token", "smtp_password", "webhookSecret"])
def test_names_that_hold_a_secret(name):
    assert holds_secret(name)


@pytest.mark.parametrize("name", ["password_hash", "hashed_password", "token_digest", "token_prefix",
                                  "token_expires", "token_type", "secret_id", "tokenizer_name",
                                  "description", "keyword"])
def test_names_that_do_not(name):
    assert not holds_secret(name)


def test_secret_columns_of_plain_types_only():
    assert advice("CREATE TABLE t (id bigint, api_key varchar)") == [("MG032", "t")]
    assert rules("CREATE TABLE t (id bigint, api_key bytea)") == ["MG032"]
    assert rules("CREATE TABLE t (id bigint, token_count integer, api_key_id bigint)") == []
    # Django's password-hash pattern (make_password's hashes fit in 128): no MG032
    assert rules("CREATE TABLE t (id bigint, password varchar(128), token varchar(128))") == ["MG035", "MG035"]


def test_secret_fields_by_their_class():
    plain = ModelFacts("shop", "Hook", "shop_hook", (ID, _field("secret", "TextField", "text")))
    assert django('CREATE TABLE "shop_hook" ("id" bigint PRIMARY KEY, "secret" text NOT NULL)', plain) == ["MG032"]
    encrypted = ModelFacts("shop", "Hook", "shop_hook", (ID, FieldFacts(
        name="secret", path="fernet_fields.EncryptedTextField", column="secret", db_type="text")))
    assert django('CREATE TABLE "shop_hook" ("id" bigint PRIMARY KEY, "secret" text NOT NULL)', encrypted) == []


def test_a_password_literal_in_sql_is_masked_before_any_rule_sees_it():
    findings = analyse_statements(
        parse_sql_text("CREATE ROLE app LOGIN PASSWORD 'pw'; ALTER ROLE app PASSWORD NULL; CREATE ROLE other", "f"),
        source="f", sizes=TableSizes(), pg_version=16, config=Config()).findings
    assert [f.rule for f in findings if f.rule in ADVICE] == ["MG033"]
    result = CliRunner().invoke(main, ["explain", "-"], input="CREATE ROLE app LOGIN PASSWORD 'hunter2secret';\n")
    assert "MG033" in result.output and "hunter2secret" not in result.output and "'***'" in result.output


# -- MG034: 32-bit keys ------------------------------------------------------------------------------

def test_integer_keys():
    assert rules("CREATE TABLE t (id integer PRIMARY KEY)") == ["MG034"]
    assert rules("CREATE TABLE t (id int, PRIMARY KEY (id))") == ["MG034"]
    assert rules("CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)") == []
    assert rules("CREATE TABLE t (id bigserial PRIMARY KEY)") == []
    assert rules("ALTER TABLE t ADD COLUMN n serial") == ["MG034"]
    # a foreign key column follows the key it references
    assert rules("CREATE TABLE p (id bigint PRIMARY KEY); CREATE TABLE c (id bigint PRIMARY KEY, "
                 "p_id integer REFERENCES p (id)); CREATE INDEX ci ON c (p_id)") == ["MG034"]
    assert rules("CREATE TABLE p (id bigint PRIMARY KEY); CREATE TABLE c (id bigint PRIMARY KEY, "
                 "p_id integer REFERENCES p); CREATE INDEX ci ON c (p_id)") == ["MG034"]
    assert rules("CREATE TABLE p (id integer PRIMARY KEY); CREATE TABLE c (id bigint PRIMARY KEY, "
                 "p_id integer REFERENCES p (id)); CREATE INDEX ci ON c (p_id)") == ["MG034"]  # p's key only


def test_django_auto_field_of_a_new_model_and_not_of_djangos_apps():
    auto = _field("id", "AutoField", "integer", primary_key=True,
                  kwargs={"auto_created": "True", "primary_key": "True", "serialize": "False"})
    model = ModelFacts("shop", "Event", "shop_event", (auto,))
    sql = 'CREATE TABLE "shop_event" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY)'
    assert django(sql, model) == ["MG034"]
    auth = ModelFacts("auth", "Permission", "auth_permission", (auto,))
    assert django(sql.replace("shop_event", "auth_permission"), auth, label="auth.0001_initial") == []


def test_the_key_of_a_many_to_many_table_follows_the_default_auto_field():
    tags = FieldFacts(name="tags", path="django.db.models.ManyToManyField", column=None, m2m_table="shop_event_tags",
                      related_model="shop.tag")
    model = ModelFacts("shop", "Event", "shop_event", (ID, tags))
    change = ModelChange(operation="CreateModel", scope="both", app_label="shop", model="event", after=model)
    op = Operation(index=0, name="CreateModel", description="x", line=1, model_name="event", changes=(change,))
    sql = ('CREATE TABLE "shop_event_tags" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, '
           '"event_id" bigint NOT NULL, "tag_id" bigint NOT NULL)')
    parsed = parse_statement(Statement(sql=sql, migration="shop.0001_initial", operation=op,
                                       deploy=Deploy(running=StateFacts(), basis="test")))
    [finding] = [f for f in analyse_statements(parsed, source="shop.0001_initial", sizes=TableSizes(), pg_version=16,
                                               config=Config()).findings if f.rule == "MG034"]
    assert 'The primary key "id" of the new table "shop_event_tags" is a 32-bit integer' in finding.message
    assert 'DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"' in finding.recipe


# -- MG035: types ------------------------------------------------------------------------------------

def test_types_in_raw_sql_and_never_djangos_own():
    assert rules("CREATE TABLE t (a timestamp, b char(2), c varchar(20), d varchar, e text, f timestamptz, "
                 "g character(1)[])") == ["MG035", "MG035", "MG035", "MG035"]
    model = ModelFacts("shop", "Order", "shop_order", (ID, _field("number", "CharField", "varchar(20)", max_length=20)))
    assert django('CREATE TABLE "shop_order" ("id" bigint PRIMARY KEY, "number" varchar(20) NOT NULL)', model) == []
    country = FieldFacts(name="country", path="django_countries.fields.CountryField", column="country",
                         db_type="varchar(2)")
    model = ModelFacts("shop", "Order", "shop_order", (ID, country))
    assert django('CREATE TABLE "shop_order" ("id" bigint PRIMARY KEY, "country" varchar(2) NOT NULL)', model) == []
    legacy = FieldFacts(name="at", path="legacy.fields.NaiveDateTimeField", column="at", db_type="timestamp")
    model = ModelFacts("shop", "Order", "shop_order", (ID, legacy))
    assert django('CREATE TABLE "shop_order" ("id" bigint PRIMARY KEY, "at" timestamp NOT NULL)', model) == ["MG035"]


# -- MG036: foreign keys without an index ---------------------------------------------------------------

def test_foreign_key_covered_by_an_index_that_starts_with_it():
    create = "CREATE TABLE p (id bigint PRIMARY KEY); CREATE TABLE c (id bigint PRIMARY KEY, p_id bigint REFERENCES p)"
    assert rules(create) == ["MG036"]
    assert rules(create + "; CREATE INDEX ci ON c (p_id)") == []
    assert rules(create + "; CREATE UNIQUE INDEX ci ON c (p_id, id)") == []
    assert rules(create + "; ALTER TABLE c ADD CONSTRAINT u UNIQUE (p_id, id)") == []
    assert rules(create + "; CREATE INDEX ci ON c (id, p_id)") == ["MG036"]  # does not start with it
    assert rules(create + "; CREATE INDEX ci ON c (p_id) WHERE p_id IS NOT NULL") == ["MG036"]


def test_django_foreign_key_with_db_index_false():
    def fk(**kwargs):
        base = {"on_delete": "django.db.models.deletion.CASCADE", "to": "'shop.order'"}
        return _field("order", "ForeignKey", "bigint", column="order_id", related_model="shop.order",
                      kwargs={**base, **kwargs})
    sql = ('CREATE TABLE "shop_line" ("id" bigint PRIMARY KEY, "order_id" bigint NOT NULL);\n'
           'ALTER TABLE "shop_line" ADD CONSTRAINT "f" FOREIGN KEY ("order_id") REFERENCES "shop_order" ("id")')
    line = ModelFacts("shop", "Line", "shop_line", (ID, fk(db_index="False")))
    assert django(sql, line) == ["MG036"]
    assert django(sql + ';\nCREATE INDEX "i" ON "shop_line" ("order_id")', ModelFacts(
        "shop", "Line", "shop_line", (ID, fk()))) == []  # Django's own index
    assert django(sql + ';\nALTER TABLE "shop_line" ADD CONSTRAINT "u" UNIQUE ("order_id", "id")', line) == []
    nothing = ModelFacts("shop", "Line", "shop_line", (ID, fk(db_index="False", db_constraint="False",
                                                             on_delete="django.db.models.deletion.DO_NOTHING")))
    assert django(sql.split(";\n")[0], nothing) == []


# -- MG037: duplicates ---------------------------------------------------------------------------------

def plan(*migrations: str) -> list[tuple[str, str]]:
    """(migration, rule) of the advice on several migrations of raw SQL, linted as one plan."""
    rendered = [RenderedMigration("shop", f"000{n}_x", None, True, tuple(
        Statement(sql=text, migration=f"shop.000{n}_x") for text in sql.split("; ")))
        for n, sql in enumerate(migrations, start=1)]
    results = analyse_migrations(rendered, sizes=TableSizes(), pg_version=16, config=Config())
    return [(r.label, f.rule) for r in results for f in r.findings if f.rule in ADVICE]


def test_the_plan_around_the_statement():
    create = "CREATE TABLE t (id bigint PRIMARY KEY, code uuid, doc jsonb)"
    # a GIN index of a later migration of the plan is the advice taken
    assert plan(create, "CREATE INDEX g ON t USING gin (doc)") == []
    assert plan(create, "SELECT 1") == [("shop.0001_x", "MG030")]
    # a unique index of a later migration (which may drop the plain one) does not make it a duplicate;
    # one of the same migration, or of an earlier one, does
    index = "CREATE INDEX g ON t USING gin (doc); CREATE INDEX i ON t (code)"
    assert plan(f"{create}; {index}", "ALTER TABLE t ADD CONSTRAINT u UNIQUE (code)") == []
    assert plan(f"{create}; {index}; ALTER TABLE t ADD CONSTRAINT u UNIQUE (code)") == [("shop.0001_x", "MG037")]
    assert plan(f"{create}; CREATE INDEX g ON t USING gin (doc); ALTER TABLE t ADD CONSTRAINT u UNIQUE (code)",
                "CREATE INDEX i ON t (code)") == [("shop.0002_x", "MG037")]


def test_index_duplicating_a_unique_one():
    assert rules("CREATE TABLE t (id bigint PRIMARY KEY, code text UNIQUE); CREATE INDEX i ON t (code)") == ["MG037"]
    assert rules("CREATE TABLE t (id bigint PRIMARY KEY, code text UNIQUE); CREATE UNIQUE INDEX i ON t (code)") \
        == ["MG037"]
    # another operator class (Django's _like index), a partial or expression index, a prefix: not duplicates
    assert rules("CREATE TABLE t (id bigint PRIMARY KEY, code varchar UNIQUE); "
                 "CREATE INDEX i ON t (code varchar_pattern_ops)") == []
    assert rules("CREATE TABLE t (id bigint PRIMARY KEY, code text UNIQUE); "
                 "CREATE INDEX i ON t (code) WHERE code <> ''; CREATE INDEX j ON t (lower(code))") == []
    assert rules("CREATE TABLE t (id bigint PRIMARY KEY, a bigint, b bigint, UNIQUE (a, b)); "
                 "CREATE INDEX i ON t (a)") == []  # the many-to-many table's pattern: Django's default


# -- MG038 / MG039: index types ----------------------------------------------------------------------

def test_btree_on_json_array_tsvector():
    assert rules("CREATE TABLE t (id bigint PRIMARY KEY, tags text[], doc jsonb, v tsvector); "
                 "CREATE INDEX a ON t (tags); CREATE INDEX b ON t USING gin (doc); CREATE INDEX c ON t (v); "
                 "CREATE INDEX d ON t USING gin (tags)") == ["MG038", "MG038"]


def test_brin_advice_needs_a_large_insert_only_table_and_a_creation_time():
    created = _field("created", "DateTimeField", "timestamp with time zone", kwargs={"auto_now_add": "True"})
    updated = _field("updated", "DateTimeField", "timestamp with time zone", kwargs={"auto_now": "True"})
    log = ModelFacts("shop", "Log", "shop_log", (ID, created))
    sql = 'CREATE INDEX CONCURRENTLY "shop_log_created" ON "shop_log" ("created")'
    large = TableSizes(snapshot=_snapshot({"shop_log": 50_000_000}))
    assert django(sql, log, "AddIndex", running=StateFacts((log,)), sizes=large) == ["MG039"]
    assert django(sql, log, "AddIndex", running=StateFacts((log,))) == []  # no figure: no guess
    assert django(sql, log, "AddIndex", running=StateFacts((log,)),
                  sizes=TableSizes(snapshot=_snapshot({"shop_log": 100}))) == []
    edited = ModelFacts("shop", "Log", "shop_log", (ID, created, updated))
    assert django(sql, edited, "AddIndex", running=StateFacts((edited,)), sizes=large) == []
    assert django(sql.replace('("created")', '("created", "id")'), log, "AddIndex", running=StateFacts((log,)),
                  sizes=large) == []


def test_disabled_advice_is_silent():
    sql = "CREATE TABLE t (id integer PRIMARY KEY, doc json)"
    assert rules(sql, config=Config(disable=frozenset(ADVICE))) == []
    assert rules(sql, config=Config(disable=frozenset({"MG031"}))) == ["MG034"]


def _snapshot(tables: dict[str, int]) -> Snapshot:
    return Snapshot(pg_version=16, server_version_num=None, taken_at="2026-12-01T00:00:00+00:00", database="prod",
                    tables={name: TableSize(rows=rows, total_bytes=rows * 100, source="snapshot")
                            for name, rows in tables.items()})


# Every advice rule speaks on some statement of this script (as ``explain`` sees it).
SCRIPT = """
CREATE TABLE p (id bigint PRIMARY KEY);
CREATE TABLE t (id serial PRIMARY KEY, doc json, data jsonb, tags text[], at timestamp, code char(2),
                api_key text, p_id integer REFERENCES p, name varchar(20) UNIQUE);
CREATE INDEX t_tags ON t (tags);
CREATE INDEX t_name ON t (name);
ALTER TABLE t ADD COLUMN v tsvector;
ALTER TABLE t ALTER COLUMN doc TYPE json;
CREATE ROLE app LOGIN PASSWORD 'pw';
"""


# MG039 needs a model and a size figure, which a script has not (test_brin_advice_... above); it reads only
# the CREATE INDEX it declares.
@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.id in ADVICE and r.actions is not None
                                  and r.id != "MG039"], ids=lambda rule: rule.id)
def test_declared_actions_skip_only_statements_it_finds_nothing_in(rule):
    def found(checked):
        result = analyse_statements(parse_sql_text(SCRIPT, "f.sql"), source="f.sql", sizes=TableSizes(),
                                    pg_version=16, config=Config(), rules=[checked])
        return [(f.rule, f.statement_index, f.message) for f in result.findings]

    declared = found(rule)
    assert declared and declared == found(replace(rule, actions=None))
