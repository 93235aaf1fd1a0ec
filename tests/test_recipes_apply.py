"""Every recipe that prints code is applied as a user applies it, and the gate passes it at production size.

For each finding whose recipe is code (not advice in words) -- of the sample project's migrations and of
the traced lock cases -- the test

1. puts a database in the state just before the dangerous migration, with rows in the tables;
2. writes the recipe's migrations as files of the project, one per ``# --- ... ---`` heading, a deploy at
   a time (``deploy N`` in a heading starts deploy N);
3. lints each deploy's migrations with ``manage.py lint_migrations`` and a stats snapshot in which every
   table holds 5,000,000 rows: no blocking finding, but those :data:`OTHER_HAZARDS` names (another
   finding's business on the same migration), then runs ``migrate`` on the real server;
4. compares the database afterwards with what the dangerous migration itself made (columns with their
   type, NOT NULL and default; indexes; constraints; the rows), and for the sample project Django's
   migration state too (but :data:`WITHOUT_NULL` and :data:`INSTEAD`; MG007's new column keeps its name,
   ``<column>_new``).

The user's own part of a recipe (:func:`user_part`): MG012's ``db_default=...`` is filled with ``0``, and
MG026's "this migration as you wrote it" is the original migration file. Recipes that are advice in
words (MG008, MG020-MG023, MG030-MG039 in raw SQL, MG903, MG905, ...) have nothing to apply.

The traced cases run a representative set (:data:`TRACED_IN_CI`); ``MIGRATION_GUARD_ALL_RECIPES=1``
(``make test-recipes``) runs every traced case with a code recipe.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from pathlib import Path

import psycopg
import pytest

from migration_guard.config import Config
from migration_guard.locks.introspect import catalog_from_database
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.stats import TableSizes, load_snapshot
from tests.locks.cases import BASE, CASES
from tests.recipe_apply import (
    RecipeMigration,
    clone,
    deploy_recipe,
    describe,
    differences,
    driver,
    large_snapshot,
    split_recipe,
)
from tests.test_sample_project import SAMPLE, SMALL_SIZES, demo, migrate

_numbers = itertools.count()

# A blocking finding a recipe may still get: a hazard of the same migration that another rule reports
# and whose own recipe deals with it.
OTHER_HAZARDS = {
    # MG003's recipe makes the column NOT NULL without a scan; that the running code may still write
    # NULL to it is MG026's finding, whose recipe changes the model a release earlier.
    "MG003": {"MG026"},
    # the same for a primary key, which makes its columns NOT NULL (MG006's recipe: without a scan)
    "MG006": {"MG026"},
    # raw SQL: the recipe does not know the models; that the running code's model still has the old column
    # when deploy 4 drops it is MG020's finding (the recipe says to take it out of the models in deploy 3)
    "MG007": {"MG020"},
}

# A recipe that gives the column a constant database default where the migration gives none: MG012's (without
# one, NOT NULL fails on a table with rows).
DEFAULTED = {"MG012"}

# Advice whose recipe builds another index in place of the migration's (named): that difference is the point.
INSTEAD = {"MG039": ["shop_order_created_at_idx"]}  # a BRIN index instead of the B-tree of shop.0005

# Django states compared without a field's null=True, for the rule whose recipe changes it on purpose:
# MG026's deploy 1 makes the model say what the constraint will (the migration left it null=True).
WITHOUT_NULL = {"MG026"}


def has_code(recipe: str) -> bool:
    """Whether the recipe has anything to apply: a line that is not a comment (Python's or SQL's)."""
    return any(m.code or m.module for m in split_recipe(recipe))


def user_part(rule: str, migrations: list[RecipeMigration], original: str | None) -> list[RecipeMigration]:
    """The recipe with the part it leaves to the user written as a user would: MG012's ``...`` (the
    constant database default of the user's choice) is 0; a migration whose heading says "as you wrote
    it" is the original migration (``original``: its file)."""
    for migration in migrations:
        if rule == "MG012":
            migration.lines = [line.replace("db_default=...", "db_default=0") for line in migration.lines]
        if "as you wrote it" in migration.heading and not migration.code:
            assert original is not None, f"{rule}: the recipe asks for the original migration"
            migration.module = original
    return migrations


def _volatile(rule: str, finding) -> str | None:
    """The column whose values come from a volatile default (random(), ...): MG001's."""
    if rule != "MG001":
        return None
    message = finding["message"] if isinstance(finding, dict) else finding.message
    return re.search(r'column "([^"]+)"', message)[1]


def _as_named(described: dict, rule: str, finding) -> dict:
    """MG007's recipe leaves the new type in a new column, ``<column>_new`` (renaming it back would break the
    code running then): compared under the old column's name."""
    if rule != "MG007":
        return described
    message = finding["message"] if isinstance(finding, dict) else finding.message
    column = re.match(r'Changing "([^"]+)"', message)[1]
    for entry in described.values():  # the table's (and a partitioned table's partitions')
        for part in ("columns", "values"):
            if part in entry and f"{column}_new" in entry[part]:
                entry[part] = {column if name == f"{column}_new" else name: v for name, v in entry[part].items()}
    return described


def blocking(deployed, rule: str) -> list[str]:
    """The deploy's blocking findings that the recipe for ``rule`` should have avoided."""
    allowed = OTHER_HAZARDS.get(rule, set())
    return [f"{f['rule']} {f['migration']}: {f['message']}" for f in deployed.findings
            if f["blocking"] and f["rule"] not in allowed]


def check_deploys(deployed: list, rule: str, recipe: str) -> None:
    for step in deployed:
        where = f"deploy {step.deploy} ({', '.join(Path(f).name for f in step.files)}) of the {rule} recipe"
        assert step.lint["code"] in (0, 1), f"{where}: lint exited {step.lint['code']}\n{step.lint['err']}\n{recipe}"
        assert not blocking(step, rule), f"{where}: the gate blocks it:\n" + "\n".join(blocking(step, rule)) + \
            f"\n{recipe}"
        assert step.migrate["code"] == 0, f"{where}: migrate failed:\n{step.migrate['err'][-3000:]}\n{recipe}"


_created: list[str] = []  # databases made here (a server holds them until dropped)


def _name(prefix: str) -> str:
    """The name of a database to make, dropped by :func:`_drop` (at the end of the test, or the module)."""
    _created.append(f"{prefix}_{os.getpid()}_{next(_numbers)}")
    return _created[-1]


def _drop(pg_server, names) -> None:
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _dropped(pg_server):
    """The databases a test makes, dropped after it."""
    made = len(_created)
    yield
    _drop(pg_server, _created[made:])
    del _created[made:]


# -- the sample project ---------------------------------------------------------------------------------

# Findings of the sample project whose recipe is code, linted at production size: (migration, rule).
SAMPLE_RECIPES = [
    ("billing.0002_add_index_on_small_table", "MG002"),
    ("shop.0002_add_sampling_key_with_volatile_default", "MG001"),
    ("shop.0004_add_index", "MG002"),
    ("shop.0005_add_index_concurrently", "MG039"),
    ("shop.0006_set_channel_not_null", "MG003"),
    ("shop.0006_set_channel_not_null", "MG026"),
    ("shop.0007_add_currency_not_null_check_not_valid", "MG026"),
    ("shop.0009_set_currency_not_null_using_check", "MG026"),
    ("shop.0010_add_referred_by_foreign_key", "MG002"),
    ("shop.0013_add_warehouse_foreign_key_constraint", "MG004"),
    ("shop.0016_add_unique_constraint", "MG006"),
    ("shop.0018_alter_total_cents_to_bigint", "MG007"),
    ("shop.0023_add_check_constraint", "MG005"),
]


def _previous(label: str) -> tuple[str, str, str]:
    """(app, the migration before ``label``, ``label``'s name)."""
    app, name = label.split(".")
    names = sorted(p.stem for p in (SAMPLE / app / "migrations").glob("0*.py"))
    return app, names[names.index(name) - 1], name


@pytest.fixture(scope="module")
def sample(pg_server, tmp_path_factory):
    """The sample project at the demo's base with rows, linted at production size; for each migration of
    :data:`SAMPLE_RECIPES`, a database just before it and one just after it, and Django's state after it."""
    folder = tmp_path_factory.mktemp("sample")
    base = _name("sample_base")
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{base}"')
    for app_label, name in demo.BASE_MIGRATIONS:
        migrate(pg_server, base, app_label, name)
    demo.fill_tables(pg_server.dsn(base), SMALL_SIZES)
    stats = large_snapshot(pg_server.dsn(base), folder / "production.json")
    steps = [{"database": base}, {"manage": ["lint_migrations", "--stats", str(stats), "--format", "json"]}]
    databases = {}
    # billing first: its migrations do not depend on shop's, which then move forward
    for label in sorted({m for m, _ in SAMPLE_RECIPES}, key=lambda m: (m.split(".")[0] != "billing", m)):
        app, previous, name = _previous(label)
        databases[label] = (_name("before"), _name("after"))
        steps += [{"manage": ["migrate", app, previous, "--no-input"]}, {"clone": databases[label][0]},
                  {"manage": ["migrate", app, name, "--no-input"]}, {"clone": databases[label][1]}]
    labels = sorted(databases)
    steps += [{"state": [label.split(".")[0], label.split(".")[1]]} for label in labels]
    results = driver(pg_server, SAMPLE, "shopsite.settings", steps)
    assert all(r.get("code", 0) == 0 for r in results[2:]), results
    findings = json.loads(results[1]["out"])["findings"]
    states = {label: result["state"] for label, result in zip(labels, results[-len(labels):])}
    yield findings, databases, states
    _drop(pg_server, [base, *(name for pair in databases.values() for name in pair)])


def test_the_sample_recipes_listed_are_every_code_recipe_of_the_sample_project(sample):
    findings, _, _ = sample
    assert sorted({(f["migration"], f["rule"]) for f in findings if f["recipe"] and has_code(f["recipe"])}) == \
        sorted(SAMPLE_RECIPES)


def _sample_project(pg_server, database: str, folder: Path) -> Path:
    """A copy of the sample project with the migrations applied on ``database`` and no other."""
    project = folder / "project"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("__pycache__"))
    with psycopg.connect(pg_server.dsn(database)) as conn:
        applied = set(conn.execute("SELECT app, name FROM django_migrations").fetchall())
    for path in project.glob("*/migrations/0*.py"):
        if (path.parent.parent.name, path.stem) not in applied:
            path.unlink()
    return project


def _original(label: str) -> str:
    """The original migration file without its dependencies (the user's own migration, moved)."""
    app, _, name = _previous(label)
    text = (SAMPLE / app / "migrations" / f"{name}.py").read_text()
    return re.sub(r"dependencies = \[.*?\]\n", "", text, count=1, flags=re.S)


@pytest.mark.parametrize("label, rule", SAMPLE_RECIPES, ids=[f"{m.split('_')[0]}-{r}" for m, r in SAMPLE_RECIPES])
def test_a_sample_recipe_applies_and_the_gate_passes_it(label, rule, sample, pg_server, tmp_path):
    findings, databases, states = sample
    [finding] = [f for f in findings if (f["migration"], f["rule"]) == (label, rule)]
    before, after = databases[label]
    app, previous, name = _previous(label)
    project = _sample_project(pg_server, before, tmp_path)
    database = clone(pg_server, before, _name("recipe"))
    migrations = user_part(rule, split_recipe(finding["recipe"]), _original(label))

    deployed, [state] = deploy_recipe(pg_server, project, "shopsite.settings", app, database, previous, migrations,
                                      large_snapshot(pg_server.dsn(before), tmp_path / "production.json"),
                                      prefix=f"{name[:4]}_recipe", then=[{"state": [app, None]}])

    check_deploys(deployed, rule, finding["recipe"])
    found = differences(describe(pg_server.dsn(after)), _as_named(describe(pg_server.dsn(database)), rule, finding),
                        _volatile(rule, finding))
    if rule in INSTEAD:  # advice: another index than the migration's (its only difference)
        built = re.findall(r'name="([^"]+)"', finding["recipe"])
        indexes = [*built, *INSTEAD[rule]]
        found = [line for line in found if not any(re.match(rf"\S+ index {re.escape(name)}: ", line) for name in indexes)]
    assert found == [], finding["recipe"]
    got, expected = state["state"], states[label]
    if rule in WITHOUT_NULL:
        got, expected = _without(got, "null=True"), _without(expected, "null=True")
    if rule in INSTEAD:
        got, expected = _without_indexes(got), _without_indexes(expected)
    if rule == "MG007":  # the field keeps its name, its column is the new one
        got = _without(got, r"db_column='[^']+_new'")
    assert _state_differences(expected, got) == [], finding["recipe"]


def _state_differences(expected: dict, got: dict) -> list[str]:
    lines = []
    for model in sorted(set(expected) | set(got)):
        want, have = expected.get(model, {}), got.get(model, {})
        for part in ("fields", "options"):
            for name in sorted(set(want.get(part, {})) | set(have.get(part, {}))):
                if want.get(part, {}).get(name) != have.get(part, {}).get(name):
                    lines.append(f"{model} {part[:-1]} {name}: expected {want.get(part, {}).get(name)}, "
                                 f"got {have.get(part, {}).get(name)}")
    return lines


def _without_indexes(state: dict) -> dict:
    return {model: {**facts, "options": {k: v for k, v in facts["options"].items() if k != "indexes"}}
            for model, facts in state.items()}


def _without(state: dict, argument: str) -> dict:
    """The state with a keyword argument (a pattern) left out of every field."""
    return {model: {**facts, "fields": {name: re.sub(rf"(, )?{argument}(, )?", lambda m: m[1] and m[2] or "", field)
                                        for name, field in facts["fields"].items()}}
            for model, facts in state.items()}


# -- the traced cases -----------------------------------------------------------------------------------

TRACED_SETTINGS = """
import os

SECRET_KEY = "recipes"
INSTALLED_APPS = ["django.contrib.postgres", "migration_guard", "shop"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "HOST": os.environ["RECIPE_DB_HOST"],
                         "PORT": os.environ["RECIPE_DB_PORT"], "USER": os.environ["RECIPE_DB_USER"],
                         "NAME": "postgres"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""

# The traced cases' tables as a Django project has them: models for BASE's tables (state only: BASE makes
# the tables, with its rows).
TRACED_INITIAL = """
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    operations = [migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RunSQL({base!r})],
        state_operations=[
            migrations.CreateModel("Customer", [
                ("id", models.BigAutoField(primary_key=True)),
                ("email", models.CharField(max_length=100)),
                ("name", models.CharField(max_length=50, null=True)),
            ]),
            migrations.CreateModel("Order", [
                ("id", models.BigAutoField(primary_key=True)),
                ("customer", models.ForeignKey("shop.customer", models.DO_NOTHING)),
                ("total", models.IntegerField()),
                ("note", models.CharField(max_length=20, null=True)),
                ("qty", models.IntegerField(null=True)),
                ("placed_at", models.DateTimeField(null=True)),
                ("price", models.DecimalField(max_digits=8, decimal_places=2, null=True)),
                ("ip", models.GenericIPAddressField(null=True)),
                ("code", models.CharField(max_length=5, null=True)),
            ]),
            migrations.CreateModel("Tag", [
                ("id", models.AutoField(primary_key=True)),
                ("name", models.CharField(max_length=20, null=True)),
                ("n", models.IntegerField(null=True)),
            ]),
        ],
    )]
"""

# Models for tables a case's setup makes (by a statement of the setup), where a recipe names them in
# Django operations.
SETUP_MODELS = {
    "CREATE TABLE ev ": 'migrations.CreateModel("Ev", [("id", models.BigIntegerField(primary_key=True)), '
                        '("kind", models.TextField(null=True))], options={"db_table": "ev"})',
    "CREATE TABLE shop_empty ": 'migrations.CreateModel("Empty", [("id", models.BigIntegerField(primary_key=True))])',
}

TRACED_SETUP = """
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.SeparateDatabaseAndState(
        database_operations=[migrations.RunSQL({setup!r})] if {setup!r} else [],
        state_operations=[{models}],
    )]
"""

# A representative set: one or two cases of each recipe's form (the full set: make test-recipes).
TRACED_IN_CI = [
    "add_column_random", "add_column_fk_default", "add_column_unique", "add_column_inline_check", "set_not_null",
    "partitioned_set_not_null", "type_int_to_bigint", "type_varchar_shrink", "type_char_grow", "add_check", "add_fk",
    "add_unique_deferrable", "add_primary_key_nullable", "create_index_partial", "create_index_expression",
    "partitioned_create_index", "reindex_table", "refresh_matview", "type_collation_indexed", "update_backfill",
    "insert_select_join", "add_column_not_null_no_default_empty",
]


def _findings(case, sizes: TableSizes, catalog=None):
    """The case's findings as ``migration-guard explain`` gives them, at PostgreSQL 18."""
    return analyse_statements(parse_sql_text(case.sql, f"{case.id}.sql"), source=case.id, sizes=sizes,
                              pg_version=18, config=Config(), catalog=catalog).findings


# What a recipe leaves to the user in words, which the test does not write for them (the full set only).
IN_WORDS = {
    "type_two_columns": "two columns change: each finding's recipe moves its own (a user applies both)",
    "type_indexed_rewrite": "the old column's index, made for the new column as the recipe says in words",
    "type_int_array_grow": "the old column's default, given to the new column as the recipe says in words",
    "type_varchar_array_grow": "the old column's default, given to the new column as the recipe says in words",
    "type_enum_to_text": "the old column's default, given to the new column as the recipe says in words",
}


def _traced_with_code() -> list[str]:
    """The cases (but those needing the role and tablespace test_traced.py makes) with a code recipe when
    every table's size is unknown (the database's catalog may show some to be harmless)."""
    ids = []
    for case in CASES:
        if not case.runs_on(18) or case.fails or case.opaque or case.invalid_index:
            continue
        if "mg_space" in case.setup + case.sql or "mg_role" in case.setup + case.sql:
            continue
        if any(f.recipe and has_code(f.recipe) for f in _findings(case, TableSizes())):
            ids.append(case.id)
    return ids


TRACED = ([pytest.param(i, marks=pytest.mark.xfail(reason=IN_WORDS[i], strict=True)) if i in IN_WORDS else i
           for i in _traced_with_code()] if os.environ.get("MIGRATION_GUARD_ALL_RECIPES") == "1" else TRACED_IN_CI)
CASE = {case.id: case for case in CASES}


def test_the_traced_cases_in_ci_have_code_recipes():
    assert set(TRACED_IN_CI) <= set(_traced_with_code())


@pytest.fixture(scope="module")
def traced(pg_server, tmp_path_factory):
    """The traced project (BASE's tables as models of app ``shop``) and a database with it migrated."""
    project = tmp_path_factory.mktemp("traced") / "project"
    (project / "tracedsite").mkdir(parents=True)
    (project / "tracedsite" / "__init__.py").write_text("")
    (project / "tracedsite" / "settings.py").write_text(TRACED_SETTINGS)
    (project / "shop" / "migrations").mkdir(parents=True)
    (project / "shop" / "__init__.py").write_text("")
    (project / "shop" / "migrations" / "__init__.py").write_text("")
    base_sql = "\n".join(line for line in BASE.splitlines() if "SCHEMA" not in line)
    (project / "shop" / "migrations" / "0001_initial.py").write_text(TRACED_INITIAL.format(base=base_sql))
    base = _name("traced_base")
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{base}"')
    [_, done] = driver(pg_server, project, "tracedsite.settings", [{"database": base}, {"manage": ["migrate"]}])
    assert done["code"] == 0, done
    yield project, base
    _drop(pg_server, [base])


@pytest.mark.parametrize("case_id", TRACED)
def test_a_traced_recipe_applies_and_the_gate_passes_it(case_id, traced, pg_server, tmp_path):
    case = CASE[case_id]
    skeleton, base = traced
    # The original, on its own copy: its findings (with the database's catalog) and what it makes.
    expected_db = clone(pg_server, base, _name("original"))
    with psycopg.connect(pg_server.dsn(expected_db), autocommit=True) as conn:
        if case.setup:
            conn.execute(case.setup)
        stats = large_snapshot(pg_server.dsn(expected_db), tmp_path / "production.json")
        findings = _findings(case, TableSizes(snapshot=load_snapshot(stats)), catalog_from_database(conn))
        conn.execute(case.sql)
    expected = describe(pg_server.dsn(expected_db))
    recipes = list({(f.rule, f.recipe): f for f in findings if f.recipe and has_code(f.recipe)}.items())
    if not recipes and case_id not in TRACED_IN_CI:
        pytest.skip("no code recipe once the database's catalog is known")
    assert recipes, f"{case_id}: no recipe to apply"
    models = ", ".join(model for statement, model in SETUP_MODELS.items() if statement in case.setup)
    for number, ((rule, recipe), finding) in enumerate(recipes):
        project = tmp_path / f"project{number}"
        shutil.copytree(skeleton, project)
        (project / "shop" / "migrations" / "0002_setup.py").write_text(
            TRACED_SETUP.format(setup=case.setup, models=models))
        database = clone(pg_server, base, _name("recipe"))
        migrations = user_part(rule, split_recipe(recipe), None)

        deployed, [setup] = deploy_recipe(pg_server, project, "tracedsite.settings", "shop", database, "0002_setup",
                                          migrations, stats, prefix="0003_recipe", first=[{"manage": ["migrate"]}])
        assert setup["code"] == 0, setup["err"]

        check_deploys(deployed, rule, recipe)
        found = differences(expected, _as_named(describe(pg_server.dsn(database)), rule, finding),
                            _volatile(rule, finding))
        if rule in DEFAULTED:
            found = [line for line in found if not re.fullmatch(  # the default alone differs
                r"\S+ column \S+: expected \['(?P<type>[^']*)', True, None, (?P<rest>.*)\], "
                r"got \['(?P=type)', True, '[^']*', (?P=rest)\]", line)]
        assert found == [], f"{rule}:\n{recipe}"
