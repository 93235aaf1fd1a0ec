"""SAFE twin of 0023, step 2 of 2: VALIDATE the CHECK constraint under SHARE UPDATE EXCLUSIVE."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0024_add_check_constraint_not_valid"),
    ]

    operations = [
        migrations.RunSQL(
            sql='ALTER TABLE "shop_order" VALIDATE CONSTRAINT "shop_order_status_valid"',
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
