"""The reference outage's pages in a real Alertmanager (Debian's
``prometheus-alertmanager``, ``make servers``): one alert for the incident,
at its latest SEV, with its runbook; gone once resolved, and Alertmanager's
own webhook integration told of both."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from bench.replay import Replay
from infra.servers import Alertmanager, wait_for
from models.incident import Change, IncidentEvent
from models.topology import Topology
from streams.alerts import Deliverer, Page, Runbooks, routes_from_dict
from streams.sinks import event_to_dict
from tests.conftest import require

pytestmark = pytest.mark.servers


async def test_the_reference_pages_alertmanager_once_at_its_latest_sev(
    replayed: Callable[..., Replay], topology: Topology
) -> None:
    require(Alertmanager)
    result = replayed("reference-2022-10-04", 1, short=True)
    story = [
        Page.from_record(event_to_dict(e)) for e in result.events if isinstance(e, IncidentEvent)
    ]
    assert story[-1].sev == 1 and not story[-1].resolved
    notified: list[dict[str, Any]] = []

    class Notified(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            notified.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = HTTPServer(("127.0.0.1", 0), Notified)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        with Alertmanager(f"http://127.0.0.1:{hook.server_port}/alertmanager") as am:
            spec = {
                "sinks": {"am": {"kind": "alertmanager", "url": am.url}},
                "route": [{"sinks": ["am"]}],
            }
            async with Deliverer(routes_from_dict(spec), Runbooks(topology)) as deliverer:
                await deliverer.deliver_all(story)
                alerts = await asyncio.to_thread(am.alerts)
                print("\n" + json.dumps(alerts, indent=1)[:3000])
                assert len(alerts) == 1, "one alert per incident, at its latest SEV"
                alert = alerts[0]
                assert alert["labels"] == {
                    "alertname": "ForeshockIncident",
                    "incident_id": story[0].id,
                    "service": "redis-sessions",
                    "severity": "SEV-1",
                }
                notes = alert["annotations"]
                assert notes["summary"].startswith(f"SEV-1 {story[0].id}")
                assert "redis-cli -h NODE INFO memory" in notes["runbook"]
                assert int(notes["users_affected"].replace(",", "")) > 0
                assert alert["status"]["state"] == "active"
                # Alertmanager tells of a resolution only what it told as firing.
                await asyncio.to_thread(
                    wait_for, lambda: notified, 15, "Alertmanager to notify the alert"
                )
                resolved = replace(story[-1], kind=Change.RESOLVED)
                await deliverer.deliver(resolved)
                await asyncio.to_thread(wait_for, lambda: am.alerts() == [], 10, "the alert to end")
            await asyncio.to_thread(
                wait_for,
                lambda: any(n["status"] == "resolved" for n in notified),
                15,
                "Alertmanager to notify the resolution",
            )
    finally:
        hook.shutdown()
    firing = [a for n in notified for a in n["alerts"] if a["labels"]["severity"] == "SEV-1"]
    assert firing and firing[0]["annotations"]["runbook"] == notes["runbook"]
