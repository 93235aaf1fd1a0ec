"""``bench/report.py``'s target for the pull request in CI mode after a merge of 10 migrations (the
bench itself runs outside CI): warm plus what applying those 10 costs, that cost measured as Django's
own ``migrate`` of them when the results have it, else their average share of a full build."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "bench" / "report.py"
_spec = importlib.util.spec_from_file_location("bench_report", _PATH)
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)


def _measure(wall_s: float, detail: dict | None = None) -> dict:
    return {"wall_s": wall_s, "peak_mb": 90.0, "code": 0, "capped": False, "runs": 3, "detail": detail}


def _document(merged_migrate: dict | None = None) -> dict:
    """1,000 migrations: no cache 30 s, warm 1 s, after a merge of 10 3 s. The 10's average share of
    the full build is (30 - 1) * 10 / 1,000 = 0.29 s, so the allowance is 1.25 + 0.29 = 1.54 s."""
    project = {
        "migrations": 1001,
        "ci_off": _measure(30.0),
        "ci_cold": _measure(30.5, {"ratio": 1.01}),
        "ci_merge": _measure(3.0),
        "ci_warm": _measure(1.0, {"ratio": 1.5, "plan_s": 0.7, "base": 1000, "merged": 10, "same_report": True}),
    }
    if merged_migrate is not None:
        project["ci_merged_migrate"] = merged_migrate
    machine = {"cpus": 2, "cpu": "x", "memory_gb": 4, "os": "Linux", "python": "3.11", "django": "5.2",
               "postgresql": "18"}
    return {"machine": machine, "sizes": [project], "explain": [], "realistic": None}


def _merge_target(document: dict) -> tuple[str, bool | None]:
    [target] = [t for t in report.targets(document) if "after a merge of 10" in t[0]]
    return target


def test_merge_target_without_the_measured_ten_uses_their_average_share():
    text, ok = _merge_target(_document())
    assert ok is False
    assert "3.00 s vs 1.00 + 0.29 s" in text and "average share" in text


def test_merge_target_uses_django_migrate_of_those_ten_when_measured():
    # Django's migrate of the 10 took 2.6 s, a migrate with nothing to apply 0.6 s: 2 s of their own.
    measured = _measure(2.6, {"ten_s": 2.0, "noop_s": 0.6, "migrations": 10})
    text, ok = _merge_target(_document(measured))
    assert ok is True  # 3.0 <= 1.25 + 2.0
    assert "3.00 s vs 1.00 + 2.00 s" in text and "Django's migrate of those 10, measured" in text
    # the merged migrations' own cost is shown beside the merge row, 200 ms for each of them
    [row] = [r for r in report._rows(_document(measured)) if "those 10" in r[1]]
    assert row[2:5] == ["2.00", "90", "200.0"]
    assert "those 10" in report.render_performance_page(_document(measured))


def test_merge_target_floor_is_never_negative_and_a_failed_measure_falls_back():
    # on a quick project a migrate of the 10 can come out faster than one of nothing (noise)
    noise = _measure(0.7, {"ten_s": -0.02, "noop_s": 0.72, "migrations": 10})
    text, ok = _merge_target(_document(noise))
    assert "+ 0.00 s" in text and ok is False
    text, _ = _merge_target(_document(_measure(0.0, {"failed": True})))
    assert "+ 0.29 s" in text and "average share" in text
    # a negative difference is shown as measured, with no growth exponent from it
    two = _document(noise)
    two["sizes"].insert(0, {**_document(_measure(0.5, {"ten_s": 0.1, "noop_s": 0.4, "migrations": 10}))["sizes"][0],
                            "migrations": 101})
    rows = [r for r in report._rows(two) if "those 10" in r[1]]
    assert [(r[2], r[4], r[6]) for r in rows] == [("0.10", "10.0", ""), ("-0.02", "-2.0", "")]


def test_an_only_ci_run_brings_the_measured_ten_to_an_earlier_full_run():
    full = _document()
    only_ci = {**_document(_measure(2.6, {"ten_s": 2.0, "noop_s": 0.6, "migrations": 10})), "only_ci": True}
    merged = report.merge([full, only_ci])
    assert merged["sizes"][0]["ci_merged_migrate"]["detail"]["ten_s"] == 2.0
    assert _merge_target(merged)[1] is True
