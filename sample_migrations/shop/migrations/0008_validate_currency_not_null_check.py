"""SAFE twin of 0006, step 2 of 3: VALIDATE the CHECK constraint.

VALIDATE CONSTRAINT scans the table but takes only SHARE UPDATE EXCLUSIVE: reads and writes go on.
It is a migration of its own so that no stronger lock from the same transaction is held during
the scan.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0007_add_currency_not_null_check_not_valid"),
    ]

    operations = [
        migrations.RunSQL(
            sql='ALTER TABLE "shop_order" VALIDATE CONSTRAINT "shop_order_currency_not_null_check"',
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
