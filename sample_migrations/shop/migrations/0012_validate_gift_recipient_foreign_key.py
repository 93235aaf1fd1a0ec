"""SAFE twin of 0010, step 2 of 2: VALIDATE the foreign key.

The scan runs under SHARE UPDATE EXCLUSIVE on orders and ROW SHARE on customers: reads and
writes of both tables go on.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0011_add_gift_recipient_foreign_key_not_valid"),
    ]

    operations = [
        migrations.RunSQL(
            sql='ALTER TABLE "shop_order" VALIDATE CONSTRAINT "shop_order_gift_recipient_id_fk"',
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
