"""SAFE twin of 0006, step 1 of 3: CHECK (currency IS NOT NULL) added NOT VALID.

NOT VALID skips the scan of existing rows, so the ACCESS EXCLUSIVE lock lasts a moment; new and
updated rows are checked from now on. Django cannot write NOT VALID, hence the hand-written SQL
beside the state operation that tells Django the constraint exists. (Not named
``shop_order_currency_not_null``: PostgreSQL 18 gives that name to the NOT NULL constraint itself.)
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0006_set_channel_not_null"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql='ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_currency_not_null_check" '
                    'CHECK ("currency" IS NOT NULL) NOT VALID',
                    reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_currency_not_null_check"',
                ),
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name="order",
                    constraint=models.CheckConstraint(
                        condition=models.Q(currency__isnull=False), name="shop_order_currency_not_null_check"
                    ),
                ),
            ],
        ),
    ]
