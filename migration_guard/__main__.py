"""``python -m migration_guard``: the same as the ``migration-guard`` command."""

from migration_guard.cli import main

main()
