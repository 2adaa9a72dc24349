"""Adaptive z-scores and the per-series anomaly state machine."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.detect import AdaptiveZScore, Anomaly, SeriesMonitor
from models.schema import SERIES_METRICS, Bad, MetricSpec


class ReferenceEW:
    """Exponentially weighted mean and variance, written out by hand."""

    def __init__(self, alpha):
        self.alpha = alpha
        self.mean = None
        self.var = 0.0

    def learn(self, y):
        if self.mean is None:
            self.mean = y
            return
        diff = y - self.mean
        self.mean += self.alpha * diff
        self.var = (1 - self.alpha) * (self.var + self.alpha * diff * diff)


# ---------------------------------------------------------------------------
# AdaptiveZScore


def test_scores_zero_during_warm_up():
    model = AdaptiveZScore(floor=1.0, warm_up=5)
    for i in range(4):
        model.learn_one(10.0 + i)
        assert not model.ready
        assert model.score_one(1e6) == 0.0
        assert model.score_one(-1e6) == 0.0
    model.learn_one(14.0)
    assert model.ready
    assert model.score_one(1e6) > 1000


def test_learns_a_level_and_scores_a_shift():
    rng = random.Random(3)
    model = AdaptiveZScore(fading_factor=0.02, floor=0.0, rel_floor=0.0, warm_up=30)
    for _ in range(2000):
        model.learn_one(rng.gauss(100.0, 2.0))
    assert model.baseline == pytest.approx(100.0, abs=1.0)
    # a shift of five standard deviations scores about five
    assert model.score_one(110.0) == pytest.approx(5.0, rel=0.25)
    assert model.score_one(90.0) == pytest.approx(-5.0, rel=0.25)
    assert abs(model.score_one(model.baseline)) < 1e-9


def test_score_matches_the_hand_written_recurrence():
    rng = random.Random(11)
    model = AdaptiveZScore(fading_factor=0.1, floor=0.3, rel_floor=0.01, warm_up=3)
    ref = ReferenceEW(0.1)
    for _ in range(60):
        y = rng.uniform(5.0, 15.0)
        for probe in (0.0, 10.0, 25.0):
            if ref.mean is not None and model.ready:
                scale = max(ref.var**0.5, 0.3, 0.01 * abs(ref.mean))
                assert model.score_one(probe) == pytest.approx((probe - ref.mean) / scale)
        model.learn_one(y)
        ref.learn(y)
        assert model.baseline == pytest.approx(ref.mean)


def test_follows_a_slow_drift():
    model = AdaptiveZScore(fading_factor=0.02, floor=0.0, rel_floor=0.0, warm_up=30)
    for i in range(3000):
        model.learn_one(50.0 + 0.001 * i)
    # lag of an EW mean on a ramp is slope × (1 - α) / α
    assert model.baseline == pytest.approx(50.0 + 0.001 * 2999 - 0.001 * 0.98 / 0.02, abs=1e-6)


def test_floor_prevents_blow_up_on_a_constant_series():
    model = AdaptiveZScore(floor=0.2, rel_floor=0.0, warm_up=3)
    for _ in range(100):
        model.learn_one(0.0)
    assert model.score_one(1.0) == pytest.approx(5.0)
    assert model.score_one(-0.1) == pytest.approx(-0.5)


def test_relative_floor_scales_with_the_level():
    model = AdaptiveZScore(floor=0.0, rel_floor=0.02, warm_up=3)
    for _ in range(50):
        model.learn_one(-200.0)
    assert model.score_one(-180.0) == pytest.approx(20.0 / 4.0)


def test_no_floor_on_a_constant_series_scores_zero_rather_than_infinity():
    model = AdaptiveZScore(floor=0.0, rel_floor=0.0, warm_up=3)
    for _ in range(10):
        model.learn_one(0.0)
    assert model.score_one(1.0) == 0.0


@pytest.mark.parametrize("level", [0.7, 139.0, 0.005, 0.0, 1.0])
def test_a_constant_series_scores_without_crashing(level):
    # A series that sits exactly on one value has no spread: the floor decides.
    model = AdaptiveZScore(floor=0.5, rel_floor=0.0, warm_up=3)
    for _ in range(50):
        model.learn_one(level)
    assert model.score_one(level + 1.0) == pytest.approx(2.0)
    assert model.score_one(level) == pytest.approx(0.0)


def test_monitor_on_a_flat_error_rate_does_not_crash():
    spec = SERIES_METRICS["pods"]["error_rate"]
    mon = SeriesMonitor("postgres", spec, warm_up=30)
    for i in range(40):
        assert mon.update(10.0 * i, 10.0 * i + 15, 0.005) is None
    anomaly = mon.update(400.0, 415.0, 0.5)
    assert anomaly is not None
    assert anomaly.score == pytest.approx((0.5 - 0.005) / spec.floor)


@settings(max_examples=200, database=None, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80),
    st.floats(-1e7, 1e7),
    st.floats(0.001, 10.0),
)
@example(values=[139.0, 139.0], probe=0.0, floor=1.0)  # EWVar rounds to a negative variance
def test_score_is_finite_and_signed(values, probe, floor):
    model = AdaptiveZScore(floor=floor, rel_floor=0.02, warm_up=1)
    for v in values:
        model.learn_one(v)
    z = model.score_one(probe)
    assert z == z and abs(z) < float("inf")
    assert abs(z) <= abs(probe - model.baseline) / floor + 1e-9
    if probe > model.baseline:
        assert z >= 0
    elif probe < model.baseline:
        assert z <= 0


# ---------------------------------------------------------------------------
# SeriesMonitor

# floor 1.0 on a constant series of 10: z = value - 10 (the spread is the floor)
LEVEL = 10.0


def monitor(bad=Bad.HIGH, **kw):
    spec = MetricSpec("x", "u", bad, floor=1.0)
    kw.setdefault("warm_up", 30)
    mon = SeriesMonitor("ent", spec, **kw)
    for i in range(kw["warm_up"]):
        assert mon.update(10.0 * i, 10.0 * i + 15, LEVEL) is None
    return mon


class Clock:
    def __init__(self, start=1000.0):
        self.start = start

    def feed(self, mon, value):
        self.start += 10.0
        return mon.update(self.start, self.start + 15.0, value)


def test_no_anomaly_during_warm_up():
    spec = MetricSpec("x", "u", Bad.HIGH, floor=1.0)
    mon = SeriesMonitor("ent", spec, warm_up=30)
    for i in range(29):
        assert mon.update(10.0 * i, 10.0 * i, 1e9 if i == 28 else 10.0) is None
    assert mon.active is None


def test_high_metric_starts_an_anomaly_going_up():
    mon = monitor(Bad.HIGH)
    clock = Clock()
    anomaly = clock.feed(mon, 20.0)
    assert isinstance(anomaly, Anomaly)
    assert anomaly == Anomaly("ent", "x", 1010.0, 1025.0, 20.0, LEVEL, pytest.approx(10.0))
    assert anomaly.ended_at is None
    assert anomaly.direction == "high"
    assert mon.active is anomaly


@pytest.mark.parametrize(
    ("bad", "value", "starts"),
    [
        (Bad.HIGH, 20.0, True),
        (Bad.HIGH, 0.0, False),
        (Bad.LOW, 0.0, True),
        (Bad.LOW, 20.0, False),
        (Bad.EITHER, 20.0, True),
        (Bad.EITHER, 0.0, True),
        (Bad.HIGH, 15.9, False),  # under enter=6
        (Bad.HIGH, 16.0, True),
        (Bad.LOW, 4.0, True),
        (Bad.LOW, 4.1, False),
    ],
)
def test_only_the_harmful_direction_starts_an_anomaly(bad, value, starts):
    mon = monitor(bad)
    anomaly = Clock().feed(mon, value)
    assert (anomaly is not None) == starts
    assert (mon.active is not None) == starts
    if starts:
        assert anomaly.direction == ("high" if value > LEVEL else "low")
        assert anomaly.score == pytest.approx(value - LEVEL)


def test_harmless_moves_are_learned():
    mon = monitor(Bad.HIGH)
    clock = Clock()
    for _ in range(200):
        assert clock.feed(mon, 0.0) is None
    assert mon.detector.baseline < 0.5
    # the new level is the baseline now: a return to 10 is a rise of about ten floors
    assert isinstance(clock.feed(mon, LEVEL), Anomaly)


def test_confirm_needs_consecutive_windows_and_reports_the_first():
    mon = monitor(Bad.HIGH, confirm=3)
    clock = Clock()
    assert clock.feed(mon, 20.0) is None
    assert clock.feed(mon, 20.0) is None
    assert clock.feed(mon, LEVEL) is None  # streak broken
    assert clock.feed(mon, 20.0) is None  # onset of the new streak: 1040
    assert clock.feed(mon, 20.0) is None
    anomaly = clock.feed(mon, 20.0)
    assert anomaly is not None
    assert anomaly.onset == 1040.0
    assert anomaly.at == 1060.0 + 15.0


def test_baseline_is_preserved_while_anomalous_and_it_ends_after_clear_calm_windows():
    mon = monitor(Bad.HIGH, clear=3)
    clock = Clock()
    started = clock.feed(mon, 50.0)
    assert started is not None
    for _ in range(500):
        assert clock.feed(mon, 50.0) is None
    assert mon.detector.baseline == LEVEL  # the outage did not become normal
    assert mon.active is started
    assert clock.feed(mon, 11.0) is None
    assert clock.feed(mon, 12.0) is None
    assert clock.feed(mon, 30.0) is None  # not calm: the count restarts
    assert clock.feed(mon, 10.0) is None
    assert clock.feed(mon, 12.9) is None
    ended = clock.feed(mon, 10.0)
    assert ended is not None
    assert ended.ended_at == clock.start + 15.0
    assert (ended.onset, ended.at) == (started.onset, started.at)
    assert ended.baseline == LEVEL
    assert ended.value == 10.0
    assert mon.active is None


def test_after_it_ends_it_learns_and_can_start_again():
    mon = monitor(Bad.HIGH, clear=1)
    clock = Clock()
    first = clock.feed(mon, 30.0)
    assert clock.feed(mon, LEVEL).ended_at is not None
    for _ in range(5):
        assert clock.feed(mon, LEVEL) is None
    second = clock.feed(mon, 30.0)
    assert second is not None
    assert second.onset > first.onset
    assert second.ended_at is None


def test_relearns_after_max_hold():
    mon = monitor(Bad.HIGH, max_hold=50, clear=3)
    clock = Clock()
    assert clock.feed(mon, 30.0) is not None
    for _ in range(48):
        assert clock.feed(mon, 30.0) is None
    assert mon.detector.baseline == LEVEL
    ended, waited = None, 0
    while ended is None and waited < 2000:
        waited += 1
        ended = clock.feed(mon, 30.0)
    assert ended is not None, "a permanent change stayed anomalous"
    assert ended.ended_at is not None
    assert ended.baseline > LEVEL + 1.0  # it started relearning the new level
    # learning begins at the 50th held window, then `clear` calm windows are needed
    assert waited >= 2 + 2
    assert mon.active is None
    # and the new level is normal now
    for _ in range(20):
        assert clock.feed(mon, 30.0) is None


def test_without_max_hold_a_permanent_change_stays_anomalous():
    mon = monitor(Bad.HIGH, max_hold=10_000, clear=3)
    clock = Clock()
    assert clock.feed(mon, 30.0) is not None
    for _ in range(2000):
        assert clock.feed(mon, 30.0) is None
    assert mon.active is not None
    assert mon.detector.baseline == LEVEL


def test_monitor_uses_the_spec():
    spec = SERIES_METRICS["logins"]["success_ratio"]
    mon = SeriesMonitor("logins/eu-west/mobile", spec)
    assert mon.metric == "success_ratio"
    assert mon.detector.floor == spec.floor
    assert mon.detector.rel_floor == 0.0  # a ratio
    rate = SeriesMonitor("lb", SERIES_METRICS["pods"]["request_rate"])
    assert rate.detector.rel_floor == 0.02


def test_login_collapse_is_caught_on_success_ratio():
    rng = random.Random(5)
    spec = SERIES_METRICS["logins"]["success_ratio"]
    mon = SeriesMonitor("logins/eu-west/mobile", spec)
    events = []
    for i in range(300):
        value = 0.95 + rng.gauss(0, 0.003) if i < 250 else 0.05
        change = mon.update(10.0 * i, 10.0 * i + 15, value)
        if change is not None:
            events.append((i, change))
    assert [i for i, _ in events] == [250]
    anomaly = events[0][1]
    assert anomaly.direction == "low"
    assert anomaly.baseline == pytest.approx(0.95, abs=0.005)
    assert anomaly.score < -6
