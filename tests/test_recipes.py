"""Every recipe is pasteable: the Django code a finding prints compiles and builds real operations
(field classes and arguments included), for the traced lock cases (raw SQL) and the sample project
(Django migrations, with each field's own class and arguments)."""

from __future__ import annotations

import builtins
import json
import textwrap

import pytest

from migration_guard.config import Config
from migration_guard.parse import parse_sql_text
from migration_guard.pipeline import analyse_statements
from migration_guard.stats import TableSizes
from tests.locks.cases import BASE, CASES
from tests.test_sample_project import filled_db, manage  # noqa: F401 (a fixture)


def _names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def check_pasteable(recipe: str) -> None:
    """The recipe, as the body of a migration file (operations end in a comma: at the top level each is a
    tuple expression), compiles and runs: its imports import, its operations and fields are built with
    the arguments it gives. Comment lines are left out (Python's, and SQL's: the advice rules' recipes
    for raw SQL are SQL commentary, MG031-MG036); the code is dedented as a whole."""
    from django.db import migrations, models

    code = textwrap.dedent("\n".join(line for line in recipe.splitlines()
                                      if not line.lstrip().startswith(("#", "--"))))
    compiled = compile(code, "<recipe>", "exec")  # SyntaxError: not pasteable
    # a name it leaves to the user (``backfill_in_batches``) is a function doing nothing
    namespace = {name: (lambda *args, **kwargs: None) for name in _names(compiled) if not hasattr(builtins, name)}
    namespace.update(migrations=migrations, models=models)
    exec(compiled, namespace)


def test_the_checker_refuses_placeholders():
    check_pasteable('migrations.AddField("order", "note", models.TextField(null=True)),')
    with pytest.raises(SyntaxError):
        check_pasteable('migrations.AddField("order", "note", models.<Field>(null=True)),')
    with pytest.raises(SyntaxError):  # a comment inside a call swallows the rest of the line
        check_pasteable('migrations.AddField("order"  # the model, "note", models.TextField(null=True)),')
    with pytest.raises(TypeError):  # arguments the field class does not take
        check_pasteable('migrations.AddField("order", "note", models.TextField(max_digits=3)),')


def _recipes_of_traced_cases():
    base = parse_sql_text(BASE, "base.sql")
    for case in CASES:
        if not case.runs_on(16):
            continue
        setup = parse_sql_text(case.setup, "setup.sql") if case.setup else []
        statements = [*base, *setup, *parse_sql_text(case.sql, f"{case.id}.sql")]
        # every table large (no sizes), nothing created in the plan: every rule that can speak does
        result = analyse_statements(statements[len(base) + len(setup):], source=case.id, sizes=TableSizes(),
                                    pg_version=16, config=Config())
        for finding in result.findings:
            if finding.recipe:
                yield pytest.param(finding.recipe, id=f"{case.id}-{finding.rule}")


@pytest.mark.parametrize("recipe", list(dict.fromkeys(_recipes_of_traced_cases())))
def test_recipes_of_the_traced_cases_are_pasteable(recipe):
    check_pasteable(recipe)


def test_recipes_of_the_sample_project_are_pasteable_with_its_own_fields(pg_server, filled_db):  # noqa: F811

    run = manage(pg_server, filled_db, "lint_migrations", "--format", "json", "--assume-rows", "5000000")
    assert run.returncode in (0, 1), run.stderr
    findings = [f for f in json.loads(run.stdout)["findings"] if f["recipe"]]
    assert len({f["rule"] for f in findings}) >= 8, sorted({f["rule"] for f in findings})
    for finding in findings:
        try:
            check_pasteable(finding["recipe"])
        except Exception as exc:
            raise AssertionError(f"{finding['migration']} {finding['rule']}: {exc}\n{finding['recipe']}") from exc
    assert not [f["rule"] for f in findings if "models.<" in f["recipe"]]
    # the migration's own field class and arguments, not a placeholder
    added = {f["rule"]: f["recipe"] for f in findings if f["rule"] in ("MG001", "MG007")}
    assert 'migrations.AddField("order", "sampling_key", models.FloatField(null=True)),' in added["MG001"]
    assert 'migrations.AddField("order", "total_cents_new", models.BigIntegerField(null=True)),' in added["MG007"]
