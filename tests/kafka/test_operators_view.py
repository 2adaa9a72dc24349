"""The operator's view of a worker on a real broker, during the reference
outage: the page in a real browser (Debian's chromium) follows the incident
live, and a real Prometheus (Debian's) scrapes the worker and counts it.

The short world is published in two parts, cut where the embedded engine's
incident is open but not yet SEV-1: the page must show the incident first,
then SEV-1 with its root cause, without being reloaded.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from infra.servers import ChromeDriver, Prometheus, free_port
from models.incident import IncidentEvent
from tests.conftest import ARTEFACTS, console_errors, require, texts
from tests.kafka.test_worker import SCENARIO, run_to_the_end, simulate

pytestmark = pytest.mark.servers

PAGE_S = 300  # bound on the worker's time to show each state


def shown(browser: Any, css: str) -> str:
    """The text of the first element ``css`` selects, or ""."""
    return next(iter(texts(browser, css)), "")


def until(what: str, check: Any, timeout_s: float, worker: Any) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        assert worker.alive, f"the worker exited:\n{worker.tail()}"
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{worker.tail()}")


def test_the_page_follows_the_outage_live_and_prometheus_counts_it(
    namespace, scenarios, topology, business, replayed, browser
):
    require(Prometheus, ChromeDriver)
    truth = scenarios[SCENARIO].truth
    changes = [e for e in replayed(SCENARIO, 1, short=True).events if isinstance(e, IncidentEvent)]
    cut = min(e.at for e in changes if e.incident.sev == 1)  # the window that made it SEV-1
    world = list(simulate(scenarios, topology, business, 1))
    before = [m for m in world if m.time < cut]
    port = free_port()
    env = {"FORESHOCK_WEB_ENABLED": "true", "FORESHOCK_WEB_PORT": str(port)}
    namespace.publish(before)
    jobs = {"foreshock": ([f"127.0.0.1:{port}"], {})}
    with namespace.worker(env=env) as worker, Prometheus(jobs) as prometheus:
        until("the page", lambda: _answers(f"http://127.0.0.1:{port}/api/health"), 60, worker)
        browser.get(f"http://127.0.0.1:{port}/")
        browser.execute_script("window.notReloaded = true")  # gone with any reload
        first = until("the incident", lambda: shown(browser, "#incident-heading"), PAGE_S, worker)
        summary = shown(browser, "#summary")
        print(f"\nthe page first showed: {first}: {summary}")
        assert not first.startswith("SEV-1"), first

        namespace.publish(m for m in world if m.time >= cut)
        sev1 = until(
            "SEV-1 with its root cause",
            lambda: (
                shown(browser, "#incident-heading").startswith("SEV-1")
                and truth.root_cause in shown(browser, "#summary")
            ),
            PAGE_S,
            worker,
        )
        assert sev1 and browser.execute_script("return window.notReloaded") is True
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTEFACTS / "incident-page.png"
        browser.save_screenshot(str(screenshot))
        print(f"then: {shown(browser, '#incident-heading')}: {shown(browser, '#summary')}")
        print(f"screenshot: {screenshot}")
        assert console_errors(browser) == []
        assert texts(browser, "#graph g.node.root text") == [f"◆ {truth.root_cause}"]

        # The API, for the record; and Prometheus, which counted the incident.
        run_to_the_end(namespace, scenarios, [worker])
        status = until(
            "caught up", lambda: shown(browser, "#status").startswith("Live"), 30, worker
        )
        assert status and console_errors(browser) == []
        listing = _json(f"http://127.0.0.1:{port}/api/incidents")
        [incident] = listing["incidents"]
        detail = _json(f"http://127.0.0.1:{port}/api/incidents/{incident['id']}")
        print(json.dumps(_short(detail), indent=1, ensure_ascii=False))
        assert detail["sev"] == 1 and detail["root_cause"] == truth.root_cause
        assert [h["sev"] for h in detail["sev_history"]][-1] == 1

        def counted() -> dict[str, float]:
            found = {
                "open SEV-1": prometheus.query('foreshock_incidents_open{sev="1"}'),
                "opened": prometheus.query('foreshock_incident_changes_total{kind="opened"}'),
                "samples": prometheus.query("sum(foreshock_processed_samples_total)"),
                "lag": prometheus.query("sum(foreshock_consumer_lag)"),
                "latency": prometheus.query("foreshock_detection_latency_seconds_count"),
                "decisions": prometheus.query("foreshock_window_decision_seconds_count"),
            }
            values = {k: float(v[0]["value"][1]) for k, v in found.items() if v}
            return values if len(values) == len(found) and values["opened"] >= 1 else {}

        values = until("Prometheus to count the incident", counted, 60, worker)
        print(f"Prometheus: {values}")
        assert values["open SEV-1"] == 1 and values["opened"] == 1
        assert values["samples"] > 100_000 and values["latency"] == 1
        assert values["decisions"] > 0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _short(detail: dict[str, Any]) -> dict[str, Any]:
    """The detail with its long lists cut, to print."""
    cut = dict(detail)
    series = detail["evidence_series"]
    cut["evidence_series"] = [
        {**s, "points": [*s["points"][:2], "...", f"{len(s['points'])} points"]} for s in series[:3]
    ] + ([f"... {len(series)} series"] if len(series) > 3 else [])
    cut["runbook"] = detail["runbook"][:200] + "..." if detail["runbook"] else None
    return cut
