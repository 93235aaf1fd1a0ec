"""Seed a :class:`~migration_guard.locks.catalog.Catalog` from a live database (an edge: it does I/O).

Reads only the catalogs (``pg_attribute``, ``pg_constraint``, ``pg_index``) and the session's
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
             ORDER BY array_position(con.confkey, attnum))
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE con.contype IN ('c', 'f') AND {_USER_SCHEMAS}
"""

_INDEXES_SQL = f"""
SELECT CASE WHEN n.nspname = ANY (current_schemas(false)) THEN i.relname
            ELSE n.nspname || '.' || i.relname END, {_NAME},
       ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = x.indrelid AND attnum = ANY (x.indkey::int2[]))
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMAS}
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
    for table, name, contype, validated, definition, columns, referenced, ref_columns in conn.execute(
        _CONSTRAINTS_SQL
    ).fetchall():
        if contype == "f":
            fks.append(ForeignKey(table, tuple(columns), referenced, name, tuple(ref_columns)))
            continue
        for column in _proven_not_null(definition):
            (checks if validated else pending).append((table, column, name))
    rows = conn.execute(_INDEXES_SQL).fetchall()
    indexes = {index: table for index, table, _columns in rows}
    index_columns = {index: tuple(columns) for index, _table, columns in rows}
    timezone = conn.execute("SHOW TimeZone").fetchone()[0]
    catalog = (
        Catalog.empty()
        .with_column_types(types)
        .with_not_null_columns(not_null)
        .with_not_null_checks(checks)
        .with_foreign_keys(fks)
        .with_indexes(indexes, index_columns)
        .with_timezone(timezone)
        .with_not_null_checks(pending, validated=False)
    )
    return catalog


def _proven_not_null(definition: str) -> tuple[str, ...]:
    """Columns a ``CHECK (...)`` definition (as ``pg_get_constraintdef`` prints it) proves NOT NULL."""
    try:
        stmt = parse_sql(f"ALTER TABLE t ADD CONSTRAINT c {definition}")[0].stmt
    except Exception:  # a definition pglast cannot read proves nothing
        return ()
    return not_null_columns(stmt.cmds[0].def_.raw_expr)

