"""The pure middle of the pipeline: rendered migrations (or a SQL file's statements) -> parsed
statements -> effects -> findings, with the context rules need computed once: tables created
earlier in the plan, the locks each transaction already holds, settings such as lock_timeout.
No I/O, no Django."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from types import MappingProxyType

from migration_guard.config import Config
from migration_guard.locks import Catalog, advance, analyse
from migration_guard.model import (
    Action,
    ActionKind,
    Effects,
    Finding,
    ParsedStatement,
    RelationLock,
    RenderedMigration,
    StatementKind,
)
from migration_guard.parse import parse_statement
from migration_guard.rules import ALL_RULES, MigrationContext, Rule, StatementContext, TransactionContext
from migration_guard.rules.base import claim_key
from migration_guard.stats import TableSizes

__all__ = ["MigrationResult", "StatementResult", "analyse_migrations", "analyse_statements"]

# Actions that leave a table's definition (what a later migration's rendering may read) as it is. Every
# other action on a table changes it: OTHER too (RENAME CONSTRAINT changes the names a lookup finds).
_NOT_DDL = {ActionKind.DML, ActionKind.SET_SETTING, ActionKind.TRANSACTION}


@dataclass(frozen=True)
class StatementResult:
    """One parsed statement with what the lock model and the rules say of it."""

    parsed: ParsedStatement
    effects: Effects
    findings: tuple[Finding, ...] = ()
    # Settings in force when the statement runs (lock_timeout, statement_timeout, ...), from SET /
    # SET LOCAL / RESET earlier in the plan; None: reset to the server's default.
    settings: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class MigrationResult:
    """One migration (or SQL file) analysed."""

    label: str
    path: str | None
    atomic: bool
    how: str  # "collect_sql", "executed" or "sql file"
    statements: tuple[StatementResult, ...]
    findings: tuple[Finding, ...]  # migration-level findings first, then per statement
    error: str | None = None
    database: str | None = None  # the DATABASES alias it was linted for

    def line_of(self, finding: Finding) -> int | None:
        """The line in the migration file (or SQL file) a finding points at."""
        if finding.statement_index is None or finding.statement_index >= len(self.statements):
            return None
        statement = self.statements[finding.statement_index].parsed.statement
        if statement.operation is not None and statement.operation.line is not None:
            return statement.operation.line
        return statement.line


@dataclass
class _PlanState:
    """What the walk through the plan carries from statement to statement."""

    catalog: Catalog
    sizes: TableSizes
    # Tables earlier statements changed: the columns they changed, or None when more of the table
    # (a constraint or index by name, the table itself, a statement the model does not know).
    changed: dict[str, set[str] | None] = field(default_factory=dict)
    # The catalog's created tables last added to ``sizes``: only new ones are added, not all of them
    # again at every statement (which made long plans and SQL files quadratic).
    created_seen: frozenset[str] = frozenset()
    # Plain SET (not LOCAL) settings: they outlive transactions, as in the one session migrate uses.
    session_settings: dict[str, str | None] = field(default_factory=dict)


def analyse_migrations(
    rendered: Iterable[RenderedMigration],
    *,
    sizes: TableSizes,
    pg_version: int,
    config: Config,
    catalog: Catalog | None = None,
    rules: Sequence[Rule] = ALL_RULES,
    each: bool = False,
) -> list[MigrationResult]:
    """Analyse migrations in plan order; each one sees what earlier ones created and changed.

    ``each``: every migration is its own deploy (``lint_migrations --each``): the tables earlier
    migrations created are existing tables of the size ``sizes`` gives them, not new ones, and the
    session settings (plain ``SET``) of earlier migrations are gone, as in a new ``migrate``."""
    active = [rule for rule in rules if rule.id not in config.disable]
    state = _PlanState(catalog=catalog or Catalog.empty(), sizes=sizes)
    timezone = state.catalog.timezone
    results = []
    migrations = list(rendered)
    parsed_plan = [[p for statement in migration.statements for p in parse_statement(statement)]
                   for migration in migrations]
    plan = tuple(p for parsed in parsed_plan for p in parsed)
    offset = 0
    for migration, parsed in zip(migrations, parsed_plan):
        if each:
            _new_deploy(state, sizes, timezone)
        context = MigrationContext(
            rendered=migration, config=config,
            changed_earlier=MappingProxyType({t: None if c is None else frozenset(c) for t, c in state.changed.items()})
        )
        migration_findings = [f for rule in active if rule.check_migration for f in rule.check_migration(context)]
        if migration.error and not migration.linted:
            # A pending migration that is not linted failed to render: what follows is unknown.
            migration_findings = []
        state.sizes = state.sizes.running(migration.runs)
        statements = _walk(parsed, migration.label, state, pg_version, config, active, plan=plan, offset=offset)
        offset += len(parsed)
        if not migration.linted:
            continue  # walked only so that later migrations see what it does
        results.append(
            MigrationResult(
                label=migration.label,
                path=migration.path,
                atomic=migration.atomic,
                how=migration.how,
                statements=statements,
                findings=tuple(migration_findings) + _bound(statements),
                error=migration.error,
            )
        )
    return results


def _new_deploy(state: _PlanState, sizes: TableSizes, timezone: str | None) -> None:
    """What a deploy of the next migration alone starts from: every table already there is a
    production table (a table created earlier in the same migration is still new), and a new
    session (no SET of an earlier migration in force)."""
    if state.catalog.created_tables or state.catalog.timezone != timezone:
        state.catalog = replace(state.catalog, created_tables=frozenset(), timezone=timezone)
    state.sizes = sizes
    state.created_seen = frozenset()
    state.session_settings = {}


def analyse_statements(
    parsed: Sequence[ParsedStatement],
    *,
    source: str,
    sizes: TableSizes,
    pg_version: int,
    config: Config,
    catalog: Catalog | None = None,
    rules: Sequence[Rule] = ALL_RULES,
) -> MigrationResult:
    """Analyse a SQL file's statements (``migration-guard explain``): autocommit unless the file
    itself opens a transaction with BEGIN. ``catalog`` may say what the database already has
    (column types, validated checks)."""
    active = [rule for rule in rules if rule.id not in config.disable]
    state = _PlanState(catalog=catalog or Catalog.empty(), sizes=sizes)
    statements = _walk(list(parsed), source, state, pg_version, config, active)
    return MigrationResult(
        label=source,
        path=source,
        atomic=False,
        how="sql file",
        statements=statements,
        findings=_bound(statements),
    )


def _bound(statements: tuple[StatementResult, ...]) -> tuple[Finding, ...]:
    """The statements' findings, each one about several statements (``Finding.related``) with a
    fingerprint over all of them: an approval of it goes stale when any of them changes."""
    findings = []
    for result in statements:
        for finding in result.findings:
            if finding.related:
                parts = [result.parsed] + [statements[i].parsed for i in finding.related if i < len(statements)]
                finding = replace(finding, fingerprint=partial(_combined_fingerprint, parts))
            findings.append(finding)
    return tuple(findings)


def _combined_fingerprint(parts: list[ParsedStatement]) -> str:
    return hashlib.sha256("|".join(p.fingerprint for p in parts).encode()).hexdigest()[:16]


def _walk(parsed: list[ParsedStatement], label: str, state: _PlanState, pg_version: int, config: Config,
          rules: Sequence[Rule], *, plan: tuple[ParsedStatement, ...] | None = None,
          offset: int = 0) -> tuple[StatementResult, ...]:
    """Each statement's effects and findings. ``plan``: every statement of the plan, ``parsed`` from
    ``offset`` on (default: ``parsed`` alone)."""
    results = []
    held: dict[object, list[tuple[RelationLock, int]]] = {}
    explicit_transaction: int | None = None  # index of a BEGIN in raw SQL
    touched: set[tuple[str | None, str]] = set()  # tables locked earlier in this walk (invalid indexes: once)
    specific = [rule for rule in rules if not rule.backstop]
    backstops = [rule for rule in rules if rule.backstop]
    claiming = {rule.id for rule in specific if rule.claims}
    spanning = [rule for rule in rules if rule.check_transaction]
    checks_for: dict[frozenset[ActionKind], tuple] = {}  # the statement rules' checks for a set of action kinds
    open_transactions: dict[object, list[tuple[StatementContext, int]]] = {}  # key -> (context, index) in order
    local: dict[str, str | None] = {}  # SET LOCAL: until the transaction ends (here: with this walk at most)
    if plan is None:
        plan = tuple(parsed)
    for index, item in enumerate(parsed):
        in_force = {**state.session_settings, **local}
        statement = item.statement
        if statement.column_types:
            state.catalog = state.catalog.with_column_types(dict(statement.column_types), consume=True)
        effects = _effects(item, pg_version, _with_model_checks(state.catalog, statement.model_checks))
        invalid = _first_touch_invalid(effects, state.catalog, touched)
        state.catalog = advance(state.catalog, effects, consume=True)  # the walk drops the old one
        created = state.catalog.created_tables
        if created is not state.created_seen and created != state.created_seen:  # same set: no compare
            # The catalog drops "public."; the sizes need the schema as written (with another schema
            # first on the search_path, "public.t" and "t" are different tables).
            written = {_unqualified_public(a.table): a.table for a in effects.actions
                       if a.kind is ActionKind.CREATE_TABLE and a.table}
            state.sizes = state.sizes.with_created(written.get(name, name) for name in created - state.created_seen)
            state.created_seen = created

        transaction_verb = _transaction_verb(effects)
        if transaction_verb == "begin":
            explicit_transaction = index
        key = _transaction_key(statement, explicit_transaction)
        for action in effects.actions:
            if action.kind is ActionKind.SET_SETTING and action.detail.get("name"):
                # A plain SET lasts for the session (Django's migrate runs every migration in one).
                value = action.detail.get("value")
                scope = local if action.detail.get("local") else state.session_settings
                scope[str(action.detail["name"]).lower()] = None if _is_zero(value) else value

        context = StatementContext(
            parsed=item,
            effects=effects,
            index=index,
            label=label,
            held=tuple(held.get(key, ())) if key is not None else (),
            sizes=state.sizes,
            pg_version=pg_version,
            config=config,
            settings=in_force,
            in_transaction_block=statement.in_transaction or explicit_transaction is not None,
            invalid_indexes=invalid,
            statements=plan,
            position=offset + index,
            catalog=state.catalog,
        )
        kinds = frozenset(action.kind for action in effects.actions)
        checks = checks_for.get(kinds)
        if checks is None:  # a few sets of kinds recur: the rules for each are chosen once
            checks = checks_for[kinds] = tuple(rule.check for rule in specific if rule.check and (
                rule.actions is None or not rule.actions.isdisjoint(kinds)))
        findings = tuple(f for check in checks for f in check(context))
        if backstops:
            if findings:
                context = replace(context, claimed=frozenset(claim_key(f.table) for f in findings
                                                             if f.table and f.rule in claiming))
            findings += tuple(f for rule in backstops if rule.check for f in rule.check(context))
        results.append(StatementResult(parsed=item, effects=effects, findings=findings, settings=in_force))

        if key is not None:
            held.setdefault(key, []).extend((lock, index) for lock in effects.locks)
            if spanning:
                open_transactions.setdefault(key, []).append((context, index))
        if transaction_verb in {"commit", "rollback"}:
            _end_transaction(open_transactions.pop(key, ()), results, spanning)
            held.pop(key, None)
            explicit_transaction = None
            local.clear()
        for action in effects.actions:
            if action.table and action.kind not in _NOT_DDL:
                _note_change(state.changed, action)
    for members in open_transactions.values():  # the migration's transaction ends with it
        _end_transaction(members, results, spanning)
    return tuple(results)


# Changes that touch the named columns only (and OTHER actions on one column: a comment, statistics):
# their constraints are all a later lookup by those columns can find changed (a table-wide change, a
# constraint or an index dropped or renamed by name, counts for every column).
_COLUMN_CHANGES = {ActionKind.ADD_COLUMN, ActionKind.DROP_COLUMN, ActionKind.ALTER_COLUMN_TYPE,
                   ActionKind.SET_NOT_NULL, ActionKind.DROP_NOT_NULL, ActionKind.SET_DEFAULT, ActionKind.DROP_DEFAULT,
                   ActionKind.RENAME_COLUMN, ActionKind.ADD_CONSTRAINT, ActionKind.CREATE_INDEX}


def _note_change(changed: dict[str, set[str] | None], action: Action) -> None:
    """Add what ``action`` changes of its table to ``changed`` (table -> columns, None: the whole table)."""
    columns: set[str] | None = None
    if action.kind in _COLUMN_CHANGES or (action.kind is ActionKind.OTHER and action.column):
        named = (action.column, action.detail.get("new_name")) if action.column else action.detail.get("columns")
        # an index on an expression ("lower(name)") is no column: the whole table
        if named and all(isinstance(c, str) and "(" not in c for c in named if c is not None):
            columns = {c for c in named if c is not None}
    if columns is None or changed.get(action.table, set()) is None:
        changed[action.table] = None
    else:
        changed.setdefault(action.table, set()).update(columns)


def _end_transaction(members, results: list[StatementResult], rules: Sequence[Rule]) -> None:
    """Run the transaction rules over the statements of a transaction that just ended; each finding
    joins the statement it names."""
    if not members:
        return
    context = TransactionContext(statements=tuple((ctx, results[index].findings) for ctx, index in members))
    for rule in rules:
        for finding in rule.check_transaction(context):
            result = results[finding.statement_index]
            results[finding.statement_index] = replace(result, findings=result.findings + (finding,))


def _is_zero(value) -> bool:
    """Whether a setting's value is unset or zero in any unit (``0``, ``'0ms'``, ``'0s'``): for
    ``lock_timeout`` and ``statement_timeout`` zero means no limit at all."""
    return value is None or _ZERO.fullmatch(str(value)) is not None


_ZERO = re.compile(r"\s*[+-]?0*\.?0*\s*(us|ms|s|min|h|d)?\s*")


def _unqualified_public(name: str) -> str:
    return name[len("public."):] if name.startswith("public.") else name


def _first_touch_invalid(effects: Effects, catalog: Catalog, touched: set) -> tuple[tuple[str, str], ...]:
    """(index, table) of the INVALID indexes on tables this statement locks before any earlier one of the walk."""
    if not catalog.invalid_indexes:
        return ()
    found = []
    for lock in effects.locks:
        if lock.relkind not in ("table", "partitioned table") or claim_key(lock.relation) in touched:
            continue
        touched.add(claim_key(lock.relation))
        found += [(index, lock.relation) for index in catalog.invalid_indexes_on(lock.relation)]
    return tuple(found)


def _with_model_checks(catalog: Catalog, checks) -> Catalog:
    """``catalog`` plus the project state's CHECK constraints (``Statement.model_checks``) of tables it does
    not know, taken as validated, for one statement: they make a type change scan (the cautious answer), and
    are not kept for later statements, where a CHECK could prove something instead."""
    unknown = {key: (expression, True) for key, expression in checks if not catalog.knows_table(key[0])}
    return catalog.with_checks(unknown) if unknown else catalog


def _effects(item: ParsedStatement, pg_version: int, catalog: Catalog) -> Effects:
    if item.statement.kind is StatementKind.RUN_PYTHON:
        return Effects()  # opaque: rules judge it by what it holds and how long it may run
    if item.node is None:
        return Effects(known=False)
    try:
        return analyse(item.node, pg_version=pg_version, catalog=catalog)
    except RecursionError:  # a tree too deep for the lock model: unknown, and said so (MG912)
        object.__setattr__(item, "limit", "nested too deeply for the lock model to analyse")
        return Effects(known=False)


def _transaction_verb(effects: Effects) -> str | None:
    for action in effects.actions:
        if action.kind is ActionKind.TRANSACTION:
            return action.detail.get("verb")
    return None


def _transaction_key(statement, explicit_transaction: int | None):
    """Statements with the same key share a transaction (and so each other's locks)."""
    if explicit_transaction is not None:
        return ("explicit", explicit_transaction)
    if statement.transaction is None:
        return None
    return ("migration", statement.transaction)

