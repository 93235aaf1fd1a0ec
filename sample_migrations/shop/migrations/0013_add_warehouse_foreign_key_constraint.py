"""DANGER: a FOREIGN KEY constraint added to an existing, filled column.

The column came from an import with ``db_constraint=False``; turning the constraint on makes
Django emit ``ADD CONSTRAINT ... FOREIGN KEY``, which scans every order to validate it while
holding SHARE ROW EXCLUSIVE on orders and on warehouses (writes to both wait). Compare 0014-0015.
(A new nullable foreign key column, as in 0010, does not need this scan: PostgreSQL knows it is
all NULL.)
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0012_validate_gift_recipient_foreign_key"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="warehouse",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to="shop.warehouse",
            ),
        ),
    ]
