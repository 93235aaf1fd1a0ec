"""The statement guard: every statement sent on the gate's Django connections while migration code
can run (loading the migration files, rendering them) passes through :class:`Guard`, installed
with Django's ``connection.execute_wrapper``. A statement it refuses is never sent: it raises
:class:`StatementRefused` in the code that sent it, and is recorded for a blocking finding (MG910,
MG911) naming the migration and the statement, even when that code catches the exception.

Two modes:

- ``read_only`` (the release gate's database, and every other alias in any mode): only reads go
  through: ``SELECT`` (no ``INTO``, no ``FOR UPDATE``/``SHARE``, no data-modifying ``WITH``, no
  function with effects outside the query such as ``set_config`` or ``pg_terminate_backend``),
  ``SHOW``, ``SET search_path`` (backends such as django-tenants set it for every cursor) and the
  savepoints of ``transaction.atomic``. Other ``SET``s, ``RESET``, ``COMMIT``, DDL
  and DML are refused; the gate's own settings pass through :meth:`Guard.trusted`. This is one
  of two layers: the session is also read-only from its start (``default_transaction_read_only``).
- ``scratch`` (the throwaway database of ``--scratch``): everything runs except what would reach
  outside that database: roles, databases (this one's own settings too), ``ALTER SYSTEM``,
  tablespaces, subscriptions, ``DROP/REASSIGN OWNED``, server files (``COPY`` to or from a file
  or program), and functions such as ``pg_terminate_backend``, ``dblink_exec`` or ``lo_export``.
  A ``DO`` block or function body naming any of these is refused too, but SQL built at run time
  inside one cannot be seen: lint untrusted migration code with ``--embedded``, on a server of
  its own.

Neither can stop migration code that opens a connection of its own (``psycopg.connect``): only
a role without write privileges makes "never writes" airtight against that.
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass

from migration_guard.redact import mask_sql

__all__ = ["READ_ONLY", "SCRATCH", "Guard", "Refusal", "StatementRefused", "check_statement"]

READ_ONLY = "read_only"
SCRATCH = "scratch"

# Functions whose effect reaches past the query and its transaction: other sessions, the server,
# its files, other servers. Refused in both modes.
_OUTSIDE_FUNCTIONS = frozenset({
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_rotate_logfile_old",
    "pg_switch_wal", "pg_promote", "pg_create_restore_point", "pg_backup_start", "pg_backup_stop",
    "pg_create_physical_replication_slot", "pg_create_logical_replication_slot", "pg_drop_replication_slot",
    "pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot", "pg_replication_slot_advance",
    "pg_replication_origin_create", "pg_replication_origin_drop", "pg_replication_origin_session_setup",
    "pg_replication_origin_advance", "pg_stat_reset_shared", "pg_stat_reset_slru",
    "pg_stat_reset_replication_slot", "pg_stat_reset_subscription_stats", "pg_wal_replay_pause",
    "pg_wal_replay_resume", "pg_log_backend_memory_contexts", "pg_file_write", "pg_file_rename",
    "pg_file_unlink", "pg_file_sync", "lo_import", "lo_export", "dblink", "dblink_exec", "dblink_connect",
    "dblink_connect_u", "dblink_send_query", "dblink_open", "dblink_fetch",
})
# ... and, on the target database, those that change the session or write.
_WRITING_FUNCTIONS = _OUTSIDE_FUNCTIONS | frozenset({
    "set_config", "nextval", "setval", "pg_notify", "lo_create", "lo_creat", "lo_unlink", "lo_from_bytea",
    "lo_put", "lo_open", "lowrite", "lo_truncate", "lo_truncate64", "pg_advisory_lock", "pg_advisory_lock_shared",
    "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared",
    "pg_stat_reset", "pg_stat_reset_single_table_counters", "pg_stat_reset_single_function_counters",
    "pg_stat_clear_snapshot", "pg_import_system_collations", "txid_current", "pg_current_xact_id",
})
# Cheap first look in scratch mode: a statement with none of these words is never cluster-wide
# (most of what migrate sends), so it is not parsed.
_CLUSTER_WORDS = re.compile(
    r"\b(role|user|group|database|system|tablespace|owned|subscription|parameter|copy|comment|label|do"
    r"|function|procedure|lo_import|lo_export)\b|pg_(terminate|cancel|reload|rotate|switch|promote|create"
    r"|drop|copy|replication|stat_reset|wal_replay|log_backend|file_|backup)|dblink",
    re.IGNORECASE)
# In a DO block or a function body (not parsed as statements: plpgsql), the forms that reach outside.
_CLUSTER_BODY = re.compile(
    r"\b(create|alter|drop)\s+(role|user|group|database|tablespace|subscription)\b|\balter\s+system\b"
    r"|\b(drop|reassign)\s+owned\b|\bgrant\s+set\s+on\s+parameter\b|\bcopy\b[^;]*\b(to|from)\s+(program\b|')"
    r"|\b(" + "|".join(sorted(_OUTSIDE_FUNCTIONS)) + r")\s*\(",
    re.IGNORECASE)
_PLACEHOLDER = re.compile(r"%%|%\(\w+\)s|%s")
# Session settings a read may depend on and that enable no write: database backends set them.
_HARMLESS_SETTINGS = frozenset({"search_path"})


class StatementRefused(Exception):
    """Raised in the code that sent a statement the guard refused (it was not sent)."""


@dataclass(frozen=True)
class Refusal:
    """A statement the guard refused: its SQL (placeholders, never parameters; credentials masked),
    why, the migration whose code sent it (None: while the migration files loaded) and the mode."""

    sql: str
    reason: str
    migration: str | None
    mode: str


class Guard:
    """An execute wrapper (see the module docstring); ``migration`` is set by the renderer."""

    def __init__(self, mode: str = READ_ONLY, *, parent: Guard | None = None):
        self.mode = mode
        self._parent = parent
        self._migration: str | None = None
        self._refused: list[Refusal] = []
        self._trusted = 0

    def companion(self, mode: str = READ_ONLY) -> Guard:
        """A guard for another connection, in its own mode, that records into this one (and so
        names the migration this one is told about)."""
        return Guard(mode, parent=self)

    @property
    def migration(self) -> str | None:
        """The migration whose code runs now (None: the migration files are loading)."""
        return self._parent.migration if self._parent is not None else self._migration

    @migration.setter
    def migration(self, label: str | None) -> None:
        self._migration = label

    @property
    def refused(self) -> list[Refusal]:
        """Every refusal not yet taken."""
        return self._parent.refused if self._parent is not None else self._refused

    def __call__(self, execute, sql, params, many, context):
        if not self._trusted:
            reason = check_statement(_classifiable(sql, params), self.mode)
            if reason is not None:
                shown = mask_sql(str(sql).strip())
                self.refused.append(Refusal(shown, reason, self.migration, self.mode))
                raise StatementRefused(f"migration_guard refused to send {shorten_sql(shown)}: {reason}")
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def trusted(self):
        """Let the gate's own statements through (its timeouts and READ ONLY settings)."""
        self._trusted += 1
        try:
            yield
        finally:
            self._trusted -= 1

    def take(self, migration: str | None = None) -> tuple[Refusal, ...]:
        """The refusals recorded for ``migration`` so far, removed from the list."""
        mine = tuple(r for r in self.refused if r.migration == migration)
        self.refused[:] = [r for r in self.refused if r.migration != migration]
        return mine


def _classifiable(sql, params) -> str:
    """The SQL to judge: placeholders (when there are parameters) become ``(NULL)``; the values
    never matter for what a statement is."""
    text = str(sql)
    if params is None:
        return text
    return _PLACEHOLDER.sub(lambda m: "%" if m.group(0) == "%%" else "(NULL)", text)


def shorten_sql(sql: str, limit: int = 200) -> str:
    """``sql`` on one line, cut to ``limit`` characters (for messages)."""
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@functools.lru_cache(maxsize=512)
def check_statement(sql: str, mode: str) -> str | None:
    """Why the guard refuses ``sql`` in ``mode`` (a phrase), or None when it may be sent."""
    if mode == SCRATCH and not _CLUSTER_WORDS.search(sql):
        return None
    import pglast
    from pglast.parser import ParseError

    try:
        statements = pglast.parse_sql(sql)
    except ParseError:
        # PostgreSQL's own parser would refuse it too; on the target nothing unknown is sent.
        return "it does not parse, so it cannot be shown to be a read" if mode == READ_ONLY else None
    except RecursionError:
        return "it is nested too deeply to check"
    for raw in statements:
        try:
            reason = _read_only_reason(raw.stmt) if mode == READ_ONLY else _cluster_reason(raw.stmt)
        except RecursionError:
            reason = "it is nested too deeply to check"
        if reason is not None:
            return reason
    return None


def _read_only_reason(node) -> str | None:
    from pglast import ast, enums

    if isinstance(node, ast.VariableShowStmt):
        return None
    if isinstance(node, ast.TransactionStmt):
        kinds = enums.TransactionStmtKind
        if node.kind in (kinds.TRANS_STMT_SAVEPOINT, kinds.TRANS_STMT_RELEASE, kinds.TRANS_STMT_ROLLBACK_TO):
            return None  # transaction.atomic's savepoints
        return "it ends or starts a transaction (the gate's session stays read-only)"
    if isinstance(node, ast.VariableSetStmt):
        if (node.name or "").lower() in _HARMLESS_SETTINGS:
            return None  # which schemas names resolve in (django-tenants sets it for every cursor)
        return "it changes a session setting (only the gate sets its own: read-only, timeouts)"
    if not isinstance(node, ast.SelectStmt):
        return f"it is not a read ({type(node).__name__}): the gate never writes to this database"
    for child in _walk(node):
        if isinstance(child, ast.SelectStmt) and (child.intoClause or child.lockingClause):
            return "SELECT INTO creates a table" if child.intoClause else "SELECT ... FOR UPDATE/SHARE locks rows"
        if isinstance(child, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
            return "a data-modifying WITH writes"
        if isinstance(child, ast.FuncCall) and _function_name(child) in _WRITING_FUNCTIONS:
            return f"{_function_name(child)}() has effects outside the query"
    return None


def _cluster_reason(node) -> str | None:
    from pglast import ast
    from pglast.enums import ObjectType

    shared = (ObjectType.OBJECT_DATABASE, ObjectType.OBJECT_ROLE, ObjectType.OBJECT_TABLESPACE,
              ObjectType.OBJECT_PARAMETER_ACL, ObjectType.OBJECT_SUBSCRIPTION)
    name = type(node).__name__
    if isinstance(node, ast.CreateRoleStmt | ast.AlterRoleStmt | ast.AlterRoleSetStmt | ast.DropRoleStmt
                  | ast.GrantRoleStmt):
        return "roles belong to the whole server, not to the scratch database"
    if isinstance(node, ast.CreatedbStmt | ast.DropdbStmt | ast.AlterDatabaseStmt | ast.AlterDatabaseSetStmt
                  | ast.AlterDatabaseRefreshCollStmt):
        return "databases are the server's (even the scratch database's own settings are not the migration's to change)"
    if isinstance(node, ast.AlterSystemStmt):
        return "ALTER SYSTEM changes the whole server's configuration"
    if isinstance(node, ast.CreateTableSpaceStmt | ast.DropTableSpaceStmt | ast.AlterTableSpaceOptionsStmt):
        return "tablespaces belong to the whole server"
    if isinstance(node, ast.CreateSubscriptionStmt | ast.AlterSubscriptionStmt | ast.DropSubscriptionStmt):
        return "a subscription connects to another server"
    if isinstance(node, ast.DropOwnedStmt | ast.ReassignOwnedStmt):
        return f"{'DROP' if isinstance(node, ast.DropOwnedStmt) else 'REASSIGN'} OWNED also changes shared objects"
    if isinstance(node, ast.RenameStmt) and node.renameType in shared:
        return "it renames an object shared by the whole server"
    kind = getattr(node, "objectType", None) or getattr(node, "objtype", None)
    if isinstance(node, ast.AlterOwnerStmt | ast.CommentStmt | ast.SecLabelStmt) and kind in shared:
        return f"{name} on an object shared by the whole server"
    if isinstance(node, ast.GrantStmt) and node.objtype in shared:
        return "it grants on an object shared by the whole server"
    if isinstance(node, ast.CopyStmt) and (node.filename or node.is_program):
        return "COPY to or from a server file or program reaches outside the database"
    if isinstance(node, ast.DoStmt | ast.CreateFunctionStmt):
        body = " ".join(str(getattr(arg, "arg", "")) for arg in (node.args if isinstance(node, ast.DoStmt)
                                                                 else node.options or ()))
        found = _CLUSTER_BODY.search(body)
        if found:
            return (f"its body names {found.group(0).strip()!r}, which reaches outside the scratch database "
                    "(lint untrusted code with --embedded)")
        return None
    for child in _walk(node):
        if isinstance(child, ast.FuncCall) and _function_name(child) in _OUTSIDE_FUNCTIONS:
            return f"{_function_name(child)}() reaches outside the scratch database"
    return None


def _function_name(call) -> str:
    return str(getattr(call.funcname[-1], "sval", "")).lower() if call.funcname else ""


def _walk(root):
    """Every node under ``root`` (included), without recursion: a deep tree cannot exhaust the stack."""
    from pglast import ast

    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple | list):
            stack.extend(node)
        elif isinstance(node, ast.Node):
            yield node
            for name in node.__slots__:
                value = getattr(node, name, None)
                if isinstance(value, ast.Node | tuple | list):
                    stack.append(value)
