"""What every rule shares: the Rule record, the context a check reads, and the one place that
turns a table's size into a severity and a rough duration. Rules never import each other."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial

from migration_guard.config import Config
from migration_guard.guard import shorten_sql
from migration_guard.locks.modes import LockMode
from migration_guard.locks.statements.plpgsql import MARKER
from migration_guard.parse import parse_trees
from migration_guard.model import (
    Action,
    ActionKind,
    Effects,
    Finding,
    ParsedStatement,
    RenderedMigration,
    Severity,
    StatementKind,
    TableSize,
)
from migration_guard.stats import TableSizes, is_large, split_name

# A recipe that reads a DO block's statement whose values the block computes when it runs (EXECUTE format(...)):
# what it would print is the lock model's stand-in (MARKER), not the user's SQL.
_RUN_TIME_RECIPE = (
    "# the DO block builds this statement when it runs (EXECUTE format(...)): do its work from a RunPython in a\n"
    "# migration with atomic = False, each step committing on its own, or as Django operations (the safe form:\n"
    "# migration-guard rules {rule})")

__all__ = [
    "MigrationContext",
    "Rule",
    "StatementContext",
    "TransactionContext",
    "claim_key",
    "estimate_duration",
    "lock_label",
]

# Rough throughput for the duration estimate, in rows per second. Measured on PostgreSQL 18, 2 cores,
# a 2,000,000-row, 145 MB table held in memory and no other load: full scan (ADD CHECK) 15M rows/s,
# index build 3M rows/s, rewrite (ALTER TYPE with its primary key rebuilt) 0.6M rows/s. Production
# tables are read from disk under load: we assume five times slower, and say "~".
_ROWS_PER_SECOND = {"scan": 3_000_000, "index": 600_000, "rewrite": 120_000}
# A rewrite rebuilds every index of the table: each index after the first adds about 11% of the time of a
# rewrite with one. Measured on PostgreSQL 18.6 (embedded wheel), 2 loaded cores, 300,000 rows (60 MB heap),
# ADD COLUMN ... DEFAULT gen_random_uuid(): 1 index 11.0 s, 12 indexes 24.8 s, 23 indexes 37.0 s. On the
# report behind it (1.1M rows, 23 indexes, a UUID default: 19.6-21.4 s for real) the estimate is ~31 s; it
# was ~9 s when it counted rows alone.
_REWRITE_PER_EXTRA_INDEX = 0.107
# A rewrite copies the TOAST data too: never less than the table's bytes at this rate (bytes per second).
# Measured the same way: 30,000 rows with 8 kB of incompressible text each (254 MB) took 33.9 s, the same
# rows without it 1.0 s: 7.5 MB/s on a machine that rewrote 27,000 rows/s, 4.4 times slower than the rate
# above assumes; so 30 MB/s at that rate.
_REWRITE_BYTES_PER_SECOND = 30_000_000


@dataclass(frozen=True)
class StatementContext:
    """What a statement rule sees: one statement, its effects, and the plan around it."""

    parsed: ParsedStatement
    effects: Effects
    index: int  # the statement's position in its migration
    label: str  # the migration's ``app_label.name`` (or the SQL file)
    held: tuple  # ((RelationLock, statement index), ...) held from earlier statements of the transaction
    sizes: TableSizes  # knows the tables created earlier in the plan (or by this statement)
    pg_version: int
    config: Config
    settings: dict = field(default_factory=dict, hash=False, compare=False)  # SET lock_timeout ...
    # Tables the specific rules already reported for this statement (what a backstop rule leaves alone), as
    # claim_key gives them.
    claimed: frozenset[tuple[str | None, str]] = frozenset()
    in_transaction_block: bool = False  # runs inside a transaction (the migration's, or a BEGIN of raw SQL)
    # (index, table) of INVALID indexes on the tables this statement is the first of its migration to lock
    invalid_indexes: tuple[tuple[str, str], ...] = ()
    # Every statement of the plan (the migrations in order, or the SQL file), this one at ``position``:
    # what advice reads of the operations around this one (an index a later operation adds).
    statements: tuple[ParsedStatement, ...] = field(default=(), repr=False, compare=False)
    position: int = 0
    # What the database has once this statement ran (locks.Catalog: column types, indexes); None: nothing known.
    catalog: object = field(default=None, repr=False, compare=False)

    @property
    def sql(self) -> str:
        """The statement's SQL text."""
        return self.parsed.statement.sql

    @property
    def operation(self):
        """The Django operation the statement came from (None for raw SQL)."""
        return self.parsed.statement.operation

    def sql_of(self, action: Action) -> str:
        """The SQL of the statement that does ``action``: this one, or the one inside its DO block."""
        return action.detail.get("block_sql") or self.sql

    def node_of(self, action: Action):
        """The pglast node of the statement that does ``action`` (see :meth:`sql_of`)."""
        inner = action.detail.get("block_sql")
        return self.parsed.node if inner is None else parse_trees(inner)[0].stmt

    @property
    def place(self) -> str:
        """Where the statement is, as the text report's ``where`` line says it: its operation (counted
        from 1, as a reader counts ``operations``), else its line in the SQL file, else its SQL."""
        operation = self.operation
        if operation is not None:
            return f"operation {operation.index + 1} {operation.name}"
        if self.parsed.statement.line is not None:
            return f"line {self.parsed.statement.line}"
        return shorten_sql(self.sql, 60)

    @property
    def is_python(self) -> bool:
        """Whether the statement stands for opaque RunPython work."""
        return self.parsed.statement.kind is StatementKind.RUN_PYTHON

    def is_claimed(self, table: str) -> bool:
        """Whether a specific rule already reported ``table`` for this statement."""
        return claim_key(table) in self.claimed

    def is_new(self, table: str | None) -> bool:
        """Whether ``table`` was created earlier in this plan (so locking it hurts nobody)."""
        return table is not None and self.sizes.is_new(table)

    def size(self, table: str) -> TableSize:
        """The table's size (new in the plan: empty; no figure: unknown, or assumed)."""
        return self.sizes.of(table)

    def is_materialized_view(self, table: str) -> bool:
        """Whether ``table`` is a materialized view (as far as the catalog knows): nothing writes to one, nor
        locks its rows, so a lock there that blocks only writes blocks no traffic."""
        return any(lock.relkind == "materialized view" and claim_key(lock.relation) == claim_key(table)
                   for lock in self.effects.locks)

    def is_large(self, table: str) -> bool:
        """Above the threshold, or of unknown size (fail closed)."""
        return is_large(self.size(table), self.config.threshold_rows, self.config.threshold_bytes)

    def actions(self, *kinds: ActionKind, on_new_tables: bool = False) -> Iterator[Action]:
        """The statement's actions of ``kinds``, in order; unless ``on_new_tables``, only those on a table
        that exists before the plan (locking one created earlier in the plan hurts nobody)."""
        for action in self.effects.actions:
            if action.kind in kinds and (on_new_tables or not self.is_new(action.table)):
                yield action

    def action_finding(self, rule: Rule, action: Action, *, message: str, recipe: str = "", work: str | None = None,
                       sized: bool = True) -> Finding:
        """:meth:`finding` of ``rule`` on ``action``'s table, under the lock ``action`` takes there."""
        return self.finding(rule, table=action.table, message=message, recipe=recipe, lock=action.mode, work=work,
                            sized=sized)

    def finding(
        self,
        rule: Rule,
        *,
        table: str | None,
        message: str,
        recipe: str = "",
        lock: LockMode | None = None,
        work: str | None = None,
        sized: bool = True,
    ) -> Finding:
        """A finding of ``rule`` on this statement. With ``sized``, it is an error on a large table
        and a warning on a small one; ``work`` ("scan", "index", "rewrite") gives the duration."""
        size = self.size(table) if table else None
        severity = rule.severity
        if sized and size is not None and severity is Severity.ERROR and not self.is_large(table):
            severity = Severity.WARNING
        configured = self.config.severity.get(rule.id)
        return Finding(
            rule=rule.id,
            slug=rule.slug,
            severity=configured or severity,
            below_threshold=configured is None and severity is not rule.severity,
            message=message,
            migration=self.label,
            statement_index=self.index,
            table=table,
            size=size,
            lock=lock,
            duration=estimate_duration(size, work) if work and size else None,
            recipe=_RUN_TIME_RECIPE.format(rule=rule.id) if MARKER in recipe else recipe,
            fingerprint=partial(getattr, self.parsed, "fingerprint"),  # deparses: read only when needed
        )


@dataclass(frozen=True)
class MigrationContext:
    """What a migration rule sees: the rendered migration and the plan around it."""

    rendered: RenderedMigration
    config: Config
    # What earlier migrations of this plan changed: table -> the columns they changed (None: more of
    # the table than columns, e.g. a constraint dropped by name).
    changed_earlier: Mapping[str, frozenset[str] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class TransactionContext:
    """What a transaction rule sees: every statement of one transaction, in order, each with the
    findings the statement rules made on it (so that a hazard they already report is not repeated)."""

    statements: tuple[tuple[StatementContext, tuple[Finding, ...]], ...]


@dataclass(frozen=True)
class Rule:
    """One rule: its id, slug (names the pattern, not the fix), default severity, one-line summary,
    documentation (What it does / Why is this bad? / Example / Use instead) and check."""

    id: str
    slug: str
    severity: Severity
    summary: str
    doc: str
    check: Callable[[StatementContext], Iterable[Finding]] | None = None
    check_migration: Callable[[MigrationContext], Iterable[Finding]] | None = None
    # Called once per transaction when it ends, after the statement rules: for hazards that span it
    # (a lock held from one statement to the commit); each finding sits on one of its statements.
    check_transaction: Callable[[TransactionContext], Iterable[Finding]] | None = None
    # The action kinds ``check`` looks at, if it looks at no others: the walk calls it only for a
    # statement with one of them (most statements of a long script have none).
    actions: frozenset[ActionKind] | None = None
    # A backstop runs after every other rule of the statement and sees the tables they reported
    # (``StatementContext.claimed``): it speaks only where they did not.
    backstop: bool = False
    # Whether a finding speaks for the statement's own work on its table (so the backstop leaves that table
    # alone); False for rules about something else (a transaction block, an index already there).
    claims: bool = True
    # Whether a finding of ``check`` is a warning on a table below the threshold (its calls of
    # ``StatementContext.finding`` keep the default ``sized=True``); the rule's page says which.
    sized: bool = True


@lru_cache(maxsize=8192)
def claim_key(table: str) -> tuple[str | None, str]:
    """How two spellings of one table in one statement compare (``x``, ``"x"``, ``public.x``): ``(schema,
    name)``, with ``public`` as no schema."""
    schema, name = split_name(table)
    return (None if schema == "public" else schema, name)


def lock_label(action: Action, default: str = "ACCESS EXCLUSIVE") -> str:
    """The name of the lock ``action`` takes, for a message (``default`` when the model gives none)."""
    return action.mode.label if action.mode else default


def estimate_duration(size: TableSize, work: str) -> str | None:
    """A rough duration such as ``~6 s`` for ``work`` over a table of ``size``; a rewrite counts the
    table's indexes (each is rebuilt) and its bytes (TOAST is copied too)."""
    if size.rows is None:
        return "unknown (no size for this table)"
    seconds = size.rows / _ROWS_PER_SECOND[work]
    if work == "rewrite":
        seconds *= 1 + _REWRITE_PER_EXTRA_INDEX * max((size.indexes or 1) - 1, 0)
        if size.total_bytes:
            seconds = max(seconds, size.total_bytes / _REWRITE_BYTES_PER_SECOND)
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"
