"""Billing: invoices, a small table that references the big shop orders table from another app."""

from django.db import models


class Invoice(models.Model):
    order = models.ForeignKey("shop.Order", on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=32, unique=True)
    amount_cents = models.IntegerField()
    issued_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["issued_at"], name="billing_invoice_issued_idx"),  # 0002
        ]
