"""SAFE twin of 0004: CREATE INDEX CONCURRENTLY, outside a transaction.

It takes SHARE UPDATE EXCLUSIVE, which lets reads and writes continue while the index builds.
CONCURRENTLY cannot run inside a transaction block, hence ``atomic = False``.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("shop", "0004_add_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(fields=["created_at"], name="shop_order_created_at_idx"),
        ),
    ]
