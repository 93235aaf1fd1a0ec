from django.db import models


class Order(models.Model):
    customer_name = models.CharField(max_length=100)
    total = models.IntegerField()
    created = models.DateTimeField()
