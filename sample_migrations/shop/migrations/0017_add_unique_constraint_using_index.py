"""SAFE twin of 0016: build the unique index CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX.

The build runs under SHARE UPDATE EXCLUSIVE outside a transaction; attaching the finished index
as the constraint takes ACCESS EXCLUSIVE only for a moment. The constraint keeps the index's name,
which is the name Django's state gives it.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("shop", "0016_add_unique_constraint"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql='CREATE UNIQUE INDEX CONCURRENTLY "shop_order_external_id_uniq" '
                    'ON "shop_order" ("external_id")',
                    reverse_sql='DROP INDEX CONCURRENTLY IF EXISTS "shop_order_external_id_uniq"',
                ),
                migrations.RunSQL(
                    sql='ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_external_id_uniq" '
                    'UNIQUE USING INDEX "shop_order_external_id_uniq"',
                    reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_external_id_uniq"',
                ),
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name="order",
                    constraint=models.UniqueConstraint(fields=["external_id"], name="shop_order_external_id_uniq"),
                ),
            ],
        ),
    ]
