from django.db import models


class Warehouse(models.Model):
    name = models.CharField(max_length=100)


class Item(models.Model):
    name = models.CharField(max_length=200)
    quantity = models.IntegerField(null=True)
    created = models.DateTimeField(auto_now_add=True)
    warehouse = models.ForeignKey(Warehouse, null=True, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    note = models.TextField(null=True)

    class Meta:
        indexes = [models.Index(fields=["created"], name="item_created_idx")]
