"""What the lock model knows about the schema as it walks a plan's statements in order.

A :class:`Catalog` is frozen; :func:`advance` returns the next one after a statement. The
pipeline seeds it with what it knows before the plan (column types from the Django project
state, or everything from a live database with :func:`migration_guard.locks.introspect.catalog_from_database`)
and the analyser reads it to decide what it cannot see in one statement alone:

- ``created_tables``: tables created earlier in the plan (locking them hurts nobody);
- ``from_database``: whether it was read from a database (it then knows every relation and type there);
- ``described_tables``: the tables whose indexes, constraints, foreign keys, partitions and views it
  knows in full: every table of the database it was read from, and the tables created in the plan.
  For any other table, no index (or CHECK, or key) known means *not known*, not *none*: the lock
  model then assumes the costly effect (an index rebuilt) where it cannot be ruled out;
- ``column_types``: ``(table, column) -> type`` (binary-coercible ALTER COLUMN TYPE needs the old type);
- ``not_null_checks``: validated ``CHECK (column IS NOT NULL)`` constraints (SET NOT NULL skips its scan);
- ``not_null_columns``: columns known NOT NULL (ADD PRIMARY KEY then needs no NULL scan);
- ``foreign_keys``: which tables a drop or a type change reaches at the other end;
- ``indexes``: the table of each index (DROP INDEX locks the table too) and its key columns; for an index
  with expressions or a WHERE, every column it reads (a collation change rebuilds every index that reads
  the column, and such an index whatever was built beforehand);
- ``timezone``: the session TimeZone (timestamp <-> timestamptz is free only in UTC);
- ``relkinds``: what each known relation is (table, partitioned table, view, ...);
- ``children``: the partitions (and inheritance children) of each parent, and which partition is
  the default one (ALTER TABLE on a parent recurses to them; attaching a partition scans the default);
- ``unique_constraints``: primary key and unique constraints (dropping one with CASCADE drops the
  foreign keys that reference it, locking their tables);
- ``view_tables``: the relations each view reads (LOCK TABLE on a view locks them too);
- ``view_columns``: the columns each view reads (DROP COLUMN ... CASCADE drops the views using it);
- ``invalid_indexes``: indexes a failed CREATE INDEX CONCURRENTLY left INVALID;
- ``types``: user-defined types and whether each is a domain with constraints (a column of such a
  domain is checked row by row when added, so ADD COLUMN rewrites the table).

Table names are kept as written in the SQL; lookups treat ``public.x`` and ``x`` as the same table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from migration_guard.model import ActionKind, Effects

__all__ = ["Catalog", "ForeignKey", "advance"]


def _key(table: str | None) -> str:
    """Lookup key for a table name: ``public.`` is the default schema, so it is dropped."""
    table = table or ""
    return table[len("public."):] if table.startswith("public.") else table


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


# Catalog parts keyed ``(table, name)`` that are also read grouped by table (a scan of every constraint per
# statement made a long script's walk quadratic): _Mutable attribute -> (Catalog field, the grouping's attribute
# on a Catalog). A grouping is made on first read and handed on by freeze(), updated with what the step changed.
_BY_TABLE = {"uniques": ("unique_constraints", "_uniques_by_table"), "check_exprs": ("checks", "_checks_by_table")}
_GONE = object()  # in a step's log of changes: the entry was removed (name None: every entry of the table)


def _by_table(catalog: Catalog, part: str, table: str) -> dict[str, object]:
    field_name, attribute = _BY_TABLE[part]
    grouped = catalog.__dict__.get(attribute)
    if grouped is None:
        grouped = {}
        for (owner, name), value in getattr(catalog, field_name).items():
            grouped.setdefault(owner, {})[name] = value
        object.__setattr__(catalog, attribute, grouped)
    return grouped.get(_key(table), {})


def _regrouped(grouped: dict[str, dict[str, object]], changes: list) -> dict[str, dict[str, object]]:
    """``grouped`` after ``changes`` (``(table, name or None, value or _GONE)``), copied where they change it."""
    grouped = dict(grouped)
    copied: set[str] = set()
    for table, name, value in changes:
        if name is None:
            grouped.pop(table, None)
            copied.discard(table)
            continue
        if table not in copied:
            grouped[table] = dict(grouped.get(table, {}))
            copied.add(table)
        if value is _GONE:
            grouped[table].pop(name, None)
        else:
            grouped[table][name] = value
    return grouped


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key: ``table(columns)`` references ``referenced``."""

    table: str
    columns: tuple[str, ...]
    referenced: str
    name: str | None = None
    referenced_columns: tuple[str, ...] = ()  # empty: the referenced table's primary key
    deferred: bool = False  # INITIALLY DEFERRED: checked at commit, not by the statement that writes


class _ForeignKeys:
    """Foreign keys in order, and the same by table and by referenced table (each in that order), so that
    a lookup, an added key or a dropped one costs what it touches, not a scan of every key."""

    __slots__ = ("by_referenced", "by_table", "items", "next")

    def __init__(self, keys: Iterable[ForeignKey] = ()):
        self.items: dict[int, ForeignKey] = {}  # insertion number -> key; numbers only grow
        self.by_table: dict[str, dict[int, ForeignKey]] = {}
        self.by_referenced: dict[str, dict[int, ForeignKey]] = {}
        self.next = 0
        for fk in keys:
            self.add(fk)

    def copy(self) -> _ForeignKeys:
        new = _ForeignKeys()
        new.items = dict(self.items)
        new.by_table = {t: dict(keys) for t, keys in self.by_table.items()}
        new.by_referenced = {t: dict(keys) for t, keys in self.by_referenced.items()}
        new.next = self.next
        return new

    def add(self, fk: ForeignKey) -> None:
        number, self.next = self.next, self.next + 1
        self.items[number] = fk
        self.by_table.setdefault(_key(fk.table), {})[number] = fk
        self.by_referenced.setdefault(_key(fk.referenced), {})[number] = fk

    def remove(self, numbers: Iterable[int]) -> None:
        for number in list(numbers):
            fk = self.items.pop(number)
            for index, table in ((self.by_table, _key(fk.table)), (self.by_referenced, _key(fk.referenced))):
                keys = index[table]
                del keys[number]
                if not keys:
                    del index[table]

    def touching(self, table: str) -> dict[int, ForeignKey]:
        """The keys held by ``table`` or referencing it, in order."""
        return dict(sorted({**self.by_table.get(table, {}), **self.by_referenced.get(table, {})}.items()))

    def replace(self, changed: Mapping[int, ForeignKey]) -> None:
        """Put new versions of some keys (renamed tables or columns) in their old places."""
        old = {number: self.items[number] for number in changed}
        for number, fk in changed.items():
            self.items[number] = fk
        for index, side in ((self.by_table, "table"), (self.by_referenced, "referenced")):
            moved = set()
            for number, fk in changed.items():
                before, after = _key(getattr(old[number], side)), _key(getattr(fk, side))
                if before != after:
                    del index[before][number]
                    if not index[before]:
                        del index[before]
                    moved.add(after)
                index.setdefault(after, {})[number] = fk
            for table in moved:  # a key moved to another table goes back to its place in the order
                index[table] = dict(sorted(index[table].items()))


class _ForeignKeysField:
    """``Catalog.foreign_keys``: given as a tuple, or (by :meth:`_Mutable.freeze`) made from the
    catalog's :class:`_ForeignKeys` on first read, so that a statement that adds a key does not copy
    every key known."""

    def __get__(self, instance, owner=None):
        if instance is None:
            return ()  # the dataclass default
        value = instance.__dict__["_foreign_keys"]
        if value is None:
            value = tuple(instance.__dict__["_fk_index"].items.values())
            instance.__dict__["_foreign_keys"] = value
        return value

    def __set__(self, instance, value) -> None:
        instance.__dict__["_foreign_keys"] = None if value is None else tuple(value)


@dataclass(frozen=True, eq=False)
class Catalog:
    """The schema facts known before a statement runs. Build with :meth:`empty` and the ``with_*`` methods."""

    created_tables: frozenset[str] = frozenset()
    from_database: bool = False  # read from a database: every relation and type there is known
    described_tables: frozenset[str] = frozenset()  # tables whose indexes, constraints, keys... are all known
    column_types: Mapping[tuple[str, str], str] = field(default_factory=lambda: _frozen({}))
    # (table, column, constraint name) of validated CHECK constraints that prove column IS NOT NULL
    not_null_checks: frozenset[tuple[str, str, str]] = frozenset()
    # the same, added NOT VALID and waiting for VALIDATE CONSTRAINT
    pending_not_null_checks: frozenset[tuple[str, str, str]] = frozenset()
    not_null_columns: frozenset[tuple[str, str]] = frozenset()
    foreign_keys: tuple[ForeignKey, ...] = _ForeignKeysField()  # type: ignore[assignment]
    indexes: Mapping[str, str] = field(default_factory=lambda: _frozen({}))  # index -> table
    index_columns: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _frozen({}))  # index -> columns
    # index with expressions or a WHERE -> every column it reads (its keys too); only such indexes are here
    index_reads: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _frozen({}))
    # index -> ((column, collation), ...) of its keys with a collation of their own (COLLATE in the index, not the
    # column's): a type change to that collation keeps the index
    index_collations: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=lambda: _frozen({}))
    timezone: str | None = None  # session TimeZone; None: unknown
    relkinds: Mapping[str, str] = field(default_factory=lambda: _frozen({}))  # relation -> "table", "view", ...
    children: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _frozen({}))  # parent -> children
    default_partitions: Mapping[str, str] = field(default_factory=lambda: _frozen({}))  # parent -> its DEFAULT
    # (table, constraint name) -> columns of PRIMARY KEY and UNIQUE constraints
    unique_constraints: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=lambda: _frozen({}))
    view_tables: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _frozen({}))  # view -> relations
    # (table, constraint name) -> (CHECK expression as SQL, validated) (ATTACH PARTITION skips its scan
    # when one proves the partition bound)
    checks: Mapping[tuple[str, str], tuple[str, bool]] = field(default_factory=lambda: _frozen({}))
    # view -> ((table, column), ...) it reads
    view_columns: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=lambda: _frozen({}))
    invalid_indexes: frozenset[str] = frozenset()
    # user-defined type -> whether it is a domain with constraints (CHECK or NOT NULL)
    types: Mapping[str, bool] = field(default_factory=lambda: _frozen({}))

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> Catalog:
        """A catalog that knows nothing (every unknown is treated the cautious way)."""
        return cls()

    def with_column_types(self, types: Mapping[tuple[str, str], str], *, consume: bool = False) -> Catalog:
        """This catalog plus ``{(table, column): type}`` (e.g. ``{("shop_order", "note"): "varchar(20)"}``);
        itself when it knows them all already. ``consume=True``: as for :func:`advance` (this catalog is
        dropped for the result), so the types are not copied for one more entry."""
        types = {(_key(t), c): v for (t, c), v in types.items()}
        known = self.column_types
        if all(known.get(key) == value for key, value in types.items()):
            return self
        if consume:
            state = _Mutable(self, consume=True)
            state.types.update(types)
            return state.freeze()
        merged = dict(known)
        merged.update(types)
        return replace(self, column_types=_frozen(merged))

    def with_not_null_checks(self, checks: Iterable[tuple[str, str, str]], *, validated: bool = True) -> Catalog:
        """This catalog plus ``CHECK (column IS NOT NULL)`` constraints: ``(table, column, name)``.

        ``validated=False`` records NOT VALID ones, which a later VALIDATE CONSTRAINT turns into proofs.
        """
        entries = {(_key(t), c, n) for t, c, n in checks}
        if validated:
            return replace(self, not_null_checks=self.not_null_checks | entries)
        return replace(self, pending_not_null_checks=self.pending_not_null_checks | entries)

    def with_not_null_columns(self, columns: Iterable[tuple[str, str]]) -> Catalog:
        """This catalog plus columns known to be NOT NULL: ``(table, column)``."""
        return replace(self, not_null_columns=self.not_null_columns | {(_key(t), c) for t, c in columns})

    def with_foreign_keys(self, keys: Iterable[ForeignKey]) -> Catalog:
        """This catalog plus foreign keys."""
        return replace(self, foreign_keys=self.foreign_keys + tuple(keys))

    def with_indexes(self, indexes: Mapping[str, str], columns: Mapping[str, tuple[str, ...]] | None = None,
                     reads: Mapping[str, tuple[str, ...]] | None = None,
                     collations: Mapping[str, tuple[tuple[str, str], ...]] | None = None) -> Catalog:
        """This catalog plus ``{index name: table}`` and, when known, ``{index name: (column, ...)}`` (its
        keys), for indexes with expressions or a WHERE, ``{index name: (column, ...)}`` (every column it
        reads), and ``{index name: ((column, collation), ...)}`` of keys with a collation of their own."""
        merged = dict(self.indexes)
        merged.update({_key(i): t for i, t in indexes.items()})
        merged_columns = dict(self.index_columns)
        merged_columns.update({_key(i): tuple(c) for i, c in (columns or {}).items()})
        merged_reads = dict(self.index_reads)
        merged_reads.update({_key(i): tuple(c) for i, c in (reads or {}).items() if c})
        merged_collations = dict(self.index_collations)
        merged_collations.update({_key(i): tuple(c) for i, c in (collations or {}).items() if c})
        return replace(self, indexes=_frozen(merged), index_columns=_frozen(merged_columns),
                       index_reads=_frozen(merged_reads), index_collations=_frozen(merged_collations))

    def with_created_tables(self, tables: Iterable[str]) -> Catalog:
        """This catalog plus tables created earlier in the plan."""
        return replace(self, created_tables=self.created_tables | {_key(t) for t in tables})

    def with_database_read(self, tables: Iterable[str]) -> Catalog:
        """This catalog as read from a database that holds ``tables``: it knows every relation and type
        there, and every index, constraint, foreign key, partition and view of those tables."""
        return replace(self, from_database=True, described_tables=self.described_tables | {_key(t) for t in tables})

    def with_timezone(self, timezone: str | None) -> Catalog:
        """This catalog with the session TimeZone (Django sets ``UTC`` when ``USE_TZ = True``)."""
        return replace(self, timezone=timezone)

    def with_relations(self, relkinds: Mapping[str, str]) -> Catalog:
        """This catalog plus ``{relation: kind}``, kind as :class:`~migration_guard.model.RelationLock` names it."""
        merged = dict(self.relkinds)
        merged.update({_key(r): k for r, k in relkinds.items()})
        return replace(self, relkinds=_frozen(merged))

    def with_children(self, parent: str, children: Iterable[str], default: str | None = None) -> Catalog:
        """This catalog plus the partitions (or inheritance children) of ``parent``, and its DEFAULT partition."""
        merged = dict(self.children)
        merged[_key(parent)] = tuple(dict.fromkeys((*merged.get(_key(parent), ()), *children)))
        defaults = dict(self.default_partitions)
        if default:
            defaults[_key(parent)] = default
        return replace(self, children=_frozen(merged), default_partitions=_frozen(defaults))

    def with_unique_constraints(self, constraints: Mapping[tuple[str, str], tuple[str, ...]]) -> Catalog:
        """This catalog plus ``{(table, name): columns}`` of PRIMARY KEY and UNIQUE constraints."""
        merged = dict(self.unique_constraints)
        merged.update({(_key(t), n): tuple(c) for (t, n), c in constraints.items()})
        return replace(self, unique_constraints=_frozen(merged))

    def with_checks(self, checks: Mapping[tuple[str, str], tuple[str, bool]]) -> Catalog:
        """This catalog plus ``{(table, name): (expression, validated)}`` of CHECK constraints."""
        merged = dict(self.checks)
        merged.update({(_key(t), n): v for (t, n), v in checks.items()})
        return replace(self, checks=_frozen(merged))

    def with_view_tables(self, views: Mapping[str, Iterable[str]]) -> Catalog:
        """This catalog plus ``{view: relations it reads}``."""
        merged = dict(self.view_tables)
        merged.update({_key(v): tuple(t) for v, t in views.items()})
        return replace(self, view_tables=_frozen(merged))

    def with_view_columns(self, views: Mapping[str, Iterable[tuple[str, str]]]) -> Catalog:
        """This catalog plus ``{view: ((table, column), ...)}``, the columns each view reads."""
        merged = dict(self.view_columns)
        merged.update({_key(v): tuple((_key(t), c) for t, c in cols) for v, cols in views.items()})
        return replace(self, view_columns=_frozen(merged))

    def with_invalid_indexes(self, indexes: Iterable[str]) -> Catalog:
        """This catalog plus indexes that are INVALID (``pg_index.indisvalid`` false)."""
        return replace(self, invalid_indexes=self.invalid_indexes | {_key(i) for i in indexes})

    def with_types(self, types: Mapping[str, bool]) -> Catalog:
        """This catalog plus ``{user-defined type: whether it is a domain with constraints}``."""
        merged = dict(self.types)
        merged.update({_key(t): bool(c) for t, c in types.items()})
        return replace(self, types=_frozen(merged))

    # -- questions ------------------------------------------------------------------------------
    def knows_table(self, table: str) -> bool:
        """Whether the catalog knows every index, constraint, foreign key, partition and view of ``table``
        (read from a database that has it, or created in the plan). When it does not, a lookup that finds
        none says nothing."""
        return _key(table) in self.described_tables

    def knows_absent(self, relation: str) -> bool:
        """Whether ``relation`` is known not to exist (the catalog was read from a database without it, and
        the plan did not create it)."""
        return self.from_database and _key(relation) not in self.relkinds and _key(relation) not in self.described_tables

    def is_invalid_index(self, index: str) -> bool:
        """Whether ``index`` exists and is INVALID."""
        return _key(index) in self.invalid_indexes and _key(index) in self.indexes

    def invalid_indexes_on(self, table: str) -> tuple[str, ...]:
        """The INVALID indexes of ``table``."""
        return tuple(sorted(i for i in self.invalid_indexes if _key(self.indexes.get(i, "")) == _key(table)))

    def views_using_column(self, table: str, column: str) -> tuple[str, ...]:
        """Views (and materialized views) that read ``table.column``, and the views that read those, in order."""
        found = [v for v, cols in sorted(self.view_columns.items()) if (_key(table), column) in cols]
        for view in found:
            found.extend(v for v, rels in sorted(self.view_tables.items())
                         if _key(view) in {_key(r) for r in rels} and v not in found)
        return tuple(found)

    def relkind(self, relation: str) -> str | None:
        """What ``relation`` is ("table", "partitioned table", "view", ...), if known."""
        return self.relkinds.get(_key(relation))

    def children_of(self, parent: str) -> tuple[str, ...]:
        """The direct partitions (or inheritance children) of ``parent``."""
        return self.children.get(_key(parent), ())

    def descendants(self, parent: str) -> tuple[str, ...]:
        """Every partition (or child) below ``parent``, depth first."""
        found: list[str] = []
        for child in self.children_of(parent):
            if child not in found:
                found.append(child)
                found.extend(d for d in self.descendants(child) if d not in found)
        return tuple(found)

    def parent_of(self, child: str) -> str | None:
        """The parent whose partition (or inheritance child) ``child`` is, if known."""
        for parent, children in sorted(self.children.items()):
            if _key(child) in {_key(c) for c in children}:
                return parent
        return None

    def default_partition(self, parent: str) -> str | None:
        """The DEFAULT partition of ``parent``, if it has one."""
        return self.default_partitions.get(_key(parent))

    def unique_constraint(self, table: str, name: str) -> tuple[str, ...] | None:
        """The columns of the PRIMARY KEY or UNIQUE constraint ``name`` of ``table``, if known."""
        return self.unique_constraints.get((_key(table), name))

    def unique_constraints_on(self, table: str) -> dict[str, tuple[str, ...]]:
        """``{name: columns}`` of the PRIMARY KEY and UNIQUE constraints of ``table`` known (do not change it)."""
        return _by_table(self, "uniques", table)  # type: ignore[return-value]

    def primary_key(self, table: str) -> tuple[str, ...] | None:
        """The columns of ``table``'s primary key, if known (the first constraint named ``..._pkey``)."""
        constraints = self.unique_constraints_on(table)
        named = sorted(name for name in constraints if name.endswith("_pkey"))
        return constraints[named[0]] if named else None

    def checks_on(self, table: str) -> dict[str, tuple[str, bool]]:
        """``{name: (expression, validated)}`` of the CHECK constraints of ``table`` known (do not change it)."""
        return _by_table(self, "check_exprs", table)  # type: ignore[return-value]

    def tables_of_view(self, view: str) -> tuple[str, ...]:
        """The relations a view reads, if known."""
        return self.view_tables.get(_key(view), ())

    def columns_of_type(self, type_name: str) -> tuple[tuple[str, str], ...]:
        """``(table, column)`` pairs whose type is ``type_name`` (an enum, a domain, ...)."""
        bare = type_name.split(".")[-1]
        return tuple(sorted(
            key for key, type_ in self.column_types.items()
            if type_.split("(")[0].split(".")[-1].strip('"').removesuffix("[]") == bare
        ))

    def is_created(self, table: str) -> bool:
        """Whether ``table`` was created earlier in the plan."""
        return _key(table) in self.created_tables

    def column_type(self, table: str, column: str) -> str | None:
        """The known type of ``table.column``, or ``None``."""
        return self.column_types.get((_key(table), column))

    def proves_not_null(self, table: str, column: str) -> str | None:
        """The name of a validated CHECK that proves ``table.column`` IS NOT NULL, if one is known."""
        for t, c, name in sorted(self.not_null_checks):
            if t == _key(table) and c == column:
                return name
        return None

    def is_not_null(self, table: str, column: str) -> bool:
        """Whether ``table.column`` is known to be NOT NULL."""
        return (_key(table), column) in self.not_null_columns

    def foreign_keys_from(self, table: str, column: str | None = None) -> tuple[ForeignKey, ...]:
        """Foreign keys held by ``table`` (only those using ``column`` when given)."""
        held = self._foreign_key_index().by_table.get(_key(table), {}).values()
        return tuple(fk for fk in held if column is None or column in fk.columns)

    def foreign_keys_to(self, table: str) -> tuple[ForeignKey, ...]:
        """Foreign keys of other tables that reference ``table``."""
        return tuple(self._foreign_key_index().by_referenced.get(_key(table), {}).values())

    def _foreign_key_index(self) -> _ForeignKeys:
        """The foreign keys by table and by referenced table, in foreign_keys' order.

        Built once from a catalog given its keys; :meth:`_Mutable.freeze` hands it on, updated."""
        index = self.__dict__.get("_fk_index")
        if index is None:
            index = _ForeignKeys(self.foreign_keys)
            object.__setattr__(self, "_fk_index", index)
        return index

    def foreign_key_named(self, table: str, name: str) -> ForeignKey | None:
        """The foreign key ``name`` of ``table``, if known."""
        for fk in self.foreign_keys_from(table):
            if fk.name == name:
                return fk
        return None

    def index_table(self, index: str) -> str | None:
        """The table ``index`` is on, if known."""
        return self.indexes.get(_key(index))

    def key_collation(self, index: str, column: str) -> str | None:
        """The collation of ``index``'s key on ``column`` when it has one of its own (None: the column's)."""
        return dict(self.index_collations.get(_key(index), ())).get(column)

    def indexes_on(self, table: str, column: str) -> tuple[str, ...]:
        """Known indexes of ``table`` that include ``column``: as a key, in an expression or in their WHERE."""
        return tuple(sorted(
            index for index, owner in self.indexes.items()
            if _key(owner) == _key(table) and (column in self.index_columns.get(index, ())
                                               or column in self.index_reads.get(index, ()))
        ))

    @property
    def timezone_is_utc(self) -> bool:
        """Whether the session TimeZone is known to be UTC (offset zero)."""
        return (self.timezone or "").upper() in {"UTC", "ETC/UTC", "GMT", "ETC/GMT", "Z", "ZULU", "UCT"}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalog):
            return NotImplemented
        return self._state() == other._state()

    def __hash__(self) -> int:
        return hash(self._state())

    def _state(self) -> tuple:
        return (
            self.created_tables, self.from_database, self.described_tables, frozenset(self.column_types.items()),
            self.not_null_checks, self.pending_not_null_checks, self.not_null_columns, frozenset(self.foreign_keys),
            frozenset(self.indexes.items()), frozenset(self.index_columns.items()),
            frozenset(self.index_reads.items()), frozenset(self.index_collations.items()), self.timezone,
            frozenset(self.relkinds.items()), frozenset(self.children.items()),
            frozenset(self.default_partitions.items()), frozenset(self.unique_constraints.items()),
            frozenset(self.view_tables.items()), frozenset(self.checks.items()),
            frozenset(self.view_columns.items()), self.invalid_indexes, frozenset(self.types.items()),
        )


def advance(catalog: Catalog, effects: Effects, *, consume: bool = False) -> Catalog:
    """The catalog after a statement with these ``effects`` ran. Pure: ``catalog`` is unchanged.

    ``consume=True`` is for a caller that drops ``catalog`` for the result and never reads it
    again (the pipeline's walk): the dict parts that ``catalog`` alone holds (made by an earlier
    ``advance``) are then updated in place instead of copied, so a statement that adds one index
    does not copy every index known. ``catalog`` must not be used afterwards."""
    state = _Mutable(catalog, consume=consume)
    for action in effects.actions:
        state.apply(action)
    return state.freeze()


# _Mutable attribute -> (Catalog field, how to make a scratch copy of it)
_THAW = {
    "created": ("created_tables", set),
    "described": ("described_tables", set),
    "types": ("column_types", dict),
    "checks": ("not_null_checks", set),
    "pending": ("pending_not_null_checks", set),
    "not_null": ("not_null_columns", set),
    "fks": ("foreign_keys", None),  # thawed from the catalog's _ForeignKeys index (see _Mutable.__getattr__)
    "indexes": ("indexes", dict),
    "index_columns": ("index_columns", dict),
    "index_reads": ("index_reads", dict),
    "collated": ("index_collations", dict),
    "relkinds": ("relkinds", dict),
    "children": ("children", dict),
    "defaults": ("default_partitions", dict),
    "uniques": ("unique_constraints", dict),
    "views": ("view_tables", dict),
    "check_exprs": ("checks", dict),
    "invalid": ("invalid_indexes", set),
    "user_types": ("types", dict),
}
# _Mutable attribute -> the set of (table, column, constraint name) it groups by (table, constraint name),
# so that VALIDATE / DROP CONSTRAINT find their entries without a scan
_GROUPED = {"checks_named": "checks", "pending_named": "pending"}


class _Mutable:
    """A scratch copy of a catalog that :func:`advance` updates action by action.

    Copy on first use: a part of the catalog is copied only when an action reads or writes it,
    and :meth:`freeze` hands the untouched parts on as they are. Copying all of it at every
    statement made a plan's walk quadratic in its length. For the same reason an action changes
    only what it touches (no pass over every index or key to find stale ones)."""

    def __init__(self, catalog: Catalog, consume: bool = False):
        self._catalog = catalog
        self.timezone = catalog.timezone
        # Parts that only ``catalog`` holds (see advance(consume=True)): thawed without a copy.
        self._owned = getattr(catalog, "_owned", {}) if consume else {}

    def __getattr__(self, name: str):  # only for attributes not set yet
        value = self._owned.get(name)
        if name in _GROUPED:
            if value is None:
                value = {}
                for entry in self._current(_GROUPED[name]):
                    value.setdefault((entry[0], entry[2]), set()).add(entry)
        elif name not in _THAW:
            raise AttributeError(name)
        elif value is None:
            if name == "fks":
                value = self._catalog._foreign_key_index().copy()
            else:
                field_name, thaw = _THAW[name]
                value = thaw(getattr(self._catalog, field_name))
        setattr(self, name, value)
        return value

    def freeze(self) -> Catalog:
        catalog = self._catalog
        touched = self.__dict__
        if (len(touched) == 3 and self.timezone == catalog.timezone  # nothing thawed: nothing changed
                and getattr(catalog, "_normalised", False)):
            return catalog
        if not getattr(catalog, "_normalised", False):
            # A catalog not made by freeze() may have stale index columns and empty children; later
            # steps keep them clean as they go.
            indexes, index_columns = self.indexes, self.index_columns
            for stale in [i for i in index_columns if i not in indexes]:
                del index_columns[stale]
            index_reads = self.index_reads
            for stale in [i for i in index_reads if i not in indexes]:
                del index_reads[stale]
            if self._current("collated"):
                for stale in [i for i in self.collated if i not in indexes]:
                    del self.collated[stale]
        if "children" in touched or not getattr(catalog, "_normalised", False):
            children = self.children
            for empty in [p for p, c in children.items() if not c]:
                del children[empty]
        touched = {k: v for k, v in self.__dict__.items() if k in _THAW or k in _GROUPED}

        def part(name: str, make):
            return make(touched[name]) if name in touched else getattr(catalog, _THAW[name][0])

        frozen = Catalog(
            created_tables=part("created", frozenset),
            from_database=catalog.from_database,
            described_tables=part("described", frozenset),
            column_types=part("types", MappingProxyType),
            not_null_checks=part("checks", frozenset),
            pending_not_null_checks=part("pending", frozenset),
            not_null_columns=part("not_null", frozenset),
            # None: made from the _ForeignKeys on first read (untouched: as the catalog has it, made or not)
            foreign_keys=None if "fks" in touched else catalog.__dict__["_foreign_keys"],
            indexes=part("indexes", MappingProxyType),
            index_columns=part("index_columns", MappingProxyType),
            index_reads=part("index_reads", MappingProxyType),
            index_collations=part("collated", MappingProxyType),
            timezone=self.timezone,
            relkinds=part("relkinds", MappingProxyType),
            children=part("children", MappingProxyType),
            default_partitions=part("defaults", MappingProxyType),
            unique_constraints=part("uniques", MappingProxyType),
            view_tables=part("views", MappingProxyType),
            checks=part("check_exprs", MappingProxyType),
            view_columns=catalog.view_columns,
            invalid_indexes=part("invalid", frozenset),
            types=part("user_types", MappingProxyType),
        )
        object.__setattr__(frozen, "_normalised", True)
        if "fks" in touched:
            object.__setattr__(frozen, "_fk_index", touched["fks"])
        elif "_fk_index" in catalog.__dict__:
            object.__setattr__(frozen, "_fk_index", catalog.__dict__["_fk_index"])
        for part_name, (_field, attribute) in _BY_TABLE.items():
            grouped = catalog.__dict__.get(attribute)
            changes = self.__dict__.get(f"_changed_{part_name}")
            if grouped is not None:
                object.__setattr__(frozen, attribute, _regrouped(grouped, changes) if changes else grouped)
        # The parts of this step are held by ``frozen`` alone (behind read-only proxies, or copied
        # into frozensets); consumed ones pass on with the untouched parts (their old holder is
        # dropped by the caller). A grouping passes on only while it matches its set.
        owned = {name: value for name, value in self._owned.items() if name not in touched}
        owned.update(touched)
        for grouped, source in _GROUPED.items():
            if source in touched and grouped not in touched:
                owned.pop(grouped, None)
        object.__setattr__(frozen, "_owned", owned)
        return frozen

    def _current(self, name: str):
        """Part ``name`` as it is now, without thawing it."""
        for held in (self.__dict__, self._owned):
            if held.get(name) is not None:
                return held[name]
        if name == "fks":
            return self._catalog._foreign_key_index()
        return getattr(self._catalog, _THAW[name][0])

    def _drop_foreign_keys(self, table: str, dropped) -> None:
        """Drop the foreign keys held by ``table`` for which ``dropped(key)`` holds."""
        gone = [number for number, fk in self._current("fks").by_table.get(table, {}).items() if dropped(fk)]
        if gone:
            self.fks.remove(gone)

    def _add_named(self, part: str, entries: Iterable[tuple[str, str, str]]) -> None:
        """Add ``(table, column, name)`` entries to ``checks`` or ``pending``."""
        entries = set(entries)
        if not entries:
            return
        named = getattr(self, f"{part}_named")
        getattr(self, part).update(entries)
        for entry in entries:
            named.setdefault((entry[0], entry[2]), set()).add(entry)

    def _take_named(self, part: str, table: str, name: str | None) -> set[tuple[str, str, str]]:
        """Remove the entries of constraint ``name`` of ``table`` from ``checks`` or ``pending``; return them."""
        found = getattr(self, f"{part}_named").pop((table, name), set())
        if found:
            getattr(self, part).difference_update(found)
        return found

    def _set_keyed(self, part: str, table: str, name: str | None, value=_GONE) -> None:
        """Set (or with ``value`` _GONE remove) ``(table, name)`` of ``uniques`` or ``check_exprs``, and log it for
        the part's grouping by table; ``name`` None removes every entry of ``table``."""
        entries = getattr(self, part)
        if name is None:
            if any(key[0] == table for key in entries):
                setattr(self, part, {key: v for key, v in entries.items() if key[0] != table})
            else:
                return
        elif value is _GONE:
            if entries.pop((table, name), _GONE) is _GONE:
                return
        else:
            entries[(table, name)] = value
        self.__dict__.setdefault(f"_changed_{part}", []).append((table, name, value))

    def _regroup(self) -> None:
        """``checks`` and ``pending`` changed wholesale: their groupings are made again when next needed."""
        for grouped in _GROUPED:
            self.__dict__.pop(grouped, None)
            self._owned.pop(grouped, None)

    def _drop_index(self, index: str) -> None:
        self.indexes.pop(index, None)
        self.index_columns.pop(index, None)
        if index in self._current("index_reads"):
            del self.index_reads[index]
        if index in self._current("collated"):
            self.collated.pop(index)
        if index in self._current("invalid"):
            self.invalid.discard(index)

    def apply(self, action) -> None:
        kind, table, column, detail = action.kind, _key(action.table), action.column, action.detail
        if kind is ActionKind.CREATE_TABLE:
            self.created.add(table)
            self.described.add(table)  # every index and constraint it has comes from the plan
            for name, type_ in detail.get("columns", ()):
                self.types[(table, name)] = type_
            self.not_null.update((table, c) for c in detail.get("not_null_columns", ()))
            for fk in detail.get("foreign_keys", ()):
                self.fks.add(fk)
            self.relkinds[table] = detail.get("relkind", "table")
            for sequence in detail.get("sequences", ()):
                self.relkinds[_key(sequence)] = "sequence"
            for parent in detail.get("parents", ()):
                self.children[_key(parent)] = (*self.children.get(_key(parent), ()), table)
                if detail.get("default_partition"):
                    self.defaults[_key(parent)] = table
        elif kind is ActionKind.DROP_TABLE:
            self._forget_table(table)
        elif kind is ActionKind.OTHER and detail.get("sequences"):  # CREATE SEQUENCE
            for sequence in detail["sequences"]:
                self.relkinds[_key(sequence)] = "sequence"
        elif kind is ActionKind.OTHER and detail.get("attach"):
            self.children[table] = (*self.children.get(table, ()), detail["attach"])
            if detail.get("default_partition"):
                self.defaults[table] = detail["attach"]
        elif kind is ActionKind.OTHER and detail.get("detach"):
            self.children[table] = tuple(c for c in self.children.get(table, ()) if _key(c) != _key(detail["detach"]))
            if self.defaults.get(table) and _key(self.defaults[table]) == _key(detail["detach"]):
                del self.defaults[table]
        elif kind is ActionKind.RENAME_TABLE and detail.get("new_name"):
            self._rename_table(table, _key(detail["new_name"]))
        elif kind is ActionKind.ADD_COLUMN:
            if detail.get("type"):
                self.types[(table, column)] = detail["type"]
            if detail.get("not_null"):
                self.not_null.add((table, column))
            if detail.get("references"):
                self.fks.add(ForeignKey(table, (column,), detail["references"], detail.get("constraint_name"),
                                        deferred=bool(detail.get("deferred"))))
        elif kind is ActionKind.DROP_COLUMN:
            self.types.pop((table, column), None)
            self.not_null.discard((table, column))
            if any(c[:2] == (table, column) for c in self._current("checks")):
                self.checks = {c for c in self.checks if c[:2] != (table, column)}
                self._regroup()
            self._drop_foreign_keys(table, lambda fk: column in fk.columns)
            # PostgreSQL drops an index with its column (read as a key, in an expression or in its WHERE)
            reads = self._current("index_reads")
            for index in [i for i, t in self.indexes.items()
                          if _key(t) == table and (column in self.index_columns.get(i, ()) or column in reads.get(i, ()))]:
                self._drop_index(index)
        elif kind is ActionKind.RENAME_COLUMN and detail.get("new_name"):
            self._rename_column(table, column, detail["new_name"])
        elif kind is ActionKind.ALTER_COLUMN_TYPE and detail.get("new_type"):
            self.types[(table, column)] = detail["new_type"]
        elif kind is ActionKind.SET_NOT_NULL:
            self.not_null.add((table, column))
        elif kind is ActionKind.DROP_NOT_NULL:
            self.not_null.discard((table, column))
        elif kind is ActionKind.ADD_CONSTRAINT:
            self._add_constraint(table, detail)
        elif kind is ActionKind.VALIDATE_CONSTRAINT:
            name = detail.get("name")
            if (table, name) in self.check_exprs:
                self._set_keyed("check_exprs", table, name, (self.check_exprs[(table, name)][0], True))
            self._add_named("checks", self._take_named("pending", table, name))
        elif kind is ActionKind.DROP_CONSTRAINT:
            name = detail.get("name")
            self._take_named("checks", table, name)
            self._take_named("pending", table, name)
            self._drop_foreign_keys(table, lambda fk: fk.name == name)
            self._set_keyed("check_exprs", table, name)
            self._set_keyed("uniques", table, name)
        elif kind is ActionKind.CREATE_INDEX and detail.get("name"):
            if detail.get("if_not_exists") and _key(detail["name"]) in self.indexes:
                return  # builds nothing: the index there stays as it is (INVALID ones too)
            if _key(detail["name"]) in self._current("invalid"):
                self.invalid.discard(_key(detail["name"]))
            self.indexes[_key(detail["name"])] = table
            self.index_columns[_key(detail["name"])] = tuple(detail.get("columns", ()))
            if detail.get("reads"):
                self.index_reads[_key(detail["name"])] = tuple(detail["reads"])
            elif _key(detail["name"]) in self._current("index_reads"):
                del self.index_reads[_key(detail["name"])]
            own = tuple((c, k) for c, k in zip(detail.get("columns", ()), detail.get("collations", ())) if k)
            if own or _key(detail["name"]) in self._current("collated"):
                self.collated[_key(detail["name"])] = own
        elif kind is ActionKind.DROP_INDEX and detail.get("name"):
            self._drop_index(_key(detail["name"]))
        elif kind is ActionKind.RENAME_INDEX and detail.get("name") and detail.get("new_name"):
            owner = self.indexes.pop(_key(detail["name"]), None)
            columns = self.index_columns.pop(_key(detail["name"]), ())
            collated = self.collated.pop(_key(detail["name"]), ()) if _key(detail["name"]) in self._current(
                "collated") else ()
            if owner:
                self.indexes[_key(detail["new_name"])] = owner
                self.index_columns[_key(detail["new_name"])] = columns
                if collated:
                    self.collated[_key(detail["new_name"])] = collated
            if _key(detail["name"]) in self._current("index_reads"):
                reads = self.index_reads.pop(_key(detail["name"]))
                if owner:
                    self.index_reads[_key(detail["new_name"])] = reads
            if _key(detail["name"]) in self._current("invalid"):
                self.invalid.discard(_key(detail["name"]))
                self.invalid.add(_key(detail["new_name"]))
        elif kind is ActionKind.SET_SETTING and str(detail.get("name", "")).lower() == "timezone":
            self.timezone = detail.get("value")
        elif kind is ActionKind.OTHER and detail.get("user_type"):
            self.user_types[_key(detail["user_type"])] = bool(detail.get("constrained"))

    def _add_constraint(self, table: str, detail: Mapping) -> None:
        contype, name = detail.get("contype"), detail.get("name") or ""
        if contype == "check" and name and detail.get("expression"):
            self._set_keyed("check_exprs", table, name, (detail["expression"], not detail.get("not_valid")))
        if contype in ("unique", "primary_key") and name:
            self._set_keyed("uniques", table, name, tuple(detail.get("columns", ())))
        if contype == "check":
            entries = {(table, column, name) for column in detail.get("not_null_columns", ())}
            self._add_named("pending" if detail.get("not_valid") else "checks", entries)
        elif contype == "foreign_key" and detail.get("references"):
            self.fks.add(ForeignKey(table, tuple(detail.get("columns", ())), detail["references"], name or None,
                                    deferred=bool(detail.get("deferred"))))
        elif contype in ("primary_key", "not_null") and not detail.get("not_valid"):
            self.not_null.update((table, c) for c in detail.get("columns", ()))
        if contype in ("unique", "primary_key", "exclusion") and name and not detail.get("using_index"):
            self.indexes[_key(name)] = table
            self.index_columns[_key(name)] = tuple(detail.get("columns", ()))

    def _forget_table(self, table: str) -> None:
        self.created.discard(table)
        if table in self._current("described"):
            self.described.discard(table)
        self.types = {k: v for k, v in self.types.items() if k[0] != table}
        self.checks = {c for c in self.checks if c[0] != table}
        self.pending = {c for c in self.pending if c[0] != table}
        self._regroup()
        self.not_null = {c for c in self.not_null if c[0] != table}
        self.fks.remove(self.fks.touching(table))
        for index in [i for i, t in self.indexes.items() if _key(t) == table]:
            self._drop_index(index)
        self.relkinds.pop(table, None)
        for child in self.children.pop(table, ()):
            self._forget_table(_key(child))
        self.children = {p: tuple(c for c in cs if _key(c) != table) for p, cs in self.children.items()}
        self.defaults = {p: d for p, d in self.defaults.items() if _key(d) != table and p != table}
        self._set_keyed("uniques", table, None)

    def _rename_table(self, old: str, new: str) -> None:
        if old in self.created:
            self.created = (self.created - {old}) | {new}
        if old in self._current("described"):
            self.described = (self.described - {old}) | {new}
        if old in self._current("relkinds"):
            self.relkinds[new] = self.relkinds.pop(old)
        self.types = {((new if t == old else t), c): v for (t, c), v in self.types.items()}
        self.checks = {((new if t == old else t), c, n) for t, c, n in self.checks}
        self.pending = {((new if t == old else t), c, n) for t, c, n in self.pending}
        self._regroup()
        self.not_null = {((new if t == old else t), c) for t, c in self.not_null}
        self.fks.replace({
            number: ForeignKey(new if _key(fk.table) == old else fk.table, fk.columns,
                               new if _key(fk.referenced) == old else fk.referenced, fk.name, fk.referenced_columns,
                               fk.deferred)
            for number, fk in self.fks.touching(old).items()
        })
        self.indexes = {i: (new if _key(t) == old else t) for i, t in self.indexes.items()}

    def _rename_column(self, table: str, old: str, new: str) -> None:
        def renamed(t: str, c: str) -> str:
            return new if (t, c) == (table, old) else c

        self.types = {(t, renamed(t, c)): v for (t, c), v in self.types.items()}
        self.checks = {(t, renamed(t, c), n) for t, c, n in self.checks}
        self.pending = {(t, renamed(t, c), n) for t, c, n in self.pending}
        self._regroup()
        self.not_null = {(t, renamed(t, c)) for t, c in self.not_null}
        self.fks.replace({
            number: ForeignKey(fk.table, tuple(renamed(_key(fk.table), c) for c in fk.columns), fk.referenced, fk.name,
                               tuple(renamed(_key(fk.referenced), c) for c in fk.referenced_columns), fk.deferred)
            for number, fk in self.fks.touching(table).items()
        })
        self.index_columns = {
            i: tuple(renamed(_key(self.indexes.get(i, "")), c) for c in cols) for i, cols in self.index_columns.items()
        }
        if self._current("index_reads"):
            self.index_reads = {
                i: tuple(renamed(_key(self.indexes.get(i, "")), c) for c in cols) for i, cols in self.index_reads.items()
            }
        if self._current("collated"):
            self.collated = {i: tuple((renamed(_key(self.indexes.get(i, "")), c), k) for c, k in keys)
                             for i, keys in self.collated.items()}
