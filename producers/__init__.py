"""Telemetry makers: the scenario format, the synthetic world, pacing."""

from producers.replay import paced
from producers.scenario import Effect, Scenario, Truth, load_scenarios
from producers.simulator import Simulator

__all__ = ["Effect", "Scenario", "Simulator", "Truth", "load_scenarios", "paced"]
