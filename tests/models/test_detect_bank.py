"""The bank of surprise detectors against one SeriesMonitor per series:
the same anomalies, the same learned state, to the last bit."""

from __future__ import annotations

import copy
import math
import random

import numpy as np
import pytest

from models.detect import Anomaly, SeriesMonitor
from models.detect_bank import SurpriseBank
from models.detectors.surprise import (
    SurpriseDetector,
    poisson_surprise,
    poisson_surprises,
    tail_surprise,
    tail_surprises,
)
from models.schema import SERIES_METRICS, MetricSpec
from models.snapshot import record_state

# One spec of each kind: ratios and rates, each harmful direction, floors from 0.005 to 500.
SPECS = list(
    {(s.bad, s.floor, s.ratio): s for f in SERIES_METRICS.values() for s in f.values()}.values()
)

# Monitor settings to run under: the pipeline's, and others that reach the
# edges sooner (no warm-up, relearning after a short hold, two windows to confirm).
SETTINGS = [
    {},
    {"warm_up": 10, "max_hold": 80, "fading_factor": 0.05},
    {"warm_up": 0, "max_hold": 25, "fading_factor": 0.1, "confirm": 2, "clear": 2},
    {"warm_up": 1, "enter": 4.0, "leave": 2.0, "max_hold": 40},
]

KINDS = ("noise", "spikes", "steps", "zeros", "outages", "floor", "flat")


def series(rng: random.Random, kind: str, spec: MetricSpec, windows: int) -> list[float | None]:
    """One series of ``kind``: a value per window, None where it is silent."""
    top = 1.0 if spec.ratio else math.inf
    base = rng.uniform(0.05, 0.95) if spec.ratio else spec.floor * rng.uniform(0.5, 200.0)
    spread = base * rng.uniform(0.005, 0.2)
    every = rng.randint(30, 120)  # a spike that recurs is routine after a while
    spike = base * rng.uniform(1.0, 6.0)
    out: list[float | None] = []
    level, silent = base, 0
    for t in range(windows):
        x = level + rng.gauss(0.0, spread)
        if kind == "spikes":
            if t % every == 0:
                x += spike * rng.uniform(0.9, 1.1)
            elif rng.random() < 0.01:
                x += rng.choice((-1, 1)) * spike * rng.uniform(1.0, 3.0)
        elif kind == "steps" and rng.random() < 0.006:
            level = base * rng.choice((0.0, 0.2, 0.5, 2.0, 5.0, 1.0))
        elif kind == "zeros":
            x = spec.floor * rng.uniform(0.0, 3.0) if rng.random() < 0.02 else 0.0
        elif kind == "outages":
            if silent == 0 and rng.random() < 0.005:
                silent = rng.randint(20, 300)
            if silent:
                silent -= 1
                out.append(None if silent % 97 else 0.0)  # mostly absent, sometimes zero
                continue
        elif kind == "floor":
            x = spec.floor * rng.choice((0.0, 0.5, 1.0, 1.0, 2.0))  # moves of about a floor
        elif kind == "flat":
            x = base if rng.random() > 0.003 else base * rng.uniform(0.0, 3.0)
        out.append(round(min(top, max(0.0, x)), rng.choice((3, 6, 12))))
    return out


class Twins:
    """The same series fed to one monitor each and to one bank."""

    def __init__(self, seed: int, settings: dict, count: int = 40) -> None:
        self.rng = random.Random(seed)
        self.settings = settings
        self.monitors = []
        for i in range(count):
            spec = SPECS[i % len(SPECS)]
            self.monitors.append(SeriesMonitor(f"e{i}", spec, **settings))
        self.bank = SurpriseBank(SeriesMonitor("template", SPECS[0], **settings), capacity=4)
        self.rows = [self.bank.add(SeriesMonitor(m.entity, m.spec, **settings)) for m in self]
        self.started = self.ended = 0

    def __iter__(self):
        return iter(self.monitors)

    def feed(self, values: list[list[float | None]], first: int, last: int) -> None:
        """Windows ``first`` to ``last`` of every series, in a new order each window."""
        for w in range(first, last):
            start, at = 10.0 * w, 10.0 * w + 15.0
            present = [i for i, v in enumerate(values) if v[w] is not None]
            self.rng.shuffle(present)
            xs = [values[i][w] for i in present]
            expected = []
            for place, (i, x) in enumerate(zip(present, xs, strict=True)):
                was = self.monitors[i].active
                change = self.monitors[i].update(start, at, x)
                if change is not None:
                    expected.append((place, repr(change), repr(was or change)))
            rows = np.array([self.rows[i].row for i in present], np.int64)
            stepped = self.bank.step(rows, np.array(xs, np.float64), start, at)
            got = [(c.place, repr(c.anomaly), repr(c.started)) for c in stepped]
            assert got == expected, f"window {w}"
            self.started += sum(c.anomaly.ended_at is None for c in stepped)
            self.ended += sum(c.anomaly.ended_at is not None for c in stepped)
            if w % 150 == 0:
                self.same_state(w)

    def same_state(self, w: int) -> None:
        for mon, row in zip(self.monitors, self.rows, strict=True):
            # repr tells 0.0 from -0.0 and 1 from 1.0, and keeps the order of keys
            assert repr(row.to_state()) == repr(mon.to_state()), f"{mon.entity} at window {w}"
            assert row.active == mon.active and row.baseline == mon.detector.baseline


def workload(seed: int, count: int = 40, windows: int = 1200) -> list[list[float | None]]:
    rng = random.Random(seed)
    return [
        series(rng, KINDS[i % len(KINDS)], SPECS[i % len(SPECS)], windows) for i in range(count)
    ]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("seed", [1, 2])
def test_a_bank_decides_and_learns_as_its_monitors_do(seed, settings):
    values = workload(seed)
    twins = Twins(seed, settings)
    twins.feed(values, 0, 1200)
    twins.same_state(1200)
    # The run went through what it is meant to compare.
    assert twins.started >= 10 and twins.ended >= 5
    assert any(m.to_state()["learned"]["_episodes"] for m in twins)  # recurring spikes


def test_close_calls_settled_by_the_scalar_functions_decide_alike():
    """With no slack at all for the estimates, every row that is not cold is
    scored by the scalar functions: the path a close call takes, for all."""
    values = workload(3, windows=800)
    twins = Twins(3, SETTINGS[1])
    twins.bank.slack = math.inf
    twins.feed(values, 0, 800)
    twins.same_state(800)
    assert twins.started >= 5 and twins.ended >= 2


def test_a_close_call_between_spike_and_shift_is_settled_as_the_scalar_code_settles_it():
    """Deviations of the spike and of the shift a hair apart, whose surprises
    the estimates order one way and the math module the other: the anomaly
    ends with the deviation the scalar code picks. A bank that trusted its
    estimates would have picked the other one."""
    spec = SERIES_METRICS["pods"]["error_rate"]  # floor 0.005: the scale of a flat series
    fresh = SeriesMonitor("a", spec).to_state()
    onset = record_state(Anomaly("a", spec.name, 0.0, 15.0, 0.5, 0.0, 100.0))

    def calming(short: float) -> SeriesMonitor:
        """Warm, at level 0 with no spread, and an anomaly one calm window from its end."""
        state = copy.deepcopy(fresh)
        state["learned"] |= {"_n": 100, "_short": short}
        state |= {"active": onset, "calm": 2}
        return SeriesMonitor.from_state(state, "a", spec)

    def ended(mon: SeriesMonitor, x: float, slack: float) -> str:
        bank = SurpriseBank(mon)
        bank.slack = slack
        row = bank.add(mon)
        (change,) = bank.step(np.array([row.row]), np.array([x]), 20.0, 35.0)
        return repr(change.anomaly)

    se = math.sqrt(0.2 / 1.8)  # the short mean's standard error, in scales
    tried = trusted_wrong = 0
    for x in np.linspace(0.0021, 0.0145, 300).tolist():
        z = x / 0.005
        # short means whose next value puts the shift's deviation next to the spike's
        around = (z * 0.005 * se - 0.2 * x) / 0.8
        shorts = around + np.arange(-40, 40) * math.ulp(around)
        z_shift = (shorts + 0.2 * (x - shorts)) / (0.005 * se)
        exact = np.array([tail_surprise(v) for v in z_shift.tolist()])
        estimated = tail_surprises(z_shift) > tail_surprises(np.array([z]))
        # the orders that differ, and ties (the spike's deviation is kept)
        close = ((exact > tail_surprise(z)) != estimated) | (exact == tail_surprise(z))
        for short in shorts[close & (z_shift != z)].tolist():
            expected = repr(calming(short).update(20.0, 35.0, x))
            assert ended(calming(short), x, SurpriseBank.slack) == expected
            trusted_wrong += ended(calming(short), x, -1.0) != expected
            tried += 1
        if trusted_wrong >= 3:
            break
    if not tried:
        pytest.skip("here the estimates order every pair tried as the math module does")
    assert trusted_wrong


def test_a_row_restored_from_its_state_goes_on_as_its_monitor():
    """Bank state to monitor state and back, halfway: nothing is lost."""
    settings = SETTINGS[1]
    values = workload(4, windows=1000)
    twins = Twins(4, settings)
    twins.feed(values, 0, 500)
    states = [row.to_state() for row in twins.rows]
    bank = SurpriseBank(SeriesMonitor("template", SPECS[0], **settings))
    twins.bank = bank
    twins.rows = [
        bank.add(SeriesMonitor.from_state(state, mon.entity, mon.spec, **settings))
        for mon, state in zip(twins, states, strict=True)
    ]
    twins.same_state(500)
    twins.feed(values, 500, 1000)
    twins.same_state(1000)
    # and a monitor rebuilt from a row is the row
    row = twins.rows[5]
    again = SeriesMonitor.from_state(row.to_state(), row.entity, row.spec, **settings)
    assert repr(again.to_state()) == repr(row.to_state())
    assert type(row.detector) is SurpriseDetector
    assert repr(row.detector.to_state()) == repr(twins.monitors[5].detector.to_state())


def test_the_array_estimates_are_far_closer_than_the_slack():
    """The bank trusts an estimated surprise unless it is within ``slack`` of
    what it is compared with: the estimates must be far closer than that."""
    rng = np.random.default_rng(7)
    z = np.concatenate(
        [
            np.linspace(-60.0, 60.0, 24001),
            rng.normal(0.0, 4.0, 20000),
            10.0 ** np.linspace(-15.0, 4.0, 2000),
            [7.999999999, 8.0, 8.000000001, 0.0, -0.0],
        ]
    )
    exact = np.array([tail_surprise(v) for v in z.tolist()])
    assert _worst(tail_surprises(z), exact) < SurpriseBank.slack / 1000
    k = np.repeat(np.arange(0, 37), 300)
    lam = np.tile(np.geomspace(0.072, 36.0, 300), 37)
    exact = np.array(
        [poisson_surprise(a, b) for a, b in zip(k.tolist(), lam.tolist(), strict=True)]
    )
    assert _worst(poisson_surprises(k, lam), exact) < SurpriseBank.slack / 1000


def _worst(estimate: np.ndarray, exact: np.ndarray) -> float:
    scale = np.maximum(np.maximum(np.abs(estimate), np.abs(exact)), 1.0)
    return float(np.max(np.abs(estimate - exact) / scale))


def test_a_bank_takes_only_what_it_can_run():
    spec = SPECS[0]
    bank = SurpriseBank(SeriesMonitor("a", spec))
    assert bank.fits(SeriesMonitor("b", SPECS[3]))  # another metric: its own floors
    assert not bank.fits(SeriesMonitor("b", spec, warm_up=5))
    assert not bank.fits(SeriesMonitor("b", spec, clear=4))
    assert not bank.fits(SeriesMonitor("b", spec, detector="river-sad"))
    with pytest.raises(ValueError, match="does not fit"):
        bank.add(SeriesMonitor("b", spec, enter=5.0))
    # NAB's options (a season, recurrence in units) stay with the scalar detector
    assert not SurpriseBank.supports(SurpriseDetector(**SurpriseDetector.params_for_rows(300.0)))
    seasonal = SeriesMonitor("s", spec)
    seasonal.detector = SurpriseDetector(period=12)
    with pytest.raises(ValueError, match="cannot hold"):
        SurpriseBank(seasonal)


def test_a_bank_grows_as_series_come():
    spec = SPECS[1]
    bank = SurpriseBank(SeriesMonitor("t", spec), capacity=1)
    rows = [bank.add(SeriesMonitor(f"e{i}", spec)) for i in range(100)]
    assert [r.row for r in rows] == list(range(100)) and bank.size == 100
    assert bank.step(np.array([], np.int64), np.array([]), 0.0, 15.0) == []
    bank.step(np.array([99, 0]), np.array([3.0, 4.0]), 0.0, 15.0)
    assert rows[99].to_state()["learned"]["_level"] == 3.0
    assert rows[0].to_state()["learned"]["_level"] == 4.0
    assert rows[50].to_state()["learned"]["_n"] == 0


def test_a_look_at_a_value_judges_it_as_its_monitor_would_and_learns_nothing():
    values = workload(3, count=14, windows=400)
    twins = Twins(3, {}, count=14)
    twins.feed(values, 0, 400)
    before = [repr((m.to_state(), r.to_state())) for m, r in zip(twins, twins.rows, strict=True)]
    looked = surprising = 0
    for mon, row, xs in zip(twins.monitors, twins.rows, values, strict=True):
        seen = [x for x in xs if x is not None]
        for x in (seen[-1], min(seen), max(seen), 3 * max(seen) + 1, 0.0):
            looked += 1
            surprising += mon.surprising(x)
            assert row.surprising(x) == mon.surprising(x), (mon.entity, x)
    assert 0 < surprising < looked  # both answers were given
    after = [repr((m.to_state(), r.to_state())) for m, r in zip(twins, twins.rows, strict=True)]
    assert after == before
