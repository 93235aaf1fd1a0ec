"""The generated documentation matches the code: the rule reference in docs/rules (one page per rule and
the index's table, from the rules' own documentation) and the lock table in docs/lock-model.md (from the
lock model's facts); the commands that regenerate them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from migration_guard.cli import main
from migration_guard.locks.table import BEGIN_MARKER, END_MARKER, lock_table
from migration_guard.rules import ALL_RULES
from migration_guard.rules.docs import (
    INDEX_BEGIN,
    INDEX_END,
    INDEX_NAME,
    WRITE_COMMAND,
    expected_pages,
    index_table,
    rule_page,
    write_docs,
)

ROOT = Path(__file__).parents[1]
RULES_DIR = ROOT / "docs" / "rules"
LOCK_MODEL = ROOT / "docs" / "lock-model.md"
HEADINGS = ["## What it does", "## Why is this bad?", "## Example", "## Use instead", "## How to approve"]


def _between(text: str, begin: str, end: str) -> str:
    return text.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_committed_rule_pages_are_the_generated_ones():
    expected = expected_pages()
    committed = {path.name: path.read_text() for path in RULES_DIR.glob("MG*.md")}
    stale = sorted(name for name in expected.keys() | committed.keys() if expected.get(name) != committed.get(name))
    index = (RULES_DIR / INDEX_NAME).read_text()
    assert INDEX_BEGIN in index and INDEX_END in index, f"docs/rules/{INDEX_NAME} lost its rules markers"
    if _between(index, INDEX_BEGIN, INDEX_END) != index_table():
        stale.append(INDEX_NAME)
    assert not stale, (f"docs/rules is stale ({', '.join(stale)} differ from the rules' code): "
                       f"run `{WRITE_COMMAND}` (or `make docs`) and commit the result")


def test_committed_lock_table_is_the_generated_one():
    text = LOCK_MODEL.read_text()
    assert BEGIN_MARKER in text and END_MARKER in text, "docs/lock-model.md has no lock table markers"
    assert _between(text, BEGIN_MARKER, END_MARKER) == lock_table(), (
        "docs/lock-model.md's lock table is stale: run `migration-guard lock-table --write docs/lock-model.md` "
        "(or `make docs`) and commit the result")
    assert cli("lock-table").output == lock_table()


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.id)
def test_a_rule_page_says_what_why_example_instead_and_how_to_approve(rule):
    page = rule_page(rule)
    assert page.startswith(f"# {rule.id} {rule.slug}\n")
    positions = [page.find(f"\n{heading}\n") for heading in HEADINGS]
    assert -1 not in positions and positions == sorted(positions), (
        f"{rule.id}'s documentation needs these sections, in this order: {HEADINGS[:-1]} (Rule.doc)")
    assert f"migration-guard approve APP.MIGRATION {rule.id} " in page or "nothing to approve" in page
    assert cli("rules", rule.id).output == page  # the command prints the page's text


def test_a_rule_page_says_whether_its_verdict_depends_on_the_table_size():
    """MG008 checks whole transactions (check_transaction), not statements, and is size-aware all the same:
    a warning when the long work is RunPython behind locks on small tables only."""
    rules = {rule.id: rule for rule in ALL_RULES}
    sized = "Default severity: error on a table above the threshold or of unknown size, a warning below it."
    for rule_id in ("MG002", "MG008"):
        assert sized in rule_page(rules[rule_id]), rule_id
    for rule_id in ("MG012", "MG905"):
        assert "Default severity: error (blocks whatever the table's size)." in rule_page(rules[rule_id]), rule_id


def test_write_docs_writes_pages_and_index_keeps_hand_written_text_and_drops_old_pages(tmp_path):
    (tmp_path / "MG999.md").write_text("a rule that no longer exists\n")
    (tmp_path / "notes.md").write_text("not a rule page\n")
    (tmp_path / INDEX_NAME).write_text(f"# Rules\n\nhand-written intro\n\n{INDEX_BEGIN}\nold table\n{INDEX_END}\n\nmore\n")
    run = cli("rules", "--write-docs", str(tmp_path))
    assert run.exit_code == 0, run.output
    assert {path.name: path.read_text() for path in tmp_path.glob("MG*.md")} == expected_pages()
    assert (tmp_path / "notes.md").exists()
    assert (tmp_path / INDEX_NAME).read_text() == (
        f"# Rules\n\nhand-written intro\n\n{INDEX_BEGIN}\n{index_table()}{INDEX_END}\n\nmore\n")
    assert write_docs(tmp_path) == []  # nothing left to change


def test_write_docs_into_a_new_folder_and_refusals(tmp_path):
    target = tmp_path / "reference"
    assert write_docs(target) and (target / INDEX_NAME).read_text() == (
        f"# Rules\n\n{INDEX_BEGIN}\n{index_table()}{INDEX_END}\n")
    both = cli("rules", "MG002", "--write-docs", str(target))
    assert both.exit_code == 2 and "name no RULE" in both.output
    blocked = tmp_path / "file"
    blocked.write_text("")
    cannot = cli("rules", "--write-docs", str(blocked / "docs"))
    assert cannot.exit_code == 2 and "cannot write the rule pages" in cannot.output


def test_lock_table_write_replaces_only_the_table(tmp_path):
    page = tmp_path / "locks.md"
    page.write_text(f"# Locks\n\nintro\n\n{BEGIN_MARKER}\nold\n{END_MARKER}\n\nafter\n")
    run = cli("lock-table", "--write", str(page))
    assert run.exit_code == 0, run.output
    assert page.read_text() == f"# Locks\n\nintro\n\n{BEGIN_MARKER}\n{lock_table()}{END_MARKER}\n\nafter\n"
    page.write_text("# no markers\n")
    missing = cli("lock-table", "--write", str(page))
    assert missing.exit_code == 2 and "no lock-table markers" in missing.output
    assert page.read_text() == "# no markers\n"


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_links_between_readme_and_docs_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
