"""The lock model: what each SQL statement locks, rewrites, scans and builds, per PostgreSQL version.

::

    from migration_guard.locks import analyse, Catalog, advance

    catalog = Catalog.empty().with_column_types({("shop_order", "note"): "varchar(20)"})
    for node in statements:                       # pglast RawStmt.stmt nodes, in plan order
        effects = analyse(node, pg_version=16, catalog=catalog)
        catalog = advance(catalog, effects)       # pure: knows what this statement did

Facts about PostgreSQL live in :mod:`migration_guard.locks.facts` (one table, with versions and
sources); :mod:`migration_guard.locks.tracer` measures them on a real server.
:func:`migration_guard.locks.introspect.catalog_from_database` seeds a catalog from a live
database (column types, NOT NULL columns and checks, foreign keys, indexes, TimeZone).
"""

from migration_guard.locks.analyze import analyse
from migration_guard.locks.catalog import Catalog, ForeignKey, advance
from migration_guard.locks.facts import FACTS, SUPPORTED_VERSIONS, Fact, fact
from migration_guard.locks.modes import LockMode

__all__ = ["FACTS", "SUPPORTED_VERSIONS", "Catalog", "Fact", "ForeignKey", "LockMode", "advance", "analyse", "fact"]
