"""Which table a name means: the gate resolves every relation as PostgreSQL will when migrate runs the
statement (the session's effective search_path, from the role, the database or Django's OPTIONS), on
a real server. A small ``public.inventory_item`` is what the SQL's unqualified name naively matches;
a large ``app.inventory_item`` is what PostgreSQL picks."""

from __future__ import annotations

import json

import pytest

from tests.test_lint_migrations import SMALL_THRESHOLD, _finding

LARGE, SMALL = 3000, 5  # SMALL_THRESHOLD: more than 1,000 rows is large


def _rows(project, table: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(project.dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {table} (name, quantity, created) "
                     f"SELECT 'item ' || g, g, now() FROM generate_series(1, {rows}) g")
        # Flush this session's counters first, or n_live_tup counts the rows again after ANALYZE (as
        # Project.fill_items does; without it the count came out doubled now and then).
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
        conn.execute(f"ANALYZE {table}")


@pytest.fixture
def two_schemas(project):
    """inventory at 0001 in public (SMALL rows), and a same-named copy in schema app (LARGE rows)."""
    project.migrate("0001")
    project.config(SMALL_THRESHOLD)
    project.sql("CREATE SCHEMA app; CREATE TABLE app.inventory_item (LIKE public.inventory_item INCLUDING ALL)")
    _rows(project, "public.inventory_item", SMALL)
    _rows(project, "app.inventory_item", LARGE)
    return project


def _deploy_role(project) -> str:
    """A login role (roles are server-wide: one per test database) whose search_path is app, public."""
    role = f"deploy_{project.dbname}"
    project.sql(f"CREATE ROLE {role} LOGIN SUPERUSER; ALTER ROLE {role} SET search_path = app, public")
    return role


def _index_finding(run):
    assert run.code in (0, 1), run.err
    [finding] = _finding(run, "MG002")
    return finding


def test_the_naive_match_is_small(two_schemas):
    # The control: on the default search_path the unqualified name is public's small table.
    finding = _index_finding(two_schemas.lint("inventory", "0002", "--format", "json"))
    assert (finding["rows"], finding["schema"], finding["severity"]) == (SMALL, "public", "warning")


def test_a_role_search_path_makes_the_name_mean_the_large_table(two_schemas):
    role = _deploy_role(two_schemas)
    run = two_schemas.lint("inventory", "0002", "--format", "json", env={"FIXTURE_DB_USER": role})
    assert run.code == 1, run.out + run.err
    finding = _index_finding(run)
    assert (finding["rows"], finding["schema"], finding["blocking"]) == (LARGE, "app", True)
    [database] = run.json()["databases"]
    assert (database["search_path"], database["search_path_source"]) == (["app", "public"], "the session's")
    text = two_schemas.lint("inventory", "0002", env={"FIXTURE_DB_USER": role}).out
    assert "table   inventory_item (3,000 rows" in text and ") in schema app\n" in text
    assert "search_path: app, public (the session's)" in text


def test_a_database_search_path_with_a_missing_schema_and_user(two_schemas):
    # "$user" names no schema for postgres, nosuch does not exist: PostgreSQL skips both.
    two_schemas.sql(f'ALTER DATABASE "{two_schemas.dbname}" SET search_path = "$user", nosuch, app, public')
    finding = _index_finding(two_schemas.lint("inventory", "0002", "--format", "json"))
    assert (finding["rows"], finding["schema"], finding["blocking"]) == (LARGE, "app", True)


def test_the_search_path_in_django_options(two_schemas):
    options = json.dumps({"options": "-c search_path=app,public"})
    run = two_schemas.lint("inventory", "0002", "--format", "json", env={"FIXTURE_DB_OPTIONS": options})
    assert run.code == 1, run.out + run.err
    assert _index_finding(run)["schema"] == "app"


def test_assume_role_makes_user_the_assumed_role(two_schemas):
    # Django's OPTIONS["assume_role"] runs SET ROLE: "$user" then stands for that role, whose schema
    # is the one of its name (and whose own ALTER ROLE settings do not apply: only the login role's do).
    role = f"owner_{two_schemas.dbname}"
    two_schemas.sql(f"CREATE ROLE {role} SUPERUSER; ALTER SCHEMA app RENAME TO {role}")
    run = two_schemas.lint("inventory", "0002", "--format", "json",
                           env={"FIXTURE_DB_OPTIONS": json.dumps({"assume_role": role})})
    assert run.code == 1, run.out + run.err
    assert _index_finding(run)["schema"] == role


def test_the_configuration_names_migrates_search_path(two_schemas):
    # The gate reads as another role than migrate's: the configuration says what migrate will see.
    two_schemas.config(SMALL_THRESHOLD + 'search_path = ["app", "public"]\n')
    run = two_schemas.lint("inventory", "0002", "--format", "json")
    assert run.code == 1 and _index_finding(run)["schema"] == "app"
    assert run.json()["databases"][0]["search_path_source"] == "from the configuration"
    two_schemas.config(SMALL_THRESHOLD + 'search_path = ["$user", "public"]\n')
    bad = two_schemas.lint("inventory", "0002")
    assert bad.code == 2 and "name the schema that $user stands for" in bad.err


def test_a_snapshot_keeps_the_dumping_sessions_search_path(two_schemas, tmp_path):
    role = _deploy_role(two_schemas)
    path = tmp_path / "prod-stats.json"
    dsn = two_schemas.dsn.replace("user=postgres", f"user={role}")
    dump = two_schemas.cli("stats", "dump", "--dsn", dsn, "--output", str(path))
    assert dump.code == 0, dump.err
    document = json.loads(path.read_text())
    assert document["schema_version"] == 2 and document["search_path"] == ["app", "public"]
    assert document["tables"]["app.inventory_item"]["rows"] == LARGE
    assert document["tables"]["public.inventory_item"]["rows"] == SMALL
    # CI: no production access, the migration is new, the size comes from the snapshot.
    two_schemas.migrate("0002")
    run = two_schemas.lint("inventory", "0002", "--files",
                           str(two_schemas.root / "inventory/migrations/0002_item_created_idx.py"))
    assert run.code == 2  # --files names the migrations itself
    run = two_schemas.lint("--files", str(two_schemas.root / "inventory/migrations/0002_item_created_idx.py"),
                           "--stats", str(path), "--format", "json")
    assert run.code == 1, run.out + run.err
    finding = _index_finding(run)
    assert (finding["rows"], finding["schema"]) == (LARGE, "app")
    assert run.json()["databases"][0]["search_path_source"] == "the snapshot's"


def test_an_old_snapshot_is_ambiguous_where_it_must_be(two_schemas, tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({
        "schema_version": 1, "pg_version": 18, "server_version_num": None, "taken_at": "2099-01-01T00:00:00+00:00",
        "database": "prod", "tables": {"inventory_item": {"rows": SMALL, "total_bytes": 1},
                                       "app.inventory_item": {"rows": SMALL, "total_bytes": 1}}}))
    run = two_schemas.lint("--files", str(two_schemas.root / "inventory/migrations/0002_item_created_idx.py"),
                           "--stats", str(path), "--format", "json")
    assert run.code == 1, run.out + run.err
    finding = _index_finding(run)
    assert (finding["rows"], finding["size_source"], finding["blocking"]) == (None, "ambiguous", True)
    [note] = [n for n in run.json()["notes"] if "ambiguous" in n or "search_path is not known" in n]
    assert '"inventory_item" is a table in schemas app, public' in note


def _explain(project, *args):
    run = project.cli("explain", "--format", "json", *args)
    assert run.code in (0, 1), run.err
    [finding] = run.json()["statements"][0]["findings"]
    return finding["rows"], finding["schema"]


def test_explain_resolves_the_same_way(two_schemas, tmp_path):
    # explain's threshold is the default (1,000,000 rows): what matters here is which table it measured.
    sql = tmp_path / "index.sql"
    sql.write_text("CREATE INDEX item_name_idx ON inventory_item (name);\n")
    assert _explain(two_schemas, "--dsn", two_schemas.dsn, str(sql)) == (SMALL, "public")
    assert _explain(two_schemas, "--dsn", two_schemas.dsn, "--search-path", "app, public", str(sql)) == (LARGE, "app")
    role = _deploy_role(two_schemas)
    assert _explain(two_schemas, "--dsn", two_schemas.dsn.replace("user=postgres", f"user={role}"), str(sql)) == (
        LARGE, "app")
    snapshot = tmp_path / "s.json"
    assert two_schemas.cli("stats", "dump", "--dsn", two_schemas.dsn, "-o", str(snapshot)).code == 0
    assert _explain(two_schemas, "--stats", str(snapshot), str(sql)) == (SMALL, "public")
    assert _explain(two_schemas, "--stats", str(snapshot), "--search-path", "app,public", str(sql)) == (LARGE, "app")
    text = two_schemas.cli("explain", "--stats", str(snapshot), "--search-path", "app,public", str(sql)).out
    assert "[3,000 rows" in text and "in schema app]" in text
    bad = two_schemas.cli("explain", "--search-path", '"$user", public', str(sql))
    assert bad.code == 2 and "$user" in bad.err


def test_preflight_looks_at_the_table_the_name_resolves_to(two_schemas):
    import psycopg

    role = _deploy_role(two_schemas)
    two_schemas.config(SMALL_THRESHOLD + "preflight_max_age_seconds = 0\n")
    env = {"FIXTURE_DB_USER": role}
    idle = psycopg.connect(two_schemas.dsn, application_name="public-report")
    try:
        idle.execute("BEGIN")
        idle.execute("UPDATE public.inventory_item SET quantity = 0 WHERE id = 1")  # not the table migrate touches
        assert _finding(two_schemas.lint("inventory", "0002", "--format", "json", env=env), "MG009") == []
    finally:
        idle.close()
    idle = psycopg.connect(two_schemas.dsn, application_name="app-report")
    try:
        idle.execute("BEGIN")
        idle.execute("UPDATE app.inventory_item SET quantity = 0 WHERE id = 1")
        [finding] = _finding(two_schemas.lint("inventory", "0002", "--format", "json", env=env), "MG009")
    finally:
        idle.close()
    assert finding["table"] == "app.inventory_item" and "app-report" in finding["message"]
