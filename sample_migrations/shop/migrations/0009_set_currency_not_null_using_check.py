"""SAFE twin of 0006, step 3 of 3: SET NOT NULL, then drop the CHECK constraint.

PostgreSQL 12+ skips the SET NOT NULL scan when a validated CHECK (currency IS NOT NULL) exists
(0008), so the ACCESS EXCLUSIVE lock lasts a moment. The CHECK is redundant afterwards.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0008_validate_currency_not_null_check"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql='ALTER TABLE "shop_order" ALTER COLUMN "currency" SET NOT NULL',
                    reverse_sql='ALTER TABLE "shop_order" ALTER COLUMN "currency" DROP NOT NULL',
                ),
                migrations.RunSQL(
                    sql='ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_currency_not_null_check"',
                    reverse_sql='ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_currency_not_null_check" '
                    'CHECK ("currency" IS NOT NULL) NOT VALID',
                ),
            ],
            state_operations=[
                migrations.RemoveConstraint(model_name="order", name="shop_order_currency_not_null_check"),
                migrations.AlterField(
                    model_name="order",
                    name="currency",
                    field=models.CharField(max_length=3),
                ),
            ],
        ),
    ]
