"""The incident page in a real browser (Debian's chromium), under load: 50
open incidents and 5,000 evidence points stay responsive.

Timings are printed; the bounds are loose (several times what this machine
takes), so that only a page that stalls fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from models.schema import Telemetry
from streams.board import Board
from streams.web import Served, operators_app
from tests.conftest import console_errors, texts

pytestmark = pytest.mark.servers

INCIDENTS = 50
SERIES, POINTS_EACH = 24, 210  # 5,040 evidence points on the incident shown, every one drawn
RESPONSIVE_S = 3.0  # a change must show within this; the stream looks every 0.5 s


def record(i: int, sev: int, kind: str = "opened") -> dict[str, Any]:
    """Incident ``i`` as an incident record, its evidence on entities of its own."""
    evidence = [f"db-{i}/node-{n:02d}:latency_ms" for n in range(SERIES)]
    return {
        "type": "incident", "kind": kind, "at": 1000.0 + i, "text": f"{kind} {i}",
        "id": f"INC-{i:03d}", "dedup_key": f"foreshock:INC-{i:03d}", "status": "open",
        "sev": sev, "sev_reasons": [f"journey {i} failing for {sev * 7}% of users"],
        "opened_at": 1000.0 + i, "onset": 990.0 + i, "root_cause": "postgres",
        "root_cause_candidates": [
            {"node": "postgres", "score": 0.9, "reasons": ["first"], "explains": ["user-svc"],
             "evidence": evidence, "region": None, "onset": 990.0, "change": None}
        ],
        "blast_radius": ["user-svc", "api-gateway", "lb", "logins"],
        "impact": {"share": 0.1, "users_affected": 1e6 * (i + 1), "revenue_usd_per_min": 1e3,
                   "revenue_usd_total": 5e4},
        "timeline": [{"at": 1000.0 + i, "kind": "opened", "text": f"opened {i}"}],
    }  # fmt: skip


@pytest.fixture
def loaded(topology) -> Iterator[tuple[Board, str]]:
    board = Board(topology)
    for i in range(INCIDENTS):
        board.take(record(i, sev=1 + i % 4))
    first = int(board.incidents()[0]["id"].removeprefix("INC-"))  # the one shown first
    for n in range(SERIES):
        entity = f"db-{first}/node-{n:02d}"
        ts = [2000.0 + t for t in range(POINTS_EACH)]
        board.sample(
            Telemetry("pods", entity, ts[-1], ts, {"latency_ms": [float(t % 17) for t in ts]})
        )
    with Served(operators_app(board), "127.0.0.1", 0) as server:
        yield board, f"http://127.0.0.1:{server.port}/"


def took(check: Callable[[], Any], bound_s: float = 30.0) -> float:
    """Seconds until ``check()`` holds."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < bound_s, "never shown"
        time.sleep(0.02)
    return time.monotonic() - began


def test_fifty_incidents_and_five_thousand_points_stay_responsive(browser, loaded):
    board, url = loaded
    began = time.monotonic()
    browser.get(url)
    load = time.monotonic() - began
    listed = took(lambda: len(texts(browser, "#incidents button")) == INCIDENTS)
    charted = took(lambda: len(texts(browser, "#evidence figure")) == SERIES)
    points = browser.execute_script(
        "return [...document.querySelectorAll('#evidence polyline')]"
        ".reduce((n, p) => n + p.points.numberOfItems, 0)"
    )
    assert points == SERIES * POINTS_EACH

    # A change to one incident of fifty: shown without a reload.
    browser.execute_script("window.notReloaded = true")
    board.take(record(7, sev=1, kind="escalated"))
    escalated = took(
        lambda: any(t.startswith("SEV-1 journey 7") for t in texts(browser, "#incidents button"))
    )

    # The keyboard: focus another incident and open it with Enter.
    from selenium.webdriver.common.keys import Keys

    wanted = "INC-010"
    browser.execute_script(f"document.querySelector('[data-id={wanted}]').focus()")
    began = time.monotonic()
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    opened = took(lambda: wanted in texts(browser, "#incident-heading")[0])
    opened_s = time.monotonic() - began
    board.take(record(3, sev=1, kind="escalated"))  # the list is redrawn: the focus stays
    took(lambda: any(t.startswith("SEV-1 journey 3") for t in texts(browser, "#incidents button")))
    focused = browser.execute_script("return document.activeElement.dataset.id")
    assert focused == wanted

    # The main thread is free: a script runs at once between updates.
    busy = browser.execute_script(
        "const t = performance.now(); for (let i = 0; i < 5; i++) document.body.offsetHeight;"
        "return performance.now() - t;"
    )
    print(
        f"\n{INCIDENTS} incidents, {SERIES * POINTS_EACH:,} evidence points: "
        f"page load {load:.2f} s, list shown {listed:.2f} s, charts {charted:.2f} s; "
        f"an escalation shown {escalated:.2f} s after it; "
        f"Enter on an incident to its detail {opened_s:.2f} s; layout {busy:.1f} ms"
    )
    assert browser.execute_script("return window.notReloaded") is True
    assert max(listed, charted, escalated, opened) < RESPONSIVE_S
    assert console_errors(browser) == []
