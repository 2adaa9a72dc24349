"""Telemetry sources: one contract (``Source``) and a module per implementation."""

from producers.sources.base import Source
from producers.sources.simulator import Simulator

__all__ = ["Simulator", "Source"]
