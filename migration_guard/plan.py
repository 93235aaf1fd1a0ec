"""Stage *plan* (edge): which migrations to lint, in the order ``migrate`` would apply them.

Five ways to choose:
- pending: the migrations not yet applied on a database (the release-pipeline gate);
- exactly given migrations, all unapplied (``safe_migrate``'s plan, which ``migrate``'s targets
  decide);
- named: ``app_label [migration_name]``;
- since a git ref: migrations whose files are new or changed since the merge base with that ref
  (the CI check);
- files: the migrations in the given files (the pre-commit hook).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.db.migrations.executor import MigrationExecutor

__all__ = ["Plan", "PlanError", "build_plan", "changed_files_since", "migration_path", "migrations_before"]

Node = tuple[str, str]


class PlanError(Exception):
    """The set of migrations to lint could not be worked out; the message says what to do."""


@dataclass(frozen=True)
class Plan:
    """The migrations to lint and everything that must run before them.

    ``full`` is every migration from an empty database up to the last linted one, in ``migrate``'s
    order; ``applied`` is the subset already applied on the database; ``lint`` the ones to lint.
    """

    full: tuple[Node, ...]
    applied: frozenset[Node]
    lint: tuple[Node, ...]

    @property
    def first_lint_position(self) -> int:
        """Index in ``full`` of the first migration to lint."""
        return self.full.index(self.lint[0]) if self.lint else len(self.full)


def migration_path(migration) -> str | None:
    """The file a migration was loaded from, or None (e.g. a squashed or generated one)."""
    module = sys.modules.get(type(migration).__module__)
    return getattr(module, "__file__", None)


def changed_files_since(ref: str, cwd: Path | None = None) -> set[Path]:
    """Absolute paths of files added or modified since the merge base of ``ref`` and HEAD,
    including uncommitted and untracked files."""

    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            raise PlanError("--since needs git, which is not installed") from exc
        if result.returncode != 0:
            raise PlanError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    try:
        top = Path(git("rev-parse", "--show-toplevel").strip())
    except PlanError:
        raise PlanError(
            f"--since {ref}: {cwd or Path.cwd()} is not inside a git checkout; run the command from one"
        ) from None
    try:
        base = git("merge-base", ref, "HEAD").strip()
    except PlanError as exc:
        raise PlanError(
            f"--since {ref}: {exc}. Fetch the ref first (for example `git fetch origin main`; "
            "shallow CI clones need `fetch-depth: 0`)"
        ) from None
    names = git("diff", "--name-only", "--diff-filter=AMR", base).splitlines()
    names += git("ls-files", "--others", "--exclude-standard").splitlines()
    return {(top / name).resolve() for name in names if name}


def build_plan(
    executor: MigrationExecutor,
    *,
    app_label: str | None = None,
    migration_name: str | None = None,
    since_files: set[Path] | None = None,
    files: Sequence[Path] | None = None,
    nodes: Sequence[Node] | None = None,
    include_applied: bool = False,
) -> Plan:
    """Choose the migrations to lint.

    With no selector: the unapplied ones. ``app_label``/``migration_name`` narrow to one app or
    one migration; ``since_files`` to the migrations in those files; ``files`` likewise, but every
    one of them must be a migration (a pre-commit hook's file names); ``nodes`` names them
    (``safe_migrate``: the plan it will apply). ``include_applied`` lets a
    named or since-selected migration be linted although the database has applied it (only
    sensible when rendering on a scratch database).
    """
    loader = executor.loader
    conflicts = loader.detect_conflicts()
    if conflicts:
        listing = "; ".join(f"{app}: {', '.join(sorted(names))}" for app, names in sorted(conflicts.items()))
        raise PlanError(f"conflicting migrations ({listing}); merge them with `makemigrations --merge` first")
    graph = loader.graph
    applied = frozenset(node for node in loader.applied_migrations if node in graph.nodes)

    if migration_name is not None:
        if app_label is None:
            raise PlanError("a migration name needs its app label")
        try:
            migration = loader.get_migration_by_prefix(app_label, migration_name)
        except KeyError:
            raise PlanError(f"no migration of app '{app_label}' matches '{migration_name}'") from None
        except Exception as exc:  # AmbiguityError
            raise PlanError(f"'{migration_name}' names more than one migration of '{app_label}': {exc}") from None
        wanted = {(migration.app_label, migration.name)}
    elif app_label is not None:
        if app_label not in loader.migrated_apps:
            raise PlanError(f"app '{app_label}' has no migrations (is it in INSTALLED_APPS?)")
        wanted = {node for node in graph.nodes if node[0] == app_label}
        if not include_applied:
            wanted -= applied
    elif since_files is not None:
        by_path = _resolved_paths(graph, since_files)
        wanted = {node for path, node in by_path.items() if path in since_files}
    elif files is not None:
        wanted = _migrations_in_files(graph, files)
    elif nodes is not None:
        unknown = sorted(f"{a}.{n}" for a, n in nodes if (a, n) not in graph.nodes)
        if unknown:
            raise PlanError(f"{', '.join(unknown)}: no such migration in the graph")
        wanted = set(nodes)
    else:
        wanted = {node for node in graph.nodes if node not in applied}

    if not include_applied:
        by_name = migration_name or since_files is not None or files is not None or nodes is not None
        already = sorted(node for node in wanted if node in applied and by_name)
        if already:
            names = ", ".join(f"{a}.{n}" for a, n in already)
            raise PlanError(
                f"{names} already applied on this database, so it cannot be rendered at the state "
                "before it here; add --scratch to lint it on a throwaway database"
            )
    needed = _with_ancestors(graph, wanted)
    full = tuple(node for node in _migrate_order(executor) if node in needed)
    lint = tuple(node for node in full if node in wanted)
    return Plan(full=full, applied=applied, lint=lint)


def _migrations_in_files(graph, files: Sequence[Path]) -> set[Node]:
    """The migrations loaded from ``files``; a file that holds none is an error (fail closed)."""
    resolved = {file: Path(file).resolve() for file in files}
    by_path = _resolved_paths(graph, set(resolved.values()))
    unknown = [str(file) for file, path in resolved.items() if path not in by_path]
    if unknown:
        raise PlanError(
            f"{', '.join(unknown)}: not a migration Django loads; check that the app is in INSTALLED_APPS "
            "and that the file is a migration (not __init__.py or a helper module)"
        )
    return {by_path[path] for path in resolved.values()}


def _resolved_paths(graph, paths: set[Path]) -> dict[Path, Node]:
    """The resolved file of each migration that can be one of ``paths`` (resolved too), to its node.
    Resolving costs a system call per folder of the path, for thousands of migrations: only the
    ones whose file has the name of one of ``paths``, or is a symbolic link, are resolved."""
    names = {path.name for path in paths}
    by_path = {}
    for node, migration in graph.nodes.items():
        path = migration_path(migration)
        if path and (os.path.basename(path) in names or os.path.islink(path)):
            by_path[Path(path).resolve()] = node
    return by_path


def _migrate_order(executor: MigrationExecutor) -> list[Node]:
    """Every migration, in the order ``migrate`` applies them to an empty database."""
    leaves = executor.loader.graph.leaf_nodes()
    return [(m.app_label, m.name) for m, _ in executor.migration_plan(leaves, clean_start=True)]


def _with_ancestors(graph, wanted: set[Node]) -> set[Node]:
    """``wanted`` and every migration they depend on, directly or not."""
    needed: set[Node] = set()
    stack = list(wanted)
    while stack:
        node = stack.pop()
        if node in needed:
            continue
        needed.add(node)
        stack.extend(parent.key for parent in graph.node_map[node].parents)
    return needed


def migrations_before(graph, lint: Sequence[Node]) -> frozenset[Node]:
    """Every migration that neither is in ``lint`` nor depends on one of them, directly or not: what a
    database that does not have the linted migrations yet can have (``--since``: the base ref's)."""
    after: set[Node] = set()
    stack = list(lint)
    while stack:
        node = stack.pop()
        if node in after:
            continue
        after.add(node)
        stack.extend(child.key for child in graph.node_map[node].children)
    return frozenset(node for node in graph.nodes if node not in after)
