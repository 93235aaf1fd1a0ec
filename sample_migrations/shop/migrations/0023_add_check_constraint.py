"""DANGER: a CHECK constraint added directly.

ADD CONSTRAINT ... CHECK reads every row to validate it, holding ACCESS EXCLUSIVE meanwhile.
Compare 0024-0025.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0022_backfill_net_cents_in_batches"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="order",
            constraint=models.CheckConstraint(
                condition=models.Q(total_cents__gte=0), name="shop_order_total_cents_gte_0"
            ),
        ),
    ]
