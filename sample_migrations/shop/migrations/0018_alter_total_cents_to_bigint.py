"""DANGER: a column type change that rewrites the table.

integer -> bigint is not binary coercible: PostgreSQL rewrites every row and rebuilds the
table's indexes under ACCESS EXCLUSIVE. Compare 0019.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0017_add_unique_constraint_using_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="total_cents",
            field=models.BigIntegerField(),
        ),
    ]
