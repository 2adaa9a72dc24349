from __future__ import annotations

from models.schema import Telemetry
from producers.replay import paced


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _messages(times):
    return [Telemetry("pods", "user-svc", t, [t], {"error_rate": [0.0]}) for t in times]


def test_max_speed_never_waits():
    clock = FakeClock()
    out = list(paced(_messages([0.0, 50.0, 100.0]), None, clock, clock.sleep))
    assert len(out) == 3 and clock.slept == []


def test_ten_times_real_time_waits_a_tenth_of_event_time():
    clock = FakeClock()
    out = list(paced(_messages([1000.0, 1010.0, 1030.0]), 10.0, clock, clock.sleep))
    assert [m.time for m in out] == [1000.0, 1010.0, 1030.0]
    assert clock.slept == [1.0, 2.0]
    assert clock.now == 103.0
