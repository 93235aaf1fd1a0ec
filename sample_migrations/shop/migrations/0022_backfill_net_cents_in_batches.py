"""SAFE twin of 0020, step 2 of 2: backfill in batches, outside a migration-wide transaction.

With ``atomic = False`` each batch's UPDATE commits on its own, so row locks are held for one
batch at a time and no DDL lock is held at all.
"""

from django.db import migrations
from django.db.models import F, Max, Min

BATCH_SIZE = 10_000


def backfill_net_cents(apps, schema_editor):
    Order = apps.get_model("shop", "Order")
    orders = Order.objects.using(schema_editor.connection.alias)
    bounds = orders.aggregate(low=Min("id"), high=Max("id"))
    if bounds["low"] is None:
        return
    for start in range(bounds["low"], bounds["high"] + 1, BATCH_SIZE):
        orders.filter(id__gte=start, id__lt=start + BATCH_SIZE, net_cents__isnull=True).update(
            net_cents=F("total_cents") * 100 / 120
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("shop", "0021_add_net_cents"),
    ]

    operations = [
        migrations.RunPython(backfill_net_cents, migrations.RunPython.noop),
    ]
