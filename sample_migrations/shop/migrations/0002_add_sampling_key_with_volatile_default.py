"""DANGER: a column whose database default is volatile.

``random()`` must be computed for every existing row, so PostgreSQL rewrites the whole table
under an ACCESS EXCLUSIVE lock: no reads, no writes until all orders are copied.
Compare 0003, whose defaults are stored in the catalog instead.
"""

import django.db.models.functions.math
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="sampling_key",
            field=models.FloatField(db_default=django.db.models.functions.math.Random()),
        ),
    ]
