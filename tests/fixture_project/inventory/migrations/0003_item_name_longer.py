from django.db import migrations, models


class Migration(migrations.Migration):
    """Binary-coercible: varchar(100) -> varchar(200) changes only the catalog."""

    dependencies = [("inventory", "0002_item_created_idx")]

    operations = [
        migrations.AlterField(model_name="item", name="name", field=models.CharField(max_length=200)),
    ]
