"""Seed a :class:`~migration_guard.locks.catalog.Catalog` from a live database (an edge: it does I/O).

Reads only the catalogs (``pg_class``, ``pg_attribute``, ``pg_constraint``, ``pg_index``,
``pg_inherits``, ``pg_partitioned_table``, ``pg_depend``/``pg_rewrite``, ``pg_type``) and the session's
``TimeZone``; run it in a read-only transaction against production if you like. Tables are named
as unqualified SQL would name them: schema-qualified only when their schema is not on the
search_path.
"""

from __future__ import annotations

from pglast import parse_sql

from migration_guard.locks.analyze import not_null_columns
from migration_guard.locks.catalog import Catalog, ForeignKey

__all__ = ["catalog_from_database"]

_NAME = """CASE WHEN n.nspname = ANY (current_schemas(false)) THEN c.relname
                ELSE n.nspname || '.' || c.relname END"""
_USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"

_COLUMNS_SQL = f"""
SELECT {_NAME}, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {_USER_SCHEMAS}
"""

_CONSTRAINTS_SQL = f"""
SELECT {_NAME}, con.conname, con.contype::text, con.convalidated, pg_get_constraintdef(con.oid),
       ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = con.conrelid AND attnum = ANY (con.conkey)
             ORDER BY array_position(con.conkey, attnum)),
       (SELECT CASE WHEN rn.nspname = ANY (current_schemas(false)) THEN r.relname
                    ELSE rn.nspname || '.' || r.relname END
          FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace WHERE r.oid = con.confrelid),
       ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = con.confrelid AND attnum = ANY (con.confkey)
             ORDER BY array_position(con.confkey, attnum)),
       con.condeferred
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE con.contype IN ('c', 'f', 'p', 'u') AND {_USER_SCHEMAS}
"""

_RELATIONS_SQL = f"""
SELECT {_NAME}, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_USER_SCHEMAS}
"""

_PARENT = """(SELECT CASE WHEN pn.nspname = ANY (current_schemas(false)) THEN p.relname
                 ELSE pn.nspname || '.' || p.relname END
          FROM pg_class p JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE p.oid = {oid})"""

_CHILDREN_SQL = f"""
SELECT {_PARENT.format(oid="i.inhparent")}, {_NAME},
       COALESCE((SELECT pt.partdefid = i.inhrelid FROM pg_partitioned_table pt WHERE pt.partrelid = i.inhparent), false)
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f') AND {_USER_SCHEMAS}
 ORDER BY 1, 2
"""

_VIEW_TABLES_SQL = f"""
SELECT DISTINCT {_NAME}, {_PARENT.format(oid="d.refobjid")}
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
       AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
 WHERE c.relkind IN ('v', 'm') AND {_USER_SCHEMAS}
"""

# Which columns each view reads: a DROP COLUMN ... CASCADE drops the views that read the column.
_VIEW_COLUMNS_SQL = f"""
SELECT DISTINCT {_NAME}, {_PARENT.format(oid="d.refobjid")}, a.attname
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
       AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class AND d.refobjsubid > 0
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE c.relkind IN ('v', 'm') AND {_USER_SCHEMAS}
"""

# User-defined types (enums, domains, composites, extension types) and whether each is a domain
# with constraints: adding a column of such a domain checks every row (a rewrite).
_TYPES_SQL = """
SELECT CASE WHEN n.nspname = ANY (current_schemas(false)) THEN t.typname ELSE n.nspname || '.' || t.typname END,
       t.typtype = 'd' AND (t.typnotnull OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contypid = t.oid))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
   AND t.typtype IN ('b', 'c', 'd', 'e', 'r', 'm') AND t.typelem = 0
   AND NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = t.typrelid AND k.relkind <> 'c')
"""

_RELKIND_NAMES = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "S": "sequence",
                  "f": "foreign table"}


_INDEXES_SQL = f"""
SELECT CASE WHEN n.nspname = ANY (current_schemas(false)) THEN i.relname
            ELSE n.nspname || '.' || i.relname END, {_NAME},
       ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = x.indrelid AND attnum = ANY (x.indkey::int2[])
             ORDER BY array_position(x.indkey::int2[], attnum)),
       x.indisvalid,
       -- an index with expressions or a WHERE: every column it reads (its keys, and what pg_depend says
       -- its expressions and WHERE read); NULL for the others
       CASE WHEN x.indexprs IS NOT NULL OR x.indpred IS NOT NULL THEN
         ARRAY(SELECT a.attname FROM pg_attribute a
                WHERE a.attrelid = x.indrelid AND a.attnum > 0
                  AND (a.attnum = ANY (x.indkey::int2[])
                       OR a.attnum IN (SELECT d.refobjsubid FROM pg_depend d
                                        WHERE d.classid = 'pg_class'::regclass AND d.objid = x.indexrelid
                                          AND d.refclassid = 'pg_class'::regclass AND d.refobjid = x.indrelid))
                ORDER BY a.attname)
       END
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMAS}
"""


# Index keys on a column whose collation is the key's own (COLLATE in the index), not the column's.
_INDEX_COLLATIONS_SQL = f"""
SELECT CASE WHEN n.nspname = ANY (current_schemas(false)) THEN i.relname
            ELSE n.nspname || '.' || i.relname END, a.attname, co.collname
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL unnest(x.indkey::int2[], x.indcollation::oid[]) AS k(attnum, coll)
  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
  JOIN pg_collation co ON co.oid = k.coll
 WHERE {_USER_SCHEMAS} AND k.coll <> 0 AND k.coll <> a.attcollation
"""


def catalog_from_database(conn) -> Catalog:
    """A catalog describing the database behind the psycopg connection ``conn`` as it is now."""
    types: dict[tuple[str, str], str] = {}
    not_null: list[tuple[str, str]] = []
    for table, column, type_, attnotnull in conn.execute(_COLUMNS_SQL).fetchall():
        types[(table, column)] = type_
        if attnotnull:
            not_null.append((table, column))
    checks: list[tuple[str, str, str]] = []
    pending: list[tuple[str, str, str]] = []
    fks: list[ForeignKey] = []
    uniques: dict[tuple[str, str], tuple[str, ...]] = {}
    checks_sql: dict[tuple[str, str], tuple[str, bool]] = {}
    for table, name, contype, validated, definition, columns, referenced, ref_columns, deferred in conn.execute(
        _CONSTRAINTS_SQL
    ).fetchall():
        if contype in ("p", "u"):
            uniques[(table, name)] = tuple(columns)
            continue
        if contype == "f":
            fks.append(ForeignKey(table, tuple(columns), referenced, name, tuple(ref_columns), deferred=deferred))
            continue
        if contype == "c" and definition.startswith("CHECK "):
            checks_sql[(table, name)] = (definition.removeprefix("CHECK ").removesuffix(" NOT VALID")
                                         .removesuffix(" NO INHERIT"), validated)
        for column in _proven_not_null(definition):
            (checks if validated else pending).append((table, column, name))
    rows = conn.execute(_INDEXES_SQL).fetchall()
    indexes = {index: table for index, table, _columns, _valid, _reads in rows}
    index_columns = {index: tuple(columns) for index, _table, columns, _valid, _reads in rows}
    index_reads = {index: tuple(reads) for index, _table, _columns, _valid, reads in rows if reads}
    invalid = [index for index, _table, _columns, valid, _reads in rows if not valid]
    collations: dict[str, list[tuple[str, str]]] = {}
    for index, column, collation in conn.execute(_INDEX_COLLATIONS_SQL).fetchall():
        collations.setdefault(index, []).append((column, collation))
    timezone = conn.execute("SHOW TimeZone").fetchone()[0]
    relkinds = {name: _RELKIND_NAMES[kind] for name, kind in conn.execute(_RELATIONS_SQL).fetchall()}
    views: dict[str, list[str]] = {}
    for view, table in conn.execute(_VIEW_TABLES_SQL).fetchall():
        views.setdefault(view, []).append(table)
    view_columns: dict[str, list[tuple[str, str]]] = {}
    for view, table, column in conn.execute(_VIEW_COLUMNS_SQL).fetchall():
        view_columns.setdefault(view, []).append((table, column))
    catalog = (
        Catalog.empty()
        .with_column_types(types)
        .with_not_null_columns(not_null)
        .with_not_null_checks(checks)
        .with_foreign_keys(fks)
        .with_indexes(indexes, index_columns, index_reads, {i: tuple(keys) for i, keys in collations.items()})
        .with_timezone(timezone)
        .with_not_null_checks(pending, validated=False)
        .with_relations(relkinds)
        .with_database_read(relkinds)
        .with_unique_constraints(uniques)
        .with_checks(checks_sql)
        .with_view_tables({v: sorted(t) for v, t in views.items()})
        .with_view_columns({v: sorted(c) for v, c in view_columns.items()})
        .with_invalid_indexes(invalid)
        .with_types(dict(conn.execute(_TYPES_SQL).fetchall()))
    )
    for parent, child, is_default in conn.execute(_CHILDREN_SQL).fetchall():
        catalog = catalog.with_children(parent, (child,), default=child if is_default else None)
    return catalog


def _proven_not_null(definition: str) -> tuple[str, ...]:
    """Columns a ``CHECK (...)`` definition (as ``pg_get_constraintdef`` prints it) proves NOT NULL."""
    try:
        stmt = parse_sql(f"ALTER TABLE t ADD CONSTRAINT c {definition}")[0].stmt
    except Exception:  # a definition pglast cannot read proves nothing
        return ()
    return not_null_columns(stmt.cmds[0].def_.raw_expr)

