"""DANGER: a plain CREATE INDEX on the orders table.

Building the index takes a SHARE lock for the whole build: reads continue, every INSERT and
UPDATE of an order waits. Compare 0005.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0003_add_columns_with_constant_default"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["status", "created_at"], name="shop_order_status_created_idx"),
        ),
    ]
