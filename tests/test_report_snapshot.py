"""The exact text a user reads, as a snapshot: review a diff of it like code.

Regenerate after an intended change with ``UPDATE_SNAPSHOTS=1 make test`` and read the diff."""

from __future__ import annotations

import os
import re
from pathlib import Path

SNAPSHOTS = Path(__file__).parent / "snapshots"


def normalise(text: str) -> str:
    """Blank out what varies between runs and servers: byte sizes and the server's major version."""
    text = re.sub(r"(\d[\d,]* rows), [\d.]+ [kMG]?B", r"\1, <bytes>", text)
    return re.sub(r"PostgreSQL \d+ \(the server's own version\)", "PostgreSQL <n> (the server's own version)", text)


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.exists(), f"no snapshot {name}: write it with UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(), f"{name} changed; if intended, regenerate with UPDATE_SNAPSHOTS=1"


def test_text_report_of_the_fixture_project(project):
    project.migrate("0001")
    project.config("[tool.migration_guard]\nthreshold_rows = 1000\n")
    project.fill_items(3000)
    run = project.lint("--no-color")
    assert run.code == 1, run.err
    check_snapshot("lint_fixture_project.txt", normalise(run.out))


def test_explain_text_of_a_sql_file(project, tmp_path):
    sql = tmp_path / "change.sql"
    sql.write_text(
        "SET lock_timeout = '2s';\n"
        "ALTER TABLE shop_order ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
        "CREATE INDEX CONCURRENTLY order_created_idx ON shop_order (created_at);\n"
        "ALTER TABLE shop_order ADD CONSTRAINT order_customer_fk FOREIGN KEY (customer_id)\n"
        "    REFERENCES shop_customer (id) NOT VALID;\n"
    )
    run = project.cli("explain", str(sql), "--pg-version", "16", "--assume-rows", "5000000")
    assert run.code == 1, run.err
    check_snapshot("explain_sql_file.txt", run.out.replace(str(tmp_path), "<tmp>"))
