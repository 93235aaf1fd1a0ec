"""Schema-per-tenant projects (edge: reads Django settings and the tenant table).

With django-tenants (and django-tenant-schemas before it) one database holds a ``public`` schema and
one schema per tenant. ``migrate_schemas`` runs every migration of the shared apps (``SHARED_APPS``)
in ``public``, with ``search_path`` ``public``, then every migration of the tenant apps
(``TENANT_APPS``) once in each tenant schema, one after the other, with ``search_path``
``<tenant>, public`` (plus ``PG_EXTRA_SEARCH_PATHS``); an app in both lists runs in all of them. The
package's router (``TenantSyncRouter``) skips an app's operations where it is not listed, and the
tenants are the rows of ``TENANT_MODEL``. Multi-type tenants (django-tenants' ``TENANT_TYPES``) list
the apps of each type, and the tenant row says its type.

So a statement of a tenant app's migration locks every tenant's copy of its table in turn, and the
copy that decides how long the lock lasts is the largest: :class:`TenantLayout` says, per app, where
its migrations run (:class:`~migration_guard.model.Runs`), for the sizes to take the largest copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from migration_guard.model import Runs
from migration_guard.stats import Snapshot

__all__ = ["TenantLayout", "TenantSchema", "detect_layout", "read_tenant_schemas", "tenants_from_snapshot"]

_LIST_APPS_ALWAYS = "django_cache"  # the router lets the cache table through everywhere


@dataclass(frozen=True)
class TenantSchema:
    """A tenant's schema and, for multi-type tenants, its type."""

    name: str
    type: str | None = None


@dataclass(frozen=True)
class TenantLayout:
    """How a schema-per-tenant project lays out its migrations on one database alias."""

    package: str  # "django-tenants", "django-tenant-schemas"
    tenant_table: str  # the tenant model's db_table
    type_column: str | None  # multi-type tenants: the column naming each tenant's type
    public: str = "public"
    extra: tuple[str, ...] = ()  # PG_EXTRA_SEARCH_PATHS: after public on every search_path
    # app labels migrated in public, and per tenant type (None: the one type of a single-type project)
    public_apps: frozenset[str] = frozenset()
    tenant_apps: dict[str | None, frozenset[str]] = field(default_factory=dict, hash=False)
    tenants: tuple[TenantSchema, ...] = ()  # in the order migrate_schemas takes them
    tenants_source: str = ""  # where the tenant list came from, for the report

    def with_tenants(self, tenants: tuple[TenantSchema, ...], source: str) -> TenantLayout:
        """This layout with its tenants known."""
        return replace(self, tenants=tenants, tenants_source=source)

    def tenant_schemas_of(self, app_label: str) -> tuple[TenantSchema, ...]:
        """The tenants whose schema runs ``app_label``'s migrations, in order."""
        return tuple(t for t in self.tenants if app_label in self._apps_of(t.type) or app_label == _LIST_APPS_ALWAYS)

    def _apps_of(self, tenant_type: str | None) -> frozenset[str]:
        if tenant_type in self.tenant_apps:
            return self.tenant_apps[tenant_type]
        if None in self.tenant_apps:
            return self.tenant_apps[None]
        # A tenant of a type the settings do not name (or types unknown: a snapshot): every type's apps,
        # so that nothing it might run is left out.
        return frozenset().union(*self.tenant_apps.values())

    def runs_in_public(self, app_label: str) -> bool:
        """Whether ``app_label``'s migrations run in the public schema."""
        return app_label in self.public_apps or app_label == _LIST_APPS_ALWAYS

    def runs(self, app_label: str) -> Runs:
        """Where ``app_label``'s migrations run: public and/or each tenant schema that has the app."""
        schemas = ((self.public,) if self.runs_in_public(app_label) else ()) + tuple(
            t.name for t in self.tenant_schemas_of(app_label))
        label = "tenant schemas" if not self.runs_in_public(app_label) else "schemas (public and the tenants')"
        return Runs(schemas, (self.public, *self.extra), label=label)

    def describe(self) -> str:
        """One line for the report."""
        count = len(self.tenants)
        return (f"{self.package}: shared apps' migrations run in {self.public}, tenant apps' in each of "
                f"{count} tenant schema{'' if count == 1 else 's'} ({self.tenants_source}), one after the other; "
                "a table's size is its largest copy's")


def detect_layout(connection) -> TenantLayout | None:
    """The tenant layout of the project for the Django connection ``connection``, or ``None`` when it is
    not a schema-per-tenant project (or the connection is not the tenants' database)."""
    from django.apps import apps
    from django.conf import settings

    tenant_model = getattr(settings, "TENANT_MODEL", None)
    if not tenant_model or not hasattr(connection, "set_schema") or not hasattr(connection, "set_schema_to_public"):
        return None
    package = "django-tenants" if type(connection).__module__.startswith("django_tenants") else (
        "django-tenant-schemas" if type(connection).__module__.startswith("tenant_schemas") else "schema-per-tenant")
    if connection.alias != getattr(settings, "TENANT_DB_ALIAS", "default"):
        return None
    model = apps.get_model(tenant_model)
    multi_type = bool(getattr(settings, "HAS_MULTI_TYPE_TENANTS", False))
    public = getattr(settings, "PUBLIC_SCHEMA_NAME", "public")
    if multi_type:
        types = getattr(settings, "TENANT_TYPES", {})
        public_apps = _labels(types.get(public, {}).get("APPS", ()))
        tenant_apps = {name: _labels(spec.get("APPS", ())) for name, spec in types.items() if name != public}
        field_name = getattr(settings, "MULTI_TYPE_DATABASE_FIELD", "")
        type_column = model._meta.get_field(field_name).column if field_name else None
    else:
        public_apps = _labels(getattr(settings, "SHARED_APPS", ()))
        tenant_apps = {None: _labels(getattr(settings, "TENANT_APPS", ()))}
        type_column = None
    return TenantLayout(
        package=package,
        tenant_table=model._meta.db_table,
        type_column=type_column,
        public=public,
        extra=tuple(getattr(settings, "PG_EXTRA_SEARCH_PATHS", ())),
        public_apps=public_apps,
        tenant_apps=tenant_apps,
    )


def _labels(names) -> frozenset[str]:
    """The app labels of the installed apps listed in ``names`` (app modules or AppConfig paths), as the
    packages' router matches them."""
    from django.apps import apps

    listed = set(names)
    return frozenset(config.label for config in apps.get_app_configs()
                     if config.name in listed or f"{type(config).__module__}.{type(config).__name__}" in listed)


def read_tenant_schemas(conn, layout: TenantLayout) -> tuple[tuple[TenantSchema, ...], list[str]]:
    """The tenants ``migrate_schemas`` would migrate (every row of the tenant table but public's) whose
    schema exists, and notes on the others. ``conn``: a psycopg connection; the read is one query, in a
    read-only transaction (a savepoint inside a caller's) that is rolled back."""
    from psycopg import sql

    columns = [sql.Identifier("schema_name")]
    if layout.type_column:
        columns.append(sql.Identifier(layout.type_column))
    query = sql.SQL("SELECT {columns}, EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = t.schema_name)"
                    " FROM {public}.{table} t WHERE t.schema_name <> {public_name} ORDER BY t.schema_name").format(
        columns=sql.SQL(", ").join(sql.SQL("t.") + c for c in columns),
        public=sql.Identifier(layout.public), table=sql.Identifier(layout.tenant_table),
        public_name=sql.Literal(layout.public))
    from psycopg import errors

    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SET LOCAL statement_timeout = 5000")
            rows = conn.execute(query).fetchall()
    except errors.UndefinedTable:  # the first deploy: the shared migration creating it is pending
        return (), [f"{layout.public}.{layout.tenant_table} does not exist yet: no tenant schemas"]
    tenants, missing = [], []
    for row in rows:
        name, tenant_type, exists = row[0], (row[1] if layout.type_column else None), row[-1]
        if exists:
            tenants.append(TenantSchema(name, tenant_type))
        else:
            missing.append(name)
    notes = [f"tenant schema {name} of {layout.tenant_table} does not exist: migrate_schemas will fail on it"
             for name in missing[:5]]
    if len(missing) > 5:
        notes.append(f"... and {len(missing) - 5} more tenants of {layout.tenant_table} without a schema")
    return tuple(tenants), notes


def tenants_from_snapshot(snapshot: Snapshot, layout: TenantLayout) -> tuple[TenantSchema, ...]:
    """The tenant schemas a snapshot shows: every schema with a table but public and the extra search
    paths (the snapshot does not say which rows the tenant table has; a schema that is not a tenant's
    only makes the sizes larger)."""
    skip = {layout.public, *layout.extra}
    return tuple(TenantSchema(name) for name in sorted({schema for schema, _ in snapshot.tables} - skip))
