"""The README's demo command works as written: ``make demo`` runs this script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "sample_migrations" / "demo.py"


def test_demo_blocks_the_dangerous_migrations_and_shows_an_approval():
    run = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "shop.0004_add_index  BLOCKED" in out
    assert "shop.0005_add_index_concurrently  OK" in out
    # 0009's SET NOT NULL is proven by 0008's CHECK (no MG003); it blocks only because the running code's
    # currency is still null=True (MG026), as 0006 and 0007 do
    block_0009 = out.split("shop.0009_set_currency_not_null_using_check  BLOCKED\n", 1)[1].split("\n\n", 1)[0]
    assert "MG026 not-null-while-code-writes-null (error)" in block_0009 and "MG003 set-not-null" not in block_0009
    assert "BLOCKED: 11 of 25 migration(s) blocked" in out
    assert "shop.0018_alter_total_cents_to_bigint  APPROVED" in out
    assert "PASSED: 0 of 1 migration(s) blocked; 0 blocking finding(s), 0 warning(s), 1 approved. Exit 0." in out
    assert "UNEXPECTED" not in out
