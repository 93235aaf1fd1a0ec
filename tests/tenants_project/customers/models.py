from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)
    auto_create_schema = False  # the tests create the schemas and migrate them with migrate_schemas


class Domain(DomainMixin):
    pass
