"""The shop: customers, products, warehouses, orders and order lines.

``Order`` is the big table of the demo (two million rows): the pending migrations in
``shop/migrations`` (0002 onwards) each change it, a dangerous form next to its safe twin.
This module is the state after all of them.
"""

from django.db import models
from django.db.models.functions import Random
from django.utils import timezone


class Customer(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField()
    created_at = models.DateTimeField(default=timezone.now)


class Product(models.Model):
    name = models.CharField(max_length=100)
    sku = models.CharField(max_length=32, unique=True)
    price_cents = models.IntegerField()


class Warehouse(models.Model):
    code = models.CharField(max_length=8, unique=True)
    city = models.CharField(max_length=100)


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new"
        PAID = "paid"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    reference = models.CharField(max_length=32)
    external_id = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status, default=Status.NEW)
    channel = models.CharField(max_length=20)  # 0006
    currency = models.CharField(max_length=3)  # 0007-0009
    total_cents = models.BigIntegerField()  # 0018
    shipping_name = models.CharField(max_length=200)  # 0019
    created_at = models.DateTimeField(default=timezone.now)
    sampling_key = models.FloatField(db_default=Random())  # 0002: a random number per order, for sampling
    gift_message = models.TextField(blank=True, null=True)  # 0003
    priority = models.SmallIntegerField(db_default=0)  # 0003
    referred_by = models.ForeignKey(  # 0010
        Customer, blank=True, null=True, on_delete=models.SET_NULL, related_name="referred_orders"
    )
    gift_recipient = models.ForeignKey(  # 0011-0012
        Customer, blank=True, null=True, on_delete=models.SET_NULL, related_name="gifts_received"
    )
    # Both came from an import without foreign key constraints (db_constraint=False in 0001).
    warehouse = models.ForeignKey(Warehouse, null=True, on_delete=models.PROTECT, related_name="orders")  # 0013
    return_warehouse = models.ForeignKey(  # 0014-0015
        Warehouse, null=True, on_delete=models.PROTECT, related_name="returned_orders"
    )
    tax_cents = models.BigIntegerField(null=True)  # 0020
    net_cents = models.BigIntegerField(null=True)  # 0021-0022

    class Meta:
        indexes = [
            models.Index(fields=["status", "created_at"], name="shop_order_status_created_idx"),  # 0004
            models.Index(fields=["created_at"], name="shop_order_created_at_idx"),  # 0005
        ]
        constraints = [
            models.UniqueConstraint(fields=["reference"], name="shop_order_reference_uniq"),  # 0016
            models.UniqueConstraint(fields=["external_id"], name="shop_order_external_id_uniq"),  # 0017
            models.CheckConstraint(  # 0023
                condition=models.Q(total_cents__gte=0), name="shop_order_total_cents_gte_0"
            ),
            models.CheckConstraint(  # 0024-0025
                condition=models.Q(status__in=["new", "paid", "shipped", "cancelled"]),
                name="shop_order_status_valid",
            ),
        ]


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField()
    price_cents = models.IntegerField()
