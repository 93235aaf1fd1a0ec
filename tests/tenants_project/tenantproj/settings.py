"""A django-tenants project (schema per tenant): customers is shared (in public), shop is per tenant,
tags is both.
The database comes from the environment the tests set."""
import os

SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SHARED_APPS = ["django_tenants", "django.contrib.contenttypes", "customers", "tags", "migration_guard"]
TENANT_APPS = ["shop", "tags"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": os.environ.get("FIXTURE_DB_NAME", "postgres"),
        "USER": os.environ.get("FIXTURE_DB_USER", "postgres"),
        "HOST": os.environ.get("FIXTURE_DB_HOST", ""),
        "PORT": os.environ.get("FIXTURE_DB_PORT", "5432"),
    }
}
