"""Settings of the backward-compatibility harness (``tests/compat/harness.py``): one app, ``shop``, whose
migrations each case supplies; the database comes from the environment the test sets."""
import os

SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["tests.compat.shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("COMPAT_DB_NAME", "postgres"),
        "USER": os.environ.get("COMPAT_DB_USER", "postgres"),
        "HOST": os.environ.get("COMPAT_DB_HOST", ""),
        "PORT": os.environ.get("COMPAT_DB_PORT", "5432"),
        # The harness commits hundreds of times a case: no need to wait for the disk (a throwaway database).
        "OPTIONS": {"options": "-c synchronous_commit=off"},
    }
}
MIGRATION_MODULES = {}  # the harness points "shop" at each case's migrations
