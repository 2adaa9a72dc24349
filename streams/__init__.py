"""Engines that run the models: the embedded engine and its sinks (the Faust
app is ``streams.app``)."""

from streams.embedded import EmbeddedEngine, RunStats
from streams.sinks import JsonlSink, MemorySink, Sink

__all__ = ["EmbeddedEngine", "JsonlSink", "MemorySink", "RunStats", "Sink"]
