"""SAFE twin of 0018: a type change that does not rewrite.

varchar(100) -> varchar(200) is binary coercible: only the catalog changes, so the ACCESS
EXCLUSIVE lock lasts a moment.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0018_alter_total_cents_to_bigint"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="shipping_name",
            field=models.CharField(max_length=200),
        ),
    ]
