"""DANGER: a foreign key column added the way Django writes it.

Django adds the column (ACCESS EXCLUSIVE on orders, held to the end of the migration's
transaction), then builds its index with a plain CREATE INDEX: for the whole build nobody can
read or write orders. The inline REFERENCES itself does not scan (the new column is all NULL).
Compare 0011-0012.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0009_set_currency_not_null_using_check"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="referred_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="referred_orders",
                to="shop.customer",
            ),
        ),
    ]
