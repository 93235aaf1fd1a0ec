"""Settings for the end-to-end tests; the database comes from the environment the tests set."""
import os

SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.postgres", "migration_guard", "inventory"]
DATABASES = {
    "default": {
        "ENGINE": os.environ.get("FIXTURE_DB_ENGINE", "django.db.backends.postgresql"),
        "NAME": os.environ.get("FIXTURE_DB_NAME", "postgres"),
        "USER": os.environ.get("FIXTURE_DB_USER", "postgres"),
        "HOST": os.environ.get("FIXTURE_DB_HOST", ""),
        "PORT": os.environ.get("FIXTURE_DB_PORT", "5432"),
    }
}
if os.environ.get("FIXTURE_DB_OPTIONS"):  # e.g. {"options": "-c search_path=app,public"}
    import json

    DATABASES["default"]["OPTIONS"] = json.loads(os.environ["FIXTURE_DB_OPTIONS"])
if os.environ.get("FIXTURE_MIGRATION_GUARD"):
    import json

    MIGRATION_GUARD = json.loads(os.environ["FIXTURE_MIGRATION_GUARD"])

if os.environ.get("FIXTURE_SETTINGS"):  # e.g. a third-party backend's own settings
    import json

    globals().update(json.loads(os.environ["FIXTURE_SETTINGS"]))

if os.environ.get("FIXTURE_DB2_NAME"):
    # A second database for the several-databases tests; the router keeps Item off it.
    DATABASES["analytics"] = {**DATABASES["default"], "NAME": os.environ["FIXTURE_DB2_NAME"]}
    DATABASE_ROUTERS = ["fixtureproj.routers.KeepItemsOffAnalytics"]
