"""SAFE twin of 0010, step 1 of 2: column, index built concurrently, FOREIGN KEY ... NOT VALID.

Outside a transaction (``atomic = False``) each statement holds its lock only while it runs: the
column is added in a moment, the index builds under SHARE UPDATE EXCLUSIVE and NOT VALID skips
the scan. Django's state gets the same field it would have written itself.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("shop", "0010_add_referred_by_foreign_key"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql='ALTER TABLE "shop_order" ADD COLUMN "gift_recipient_id" bigint NULL',
                    reverse_sql='ALTER TABLE "shop_order" DROP COLUMN "gift_recipient_id"',
                ),
                migrations.RunSQL(
                    sql='CREATE INDEX CONCURRENTLY "shop_order_gift_recipient_id_idx" '
                    'ON "shop_order" ("gift_recipient_id")',
                    reverse_sql=migrations.RunSQL.noop,  # dropped with the column
                ),
                migrations.RunSQL(
                    sql='ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_gift_recipient_id_fk" '
                    'FOREIGN KEY ("gift_recipient_id") REFERENCES "shop_customer" ("id") '
                    "DEFERRABLE INITIALLY DEFERRED NOT VALID",
                    reverse_sql=migrations.RunSQL.noop,  # dropped with the column
                ),
            ],
            state_operations=[
                migrations.AddField(
                    model_name="order",
                    name="gift_recipient",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="gifts_received",
                        to="shop.customer",
                    ),
                ),
            ],
        ),
    ]
