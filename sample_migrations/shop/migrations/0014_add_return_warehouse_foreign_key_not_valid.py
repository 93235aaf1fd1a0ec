"""SAFE twin of 0013, step 1 of 2: the FOREIGN KEY constraint added NOT VALID (no scan).

New and updated rows are checked from now on; the lock lasts a moment. Django cannot write
NOT VALID, hence the hand-written SQL beside the state operation.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0013_add_warehouse_foreign_key_constraint"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql='ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_return_warehouse_id_fk" '
                    'FOREIGN KEY ("return_warehouse_id") REFERENCES "shop_warehouse" ("id") '
                    "DEFERRABLE INITIALLY DEFERRED NOT VALID",
                    reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_return_warehouse_id_fk"',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="order",
                    name="return_warehouse",
                    field=models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="returned_orders",
                        to="shop.warehouse",
                    ),
                ),
            ],
        ),
    ]
