"""The backward-compatibility rules (MG020-MG027) proven on a real server: for every case of
``tests/compat/cases.py`` the gate flags the deploy exactly when some query of the code that meets
the new (or, code first, the old) schema fails. ``tests/compat/harness.py`` says how; the cases run
in a few processes of their own, one database each, so that ``-n 2`` spreads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.cases import CASES

REPO = Path(__file__).resolve().parents[2]
COMPAT_RULES = {f"MG02{n}" for n in range(8)}
CHUNKS = 4


def run_harness(pg_server, dbname: str, *args: str) -> list[dict]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.compat.settings", "COMPAT_DB_NAME": dbname,
           "COMPAT_DB_HOST": pg_server.host, "COMPAT_DB_PORT": str(pg_server.port), "COMPAT_DB_USER": pg_server.user,
           "MIGRATION_GUARD_CACHE": "0", "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "tests.compat.harness", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


def disagreements(results: list[dict]) -> list[str]:
    """Cases where the gate's verdict and what happened on the server differ, or the gate's rules are not
    the ones the case expects, or the gate could not render the case."""
    wrong = []
    for result in results:
        flagged, failures = bool(result["flagged"]), bool(result["failures"])
        if flagged != failures or result["flagged"] != result["expected"] or result["gate_errors"]:
            shown = "\n      ".join(result["failures"][:4]) or "(no query failed)"
            wrong.append(f"{result['case']} ({result['order']}): gate flagged {result['flagged']}, expected "
                         f"{result['expected']}, gate errors {result['gate_errors']}\n      {shown}")
    return wrong


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_the_gate_flags_a_deploy_exactly_when_a_query_of_the_code_fails(pg_server, fresh_db, chunk):
    results = run_harness(pg_server, fresh_db, "--chunk", f"{chunk}/{CHUNKS}")
    assert [r["case"] for r in results] == [c.name for c in CASES[chunk::CHUNKS]]
    assert not disagreements(results), "\n".join(disagreements(results))


def test_the_cases_cover_every_rule_both_orders_and_the_safe_patterns():
    assert {rule for case in CASES for rule in case.expect} == COMPAT_RULES
    for order in ("migrate_first", "code_first"):
        mine = [c for c in CASES if c.order == order]
        assert any(c.expect for c in mine) and any(not c.expect for c in mine)
    safe = [c for c in CASES if c.name.startswith(("safe_", "cf_safe_"))]
    assert len(safe) >= 8 and all(not c.expect for c in safe)
    assert len({c.name for c in CASES}) == len(CASES)


def test_a_disabled_rule_is_a_disagreement(pg_server, fresh_db, tmp_path):
    """The comparison can fail: with MG020 disabled, a dropped column that breaks the old code passes the
    gate, and the harness says so."""
    results = run_harness(pg_server, fresh_db, "--case", "remove_nullable_field", "--case", "safe_drop_release_n1",
                          "--disable", "MG020")
    [wrong] = disagreements(results)
    assert wrong.startswith("remove_nullable_field (migrate_first): gate flagged []")
    assert 'column "note" of relation "shop_order" does not exist' in wrong
