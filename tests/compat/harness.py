"""The backward-compatibility harness: for each case of ``tests/compat/cases.py``, the gate's verdict
against what really happens on PostgreSQL when the code of one release meets the schema of another.

For each case, on a fresh schema: ``migrate`` the applied migrations; run the gate (``run_gate``, collect
mode, as the release pipeline does) on the pending ones and note the MG020-MG027 findings that block;
build the model classes of the old code (the project state of the applied migrations,
``state.apps``) and of the new code (the state after the pending ones); then, in the deploy order
of the case:

- ``migrate_first``: apply the pending migrations, then run the old code's queries and the new code's;
- ``code_first``: run the new code's queries on the old schema, apply the migrations, run them again.

The queries are what an application does with every model: create with only the required fields
(what leaves nullable ones NULL) and with every field at the widest value its type admits, select
all, filter by each field, update, save, select_related, add to and list a many-to-many relation,
delete. A case agrees when the gate flags it exactly when some query fails.

Run by ``tests/compat/test_harness.py`` in a process of its own (``DJANGO_SETTINGS_MODULE=
tests.compat.settings``, the database in ``COMPAT_DB_*``); prints one JSON list on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.migrations.loader import MigrationLoader  # noqa: E402
from django.db.models import NOT_PROVIDED  # noqa: E402

from migration_guard.gate import GateOptions, run_gate  # noqa: E402
from tests.compat.cases import BASE, CASES, Case  # noqa: E402

COMPAT_RULES = frozenset(f"MG02{n}" for n in range(8))
_AUTO = {"AutoField", "BigAutoField", "SmallAutoField"}
_INTEGERS = {"SmallIntegerField": 2**15 - 1, "IntegerField": 2**31 - 1, "BigIntegerField": 2**63 - 1,
             "PositiveSmallIntegerField": 2**15 - 1, "PositiveIntegerField": 2**31 - 1,
             "PositiveBigIntegerField": 2**63 - 1}


def migration_source(number: int, operations: str) -> str:
    dependencies = "[]" if number == 1 else f'[("shop", "{number - 1:04d}_step")]'
    return (f"from django.db import migrations, models\n\n\nclass Migration(migrations.Migration):\n"
            f"    initial = {number == 1}\n    dependencies = {dependencies}\n    operations = [\n{operations}\n    ]\n")


def write_case(case: Case, root: Path) -> tuple[str, str, str]:
    """The case's migrations as a package under ``root``: (package, last applied, last pending)."""
    package = root / f"compat_{case.name}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    steps = [BASE, *case.applied, *case.pending]
    for number, operations in enumerate(steps, start=1):
        (package / f"{number:04d}_step.py").write_text(migration_source(number, operations))
    return package.name, f"{1 + len(case.applied):04d}_step", f"{len(steps):04d}_step"


# -- what an application does with its models ------------------------------------------------------


class Exercise:
    """Runs every model's typical queries with one code's model classes, noting each that fails."""

    def __init__(self, apps, who: str):
        self.apps = apps
        self.who = who
        self.failures: list[str] = []

    def attempt(self, what: str, action):
        try:
            with transaction.atomic():
                return action()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.failures.append(f"{self.who}: {what}: {type(exc).__name__}: {first}")
            return None

    def value(self, field):
        """The widest value the field's type admits (what code validating by the field may write)."""
        if field.is_relation:
            return self.instance(field.related_model)
        kind = field.get_internal_type()
        if kind in _INTEGERS:
            return _INTEGERS[kind]
        if kind == "DecimalField":
            digits = "9" * (field.max_digits - field.decimal_places)
            return Decimal(digits + ("." + "9" * field.decimal_places if field.decimal_places else ""))
        if kind in {"CharField", "SlugField", "EmailField", "URLField"}:
            return "x" * (field.max_length or 300)
        if kind == "TextField":
            return "x" * 300
        return {"FloatField": 1e300, "BooleanField": True, "DateField": dt.date(2024, 1, 1),
                "DateTimeField": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), "UUIDField": uuid.uuid4(),
                "JSONField": {"k": "v"}, "DurationField": dt.timedelta(days=1)}.get(kind, "x")

    @staticmethod
    def written(model, full: bool):
        """The fields an INSERT gets a value for: every writable one, or only the required ones."""
        fields = []
        for field in model._meta.concrete_fields:
            if field.get_internal_type() in _AUTO or getattr(field, "generated", False):
                continue
            required = not field.null and not field.has_default() and field.db_default is NOT_PROVIDED
            if full or required:
                fields.append(field)
        return fields

    def instance(self, model):
        """A new row of ``model`` with its required fields (what a foreign key points at)."""
        return model.objects.create(**{f.name: self.value(f) for f in self.written(model, full=False)})

    def run(self) -> list[str]:
        """Every model's queries, each in a savepoint of one transaction that is rolled back at the end
        (the rows go, the migrations that follow see empty tables)."""
        with transaction.atomic():
            for model in self.apps.get_app_config("shop").get_models():
                self.model(model)
            transaction.set_rollback(True)
        return self.failures

    def model(self, model) -> None:
        name = model.__name__
        minimal = self.attempt(f"{name}.objects.create(required fields)", lambda: self.instance(model))
        full_values = {}
        full = self.attempt(f"{name}.objects.create(every field)", lambda: model.objects.create(
            **full_values.setdefault("v", {f.name: self.value(f) for f in self.written(model, full=True)})))
        self.attempt(f"list({name}.objects.all())", lambda: list(model.objects.all()))
        relations = [f.name for f in model._meta.concrete_fields if f.is_relation]
        if relations:
            self.attempt(f"{name}.objects.select_related(...)", lambda: list(model.objects.select_related(*relations)))
        if full is not None:
            for field in self.written(model, full=True):
                self.attempt(f"{name}.objects.filter({field.attname}=...)", lambda f=field: model.objects.filter(
                    **{f.attname: getattr(full, f.attname)}).count())
            self.attempt(f"{name}.objects.update(...)", lambda: model.objects.filter(pk=full.pk).update(
                **{f.name: self.value(f) for f in self.written(model, full=True)}))
            self.attempt(f"{name}.save()", lambda: full.save())
            for field in model._meta.many_to_many:
                manager = getattr(full, field.name)
                self.attempt(f"{name}.{field.name}.add()", lambda m=manager, f=field: m.add(self.instance(f.related_model)))
                self.attempt(f"list({name}.{field.name}.all())", lambda m=manager: list(m.all()))
        if minimal is not None:
            self.attempt(f"{name}.delete()", lambda: minimal.delete())


# -- one case --------------------------------------------------------------------------------------


def reset_database() -> None:
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    connection.close()


def run_case(case: Case, root: Path, disable: tuple[str, ...] = ()) -> dict:
    started = time.perf_counter()
    package, applied_last, pending_last = write_case(case, root)
    importlib.invalidate_caches()
    settings.MIGRATION_MODULES = {"shop": package}
    reset_database()
    config = root / f"{case.name}.toml"
    config.write_text(f'[tool.migration_guard]\ndeploy_order = "{case.order}"\ndisable = {list(disable)!r}\n')
    call_command("migrate", "shop", applied_last, verbosity=0, skip_checks=True)

    report = run_gate(GateOptions(config_file=config, approvals_file=root / "none.toml"))
    connection.close()
    findings = [f for m in report.migrations for f in m.findings]
    flagged = sorted({f.rule for f in findings if f.rule in COMPAT_RULES and f.blocking})
    other = sorted({f"{f.rule} {f.message}" for f in findings if f.rule not in COMPAT_RULES and f.rule >= "MG9"})

    loader = MigrationLoader(connection)
    old_code = loader.project_state(("shop", applied_last), at_end=True).apps
    new_code = loader.project_state(("shop", pending_last), at_end=True).apps
    failures: list[str] = []
    if case.order == "code_first":
        failures += Exercise(new_code, "new code, old schema").run()
        call_command("migrate", "shop", pending_last, verbosity=0, skip_checks=True)
        failures += Exercise(new_code, "new code, new schema").run()
    else:
        call_command("migrate", "shop", pending_last, verbosity=0, skip_checks=True)
        failures += Exercise(old_code, "old code, new schema").run()
        failures += Exercise(new_code, "new code, new schema").run()
    return {"case": case.name, "order": case.order, "flagged": flagged, "expected": sorted(case.expect),
            "failures": failures, "gate_errors": other, "seconds": round(time.perf_counter() - started, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", default="0/1", help="I/N: run every N-th case starting at the I-th")
    parser.add_argument("--case", action="append", help="run only these cases (by name)")
    parser.add_argument("--disable", action="append", default=[], help="lint with this rule disabled")
    args = parser.parse_args(argv)
    index, count = (int(part) for part in args.chunk.split("/"))
    cases = [c for n, c in enumerate(CASES) if n % count == index and (not args.case or c.name in args.case)]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        sys.path.insert(0, str(root))
        results = [run_case(case, root, tuple(args.disable)) for case in cases]
    json.dump(results, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
