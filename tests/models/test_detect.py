"""Surprise scores and the per-series anomaly state machine."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.detect import Anomaly, SeriesMonitor
from models.detectors import DETECTORS, Detector
from models.detectors.surprise import SurpriseDetector, poisson_surprise, tail_surprise
from models.schema import SERIES_METRICS, Bad, MetricSpec
from models.snapshot import dump, load

ALERT = 10.0  # a surprise this high is news by any measure


def fed(values, **kw):
    """A detector that has scored and learnt ``values``."""
    det = SurpriseDetector(**kw)
    for v in values:
        step(det, v)
    return det


def step(det, x):
    """Score ``x`` (its surprise is returned), then learn it."""
    s = det.score_one(None, x)
    det.learn_one(None, x)
    return s


def probe(det, x):
    """Surprise and deviation of ``x``, without learning it."""
    return tuple(det.assess(x))


# ---------------------------------------------------------------------------
# SurpriseDetector


def test_tail_surprise_is_minus_log10_of_the_two_sided_normal_tail():
    assert tail_surprise(0.0) == pytest.approx(0.0, abs=1e-12)
    assert tail_surprise(1.959964) == pytest.approx(-math.log10(0.05), rel=1e-5)
    assert tail_surprise(-3.0) == pytest.approx(-math.log10(0.0026998), rel=1e-4)
    # past 8 sigma the asymptotic form takes over, continuously
    assert tail_surprise(8.0 - 1e-9) == pytest.approx(tail_surprise(8.0), rel=2e-3)
    assert tail_surprise(40.0) > tail_surprise(20.0) > tail_surprise(8.0)


def test_poisson_surprise_is_zero_up_to_the_mean_and_grows_past_it():
    assert poisson_surprise(2, 2.0) == 0.0
    assert 0 < poisson_surprise(3, 1.0) < poisson_surprise(6, 1.0)
    # a Chernoff bound: never more surprising than the exact tail
    exact = -math.log10(1 - sum(math.exp(-1) / math.factorial(k) for k in range(6)))
    assert poisson_surprise(6, 1.0) <= exact


def test_scores_zero_during_warm_up():
    det = SurpriseDetector(floor=1.0, warm_up=5)
    for i in range(5):
        assert not det.ready
        assert det.score_one(None, 1e6) == 0.0
        step(det, 10.0 + i)
    assert det.ready
    assert det.score_one(None, 1e6) > 100


def test_learns_a_level_and_scale_and_scores_a_shift_in_spreads():
    rng = random.Random(3)
    det = fed((rng.gauss(100.0, 2.0) for _ in range(3000)), alpha=0.02, rel_floor=0.0)
    assert det.baseline == pytest.approx(100.0, abs=1.0)
    # the mean absolute deviation, rescaled, estimates a Gaussian's spread
    assert probe(det, 110.0)[1] == pytest.approx(5.0, rel=0.25)
    assert probe(det, 90.0)[1] == pytest.approx(-5.0, rel=0.25)
    assert probe(det, 110.0)[0] == pytest.approx(tail_surprise(probe(det, 110.0)[1]))


def test_a_spike_does_not_drag_the_level_or_inflate_the_scale():
    rng = random.Random(4)
    det = fed(rng.gauss(50.0, 1.0) for _ in range(500))
    before = det.baseline, probe(det, 55.0)[1]
    step(det, 5000.0)
    assert det.baseline == pytest.approx(before[0], abs=0.1)
    # nor does it read as a lasting shift
    after = [step(det, 50.0) for _ in range(10)]
    assert after[-1] < tail_surprise(3.0)
    assert probe(det, 55.0)[1] == pytest.approx(before[1], rel=0.1)


def test_scoring_without_learning_leaves_the_model_alone():
    rng = random.Random(8)
    det = fed(rng.gauss(20.0, 1.0) for _ in range(200))
    state = det.to_state()
    for _ in range(100):
        det.score_one(None, 80.0)
        det.assess(81.0)
    assert det.to_state() == state
    assert probe(det, 80.0)[1] > 20


def test_floor_prevents_blow_up_on_a_constant_series():
    det = fed([0.0] * 100, floor=0.2, rel_floor=0.0, alpha_short=0.0)
    assert probe(det, 1.0)[1] == pytest.approx(5.0)
    assert probe(det, -0.1)[1] == pytest.approx(-0.5)


def test_relative_floor_scales_with_the_level():
    det = fed([-200.0] * 50, rel_floor=0.02, alpha_short=0.0)
    assert probe(det, -180.0)[1] == pytest.approx(20.0 / 4.0)


@pytest.mark.parametrize("level", [0.7, 139.0, 0.005, 0.0, 1.0])
def test_a_constant_series_scores_without_crashing(level):
    det = fed([level] * 50, floor=0.5, rel_floor=0.0, alpha_short=0.0)
    assert probe(det, level + 1.0)[1] == pytest.approx(2.0)
    assert probe(det, level) == (0.0, 0.0)


def test_a_sustained_small_shift_is_seen_by_the_short_mean():
    rng = random.Random(6)
    det = fed(rng.gauss(10.0, 1.0) for _ in range(500))
    peak = 0.0
    for _ in range(15):  # 2.5 spreads: no single value is extreme
        x = 12.5 + rng.gauss(0.0, 0.2)
        peak = max(peak, det.score_one(None, x))
        deviation = det.assess(x).deviation
        det.learn_one(None, x)
    assert peak > tail_surprise(6.0)
    assert deviation > 0


def test_a_spike_the_series_has_had_before_is_routine():
    rng = random.Random(9)
    det = SurpriseDetector()
    heights = [30.0, 30.0, 26.0, 26.0, 26.0]
    surprises = []
    for i in range(1500):
        spike = i % 300 == 299
        s = step(det, heights[i // 300] if spike else 10.0 + rng.gauss(0.0, 1.0))
        if spike:
            surprises.append(s)
    assert min(surprises[:2]) > ALERT  # the first times, it is news
    assert max(surprises[2:]) < det.event  # then it is what this series does
    assert step(det, 100.0) > ALERT  # larger than ever: news again


def test_a_burst_of_events_is_surprising_even_if_each_is_routine():
    rng = random.Random(10)
    det = SurpriseDetector(memory=0)
    for i in range(3000):
        step(det, 30.0 if i % 400 == 0 else 10.0 + rng.gauss(0.0, 1.0))
    base = SurpriseDetector(memory=0, density_window=0)
    for i in range(3000):
        step(base, 30.0 if i % 400 == 0 else 10.0 + rng.gauss(0.0, 1.0))
    # a moderate event every third value: each alone is only just an event
    for i in range(21):
        value = 15.0 if i % 3 == 0 else 10.0
        with_density, without = step(det, value), step(base, value)
    assert with_density > without + 2


def test_a_daily_shape_is_learnt_and_a_missing_peak_is_news():
    period = 48
    det = SurpriseDetector(period=period, memory=0, density_window=0)
    rng = random.Random(11)

    def value(i):
        return (100.0 if i % period in range(20, 28) else 10.0) + rng.gauss(0.0, 1.0)

    for i in range(period * 12):
        step(det, value(i))
    peaks = [step(det, value(i)) for i in range(period * 12, period * 13)]
    assert max(peaks) < ALERT  # the daily peak is expected
    for i in range(period * 13, period * 13 + 20):
        step(det, value(i))
    missing, deviation = det.assess(10.0)  # no peak today
    assert missing > tail_surprise(6.0)
    assert deviation < 0


def test_a_detector_rebuilt_from_its_state_goes_on_exactly_as_the_original():
    """Through JSON too: the state holds NaNs (an empty season) that JSON lacks."""
    rng = random.Random(13)
    det = SurpriseDetector(period=24)
    values = [rng.gauss(5.0, 1.0) + (20 if i % 97 == 0 else 0) for i in range(600)]
    for v in values[:10]:
        step(det, v)
    state = load(dump("SurpriseDetector", det.to_state()), "SurpriseDetector")
    assert "nan" in state["_ring"]
    for v in values[10:300]:
        step(det, v)
    twin = SurpriseDetector.from_state(det.to_state(), period=24)
    wire = SurpriseDetector.from_state(
        load(dump("SurpriseDetector", det.to_state()), "SurpriseDetector"), period=24
    )
    ahead = [step(det, v) for v in values[300:]]
    assert ahead == [step(twin, v) for v in values[300:]]
    assert ahead == [step(wire, v) for v in values[300:]]


def test_a_detector_state_of_the_wrong_shape_is_refused():
    det = fed([1.0, 2.0, 3.0], period=24)
    for field, bad in [("_ring", [0.0]), ("_n", 1.5), ("_level", "x"), ("_events", [1] * 36)]:
        with pytest.raises((TypeError, ValueError)):
            SurpriseDetector.from_state({**det.to_state(), field: bad}, period=24)
    with pytest.raises(KeyError):
        SurpriseDetector.from_state({}, period=24)


def test_every_named_detector_keeps_the_contract():
    spec = SERIES_METRICS["pods"]["error_rate"]
    for kind in DETECTORS.values():
        assert issubclass(kind, Detector)
        det = kind(**kind.params_for(spec, fading_factor=0.02, warm_up=5))
        for x in [0.01, 0.012, 0.011, 0.013, 0.01, 0.012]:
            assert step(det, x) >= 0.0
        state = det.to_state()
        surprise, deviation = det.assess(0.5)
        assert det.score_one(None, 0.5) == surprise >= 0.0
        assert det.to_state() == state  # scoring changes nothing
        assert det.ready and math.isfinite(det.baseline) and deviation > 0


def test_monitor_on_a_flat_error_rate_does_not_crash():
    spec = SERIES_METRICS["pods"]["error_rate"]
    mon = SeriesMonitor("postgres", spec, warm_up=30)
    for i in range(40):
        assert mon.update(10.0 * i, 10.0 * i + 15, 0.005) is None
    anomaly = mon.update(400.0, 415.0, 0.5)
    assert anomaly is not None
    assert anomaly.deviation == pytest.approx((0.5 - 0.005) / spec.floor)


@settings(max_examples=200, database=None, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80),
    st.floats(-1e7, 1e7),
    st.floats(0.001, 10.0),
)
@example(values=[139.0, 139.0], probe_value=0.0, floor=1.0)
def test_surprise_is_finite_and_the_deviation_signed(values, probe_value, floor):
    det = fed(values, floor=floor, warm_up=1)
    s, z = probe(det, probe_value)
    assert s >= 0 and math.isfinite(s) and math.isfinite(z)
    if z > 0:
        assert probe_value > det.baseline or det.alpha_short > 0
    assert step(det, probe_value) == s


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
        assert anomaly.deviation == pytest.approx(value - LEVEL)


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
    assert anomaly.deviation < -6


def test_a_monitor_rebuilt_from_its_state_mid_anomaly_decides_as_the_original():
    """The open anomaly and the baseline of before the fault survive, so the
    rebuilt monitor ends the anomaly when the original does."""
    spec = SERIES_METRICS["pods"]["error_rate"]
    rng = random.Random(21)
    values = [0.01 + abs(rng.gauss(0.0, 0.002)) for _ in range(60)] + [0.4] * 10 + [0.01] * 10
    mon = SeriesMonitor("api", spec, warm_up=30)
    for i, v in enumerate(values[:65]):
        mon.update(10.0 * i, 10.0 * i + 15, v)
    assert mon.active is not None
    twin = SeriesMonitor.from_state(
        load(dump("SeriesMonitor", mon.to_state()), "SeriesMonitor"), "api", spec, warm_up=30
    )
    assert twin.active == mon.active
    rest = list(enumerate(values))[65:]
    ahead = [mon.update(10.0 * i, 10.0 * i + 15, v) for i, v in rest]
    assert ahead == [twin.update(10.0 * i, 10.0 * i + 15, v) for i, v in rest]
    assert any(a is not None and a.ended_at is not None for a in ahead)


def test_a_monitor_state_from_another_detector_is_refused():
    spec = SERIES_METRICS["pods"]["error_rate"]
    state = SeriesMonitor("api", spec).to_state()
    with pytest.raises(ValueError, match="detector"):
        SeriesMonitor.from_state({**state, "detector": "river"}, "api", spec)
