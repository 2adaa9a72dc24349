"""Pages through the routes to PagerDuty, Slack and a signed webhook (local
stand-ins that check every required field and answer 202, 429 and 500 in
turn), from the incident changes of the reference outage's short world."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, generate_latest

from bench.replay import Replay
from models.incident import IncidentEvent
from models.topology import Topology
from streams.alerts import Deliverer, Page, Policy, Runbooks, routes_from_dict
from streams.alerts.routing import RoutesError
from streams.sinks import event_to_dict
from tests.streams.standins import StandIns

FAST = Policy(base_s=0.01, max_backoff_s=0.05, breaker_failures=3, breaker_open_s=0.05)
ENV = {"PD_KEY": "R0UT1NGKEY0000000000000000000000", "SLACK_URL": "", "HOOK_SECRET": "s3cret"}


def pages(replay: Replay) -> list[Page]:
    changes = [e for e in replay.events if isinstance(e, IncidentEvent)]
    return [Page.from_record(event_to_dict(e)) for e in changes]


def routes(base: str) -> dict[str, object]:
    return {
        "sinks": {
            "oncall": {
                "kind": "pagerduty",
                "routing_key": "env:PD_KEY",
                "url": f"{base}/pagerduty",
            },
            "chat": {"kind": "slack", "url": "env:SLACK_URL"},
            "hook": {"kind": "webhook", "url": f"{base}/hook", "secret": "env:HOOK_SECRET"},
        },
        "route": [
            {"match": {"sev": "1|2"}, "sinks": ["oncall"], "continue": True},
            {"sinks": ["chat", "hook"]},
        ],
    }


async def test_every_page_reaches_its_sinks_once_in_order_through_retries(
    replayed: Callable[..., Replay], topology: Topology
) -> None:
    story = pages(replayed("reference-2022-10-04", 1, short=True))
    assert len(story) >= 3 and any(p.sev == 1 for p in story)
    standins = StandIns([202, 429, 500], ENV["PD_KEY"], ENV["HOOK_SECRET"])
    async with TestServer(standins.app) as server:
        base = str(server.make_url("")).rstrip("/")
        env = ENV | {"SLACK_URL": f"{base}/slack"}
        registry = CollectorRegistry()
        deliverer = Deliverer(
            routes_from_dict(routes(base), env.get), Runbooks(topology), registry, FAST
        )
        async with deliverer:
            await deliverer.deliver_all(story)
    pd, slack, hook = (standins.endpoints[n] for n in ("pagerduty", "slack", "hook"))
    # Every page once to the chat and the hook, in order; SEV-1 and 2 also paged.
    assert [b["id"] for b in hook.taken] == [p.id for p in story]
    assert [b["kind"] for b in hook.taken] == [p.kind.value for p in story]
    assert len(slack.taken) == len(story)
    paged = [p for p in story if p.sev <= 2]
    assert [(b["dedup_key"], b["event_action"]) for b in pd.taken] == [
        (p.dedup_key, "resolve" if p.resolved else "trigger") for p in paged
    ]
    assert {b["dedup_key"] for b in pd.taken} == {story[0].dedup_key}  # one PagerDuty incident
    first = pd.taken[0]["payload"]
    assert first["severity"] in {"critical", "error"}
    assert "redis-cli" in first["custom_details"]["runbook"]  # the runbook of a Redis cause
    for endpoint in (pd, slack, hook):
        assert {429, 500} <= set(endpoint.answered), "retries were exercised"
    retried = registry.get_sample_value(
        "foreshock_alert_deliveries_total", {"sink": "oncall", "outcome": "retried"}
    )
    assert retried == len(pd.answered) - len(pd.taken)
    assert ENV["PD_KEY"].encode() not in generate_latest(registry)  # no secret in any metric


async def test_a_refused_page_is_not_retried_and_says_why() -> None:
    standins = StandIns([202], "another key", ENV["HOOK_SECRET"])  # our key is wrong
    async with TestServer(standins.app) as server:
        base = str(server.make_url("")).rstrip("/")
        spec = {"sinks": routes(base)["sinks"], "route": [{"sinks": ["oncall"]}]}
        registry = CollectorRegistry()
        env = ENV | {"SLACK_URL": f"{base}/slack"}
        deliverer = Deliverer(routes_from_dict(spec, env.get), None, registry, FAST)
        page = Page.from_record(
            {"type": "incident", "kind": "opened", "at": 1.7e9, "text": "t", "id": "INC-1",
             "dedup_key": "foreshock:INC-1", "sev": 1, "root_cause": "redis-sessions"}
        )  # fmt: skip
        async with deliverer:
            assert await deliverer.deliver(page) == []
    assert standins.endpoints["pagerduty"].answered == []
    error = registry.get_sample_value(
        "foreshock_alert_last_error_info",
        {"sink": "oncall", "error": f"{base}/pagerduty: HTTP 400 routing_key missing or wrong"},
    )
    assert error == 1.0
    assert ENV["PD_KEY"].encode() not in generate_latest(registry)


def test_a_routes_file_names_the_key_at_fault() -> None:
    with pytest.raises(RoutesError, match=r"sinks\.chat\.url: the environment has no SLACK_URL"):
        routes_from_dict(routes("http://x"), {"PD_KEY": "k", "HOOK_SECRET": "h"}.get)
    with pytest.raises(RoutesError, match=r"route\[0\].sinks: no sink 'pager'"):
        routes_from_dict({"sinks": {}, "route": [{"sinks": ["pager"]}]})
