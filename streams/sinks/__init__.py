"""Alert sinks: one contract (``Sink``) and a module per implementation."""

from streams.sinks.base import Sink
from streams.sinks.jsonl import JsonlSink
from streams.sinks.memory import MemorySink
from streams.sinks.wire import event_to_dict

__all__ = ["JsonlSink", "MemorySink", "Sink", "event_to_dict"]
