"""The scenario benchmark on two tiny scenarios: a fault, and a "decoy" that
in truth hurts users, so that its page must be counted false."""

from __future__ import annotations

import json

import pytest

from bench import scenarios as bench
from bench.report import render_tables

EFFECT = """
[[effects]]
target = "music-svc*"
param = "error_rate"
mode = "set"
keyframes = [["10:30", 0.005], ["10:30:20", 0.2], ["10:36", 0.2], ["10:36:20", 0.005]]
"""
FAULT = """
name = "tiny-fault"
description = "music-svc fails a fifth of its requests for six minutes"
start = "2022-10-06T10:00:00Z"
end = "2022-10-06T10:45:00Z"

[truth]
kind = "fault"
fault_start = "10:30:00"
impact_start = "10:30:00"
root_cause = "music-svc"
sev = 2
impact_share = 0.2
"""
DECOY = """
name = "tiny-decoy"
description = "claims to be harmless, but fails music requests"
start = "2022-10-06T10:00:00Z"
end = "2022-10-06T10:45:00Z"

[truth]
kind = "decoy"
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenarios")
    (folder / "tiny-fault.toml").write_text(FAULT + EFFECT)
    (folder / "tiny-decoy.toml").write_text(DECOY + EFFECT)
    out = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv("FORESHOCK_SCENARIOS", str(folder))
    bench._world.cache_clear()
    seen = []
    try:
        result = bench.run_bench(["tiny-fault", "tiny-decoy"], 1, 2, out, lambda *a: seen.append(a))
    finally:
        mp.undo()
        bench._world.cache_clear()
    return result, out, seen


def test_the_report_has_the_structure_other_tools_read(report):
    result, out, seen = report
    written = json.loads((out / "report.json").read_text())
    assert written["precision"] == result["precision"]
    assert {"scenarios", "precision", "recall"} <= set(written)
    assert [s["name"] for s in written["scenarios"]] == ["tiny-decoy", "tiny-fault"]
    for s in written["scenarios"]:
        assert {
            "name",
            "kind",
            "seeds",
            "mttd_from_fault_s",
            "mttd_from_impact_s",
            "sev_correct",
            "root_cause_correct",
            "pages",
            "false_pages_per_day",
            "gap_reported",
        } <= set(s)
        assert set(s["mttd_from_fault_s"]) == {"median", "p90", "max"}
    assert "| tiny-fault |" in (out / "report.md").read_text()
    assert (out / "timeline-tiny-fault.png").stat().st_size > 10_000
    assert (out / "mttd.png").exists()
    assert sorted(a[2] for a in seen) == ["tiny-decoy", "tiny-fault"] and seen[-1][:2] == (2, 2)


def test_the_fault_is_scored_against_its_truth(report):
    fault = next(s for s in report[0]["scenarios"] if s["name"] == "tiny-fault")
    assert fault["kind"] == "fault" and fault["seeds"] == 1
    assert fault["pages"] == 1 and fault["false_pages_per_day"] == 0
    assert fault["sev_correct"] == 1.0 and fault["root_cause_correct"] == 1.0
    assert 0 < fault["mttd_from_fault_s"]["median"] <= 120
    assert fault["impact_error"] < 0.2
    assert report[0]["recall"] == 1.0


def test_a_decoy_that_pages_counts_as_a_false_page(report):
    decoy = next(s for s in report[0]["scenarios"] if s["name"] == "tiny-decoy")
    assert decoy["kind"] == "decoy"
    assert decoy["pages"] == 1 and decoy["false_pages"] == 1
    assert decoy["false_pages_per_day"] == pytest.approx(1 / (45 / 1440), rel=1e-3)
    assert decoy["sev_correct"] is None and decoy["mttd_from_fault_s"]["median"] is None
    assert report[0]["precision"] == 0.5  # one true page, one false
    table = render_tables(report[0])[0]
    assert table.row_count == 2


def test_unknown_scenarios_are_refused(tmp_path):
    with pytest.raises(KeyError, match="nope"):
        bench.run_bench(["nope"], 1, 1, tmp_path)
