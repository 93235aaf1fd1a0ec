"""The markdown summary from a real run: verdict, a table of migrations, blocking findings with
their facts and a folded recipe, warnings, approvals."""

from __future__ import annotations

import re

from migration_guard.formats.markdown import _cell, _code_block


def test_verdict_and_a_row_per_migration(linted):
    text = linted.text("markdown")
    assert text.startswith("## migration_guard: ⛔ BLOCKED\n")
    assert "BLOCKED: 1 of 4 migration(s) blocked; 1 blocking finding(s), 1 warning(s), 1 approved. Exit 1." in text
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]*) \|$", text, re.M)
    assert [(m, v.strip(), r.strip()) for m, v, r in rows] == [
        ("inventory.0002_item_created_idx", "⛔ blocked", "MG002"),
        ("inventory.0003_item_name_longer", "✅ ok", ""),
        ("inventory.0004_item_warehouse_note", "✅ approved", "MG008"),
        ("inventory.0005_warehouse_name_idx", "⚠️ warning", "MG002"),
    ]


def test_blocking_finding_with_facts_and_folded_recipe(linted):
    text = linted.text("markdown")
    section = text.split("### Blocking findings", 1)[1].split("### Warnings", 1)[0]
    assert "#### `inventory.0002_item_created_idx`: MG002 add-index-non-concurrently" in section
    assert "| where | inventory/migrations/0002_item_created_idx.py:8 |" in section
    assert re.search(r"^\| table \| inventory_item \(3,000 rows, [\d.]+ kB\) \|$", section, re.M)
    assert "| lock | SHARE (ShareLock): blocks writes |" in section
    assert "| time | &lt; 1 s |" in section
    details = re.search(r"<details><summary>(.*?)</summary>\n(.*?)</details>", section, re.S)
    assert details, section
    assert '```sql\nCREATE INDEX "item_created_idx" ON "inventory_item" ("created")\n```' in details[2]
    assert re.search(r"```python\n.*AddIndexConcurrently\(\"item\".*\n```", details[2], re.S)
    fingerprint = linted.finding("MG002", "inventory.0002_item_created_idx")["fingerprint"]
    assert f"`migration-guard approve inventory.0002_item_created_idx MG002 --fingerprint {fingerprint}" in section


def test_warnings_and_approvals(linted):
    text = linted.text("markdown")
    warnings = text.split("### Warnings", 1)[1].split("###", 1)[0]
    # A warning only because its table is small is counted per rule (--show-warnings lists each)
    assert "`inventory.0005_warehouse_name_idx` **MG002" not in warnings
    assert ("1 warning(s) on tables below the threshold, counted per rule" in warnings
            and "- MG002 add-index-non-concurrently: 1 in 1 migration(s), on 1 table(s): inventory_warehouse (1)"
            in warnings)
    approvals = text.split("### Approvals", 1)[1]
    assert "`inventory.0004_item_warehouse_note` **MG008 lock-held-during-long-work**" in approvals
    assert "approved by dba@example.com: notes are empty" in approvals


def test_code_and_cells_cannot_break_out():
    assert _code_block("x = '```'", "python") == ["````python", "x = '```'", "````"]
    assert _cell("a | b\n<c>") == "a \\| b &lt;c&gt;"
