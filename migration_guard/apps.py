"""The Django app: add ``"migration_guard"`` to INSTALLED_APPS to get ``lint_migrations``."""

from django.apps import AppConfig


class MigrationGuardConfig(AppConfig):
    """migration_guard has no models; it only brings the management command."""

    name = "migration_guard"
    verbose_name = "migration_guard"
