"""SAFE twin of 0023, step 1 of 2: the CHECK constraint added NOT VALID (no scan).

Django cannot write NOT VALID, hence the hand-written SQL beside the state operation. The SQL is
what Django would write for the same CheckConstraint, plus NOT VALID.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0023_add_check_constraint"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql='ALTER TABLE "shop_order" ADD CONSTRAINT "shop_order_status_valid" '
                    "CHECK (\"status\" IN ('new', 'paid', 'shipped', 'cancelled')) NOT VALID",
                    reverse_sql='ALTER TABLE "shop_order" DROP CONSTRAINT "shop_order_status_valid"',
                ),
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name="order",
                    constraint=models.CheckConstraint(
                        condition=models.Q(status__in=["new", "paid", "shipped", "cancelled"]),
                        name="shop_order_status_valid",
                    ),
                ),
            ],
        ),
    ]
