"""SEV-1..SEV-4 from share of users hurt, breadth and duration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.severity import SeverityPolicy, UserImpact, classify

POLICY = SeverityPolicy()
SIX = ("us-east", "us-west", "sa-east", "eu-west", "eu-central", "ap-southeast")


def impact(share, hit=0, level=0.5, journey="login"):
    """``share`` of users failing ``journey``; ``hit`` of six regions at ``level``."""
    regions = {r: (level if i < hit else 0.0) for i, r in enumerate(SIX)}
    return UserImpact({journey: share}, regions, len(SIX))


@pytest.mark.parametrize(
    ("share", "hit", "level", "sev"),
    [
        (0.90, 6, 0.9, 1),
        (0.30, 3, 0.3, 1),  # exactly at both SEV-1 bars
        (0.2999, 6, 0.9, 2),  # just under the share bar
        (0.90, 2, 0.9, 2),  # not broad enough: 2 of 6 regions
        (0.30, 3, 0.0999, 2),  # regions under 10% do not count as hit
        (0.10, 0, 0.0, 2),
        (0.0999, 0, 0.0, 3),
        (0.05, 1, 0.30, 2),  # one region badly hit is SEV-2 whatever the share
        (0.05, 1, 0.2999, 3),
        (0.02, 0, 0.0, 3),
        (0.0199, 0, 0.0, 4),
        (0.0, 0, 0.0, 4),
    ],
)
def test_thresholds(share, hit, level, sev):
    assert classify(impact(share, hit, level), 0.0, POLICY)[0] == sev


def test_reasons_name_the_worst_journey_and_the_regions_hit():
    ui = UserImpact(
        {"login": 0.25, "streaming": 0.5, "playlists": 0.01},
        {"us-east": 0.6, "eu-west": 0.1, "ap-southeast": 0.099},
        3,
    )
    sev, reasons = classify(ui, 0.0, POLICY)
    assert sev == 1
    assert reasons == ["streaming failing for 50% of users", "2 of 3 regions at ≥10%"]


def test_no_regions_known_counts_as_broad():
    ui = UserImpact({"login": 0.4}, {}, 0)
    assert classify(ui, 0.0, POLICY) == (1, ["login failing for 40% of users"])


def test_no_impact_is_sev4_without_reasons():
    assert classify(UserImpact(), 0.0, POLICY) == (4, [])
    assert UserImpact().share == 0.0
    assert UserImpact().worst_journey is None


def test_share_is_the_worst_journey():
    ui = UserImpact({"a": 0.1, "b": 0.7, "c": 0.3})
    assert ui.share == 0.7
    assert ui.worst_journey == "b"


@pytest.mark.parametrize(
    ("share", "duration_min", "sev", "lasting"),
    [
        (0.05, 30, 2, True),  # SEV-3 escalates to SEV-2
        (0.05, 29.99, 3, False),
        (0.01, 30, 3, True),  # SEV-4 escalates to SEV-3
        (0.01, 600, 3, True),  # once only
        (0.15, 600, 2, False),  # capped at SEV-2: never escalated to SEV-1
        (0.90, 600, 1, False),
    ],
)
def test_duration_escalation(share, duration_min, sev, lasting):
    got, reasons = classify(impact(share, 6, share), duration_min * 60, POLICY)
    assert got == sev
    assert any(r.startswith("lasting") for r in reasons) == lasting
    if lasting:
        assert reasons[-1] == f"lasting {duration_min:.0f} min"


def test_custom_policy():
    policy = SeverityPolicy(
        sev1_affected=0.5,
        sev1_region_share=1.0,
        sev2_affected=0.2,
        sev3_affected=0.1,
        escalate_after_min=5,
    )
    assert classify(impact(0.6, 5, 0.6), 0.0, policy)[0] == 2  # 5 of 6 regions is not all
    assert classify(impact(0.6, 6, 0.6), 0.0, policy)[0] == 1
    assert classify(impact(0.15), 0.0, policy)[0] == 3
    assert classify(impact(0.15), 300.0, policy)[0] == 2
    assert classify(impact(0.05), 0.0, policy)[0] == 4
    _, reasons = classify(impact(0.6, 6, 0.6), 0.0, policy)
    assert reasons[1] == "6 of 6 regions at ≥20%"


@settings(max_examples=500, database=None, deadline=None)
@given(
    st.floats(0, 1),
    st.floats(0, 1),
    st.lists(st.floats(0, 1), max_size=8),
    st.floats(0, 1e5),
)
def test_more_users_hurt_is_never_less_severe(a, b, regions, duration):
    lo, hi = sorted((a, b))
    region_map = {f"r{i}": s for i, s in enumerate(regions)}
    sev_lo, _ = classify(UserImpact({"j": lo}, region_map, len(regions)), duration, POLICY)
    sev_hi, _ = classify(UserImpact({"j": hi}, region_map, len(regions)), duration, POLICY)
    assert sev_hi <= sev_lo
    assert 1 <= sev_hi <= 4


@settings(max_examples=500, database=None, deadline=None)
@given(st.floats(0, 1), st.lists(st.floats(0, 1), max_size=8))
def test_lasting_moves_up_one_level_at_most_to_sev2(share, regions):
    ui = UserImpact({"j": share}, {f"r{i}": s for i, s in enumerate(regions)}, len(regions))
    fresh, _ = classify(ui, 0.0, POLICY)
    lasting, _ = classify(ui, POLICY.escalate_after_min * 60, POLICY)
    assert lasting == (fresh - 1 if fresh > 2 else fresh)
