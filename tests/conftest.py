"""Shared fixtures: the default topology and business parameters, and replays
cached per scenario and seed (a replay is the expensive part of these tests)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

from bench.replay import Replay, replay
from infra.settings import Settings
from models.impact import Business
from models.topology import Topology
from producers.scenario import Scenario, load_scenarios


@cache
def _defaults() -> tuple[Topology, Business, dict[str, Scenario]]:
    settings = Settings()
    return settings.load_topology(), settings.load_business(), load_scenarios(settings.scenarios)


@pytest.fixture(scope="session")
def topology() -> Topology:
    return _defaults()[0]


@pytest.fixture(scope="session")
def business() -> Business:
    return _defaults()[1]


@pytest.fixture(scope="session")
def scenarios() -> dict[str, Scenario]:
    return _defaults()[2]


@cache
def _replayed(name: str, seed: int) -> Replay:
    topology, business, scenarios = _defaults()
    return replay(scenarios[name], topology, business, seed=seed)


@pytest.fixture(scope="session")
def replayed() -> Callable[[str, int], Replay]:
    """``replayed(scenario, seed)``: the replay, computed once per test process."""
    return _replayed
