"""Engines that run the models: the embedded engine, its sinks, scenario replay."""

from streams.embedded import EmbeddedEngine, RunStats
from streams.replay import Replay, replay
from streams.sinks import JsonlSink, MemorySink, Sink

__all__ = ["EmbeddedEngine", "JsonlSink", "MemorySink", "Replay", "RunStats", "Sink", "replay"]
