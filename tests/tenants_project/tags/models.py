from django.db import models


class Tag(models.Model):
    """In both SHARED_APPS and TENANT_APPS: a table in public and one in every tenant schema."""

    name = models.CharField(max_length=50)
