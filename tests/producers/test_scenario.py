from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producers.scenario import Scenario, parse_time

DAY = datetime(2022, 10, 4, tzinfo=UTC)


def test_times_of_day_offsets_and_iso_agree():
    fault = parse_time("12:45", DAY)
    assert parse_time("2022-10-04T12:45:45Z", DAY) == fault + 45
    assert parse_time("+45s", DAY, fault) == fault + 45
    assert parse_time("-1h30m", DAY, fault) == parse_time("11:15", DAY)


def test_offset_without_an_anchor_is_refused():
    with pytest.raises(ValueError, match="fault_start"):
        parse_time("+1m", DAY)


def _minimal(**effect):
    return {
        "name": "t",
        "start": "2022-10-04T12:00:00Z",
        "end": "+30m",
        "truth": {"fault_start": "12:10", "impact_start": "+1m", "sev": 2},
        "effects": [effect] if effect else [],
    }


def test_scenario_resolves_truth_relative_to_fault_start():
    sc = Scenario.from_dict(_minimal())
    assert sc.truth.impact_start == sc.truth.fault_start + 60
    assert sc.end == sc.truth.fault_start + 1800


def test_unknown_parameter_and_mode_and_disordered_keyframes_are_refused():
    with pytest.raises(ValueError, match="unknown parameter"):
        Scenario.from_dict(_minimal(target="x", param="nope", keyframes=[]))
    with pytest.raises(ValueError, match="mode"):
        Scenario.from_dict(_minimal(target="x", param="error_rate", mode="jump", keyframes=[]))
    with pytest.raises(ValueError, match="out of order"):
        Scenario.from_dict(
            _minimal(target="x", param="error_rate", keyframes=[["12:20", 1], ["12:10", 0]])
        )


def test_shipped_scenarios_carry_their_truth(scenarios):
    ref = scenarios["reference-2022-10-04"].truth
    assert ref.precursor_start < ref.fault_start < ref.impact_start < ref.recovery
    assert ref.impact_start - ref.fault_start == 45
    assert ref.root_cause == "redis-sessions" and ref.sev == 1
    base = scenarios["baseline-24h"]
    assert base.truth.fault_start is None and not base.effects
    assert base.end - base.start == 86_400
