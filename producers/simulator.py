"""The simulator's former home: it is ``producers.sources.simulator`` now."""

from producers.sources.simulator import NORMAL_MENTIONS, OUTAGE_MENTIONS, Simulator

__all__ = ["NORMAL_MENTIONS", "OUTAGE_MENTIONS", "Simulator"]
