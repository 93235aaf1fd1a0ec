"""No models of its own: each harness case gives the app its migrations (MIGRATION_MODULES)."""
