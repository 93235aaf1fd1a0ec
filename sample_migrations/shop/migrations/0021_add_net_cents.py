"""SAFE twin of 0020, step 1 of 2: add the nullable column on its own (a moment's lock)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0020_add_tax_cents_and_backfill_atomically"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="net_cents",
            field=models.BigIntegerField(null=True),
        ),
    ]
