"""DANGER: making an existing column NOT NULL directly.

SET NOT NULL reads every row to prove there is no NULL, holding ACCESS EXCLUSIVE meanwhile.
Compare 0007-0009, which prove it with a CHECK constraint validated under a weaker lock.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0005_add_index_concurrently"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="channel",
            field=models.CharField(max_length=20),
        ),
    ]
