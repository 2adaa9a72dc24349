"""The source contract: anything that yields telemetry in delivery order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models.schema import Telemetry
from producers.sources import Simulator, Source


class Recorded(Source):
    """A source of messages recorded earlier: the smallest implementation."""

    def __init__(self, messages: list[Telemetry]) -> None:
        self.recorded = messages

    def messages(self) -> Iterator[Telemetry]:
        yield from self.recorded


def test_the_simulator_is_a_source(scenarios, topology, business):
    sim = Simulator(scenarios["reference-2022-10-04"], topology, business, seed=1)
    assert isinstance(sim, Source)
    assert isinstance(next(sim.messages()), Telemetry)


def test_a_source_yields_its_messages_in_delivery_order():
    late = Telemetry("pods", "user-svc", 20.0, [10.0], {"error_rate": [0.01]})
    early = Telemetry("pods", "user-svc", 30.0, [5.0], {"error_rate": [0.02]})
    assert list(Recorded([late, early]).messages()) == [late, early]


def test_the_contract_alone_yields_nothing():
    with pytest.raises(NotImplementedError):
        Source().messages()
