"""JUnit XML from a real run, parsed back: a test case per migration, failures carrying the
findings, approved migrations skipped, warnings in system-out."""

from __future__ import annotations

import xml.etree.ElementTree as ET


def test_one_test_case_per_migration(linted):
    root = ET.fromstring(linted.text("junit"))
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "4", "failures": "1", "errors": "0", "skipped": "1"}
    (suite,) = root.findall("testsuite")
    assert suite.get("tests") == "4"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("inventory", "0002_item_created_idx"),
        ("inventory", "0003_item_name_longer"),
        ("inventory", "0004_item_warehouse_note"),
        ("inventory", "0005_warehouse_name_idx"),
    ]
    assert cases[0].get("file") == "inventory/migrations/0002_item_created_idx.py"
    properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert properties["exit_code"] == "1"


def test_failure_skipped_passed_and_warnings(linted):
    cases = {c.get("name"): c for c in ET.fromstring(linted.text("junit")).iter("testcase")}
    blocking = linted.finding("MG002", "inventory.0002_item_created_idx")

    failure = cases["0002_item_created_idx"].find("failure")
    assert failure.get("type") == "MG002"
    assert failure.get("message") == f"MG002 add-index-non-concurrently: {blocking['message']}"
    assert "where: inventory/migrations/0002_item_created_idx.py:8" in failure.text
    assert "use instead:" in failure.text and "AddIndexConcurrently" in failure.text

    assert list(cases["0003_item_name_longer"]) == []  # passed

    skipped = cases["0004_item_warehouse_note"].find("skipped")
    assert skipped.get("message").startswith("approved: MG008 approved by dba@example.com")
    assert cases["0004_item_warehouse_note"].find("failure") is None

    warned = cases["0005_warehouse_name_idx"]
    assert warned.find("failure") is None and warned.find("skipped") is None
    assert warned.find("system-out").text.startswith("MG002 add-index-non-concurrently (warning)")
