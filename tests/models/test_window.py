"""Event-time windows: closing by watermark, aggregates, late points, splitting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.mentions import is_outage_mention
from models.schema import Telemetry
from models.window import Windower
from producers.sources.simulator import NORMAL_MENTIONS, OUTAGE_MENTIONS


def pods(time, ts, entity="user-svc", **metrics):
    return Telemetry("pods", entity, float(time), [float(t) for t in ts], metrics)


def one(windows):
    assert len(windows) == 1, windows
    return windows[0]


# ---------------------------------------------------------------------------
# Closing


def test_window_closes_only_when_the_watermark_passes_end_plus_lateness():
    w = Windower(window_s=10, lateness_s=5)
    assert w.add(pods(9, [1, 9], error_rate=[0.1, 0.3])) == ([], 0)
    assert w.add(pods(14.9, [12], error_rate=[0.5])) == ([], 0)
    assert w.watermark == 14.9
    closed, late = w.add(pods(15, [15], error_rate=[0.0]))
    assert late == 0
    window = one(closed)
    assert (window.start, window.end, window.decided_at) == (0, 10, 15)
    assert window.values == {("user-svc", "error_rate"): pytest.approx(0.2)}
    # [10, 20) waits for a watermark of 25
    assert w.add(pods(24, [], error_rate=[])) == ([], 0)
    window = one(w.add(pods(25, [], error_rate=[]))[0])
    assert (window.start, window.end, window.decided_at) == (10, 20, 25)
    assert window.values == {("user-svc", "error_rate"): pytest.approx(0.25)}


def test_watermark_never_goes_back():
    w = Windower(window_s=10, lateness_s=0)
    w.add(pods(30, [21], error_rate=[0.1]))
    w.add(pods(12, [], error_rate=[]))  # an older batch does not rewind time
    assert w.watermark == 30


def test_several_windows_close_at_once_in_order():
    w = Windower(window_s=10, lateness_s=30)
    assert w.add(pods(29, [25, 15, 5], request_rate=[3.0, 2.0, 1.0])) == ([], 0)
    closed, _ = w.add(pods(60, [], request_rate=[]))
    assert [c.start for c in closed] == [0, 10, 20]
    assert [c.values[("user-svc", "request_rate")] for c in closed] == [1.0, 2.0, 3.0]
    assert {c.decided_at for c in closed} == {60}


def test_empty_windows_are_not_emitted():
    w = Windower(window_s=10, lateness_s=0)
    w.add(pods(5, [5], error_rate=[0.1]))
    closed, _ = w.add(pods(99, [95], error_rate=[0.2]))
    assert [c.start for c in closed] == [0]
    assert [c.start for c in w.flush()] == [90]


@settings(max_examples=200, database=None, deadline=None)
@given(
    st.floats(1, 60),
    st.floats(0, 60),
    st.lists(st.tuples(st.floats(0, 50), st.floats(0, 500)), min_size=1, max_size=30),
)
def test_closing_rule_holds_for_any_stream(window_s, lateness_s, steps):
    w = Windower(window_s=window_s, lateness_s=lateness_s)
    time, seen_starts, closed_starts = 0.0, set(), []
    for back, advance in steps:
        time += advance
        ts = max(0.0, time - back)
        closed, late = w.add(pods(time, [ts], request_rate=[1.0]))
        start = ts - ts % window_s
        if late == 0:
            seen_starts.add(start)
        for c in closed:
            assert c.end <= w.watermark - lateness_s
            assert c.end == c.start + window_s
            closed_starts.append(c.start)
        # every window with data whose end + lateness has passed is closed
        for s in seen_starts:
            if s + window_s <= w.watermark - lateness_s:
                assert s in closed_starts
            else:
                assert s not in closed_starts
    assert len(closed_starts) == len(set(closed_starts))


# ---------------------------------------------------------------------------
# Aggregates


def test_gauges_are_averaged_and_counters_become_rates():
    w = Windower(window_s=10, lateness_s=0)
    w.add(
        pods(
            9,
            [1, 4, 7],
            p99_latency_ms=[100.0, 200.0, 600.0],
            restarts=[1.0, 0.0, 2.0],
            error_rate=[0.0, 0.01, 0.05],
        )
    )
    values = w.flush()[0].values
    assert values[("user-svc", "p99_latency_ms")] == pytest.approx(300.0)
    assert values[("user-svc", "restarts")] == pytest.approx(3.0 / 10)
    assert values[("user-svc", "error_rate")] == pytest.approx(0.02)


def test_redis_counter_and_ratio():
    w = Windower(window_s=5, lateness_s=0)
    tel = Telemetry(
        "redis",
        "redis/node-01",
        4.0,
        [0.0, 2.0, 4.0],
        {"evictions": [10.0, 20.0, 30.0], "memory_used_ratio": [0.7, 0.8, 0.9]},
    )
    w.add(tel)
    values = w.flush()[0].values
    assert values == {
        ("redis/node-01", "evictions"): pytest.approx(60.0 / 5),
        ("redis/node-01", "memory_used_ratio"): pytest.approx(0.8),
    }


def test_means_weigh_points_across_messages_of_one_entity():
    w = Windower(window_s=10, lateness_s=0)
    w.add(pods(3, [1, 2, 3], p99_latency_ms=[10.0, 10.0, 10.0], restarts=[1.0, 1.0, 1.0]))
    w.add(pods(4, [4], p99_latency_ms=[50.0], restarts=[3.0]))
    values = w.flush()[0].values
    assert values[("user-svc", "p99_latency_ms")] == pytest.approx(20.0)
    assert values[("user-svc", "restarts")] == pytest.approx(0.6)


def test_entities_are_kept_apart():
    w = Windower(window_s=10, lateness_s=0)
    w.add(pods(3, [3], entity="a", error_rate=[0.1]))
    w.add(pods(4, [4], entity="b", error_rate=[0.3]))
    assert w.flush()[0].values == {("a", "error_rate"): 0.1, ("b", "error_rate"): 0.3}


def test_logins_become_rates_and_ratios():
    w = Windower(window_s=10, lateness_s=0)
    w.add(
        Telemetry(
            "logins",
            "logins/eu-west/mobile",
            9.0,
            [1.0, 6.0],
            {"attempts": [10.0, 20.0], "successes": [9.0, 12.0], "timeouts": [1.0, 5.0]},
        )
    )
    values = w.flush()[0].values
    key = "logins/eu-west/mobile"
    assert values == {
        (key, "attempt_rate"): pytest.approx(3.0),
        (key, "success_ratio"): pytest.approx(21 / 30),
        (key, "timeout_ratio"): pytest.approx(6 / 30),
    }


def test_logins_without_attempts_have_no_ratios():
    w = Windower(window_s=10, lateness_s=0)
    w.add(
        Telemetry(
            "logins", "l", 9.0, [1.0], {"attempts": [0.0], "successes": [0.0], "timeouts": [0.0]}
        )
    )
    assert w.flush()[0].values == {("l", "attempt_rate"): 0.0}


def test_login_ratios_are_capped_at_one():
    w = Windower(window_s=10, lateness_s=0)
    w.add(
        Telemetry(
            "logins", "l", 9.0, [1.0], {"attempts": [4.0], "successes": [6.0], "timeouts": [9.0]}
        )
    )
    values = w.flush()[0].values
    assert values[("l", "success_ratio")] == 1.0
    assert values[("l", "timeout_ratio")] == 1.0
    assert values[("l", "attempt_rate")] == pytest.approx(0.4)


def test_social_mentions_become_rates_with_outage_classification():
    texts = [*OUTAGE_MENTIONS[:3], *NORMAL_MENTIONS[:5]]
    ts = [float(i) for i in range(len(texts))]
    w = Windower(window_s=20, lateness_s=0)
    w.add(Telemetry("social", "social/eu-west", 19.0, ts, text=texts))
    values = w.flush()[0].values
    expected_outage = sum(map(is_outage_mention, texts))
    assert expected_outage == 3
    assert values == {
        ("social/eu-west", "mention_rate"): pytest.approx(8 / 20),
        ("social/eu-west", "outage_mention_rate"): pytest.approx(3 / 20),
    }


def test_social_without_mentions_reports_zero_rates():
    w = Windower(window_s=10, lateness_s=0)
    w.add(Telemetry("social", "social/us-east", 5.0, [], text=[]))
    w.add(Telemetry("social", "social/us-east", 6.0, [6.0], text=["lovely day"]))
    values = w.flush()[0].values
    assert values == {
        ("social/us-east", "mention_rate"): pytest.approx(0.1),
        ("social/us-east", "outage_mention_rate"): 0.0,
    }


# ---------------------------------------------------------------------------
# Late points


def test_late_points_are_counted_and_not_folded_in():
    w = Windower(window_s=10, lateness_s=0)
    w.add(pods(9, [5], p99_latency_ms=[100.0]))
    first = one(w.add(pods(15, [14], p99_latency_ms=[20.0]))[0])
    assert first.values == {("user-svc", "p99_latency_ms"): 100.0}
    # One point for the closed window [0, 10), one for the open [10, 20)
    closed, late = w.add(pods(16, [8, 15], p99_latency_ms=[9999.0, 40.0]))
    assert (closed, late) == ([], 1)
    rest = w.flush()
    window = one(rest)
    assert window.start == 10
    assert window.values == {("user-svc", "p99_latency_ms"): pytest.approx(30.0)}


def test_a_whole_late_batch_is_counted():
    w = Windower(window_s=10, lateness_s=0)
    w.add(pods(25, [25], restarts=[1.0]))
    closed, late = w.add(pods(25, [11, 12, 13], restarts=[5.0, 5.0, 5.0]))
    assert (closed, late) == ([], 3)
    assert [c.values for c in w.flush()] == [{("user-svc", "restarts"): pytest.approx(0.1)}]


def test_windows_that_saw_no_data_are_closed_too():
    w = Windower(window_s=10, lateness_s=5)
    w.add(pods(40, [38], error_rate=[0.1]))  # closes up to 35: [20, 30) is decided, empty
    closed, late = w.add(pods(40, [25, 31], error_rate=[0.9, 0.2]))
    assert (closed, late) == ([], 1)
    windows = w.flush()
    assert [(c.start, c.values) for c in windows] == [
        (30, {("user-svc", "error_rate"): pytest.approx(0.15)})
    ]


def test_lateness_lets_stragglers_in():
    w = Windower(window_s=10, lateness_s=5)
    w.add(pods(12, [9], error_rate=[0.1]))
    closed, late = w.add(pods(14, [8], error_rate=[0.3]))  # [0, 10) still open
    assert (closed, late) == ([], 0)
    window = one(w.add(pods(15, [], error_rate=[]))[0])
    assert window.values == {("user-svc", "error_rate"): pytest.approx(0.2)}


# ---------------------------------------------------------------------------
# Flush and splitting


def test_flush_closes_everything_once():
    w = Windower(window_s=10, lateness_s=1000)
    w.add(pods(35, [5, 15, 35], request_rate=[1.0, 2.0, 3.0]))
    windows = w.flush()
    assert [(c.start, c.end) for c in windows] == [(0, 10), (10, 20), (30, 40)]
    assert [c.values[("user-svc", "request_rate")] for c in windows] == [1.0, 2.0, 3.0]
    assert {c.decided_at for c in windows} == {35}
    assert w.flush() == []
    # and nothing can be folded into them afterwards
    assert w.add(pods(36, [35.5], request_rate=[9.0])) == ([], 1)


def test_a_message_spanning_two_windows_is_split():
    w = Windower(window_s=10, lateness_s=100)
    w.add(
        pods(
            12,
            [8, 9, 11, 12],
            p99_latency_ms=[1.0, 3.0, 10.0, 20.0],
            restarts=[1.0, 1.0, 0.0, 5.0],
        )
    )
    a, b = w.flush()
    assert (a.start, b.start) == (0, 10)
    assert a.values == {
        ("user-svc", "p99_latency_ms"): pytest.approx(2.0),
        ("user-svc", "restarts"): pytest.approx(0.2),
    }
    assert b.values == {
        ("user-svc", "p99_latency_ms"): pytest.approx(15.0),
        ("user-svc", "restarts"): pytest.approx(0.5),
    }


def test_a_social_message_spanning_two_windows_is_split():
    w = Windower(window_s=10, lateness_s=100)
    texts = ["is it down?", "lovely", "spotify outage?", "app won't play", "nice"]
    w.add(Telemetry("social", "s", 14.0, [2.0, 9.0, 10.0, 13.0, 14.0], text=texts))
    a, b = w.flush()
    assert a.values == {("s", "mention_rate"): 0.2, ("s", "outage_mention_rate"): 0.1}
    assert b.values == {
        ("s", "mention_rate"): pytest.approx(0.3),
        ("s", "outage_mention_rate"): pytest.approx(0.2),
    }


def test_split_message_with_late_part():
    w = Windower(window_s=10, lateness_s=0)
    w.add(pods(10, [], error_rate=[]))  # [0, 10) is decided
    closed, late = w.add(pods(12, [7, 8, 11], error_rate=[0.5, 0.5, 0.1]))
    assert (closed, late) == ([], 2)
    assert one(w.flush()).values == {("user-svc", "error_rate"): pytest.approx(0.1)}


@settings(max_examples=200, database=None, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 99.99), st.floats(0, 1000, allow_subnormal=False)),
        min_size=1,
        max_size=40,
    )
)
def test_flush_accounts_for_every_point_of_an_in_order_stream(points):
    """A single batch, split over windows, keeps each window's sum and count."""
    ts = [t for t, _ in points]
    values = [v for _, v in points]
    w = Windower(window_s=10, lateness_s=1000)
    w.add(pods(100, ts, p99_latency_ms=values, restarts=values))
    windows = w.flush()
    expected = {}
    for t, v in points:
        expected.setdefault(t - t % 10, []).append(v)
    assert [c.start for c in windows] == sorted(expected)
    for c in windows:
        group = expected[c.start]
        assert c.values[("user-svc", "p99_latency_ms")] == pytest.approx(sum(group) / len(group))
        assert c.values[("user-svc", "restarts")] == pytest.approx(sum(group) / 10)
