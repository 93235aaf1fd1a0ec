"""The same plain CREATE INDEX as shop 0004, on a small table.

Invoices stay a few thousand rows, so the SHARE lock lasts milliseconds: a size-aware gate lets
it pass (at most a warning).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(fields=["issued_at"], name="billing_invoice_issued_idx"),
        ),
    ]
