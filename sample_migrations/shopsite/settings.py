"""Settings of the sample shop project: the smallest Django project that has migrations worth linting.

The database comes from ``MIGRATION_GUARD_DEMO_DB_*`` environment variables, so the demo and the
tests can point it at a throwaway server (``HOST`` may be a unix socket folder).
"""

import os

SECRET_KEY = "sample-project-not-secret"
DEBUG = False
ALLOWED_HOSTS: list[str] = []

INSTALLED_APPS = [
    "django.contrib.postgres",
    "migration_guard",
    "shop",
    "billing",
]

ROOT_URLCONF = "shopsite.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("MIGRATION_GUARD_DEMO_DB_HOST", "localhost"),
        "PORT": os.environ.get("MIGRATION_GUARD_DEMO_DB_PORT", "5432"),
        "NAME": os.environ.get("MIGRATION_GUARD_DEMO_DB_NAME", "shop"),
        "USER": os.environ.get("MIGRATION_GUARD_DEMO_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("MIGRATION_GUARD_DEMO_DB_PASSWORD", ""),
    }
}

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
