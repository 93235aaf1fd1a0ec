from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Invoices, which reference shop orders from another app."""

    name = "billing"
