"""Pages from a worker: incident changes on foreshock.incidents delivered to
PagerDuty and Slack (local stand-ins that check every required field),
committed only once every sink took them. A worker killed between a sink's
acceptance and the commit delivers again on restart: one PagerDuty incident,
no page lost, at most the one page twice in Slack. A silence keeps an
incident's pages from every sink."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from bench.replay import Replay
from infra import kafka
from infra.servers import Alertmanager
from models.incident import IncidentEvent
from streams.alerts import Page, Slack
from streams.alerts.silences import Silence, publish
from streams.sinks import event_to_dict
from tests.conftest import require
from tests.kafka.conftest import Namespace
from tests.kafka.test_worker import run_to_the_end, simulate
from tests.streams.standins import StandIns, Threaded

KEY = "R0UT1NGKEY0000000000000000000000"


def routes_file(path: Path, url: str, alertmanager: str | None = None) -> Path:
    extra = f'[sinks.am]\nkind = "alertmanager"\nurl = "{alertmanager}"\n' if alertmanager else ""
    also = ', "am"' if alertmanager else ""
    path.write_text(
        extra
        + f"""
[sinks.oncall]
kind = "pagerduty"
routing_key = "env:TEST_PD_KEY"
url = "{url}/pagerduty"

[sinks.chat]
kind = "slack"
url = "{url}/slack"

[[route]]
sinks = ["oncall", "chat"{also}]
"""
    )
    return path


def records(replay: Replay) -> list[dict[str, object]]:
    return [event_to_dict(e) for e in replay.events if isinstance(e, IncidentEvent)]


def write(namespace: Namespace, bodies: list[dict[str, object]]) -> None:
    async def run() -> None:
        topic = namespace.topic(kafka.INCIDENTS)
        await kafka.ensure_topics(namespace.settings, {topic: namespace.settings.partitions})
        async with kafka.producer(namespace.settings, acks="all") as producer:
            for body in bodies:
                key = str(body["id"]).encode()
                await producer.send_and_wait(topic, orjson.dumps(body), key=key)

    asyncio.run(run())


def test_a_worker_killed_after_a_sink_took_a_page_loses_none_and_doubles_one(
    namespace: Namespace, replayed: Callable[..., Replay], tmp_path: Path
) -> None:
    story = records(replayed("reference-2022-10-04", 1, short=True))
    standins = StandIns([202], KEY, "unused")
    killed = threading.Event()
    with Threaded(standins.app) as server:
        env = {
            "FORESHOCK_ALERTS": str(routes_file(tmp_path / "routes.toml", server.url)),
            "TEST_PD_KEY": KEY,
        }
        write(namespace, story)
        first = namespace.worker("first", env)

        def kill_on_third(taken: int) -> None:
            # PagerDuty took the third page: the worker dies before it hears so,
            # so before it commits the page's offset.
            if taken == 3:
                os.kill(first.proc.pid, signal.SIGKILL)
                killed.set()

        standins.endpoints["pagerduty"].on_taken = kill_on_third
        assert killed.wait(180), f"no page reached PagerDuty:\n{first.tail()}"
        first.stop()
        standins.endpoints["pagerduty"].on_taken = lambda taken: None
        second = namespace.worker("second", env)
        pd, slack = standins.endpoints["pagerduty"], standins.endpoints["slack"]
        namespace.wait_for(
            "every page delivered", lambda: len(pd.taken) >= len(story), 180, [second]
        )
        time.sleep(3)  # anything sent twice more would have come by now
        second.stop()
    sent = [
        (b["dedup_key"], b["payload"]["class"] if "payload" in b else "resolved") for b in pd.taken
    ]
    story_keys = [(str(r["dedup_key"]), str(r["kind"])) for r in story]
    # Every change, in order, the one in flight perhaps twice.
    assert _without_repeats(sent) == _without_repeats(story_keys)
    assert len({key for key, _ in sent}) == 1, "one PagerDuty incident"
    assert len(pd.taken) == len(story) + 1, "the page in flight, sent again"
    assert len(slack.taken) - len(story) <= 1
    print(f"\n{len(story)} changes; PagerDuty took {len(pd.taken)}, Slack {len(slack.taken)}")


@pytest.mark.servers
def test_a_silence_keeps_an_incidents_pages_from_every_sink(
    namespace: Namespace, replayed: Callable[..., Replay], tmp_path: Path
) -> None:
    """The reference's incident is silenced; another, unrelated one pages
    PagerDuty and Alertmanager, and its resolution ends its alert there."""
    require(Alertmanager)
    story = records(replayed("reference-2022-10-04", 1, short=True))
    other = {**story[0], "id": "INC-OTHER", "dedup_key": "foreshock:INC-OTHER", "root_cause": "cdn"}
    silence = Silence.new(["service=redis-sessions"], 3600, "the fix is rolling out")
    asyncio.run(publish(namespace.settings, silence))
    standins = StandIns([202], KEY, "unused")
    with Threaded(standins.app) as server, Alertmanager() as am:
        routes = routes_file(tmp_path / "routes.toml", server.url, am.url)
        env = {"FORESHOCK_ALERTS": str(routes), "TEST_PD_KEY": KEY}
        write(namespace, [*story, other])
        worker = namespace.worker("worker", env)
        pd = standins.endpoints["pagerduty"]
        namespace.wait_for("the other incident paged", lambda: pd.taken, 180, [worker])
        open_alerts = namespace.wait_for("its alert", am.alerts, 60, [worker])
        write(namespace, [{**other, "kind": "resolved", "status": "resolved"}])  # it recovered
        namespace.wait_for("its alert to end", lambda: am.alerts() == [], 60, [worker])
        worker.stop()
        log = worker.log.read_text()
    assert [b["dedup_key"] for b in pd.taken] == ["foreshock:INC-OTHER"] * 2
    assert [b["event_action"] for b in pd.taken] == ["trigger", "resolve"]
    assert [a["labels"]["incident_id"] for a in open_alerts] == ["INC-OTHER"]
    assert f"silenced by {silence.id}" in log


def _without_repeats(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [x for i, x in enumerate(items) if i == 0 or items[i - 1] != x]


class Switch:
    """A sink's answers: 503 until ``up`` is set, 202 from then on."""

    def __init__(self) -> None:
        self.up = threading.Event()

    def __iter__(self) -> Switch:
        return self

    def __next__(self) -> int:
        return 202 if self.up.is_set() else 503


@pytest.mark.servers
def test_pages_wait_in_order_while_a_sink_is_down_and_detection_goes_on(
    namespace: Namespace, scenarios, topology, business, tmp_path: Path
) -> None:
    require(Alertmanager)
    standins = StandIns([202], KEY, "unused")
    pagerduty = standins.endpoints["pagerduty"]
    switch = Switch()
    pagerduty.statuses = switch
    with Threaded(standins.app) as server, Alertmanager() as am:
        routes = routes_file(tmp_path / "routes.toml", server.url, am.url)
        env = {"FORESHOCK_ALERTS": str(routes), "TEST_PD_KEY": KEY}
        namespace.publish(simulate(scenarios, topology, business))
        worker = namespace.worker("worker", env)
        began = time.monotonic()
        run_to_the_end(namespace, scenarios, [worker])  # with PagerDuty down all along
        detected_s = time.monotonic() - began
        # Down for OUTAGE_S in all, if longer (e.g. OUTAGE_S=300: five minutes).
        time.sleep(max(0.0, float(os.environ.get("OUTAGE_S", "0")) - detected_s))
        down_s = time.monotonic() - began
        changes = [e for e in namespace.read("foreshock.incidents") if e.get("type") == "incident"]
        slack = standins.endpoints["slack"]
        namespace.wait_for(
            "Slack's pages, PagerDuty down", lambda: len(slack.taken) >= len(changes), 60, [worker]
        )
        alerts = am.alerts()  # through Kafka and the worker, PagerDuty down
        print("\nAlertmanager, GET /api/v2/alerts:\n" + orjson.dumps(alerts).decode()[:1500])
        assert [a["labels"]["severity"] for a in alerts] == ["SEV-1"]
        assert alerts[0]["labels"]["service"] == "redis-sessions"
        assert "redis-cli" in alerts[0]["annotations"]["runbook"]
        refused = len(pagerduty.answered)
        assert refused > 0 and not pagerduty.taken, "pages were tried, and waited"
        switch.up.set()
        back = time.monotonic()
        namespace.wait_for(
            "the pages once PagerDuty is back",
            lambda: len(pagerduty.taken) >= len(changes),
            240,
            [worker],
        )
        caught_up_s = time.monotonic() - back
    sent = [(b["dedup_key"], b["payload"]["class"]) for b in pagerduty.taken]
    assert sent == [(c["dedup_key"], c["kind"]) for c in changes], "every change, in order"
    assert [b["text"] for b in slack.taken] == [
        b["text"] for b in map(Slack.message, map(Page.from_record, changes))
    ]
    print(
        f"\nPagerDuty down {down_s:.0f} s; meanwhile the worker decided and correlated the "
        f"whole short world in {detected_s:.0f} s ({refused} tries refused); {len(changes)} "
        f"pages delivered, in order, {caught_up_s:.0f} s after it came back"
    )
