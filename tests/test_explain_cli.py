"""`migration-guard explain` run in the caller's own process."""

from __future__ import annotations

import gc

from click.testing import CliRunner

from migration_guard.cli import main


def test_explain_in_process_leaves_the_garbage_collector_as_it_was(tmp_path):
    """explain turns the cyclic collector off while it parses and analyses, and back on after."""
    sql = tmp_path / "script.sql"
    sql.write_text("CREATE INDEX i ON t (a);\n")
    assert gc.isenabled()
    result = CliRunner().invoke(main, ["explain", "--format", "json", str(sql)])
    assert result.exit_code == 1, result.output  # the index blocks: t has no size, so it counts as large
    assert gc.isenabled()
