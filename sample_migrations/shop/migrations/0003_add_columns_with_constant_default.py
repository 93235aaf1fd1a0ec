"""SAFE twin of 0002: a nullable column and a column with a constant database default.

Neither touches existing rows: PostgreSQL (11+) keeps a constant default in the catalog, so
the ACCESS EXCLUSIVE lock lasts a moment.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0002_add_sampling_key_with_volatile_default"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="gift_message",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="order",
            name="priority",
            field=models.SmallIntegerField(db_default=0),
        ),
    ]
