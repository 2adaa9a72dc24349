"""A fault-free day must not page, whatever the seed."""

from __future__ import annotations

import pytest


# About 70 s each: a whole 24 h day (over 40 M samples) per seed.
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 11))
def test_baseline_day_opens_no_incident(seed, replayed):
    result = replayed("baseline-24h", seed)
    assert result.incidents == []
    assert result.stats.samples > 40_000_000  # a whole day was replayed
