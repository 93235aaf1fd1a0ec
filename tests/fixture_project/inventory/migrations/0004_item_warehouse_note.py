from django.db import migrations, models


def fill_notes(apps, schema_editor):
    Item = apps.get_model("inventory", "Item")
    Item.objects.filter(note__isnull=True).update(note="")


class Migration(migrations.Migration):
    """Adds a column, then backfills it in the same transaction: the column's lock is held meanwhile."""

    dependencies = [("inventory", "0003_item_name_longer")]

    operations = [
        migrations.AddField(
            model_name="item",
            name="warehouse",
            field=models.ForeignKey(null=True, on_delete=models.CASCADE, to="inventory.warehouse",
                                    db_index=False, db_constraint=False),
        ),
        migrations.AddField(model_name="item", name="note", field=models.TextField(null=True)),
        migrations.RunPython(fill_notes, migrations.RunPython.noop),
    ]
