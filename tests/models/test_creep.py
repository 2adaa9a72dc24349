"""Slow drifts against a long-run baseline: what the level detector absorbs."""

from __future__ import annotations

import random

from models.detect import SeriesMonitor
from models.schema import SERIES_METRICS
from models.trend import CreepWarning, CreepWatch

SPEC = SERIES_METRICS["pods"]["p99_latency_ms"]


def creeping(minutes_flat: int, minutes_creep: int, per_min: float, seed: int = 3):
    """10 s windows of a 100 ms latency with noise: flat, then rising."""
    rng = random.Random(seed)
    level = 100.0
    for i in range(6 * (minutes_flat + minutes_creep)):
        if i >= 6 * minutes_flat:
            level += per_min / 6
        yield 10.0 * i, level * rng.uniform(0.97, 1.03)


def test_a_slow_creep_escapes_the_level_detector_but_not_the_creep_watch():
    monitor = SeriesMonitor("svc", SPEC)
    watch = CreepWatch("svc", "p99_latency_ms", floor=40.0)
    anomalies, creeps = [], []
    for t, value in creeping(60, 90, per_min=2.0):  # +2 ms a minute: 100 -> 280 ms
        if (a := monitor.update(t, t + 15, value)) is not None:
            anomalies.append(a)
        if (c := watch.update(t, t + 15, value)) is not None:
            creeps.append(c)
    assert anomalies == []
    [creep] = creeps
    assert isinstance(creep, CreepWarning) and creep.ended_at is None
    # Known within 50 min of the start of the creep, at +50% of the baseline.
    assert 3600 <= creep.at <= 3600 + 50 * 60
    assert creep.value >= 1.5 * creep.baseline
    assert 95 <= creep.baseline <= 115


def test_blips_noise_and_a_gentle_daily_rise_are_no_creep():
    rng = random.Random(5)
    watch = CreepWatch("svc", "p99_latency_ms", floor=40.0)
    for i in range(6 * 600):  # ten hours
        t = 10.0 * i
        value = 100.0 * (1 + 0.1 * i / 3600) * rng.uniform(0.95, 1.05)  # +10% over 10 h
        if i % 300 < 3:
            value *= 5  # a 30 s blip every 50 min
        assert watch.update(t, t + 15, value) is None


def test_a_creep_ends_when_the_series_returns_and_the_baseline_never_learned_it():
    watch = CreepWatch("svc", "error_rate", floor=0.01, confirm=6, warm_up=30)
    for i in range(60):
        watch.update(10.0 * i, 10.0 * i + 15, 0.005)
    changes = []
    for i in range(60, 300):
        value = min(0.1, 0.005 + 0.0005 * (i - 60))
        if (c := watch.update(10.0 * i, 10.0 * i + 15, value)) is not None:
            changes.append(c)
    assert len(changes) == 1 and changes[0].ended_at is None
    assert watch.level.baseline < 0.01  # frozen while drifting
    for i in range(300, 400):
        if (c := watch.update(10.0 * i, 10.0 * i + 15, 0.005)) is not None:
            changes.append(c)
    assert len(changes) == 2 and changes[1].ended_at is not None


def test_lower_is_worse_creeps_downward():
    watch = CreepWatch(
        "logins", "success_ratio", floor=0.01, lower_is_worse=True, rel=0.0, warm_up=30
    )
    for i in range(60):
        watch.update(10.0 * i, 10.0 * i, 0.95)
    fired = [
        c
        for i in range(60, 400)
        if (c := watch.update(10.0 * i, 10.0 * i, max(0.5, 0.95 - 0.001 * (i - 60))))
    ]
    assert fired and fired[0].direction == "low"


def test_a_creep_ends_with_the_outage_it_rode_not_half_an_hour_later():
    """An outage's spike (latency 250 times its level for 10 min) drags the
    smoothed level up for half an hour after; the series is back at once,
    and so is the watch."""
    watch = CreepWatch("db", "p99_latency_ms", floor=5.0, confirm=6, warm_up=30)
    for i in range(60):
        watch.update(10.0 * i, 10.0 * i + 15, 15.0)
    changes = [c for i in range(60, 120) if (c := watch.update(10.0 * i, 10.0 * i, 4000.0))]
    assert len(changes) == 1 and changes[0].ended_at is None
    after = [(i, c) for i in range(120, 420) if (c := watch.update(10.0 * i, 10.0 * i, 15.0))]
    [(when, ended)] = after  # it ends, and no new one starts
    assert ended.ended_at is not None and when <= 120 + watch.clear
