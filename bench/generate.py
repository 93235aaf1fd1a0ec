"""Generate a Django project with N migrations across several apps, deterministic from a seed.

The mix follows what ``makemigrations`` and hand-written migrations produce in a long-lived
project: models created over time with foreign keys to earlier models of the same and other apps,
fields added, altered (longer varchar, int -> bigint, NULL toggled, indexed), renamed and removed,
indexes and constraints added and removed, models renamed, ``RunSQL`` and ``RunPython`` data
steps, and non-atomic migrations that build or drop an index concurrently. ``models.py`` of every
app matches the final state, so ``migrate`` finds no model changes, as in a real project.

    python bench/generate.py OUT_DIR --migrations 1000 [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["apps_for", "generate", "generate_sql"]

# (weight, kind) of the operations a migration is made of.
_OPERATIONS = [
    (12, "create_model"),
    (22, "add_field"),
    (16, "alter_field"),
    (6, "remove_field"),
    (4, "rename_field"),
    (1, "rename_model"),
    (8, "add_index"),
    (3, "remove_index"),
    (6, "add_constraint"),
    (2, "remove_constraint"),
    (5, "run_sql"),
    (3, "run_python"),
]
_CONCURRENT_SHARE = 0.04
# Models per app: a long history mostly changes the models an app has (a real 500-migration,
# 60-app project has ~5 per app); without a ceiling the model count, and so Django's own cost per
# operation, would grow with the number of migrations.
_MODELS_PER_APP = 8  # share of migrations that are non-atomic concurrent index builds/drops


def apps_for(migrations: int) -> int:
    """How many apps a project of this many migrations has (a real 500-migration project: ~60)."""
    return max(4, min(60, migrations // 40))


@dataclass(eq=False)
class _Field:
    name: str
    kind: str  # "char", "text", "int", "bigint", "bool", "date", "decimal", "fk"
    null: bool = True
    max_length: int = 0
    db_index: bool = False
    target: _Model | None = None  # for "fk"
    pinned: bool = False  # used by an index or constraint: never renamed or removed

    def code(self) -> str:
        null = ", null=True" if self.null else ""
        index = ", db_index=True" if self.db_index else ""
        if self.kind == "char":
            return f"models.CharField(max_length={self.max_length}{null}{index})"
        if self.kind == "text":
            return f"models.TextField({null[2:]})" if self.null else "models.TextField(default='')"
        if self.kind == "int":
            return f"models.IntegerField({(null + index)[2:]})"
        if self.kind == "bigint":
            return f"models.BigIntegerField({(null + index)[2:]})"
        if self.kind == "bool":
            return "models.BooleanField(default=False)"
        if self.kind == "date":
            return f"models.DateTimeField({(null + index)[2:]})"
        if self.kind == "decimal":
            return f"models.DecimalField(max_digits=12, decimal_places=2{null})"
        assert self.target is not None
        return (f"models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', "
                f"to='{self.target.app}.{self.target.name}'{null})")


@dataclass(eq=False)
class _Model:
    app: str
    name: str
    fields: dict[str, _Field] = field(default_factory=dict)
    indexes: dict[str, list[str]] = field(default_factory=dict)  # name -> field names
    checks: dict[str, str] = field(default_factory=dict)  # name -> field (>= 0)
    uniques: dict[str, list[str]] = field(default_factory=dict)
    # A model another app points at is never renamed: migrate may order the other app's
    # migration after the rename, where the old name no longer resolves.
    referenced_elsewhere: bool = False

    @property
    def table(self) -> str:
        return f"{self.app}_{self.name.lower()}"


@dataclass
class _App:
    label: str
    models: list[_Model] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)  # names, in order


class _Generator:
    def __init__(self, count: int, seed: int):
        self.random = random.Random(seed)
        self.count = count
        self.apps = [_App(f"app{i:02d}") for i in range(apps_for(count))]
        self.counter = 0
        self.files: dict[Path, str] = {}
        self.helpers: list[str] = []  # RunPython functions of the migration being written

    def unique(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def run(self) -> None:
        # Every app starts with a model, in app order, so foreign keys have targets from the start.
        for app in self.apps:
            self.migration(app, [self.op_create_model(app)])
        while sum(len(a.migrations) for a in self.apps) < self.count:
            app = self.random.choice(self.apps)
            if self.random.random() < _CONCURRENT_SHARE:
                ops = self.op_concurrent(app)
                if ops:
                    self.migration(app, ops, atomic=False)
                    continue
            size = self.random.choices([1, 2, 3, 4, 6], weights=[45, 25, 15, 10, 5])[0]
            ops = []
            for _ in range(size):
                kind = self.random.choices([k for _, k in _OPERATIONS], weights=[w for w, _ in _OPERATIONS])[0]
                op = getattr(self, f"op_{kind}")(app)
                if op:
                    ops.append(op)
            if ops:
                self.migration(app, ops)
        for app in self.apps:
            self.write_models(app)

    # -- files -------------------------------------------------------------------------------
    def migration(self, app: _App, ops: list[tuple[str, set[str]]], atomic: bool = True) -> None:
        number = len(app.migrations) + 1
        name = f"{number:04d}_{self.unique('m')}"
        deps = set()
        if app.migrations:
            deps.add((app.label, app.migrations[-1]))
        for _, needs in ops:
            for other in needs:
                if other != app.label:
                    target = next(a for a in self.apps if a.label == other)
                    deps.add((other, target.migrations[-1]))
        helpers, self.helpers = "".join(self.helpers), []
        body = "".join(f"        {code},\n" for code, _ in ops)
        lines = [
            "import django.db.models.deletion",
            "from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently",
            "from django.db import migrations, models",
            "",
            helpers,
            "",
            "class Migration(migrations.Migration):",
        ]
        if not atomic:
            lines.append("    atomic = False")
        if number == 1:
            lines.append("    initial = True")
        lines.append(f"    dependencies = {sorted(deps)!r}")
        lines.append("    operations = [")
        text = "\n".join(lines) + "\n" + body + "    ]\n"
        self.files[Path(app.label) / "migrations" / f"{name}.py"] = text
        app.migrations.append(name)

    def write_models(self, app: _App) -> None:
        out = ["import django.db.models.deletion", "from django.db import models", ""]
        for model in app.models:
            out.append(f"\nclass {model.name}(models.Model):")
            for f in model.fields.values():
                out.append(f"    {f.name} = {f.code()}")
            meta = []
            if model.indexes:
                meta.append("        indexes = [" + ", ".join(
                    f"models.Index(fields={fields!r}, name={name!r})" for name, fields in model.indexes.items()) + "]")
            constraints = [f"models.CheckConstraint(condition=models.Q({f}__gte=0), name={n!r})"
                           for n, f in model.checks.items()]
            constraints += [f"models.UniqueConstraint(fields={fields!r}, name={n!r})" for n, fields in model.uniques.items()]
            if constraints:
                meta.append("        constraints = [" + ", ".join(constraints) + "]")
            if meta:
                out.append("\n    class Meta:")
                out.extend(meta)
        self.files[Path(app.label) / "models.py"] = "\n".join(out) + "\n"
        self.files[Path(app.label) / "__init__.py"] = ""
        self.files[Path(app.label) / "migrations" / "__init__.py"] = ""

    # -- operations: each returns (code, apps it needs) or None when it does not apply --------
    def any_model(self, app: _App) -> _Model | None:
        return self.random.choice(app.models) if app.models else None

    def new_field(self, app: _App, allow_fk: bool = True) -> _Field:
        kind = self.random.choices(["char", "text", "int", "bool", "date", "decimal", "fk"],
                                   weights=[30, 8, 20, 10, 10, 7, 15 if allow_fk else 0])[0]
        f = _Field(self.unique("f"), kind, max_length=self.random.choice([20, 50, 100, 255]))
        if kind == "fk":
            # Mostly within the app, sometimes to an earlier app's model.
            source = app if self.random.random() < 0.6 else self.random.choice(self.apps)
            f.target = self.random.choice(source.models) if source.models else None
            if f.target is None:
                f.kind = "int"
            elif f.target.app != app.label:
                f.target.referenced_elsewhere = True
        return f

    def op_create_model(self, app: _App):
        if len(app.models) >= _MODELS_PER_APP:
            return None
        model = _Model(app.label, f"M{self.unique('')}")
        fields = [_Field("id", "auto", null=False)]
        for _ in range(self.random.randint(2, 7)):
            fields.append(self.new_field(app))
        app.models.append(model)
        needs = set()
        parts = ["('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID'))"]
        for f in fields[1:]:
            model.fields[f.name] = f
            parts.append(f"({f.name!r}, {f.code()})")
            if f.target is not None:
                needs.add(f.target.app)
        code = f"migrations.CreateModel(name={model.name!r}, fields=[{', '.join(parts)}])"
        return code, needs

    def op_add_field(self, app):
        model = self.any_model(app)
        if model is None:
            return None
        f = self.new_field(app)
        if f.target is model:
            f.target = None
            f.kind = "int"
        model.fields[f.name] = f
        return (f"migrations.AddField(model_name={model.name.lower()!r}, name={f.name!r}, field={f.code()})",
                {f.target.app} if f.target else set())

    def op_alter_field(self, app):
        model = self.any_model(app)
        candidates = [f for f in model.fields.values() if f.kind in {"char", "int", "date", "bigint"}] if model else []
        if not candidates:
            return None
        f = self.random.choice(candidates)
        change = self.random.choice(["longer", "widen", "null", "index"])
        if change == "longer" and f.kind == "char":
            f.max_length = f.max_length * 2
        elif change == "widen" and f.kind == "int":
            f.kind = "bigint"
        elif change == "index" and not f.pinned:
            f.db_index = not f.db_index
        else:
            f.null = not f.null
        return f"migrations.AlterField(model_name={model.name.lower()!r}, name={f.name!r}, field={f.code()})", set()

    def op_remove_field(self, app):
        model = self.any_model(app)
        candidates = [f for f in model.fields.values() if not f.pinned] if model else []
        if len(candidates) < 3:
            return None
        f = self.random.choice(candidates)
        del model.fields[f.name]
        return f"migrations.RemoveField(model_name={model.name.lower()!r}, name={f.name!r})", set()

    def op_rename_field(self, app):
        model = self.any_model(app)
        candidates = [f for f in model.fields.values() if not f.pinned] if model else []
        if not candidates:
            return None
        f = self.random.choice(candidates)
        old = f.name
        f.name = self.unique("r")
        model.fields = {(f.name if k == old else k): v for k, v in model.fields.items()}
        return (f"migrations.RenameField(model_name={model.name.lower()!r}, old_name={old!r}, new_name={f.name!r})",
                set())

    def op_rename_model(self, app):
        model = self.any_model(app)
        if model is None or model.referenced_elsewhere:
            return None
        old = model.name
        model.name = f"M{self.unique('')}"
        return f"migrations.RenameModel(old_name={old!r}, new_name={model.name!r})", set()

    def _indexable(self, model):
        return [f for f in model.fields.values() if f.kind in {"char", "int", "bigint", "date", "bool"}]

    def op_add_index(self, app, concurrently: bool = False):
        model = self.any_model(app)
        candidates = self._indexable(model) if model else []
        if not candidates:
            return None
        chosen = self.random.sample(candidates, min(len(candidates), self.random.choice([1, 1, 2])))
        name = self.unique("ix")
        for f in chosen:
            f.pinned = True
        model.indexes[name] = [f.name for f in chosen]
        cls = "AddIndexConcurrently" if concurrently else "migrations.AddIndex"
        return (f"{cls}(model_name={model.name.lower()!r}, "
                f"index=models.Index(fields={[f.name for f in chosen]!r}, name={name!r}))", set())

    def op_remove_index(self, app, concurrently: bool = False):
        model = self.any_model(app)
        if not model or not model.indexes:
            return None
        name = self.random.choice(sorted(model.indexes))
        del model.indexes[name]
        cls = "RemoveIndexConcurrently" if concurrently else "migrations.RemoveIndex"
        return f"{cls}(model_name={model.name.lower()!r}, name={name!r})", set()

    def op_concurrent(self, app):
        if self.random.random() < 0.75:
            op = self.op_add_index(app, concurrently=True)
        else:
            op = self.op_remove_index(app, concurrently=True)
        return [op] if op else None

    def op_add_constraint(self, app):
        model = self.any_model(app)
        if model is None:
            return None
        numbers = [f for f in model.fields.values() if f.kind in {"int", "bigint"}]
        name = self.unique("ck")
        if numbers and self.random.random() < 0.6:
            f = self.random.choice(numbers)
            f.pinned = True
            model.checks[name] = f.name
            return (f"migrations.AddConstraint(model_name={model.name.lower()!r}, constraint=models.CheckConstraint("
                    f"condition=models.Q({f.name}__gte=0), name={name!r}))", set())
        candidates = self._indexable(model)
        if not candidates:
            return None
        chosen = self.random.sample(candidates, min(len(candidates), 2))
        for f in chosen:
            f.pinned = True
        model.uniques[name] = [f.name for f in chosen]
        return (f"migrations.AddConstraint(model_name={model.name.lower()!r}, constraint=models.UniqueConstraint("
                f"fields={[f.name for f in chosen]!r}, name={name!r}))", set())

    def op_remove_constraint(self, app):
        model = self.any_model(app)
        if not model or not (model.checks or model.uniques):
            return None
        name = self.random.choice(sorted([*model.checks, *model.uniques]))
        model.checks.pop(name, None)
        model.uniques.pop(name, None)
        return f"migrations.RemoveConstraint(model_name={model.name.lower()!r}, name={name!r})", set()

    def op_run_sql(self, app):
        model = self.any_model(app)
        if model is None:
            return None
        if self.random.random() < 0.5:
            sql = f"UPDATE {model.table} SET id = id WHERE id < 0"
        else:
            sql = f"COMMENT ON TABLE {model.table} IS 'generated {self.counter}'"
        return f"migrations.RunSQL({sql!r}, migrations.RunSQL.noop)", set()

    def op_run_python(self, app):
        model = self.any_model(app)
        if model is None:
            return None
        fn = self.unique("forwards_")
        self.helpers.append(f"\ndef {fn}(apps, schema_editor):\n"
                            f"    model = apps.get_model({app.label!r}, {model.name!r})\n"
                            f"    model.objects.filter(id__lt=0).delete()\n")
        return f"migrations.RunPython({fn}, migrations.RunPython.noop)", set()


_SETTINGS = """\
import os

SECRET_KEY = "bench-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.postgres", "migration_guard", *{apps!r}]
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB_NAME", "postgres"),
        "USER": os.environ.get("BENCH_DB_USER", "postgres"),
        "HOST": os.environ.get("BENCH_DB_HOST", ""),
        "PORT": os.environ.get("BENCH_DB_PORT", "5432"),
    }}
}}
"""

_MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""


def generate(out: Path, migrations: int, seed: int = 1) -> Path:
    """Write a project with ``migrations`` migrations to ``out`` (replaced); returns ``out``."""
    generator = _Generator(migrations, seed)
    generator.run()
    if out.exists():
        shutil.rmtree(out)
    for path, text in generator.files.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text)
    (out / "benchproj").mkdir(parents=True, exist_ok=True)
    (out / "benchproj" / "__init__.py").write_text("")
    (out / "benchproj" / "settings.py").write_text(_SETTINGS.format(apps=[a.label for a in generator.apps]))
    (out / "manage.py").write_text(_MANAGE)
    return out


def generate_sql(path: Path, statements: int, seed: int = 1) -> Path:
    """Write a psql-style migration script of ``statements`` statements (for ``explain``): tables
    created, then a mix of the DDL a deploy runs (columns, indexes, constraints, type changes),
    backfills, settings and explicit transactions."""
    rand = random.Random(seed)
    tables: list[list[str]] = []
    out: list[str] = []
    count = 0

    def emit(sql: str) -> None:
        nonlocal count
        out.append(sql + ";")
        count += 1

    # A fifth of the work is on tables the script did not create (existing, of unknown size), so
    # the rules have findings to report, as on a real deploy script.
    existing = [f"e{i}" for i in range(50)]
    while count < statements:
        if tables and rand.random() < 0.2:
            table = rand.choice(existing)
            kind = rand.randrange(4)
            if kind == 0:
                emit(f"CREATE INDEX {table}_i{count} ON {table} (a)")
            elif kind == 1:
                emit(f"ALTER TABLE {table} ADD COLUMN x{count} integer")
            elif kind == 2:
                emit(f"ALTER TABLE {table} ADD CONSTRAINT {table}_ck{count} CHECK (a > 0)")
            else:
                emit(f"UPDATE {table} SET a = a + 1 WHERE id < 100")
            continue
        if not tables or rand.random() < 0.03:
            name = f"t{len(tables)}"
            tables.append(["a", "b"])
            emit(f"CREATE TABLE {name} (id bigserial PRIMARY KEY, a integer, b varchar(50))")
            continue
        number = rand.randrange(len(tables))
        table, columns = f"t{number}", tables[number]
        column = rand.choice(columns)
        kind = rand.randrange(12)
        if kind == 0:
            new = f"c{count}"
            columns.append(new)
            emit(f"ALTER TABLE {table} ADD COLUMN {new} integer DEFAULT 0")
        elif kind == 1:
            emit(f"CREATE INDEX {'CONCURRENTLY ' if rand.random() < 0.5 else ''}{table}_{column}_{count} "
                 f"ON {table} ({column})")
        elif kind == 2:
            emit(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE text")
        elif kind == 3:
            emit(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL")
        elif kind == 4:
            emit(f"ALTER TABLE {table} ADD CONSTRAINT {table}_ck{count} CHECK ({column} IS NOT NULL) NOT VALID")
            emit(f"ALTER TABLE {table} VALIDATE CONSTRAINT {table}_ck{count}")
        elif kind == 5 and number:
            emit(f"ALTER TABLE {table} ADD CONSTRAINT {table}_fk{count} FOREIGN KEY (id) "
                 f"REFERENCES t{rand.randrange(number)} (id)")
        elif kind == 6:
            emit(f"UPDATE {table} SET {column} = {column} WHERE id < {rand.randrange(1000)}")
        elif kind == 7:
            emit("BEGIN")
            emit(f"SET LOCAL lock_timeout = '{rand.choice([1, 2, 5])}s'")
            emit(f"ALTER TABLE {table} ADD COLUMN d{count} boolean")
            emit("COMMIT")
            columns.append(f"d{count}")
        elif kind == 8:
            emit(f"COMMENT ON TABLE {table} IS 'step {count}'")
        elif kind == 9:
            emit(f"ALTER TABLE {table} ADD CONSTRAINT {table}_u{count} UNIQUE ({column})")
        elif kind == 10:
            emit(f"DROP INDEX IF EXISTS {table}_{column}_{count - 1}")
        else:
            emit(f"INSERT INTO {table} (a) SELECT g FROM generate_series(1, 10) g")
    path.write_text("\n".join(out) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--migrations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    generate(args.out, args.migrations, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
