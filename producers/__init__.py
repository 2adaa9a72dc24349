"""Telemetry makers: the scenario format, telemetry sources (the synthetic
world first), pacing."""

from producers.replay import paced
from producers.scenario import Effect, Library, Scenario, Truth, load_scenarios
from producers.sources import Simulator, Source

__all__ = [
    "Effect",
    "Library",
    "Scenario",
    "Simulator",
    "Source",
    "Truth",
    "load_scenarios",
    "paced",
]
