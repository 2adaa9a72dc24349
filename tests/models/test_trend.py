"""Least-squares time to exhaustion and the warning built on it."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models.trend import ExhaustionWarning, ExhaustionWatch, TimeToExhaustion

T0 = 1_664_870_000.0  # a realistic epoch: the fit must survive large timestamps


def ramp(tte, start, slope, n, step=10.0, t0=T0):
    for i in range(n):
        tte.learn_one(t0 + step * i, start + slope * step * i)
    return t0 + step * (n - 1), start + slope * step * (n - 1)


# ---------------------------------------------------------------------------
# TimeToExhaustion


def test_eta_on_a_linear_ramp():
    tte = TimeToExhaustion(limit=1.0, window_s=1200)
    # +0.0001 per second from 0.5: after 1190 s it is at 0.619, 3810 s to go
    ramp(tte, 0.5, 1e-4, 120)
    slope, now, r2 = tte.fit()
    assert slope == pytest.approx(1e-4)
    assert now == pytest.approx(0.619)
    assert r2 == pytest.approx(1.0)
    assert tte.eta_one() == pytest.approx((1.0 - 0.619) / 1e-4)


def test_eta_uses_only_the_sliding_window():
    tte = TimeToExhaustion(limit=100.0, window_s=600)
    # a fast rise long ago, then a slow one: only the slow one counts
    t_end, _ = ramp(tte, 0.0, 0.05, 100)
    for i in range(1, 121):
        tte.learn_one(t_end + 10.0 * i, 49.5 + 0.01 * 10.0 * i)
    slope, now, _ = tte.fit()
    assert slope == pytest.approx(0.01)
    assert now == pytest.approx(49.5 + 12.0)
    assert tte.eta_one() == pytest.approx((100.0 - 61.5) / 0.01)


def test_needs_min_points():
    tte = TimeToExhaustion(limit=1.0, window_s=1200, min_points=10)
    ramp(tte, 0.5, 1e-3, 9)
    assert tte.fit() is None
    assert tte.eta_one() is None
    tte.learn_one(T0 + 90.0, 0.5 + 1e-3 * 90)
    assert tte.eta_one() == pytest.approx((1.0 - 0.59) / 1e-3)


def test_points_at_one_instant_give_no_fit():
    tte = TimeToExhaustion(limit=1.0, min_points=3)
    for y in (0.1, 0.5, 0.9):
        tte.learn_one(T0, y)
    assert tte.fit() is None


@pytest.mark.parametrize("level", [0.0, 0.5, 0.7, 0.62, 0.123456789, 0.999])
def test_no_eta_on_a_flat_series(level):
    tte = TimeToExhaustion(limit=1.0, window_s=1200)
    for i in range(200):
        tte.learn_one(T0 + 10.0 * i + 5.0, level)
        assert tte.eta_one() is None


def test_no_eta_on_a_falling_series():
    tte = TimeToExhaustion(limit=1.0, window_s=1200)
    ramp(tte, 0.9, -1e-4, 120)
    slope, _, r2 = tte.fit()
    assert slope == pytest.approx(-1e-4)
    assert r2 == pytest.approx(1.0)
    assert tte.eta_one() is None


def test_no_eta_on_a_noisy_plateau():
    tte = TimeToExhaustion(limit=1.0, window_s=1200, min_r2=0.8)
    # a slight upward drift buried in noise
    for i in range(120):
        tte.learn_one(T0 + 10.0 * i, 0.7 + 1e-5 * 10 * i + 0.05 * (-1) ** (i + 1))
    slope, _, r2 = tte.fit()
    assert slope > 0
    assert r2 < 0.8
    assert tte.eta_one() is None
    # the same drift without the noise is believed
    clean = TimeToExhaustion(limit=1.0, window_s=1200, min_r2=0.8)
    ramp(clean, 0.7, 1e-5, 120)
    assert clean.eta_one() == pytest.approx((1.0 - (0.7 + 1e-5 * 1190)) / 1e-5)


def test_past_the_limit_the_eta_is_zero():
    tte = TimeToExhaustion(limit=1.0)
    ramp(tte, 1.01, 1e-4, 20)
    assert tte.eta_one() == 0.0


def test_r2_of_a_noisy_line():
    rng = random.Random(2)
    tte = TimeToExhaustion(limit=1.0, window_s=1200)
    xs, ys = [], []
    for i in range(120):
        t, y = 10.0 * i, 0.5 + 1e-4 * 10.0 * i + rng.gauss(0, 0.01)
        tte.learn_one(T0 + t, y)
        xs.append(t)
        ys.append(y)
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    slope, now, r2 = tte.fit()
    assert slope == pytest.approx(sxy / sxx)
    assert now == pytest.approx(my + sxy / sxx * (xs[-1] - mx))
    assert r2 == pytest.approx(sxy * sxy / (sxx * syy))


@settings(max_examples=300, database=None, deadline=None)
@given(
    st.floats(0.0, 0.9),
    st.floats(1e-6, 1e-2),
    st.integers(10, 150),
    st.floats(1.0, 60.0),
)
def test_eta_of_any_clean_ramp(start, slope, n, step):
    tte = TimeToExhaustion(limit=1.0, window_s=1e9)
    _, y_last = ramp(tte, start, slope, n, step=step)
    assume(y_last < 1.0)
    eta = tte.eta_one()
    assert eta is not None
    assert eta == pytest.approx((1.0 - y_last) / slope, rel=1e-6, abs=1e-3)


# ---------------------------------------------------------------------------
# ExhaustionWatch


def watch(**kw):
    kw.setdefault("horizon_s", 7200.0)
    kw.setdefault("window_s", 1200.0)
    kw.setdefault("confirm", 3)
    return ExhaustionWatch("redis/node-01", "memory_used_ratio", 1.0, **kw)


def test_warns_after_confirm_windows():
    w = watch()
    events = []
    for i in range(40):
        at, value = T0 + 10.0 * i, 0.7 + 1e-4 * 10.0 * i  # 0.0001/s: ~50 min to go
        event = w.update(at, value)
        if event is not None:
            events.append((i, event))
    # first forecast with 10 points (i=9), then three in a row: i=9, 10, 11
    assert [i for i, _ in events] == [11]
    warning = events[0][1]
    assert isinstance(warning, ExhaustionWarning)
    at, value = T0 + 110.0, 0.7 + 1e-4 * 110.0
    assert warning.at == at
    assert warning.value == pytest.approx(value)
    assert warning.eta == pytest.approx(at + (1.0 - value) / 1e-4)
    assert warning.slope_per_min == pytest.approx(1e-4 * 60)
    assert warning.cleared_at is None
    assert w.active is warning


def test_no_warning_when_exhaustion_is_beyond_the_horizon():
    w = watch(horizon_s=3600.0)
    # 0.3 to go at 1e-5/s is 30 000 s
    for i in range(200):
        assert w.update(T0 + 10.0 * i, 0.7 + 1e-5 * 10.0 * i) is None
    assert w.active is None


def test_a_single_window_inside_the_horizon_is_not_enough():
    w = watch(confirm=3)
    for i in range(30):
        assert w.update(T0 + 10.0 * i, 0.5) is None
    # a jump makes one noisy forecast, then it is gone
    assert w.update(T0 + 300.0, 0.9) is None
    for i in range(31, 200):
        assert w.update(T0 + 10.0 * i, 0.5) is None


def test_clears_when_the_trend_goes_away():
    w = watch(window_s=600.0)
    warned_at = None
    i = 0
    for i in range(60):
        if w.update(T0 + 10.0 * i, 0.6 + 1e-4 * 10.0 * i) is not None:
            warned_at = T0 + 10.0 * i
    assert warned_at is not None
    plateau = 0.6 + 1e-4 * 10.0 * i
    cleared = None
    j = 0
    for j in range(1, 200):
        event = w.update(T0 + 10.0 * (i + j), plateau)
        if event is not None:
            cleared = event
            break
    assert cleared is not None
    assert cleared.cleared_at == T0 + 10.0 * (i + j)
    assert cleared.at == warned_at
    assert cleared.value == pytest.approx(plateau)
    assert w.active is None
    # it cleared once the plateau dominated the window, not while the ramp did
    assert 3 <= j <= 600 / 10 + 3
    replica = TimeToExhaustion(1.0, 600.0)
    for k in range(i + j + 1):
        replica.learn_one(T0 + 10.0 * k, min(plateau, 0.6 + 1e-4 * 10.0 * k))
    # the last `confirm` forecasts were gone or far away
    assert replica.eta_one() is None or replica.eta_one() > 2 * 7200


def test_clears_when_the_forecast_moves_past_twice_the_horizon():
    w = watch(horizon_s=3600.0, window_s=600.0)
    t = T0
    value = 0.5
    warned = False
    for _ in range(30):  # 1e-4/s: 5000 s to go... then faster
        t += 10.0
        value += 2e-3
        warned |= w.update(t, value) is not None
    assert warned
    events = []
    for _ in range(200):  # now it barely moves: eta far beyond 2 × horizon
        t += 10.0
        value += 1e-6 * 10
        event = w.update(t, value)
        if event is not None:
            events.append(event)
    assert len(events) == 1
    assert events[0].cleared_at is not None


def test_no_duplicate_warning_while_active():
    w = watch()
    events = [w.update(T0 + 10.0 * i, 0.7 + 1e-4 * 10.0 * i) for i in range(200)]
    assert len([e for e in events if e is not None]) == 1


def test_warns_again_after_clearing():
    w = watch(window_s=300.0)
    t, value = T0, 0.5
    kinds = []
    for phase_slope, windows in ((1e-4, 40), (0.0, 60), (1e-4, 40)):
        for _ in range(windows):
            t += 10.0
            value += phase_slope * 10.0
            event = w.update(t, value)
            if event is not None:
                kinds.append("cleared" if event.cleared_at is not None else "warned")
    assert kinds == ["warned", "cleared", "warned"]
