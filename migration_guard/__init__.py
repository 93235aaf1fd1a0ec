"""migration_guard: a migration safety gate for zero-downtime deploys of Django on PostgreSQL."""

__version__ = "0.1.0"
