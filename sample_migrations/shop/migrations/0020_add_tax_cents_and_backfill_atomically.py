"""DANGER: a backfill of every order in the same transaction as the DDL before it.

AddField takes ACCESS EXCLUSIVE on orders, and an atomic migration holds it until its last
operation ends: the UPDATE of every row runs while nobody can read or write orders.
Compare 0021-0022.
"""

from django.db import migrations, models
from django.db.models import F


def backfill_tax_cents(apps, schema_editor):
    Order = apps.get_model("shop", "Order")
    Order.objects.using(schema_editor.connection.alias).filter(tax_cents__isnull=True).update(
        tax_cents=F("total_cents") * 20 / 120
    )


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0019_widen_shipping_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="tax_cents",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunPython(backfill_tax_cents, migrations.RunPython.noop),
    ]
