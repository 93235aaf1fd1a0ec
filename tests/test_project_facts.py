"""The Django facts rules read (``migration_guard/project_facts.py``), made from the project state's
unbound fields without rendering a model, held to Django's own rendered models field by field: table,
column, column type, many-to-many table, the field as ``makemigrations`` writes it; and what
``render`` says each operation does (``Operation.changes``), SeparateDatabaseAndState included."""

from __future__ import annotations

import json

# Fields whose facts take more than reading an attribute: a table name of its own, one too long for
# PostgreSQL, a column of its own, a key to a non-primary field, a key to a key (a child model's parent
# link), many-to-many tables (Django's, named, a through model's), a generated column, a composite
# primary key, a proxy (no table).
TRICKY = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.CreateModel(name="Shelf", fields=[
            ("id", models.AutoField(primary_key=True, serialize=False)),
            ("code", models.CharField(max_length=20, unique=True, db_column="shelf_code")),
        ], options={"db_table": "stock_shelves"}),
        migrations.CreateModel(name="Special", fields=[
            ("item_ptr", models.OneToOneField(auto_created=True, on_delete=models.CASCADE, parent_link=True,
                                              primary_key=True, serialize=False, to="inventory.item")),
            ("grade", models.SmallIntegerField(default=1)),
        ], bases=("inventory.item",)),
        migrations.CreateModel(name="Bin", fields=[
            ("id", models.BigAutoField(primary_key=True, serialize=False)),
            ("shelf", models.ForeignKey(on_delete=models.CASCADE, to="inventory.shelf", to_field="code")),
            ("special", models.ForeignKey(null=True, on_delete=models.SET_NULL, to="inventory.special")),
            ("width", models.DecimalField(max_digits=6, decimal_places=2)),
            ("double_width", models.GeneratedField(expression=models.F("width") * 2, db_persist=True,
                                                   output_field=models.DecimalField(max_digits=8, decimal_places=2))),
            ("items", models.ManyToManyField(to="inventory.item")),
            ("neighbours", models.ManyToManyField(to="inventory.shelf", db_table="bin_neighbours")),
        ]),
        migrations.CreateModel(name="Placement", fields=[
            ("id", models.BigAutoField(primary_key=True, serialize=False)),
            ("bin", models.ForeignKey(on_delete=models.CASCADE, to="inventory.bin")),
            ("warehouse", models.ForeignKey(on_delete=models.CASCADE, to="inventory.warehouse")),
        ]),
        migrations.AddField("bin", "warehouses", models.ManyToManyField(through="inventory.Placement",
                                                                        to="inventory.warehouse")),
        migrations.CreateModel(name="ThisModelHasAVeryLongNameSoThatItsDefaultTableNameIsTooLongForPostgres",
                               fields=[("id", models.BigAutoField(primary_key=True, serialize=False))]),
        migrations.CreateModel(name="Pair", fields=[
            ("pk", models.CompositePrimaryKey("left", "right", blank=True, editable=False, primary_key=True,
                                              serialize=False)),
            ("left", models.IntegerField()),
            ("right", models.IntegerField()),
        ]),
        migrations.CreateModel(name="CheapItem", fields=[], options={"proxy": True}, bases=("inventory.item",)),
    ]
'''

_COMPARE = '''
import json
import django
django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.writer import MigrationWriter
from migration_guard.project_facts import FactsBuilder, TableIndex

state = MigrationExecutor(connection).loader.project_state()
facts = FactsBuilder(connection)
owner = lambda table: TableIndex(facts).keys(state, [table])
checked = {"models": 0, "fields": 0, "m2m": 0, "proxies": 0}
for key, model_state in state.models.items():
    model = state.apps.get_model(*key)
    made = facts.model(state, key)
    if model._meta.proxy:
        assert made is None, key
        checked["proxies"] += 1
        continue
    assert made.db_table == model._meta.db_table, (made.db_table, model._meta.db_table)
    assert owner(model._meta.db_table) == [key]
    assert [f.name for f in made.fields] == list(model_state.fields)
    for item in made.fields:
        field = model._meta.get_field(item.name)
        assert item.source() == MigrationWriter.serialize(model_state.fields[item.name])[0], item
        assert item.null == field.null and item.max_length == getattr(field, "max_length", None), item
        assert item.primary_key == field.primary_key, (item, field.primary_key)
        assert item.generated == bool(getattr(field, "generated", False)), item
        related = field.related_model._meta.label_lower if field.related_model else None
        assert item.related_model == related, (item, related)
        if field.many_to_many:
            assert item.column is None and item.m2m_table == field.m2m_db_table(), (item, field.m2m_db_table())
            # Django's own many-to-many tables are the field's model's; a through model's table is its own
            through = model_state.fields[item.name].remote_field.through
            assert owner(item.m2m_table) == [key if through is None else ("inventory", "placement")]
            checked["m2m"] += 1
        else:
            assert item.column == field.column, (item, field.column)
            expected = field.db_type(connection) if field.column else None
            assert item.db_type == expected, (item, expected)
        checked["fields"] += 1
    checked["models"] += 1
print(json.dumps(checked))
'''


def test_facts_are_djangos_own_models(project):
    project.add_migration("0005_tricky", TRICKY)
    result = project.manage("shell", "-c", _COMPARE)
    assert result.code == 0, result.err
    checked = json.loads(result.out.strip().splitlines()[-1])
    assert checked == {"models": 8, "fields": 27, "m2m": 3, "proxies": 1}


CHANGES = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [
        migrations.RenameField("item", "note", "remark"),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveField("item", "remark")],
            database_operations=[migrations.AlterField("item", "remark", models.TextField(null=True,
                                                                                          db_column="old_note"))],
        ),
        migrations.RenameModel("Warehouse", "Depot"),
        migrations.AlterModelTable("depot", "inventory_depots"),
        migrations.RunSQL("SELECT 1", migrations.RunSQL.noop),
    ]
'''

_CHANGES = '''
import json
import django
django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from migration_guard.plan import build_plan
from migration_guard.render import render_plan

executor = MigrationExecutor(connection)
plan = build_plan(executor)
[rendered] = [m for m in render_plan(executor, plan, execute=False, running=plan.applied, basis="applied")]
out = []
for operation in rendered.operations:
    out.append([operation.name, [
        [c.operation, c.scope, c.model, c.old_field, c.field, c.before and c.before.db_table,
         c.after and c.after.db_table, c.field_before and c.field_before.column,
         c.field_after and c.field_after.column, c.field_after and c.field_after.source()]
        for c in operation.changes]])
assert all(s.deploy is rendered.deploy for s in rendered.statements)
out.append(sorted(m.db_table for m in rendered.deploy.running.models))
print(json.dumps(out))
'''


def test_each_operation_says_what_it_does_at_the_django_level(project):
    project.migrate("0004")
    project.add_migration("0005_changes", CHANGES)
    result = project.manage("shell", "-c", _CHANGES)
    assert result.code == 0, result.err
    *operations, running = json.loads(result.out.strip().splitlines()[-1])
    assert operations == [
        ["RenameField", [["RenameField", "both", "item", "note", "remark", "inventory_item", "inventory_item", "note",
                          "remark", "models.TextField(null=True)"]]],
        ["SeparateDatabaseAndState", [
            ["RemoveField", "state", "item", "remark", "remark", "inventory_item", "inventory_item", "remark", None,
             None],
            ["AlterField", "database", "item", "remark", "remark", "inventory_item", "inventory_item", "remark",
             "old_note", "models.TextField(db_column='old_note', null=True)"]]],
        ["RenameModel", [["RenameModel", "both", "depot", None, None, "inventory_warehouse", "inventory_depot",
                          None, None, None]]],
        ["AlterModelTable", [["AlterModelTable", "both", "depot", None, None, "inventory_depot",
                              "inventory_depots", None, None, None]]],
        ["RunSQL", []],
    ]
    # the running code's models whose tables the migration's SQL names
    assert running == ["inventory_item", "inventory_warehouse"]


_HOSTILE = '''
import json
import django
django.setup()
from django.db import connection, models
from django.db.migrations.state import ModelState, ProjectState
from migration_guard.project_facts import FactsBuilder, TableIndex


class Hostile(models.TextField):
    """Migration code is untrusted: a field whose methods fail."""

    def has_default(self):
        raise RuntimeError("hostile")

    def db_type(self, connection):
        raise RuntimeError("hostile")


class Exiting(models.TextField):
    def db_type(self, connection):
        raise SystemExit(3)


state = ProjectState()
state.add_model(ModelState("inventory", "Odd", [("id", models.BigAutoField(primary_key=True)), ("body", Hostile()),
                                                ("ending", Exiting())]))
facts = FactsBuilder(connection)
odd = facts.model(state, ("inventory", "odd"))
print(json.dumps([[f.name, f.column, f.db_type] for f in odd.fields] + [TableIndex(facts).keys(state, ["inventory_odd"])]))
'''


def test_a_field_whose_code_fails_is_taken_at_its_name(project):
    """Its column is taken to be its name (Django's default) and its type unknown: a rule that finds the
    column fails closed on it (a type it cannot compare is taken to narrow). sys.exit() too."""
    result = project.manage("shell", "-c", _HOSTILE)
    assert result.code == 0, result.err
    assert json.loads(result.out.strip().splitlines()[-1]) == [
        ["id", "id", "bigint"], ["body", "body", None], ["ending", "ending", None], [["inventory", "odd"]]]
