"""DANGER: a UNIQUE constraint added directly.

ADD CONSTRAINT ... UNIQUE builds its index while holding ACCESS EXCLUSIVE: no reads, no writes of
orders for the whole build. Compare 0017.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0015_validate_return_warehouse_foreign_key"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(fields=["reference"], name="shop_order_reference_uniq"),
        ),
    ]
