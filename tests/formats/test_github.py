"""GitHub workflow commands from a real run, parsed back the way the runner reads them."""

from __future__ import annotations

import re
from pathlib import Path

from migration_guard.formats.github import escape_data, escape_property

_COMMAND = re.compile(r"^::(?P<kind>error|warning|notice) (?P<properties>[^:]*)::(?P<message>.*)$")


def _unescape(text: str) -> str:
    # The runner's order: %0D, %0A, %3A, %2C first, %25 last, so "%253A" stays "%3A".
    for escaped, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, char)
    return text


def parse(output: str) -> list[dict]:
    """The annotations in ``output``, each as kind, properties and message."""
    annotations = []
    for line in output.splitlines():
        match = _COMMAND.match(line)
        if match:
            properties = dict(p.split("=", 1) for p in match["properties"].split(","))
            annotations.append({"kind": match["kind"], **{k: _unescape(v) for k, v in properties.items()},
                                "message": _unescape(match["message"])})
    return annotations


def test_one_annotation_per_finding_on_its_line(linted):
    output = linted.text("github")
    annotations = parse(output)
    findings = linted.report["findings"]
    assert len(annotations) == len(findings) == 3
    for annotation, finding in zip(annotations, findings):
        assert annotation["file"] == Path(finding["path"]).relative_to(linted.project.root).as_posix()
        assert annotation["line"] == str(finding["line"])
        assert annotation["title"].startswith(f"{finding['rule']} {finding['slug']}")
        assert finding["message"] in annotation["message"]
    blocked, approved, warning = annotations
    assert blocked["kind"] == "error" and blocked["line"] == "8"
    assert blocked["title"] == "MG002 add-index-non-concurrently"
    assert "table: inventory_item (3,000 rows" in blocked["message"]
    assert "lock: SHARE (ShareLock): blocks writes" in blocked["message"]
    assert 'AddIndexConcurrently("item"' in blocked["message"]
    assert "approve: migration-guard approve inventory.0002_item_created_idx MG002" in blocked["message"]
    assert approved["kind"] == "notice" and approved["title"].endswith("(approved)")
    assert "approved by dba@example.com" in approved["message"]
    assert warning["kind"] == "warning"
    # One command per line, then the verdict for the log.
    assert all(line.startswith("::") for line in output.splitlines()[:-1])
    assert output.splitlines()[-1].startswith("BLOCKED: 1 of 4 migration(s) blocked")


def test_escaping_follows_the_runner():
    assert escape_data("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext: a, b"
    assert escape_property("a,b:c%d\n") == "a%2Cb%3Ac%25d%0A"
    for text in ("50%3A is not a colon", "x,y: z%0A", "line\nbreak"):
        assert _unescape(escape_property(text)) == text
        assert _unescape(escape_data(text)) == text
