from django.apps import AppConfig


class ShopConfig(AppConfig):
    """Customers, products, orders (the big table) and order lines."""

    name = "shop"
