"""The operator's view over HTTP, on the short world of the reference outage:
what the API answers, that it answers GET only, the token, the stream."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bench.replay import replay
from streams.alerts.runbooks import Runbooks
from streams.board import KEEP_RESOLVED, POINTS, Board, BoardSink
from streams.web import Served, operators_app
from tests.conftest import short_span
from tests.streams.test_web import ROUTES

SCENARIO = "reference-2022-10-04"
TOKEN = "s3cret-token-for-the-view"


@pytest.fixture(scope="module")
def board(topology, business, scenarios) -> Board:
    """The reference outage's short world, replayed onto a board."""
    sc = scenarios[SCENARIO]
    board = Board(topology, Runbooks(topology))
    since, until = short_span(sc)
    replay(sc, topology, business, seed=1, sinks=[BoardSink(board)], since=since, until=until,
           tap=board.sample)  # fmt: skip
    return board


@pytest.fixture(scope="module")
def served(board) -> Iterator[str]:
    with Served(operators_app(board), "127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def guarded(board) -> Iterator[str]:
    with Served(operators_app(board, token=TOKEN), "127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{server.port}"


def get(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    """(status, headers, body) of one request; an error status is returned."""
    data = b"{}" if method in ("POST", "PUT", "PATCH") else None
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def api(url: str) -> Any:
    status, _, body = get(url)
    assert status == 200, (url, body[:300])
    return json.loads(body)


def test_the_list_shows_the_reference_incident(served, scenarios):
    truth = scenarios[SCENARIO].truth
    listing = api(f"{served}/api/incidents")
    [incident] = listing["incidents"]
    print(json.dumps(incident, indent=1, ensure_ascii=False))
    assert incident["status"] == "open" and incident["sev"] == 1
    assert incident["root_cause"] == truth.root_cause == "redis-sessions"
    assert incident["users_affected"] > 1e6 and incident["revenue_usd_per_min"] > 0
    assert incident["age_s"] == listing["event_time"] - incident["opened_at"] > 0
    assert "login failing" in incident["title"]
    assert listing["health"]["status"] == "ok"


def test_an_incident_answers_in_whole(served, board):
    [summary] = api(f"{served}/api/incidents")["incidents"]
    inc = api(f"{served}/api/incidents/{summary['id']}")
    # SEV history with reasons: opened before users felt it, SEV-1 at the end.
    sevs = [h["sev"] for h in inc["sev_history"]]
    assert sevs[0] == 4 and sevs[-1] == 1 and sevs == sorted(sevs, reverse=True)
    assert all(h["reasons"] for h in inc["sev_history"])
    assert inc["root_cause_candidates"][0]["node"] == "redis-sessions"
    assert inc["root_cause_candidates"][0]["evidence"]
    assert set(inc["blast_radius"]) >= {"user-svc", "logins"}
    assert inc["impact"]["revenue_usd_total"] > 0 and inc["impact"]["formula"]
    assert inc["timeline"][0]["kind"] == "opened"
    # The memory leak's forecast, with its ETA after the warning.
    warning = next(w for w in inc["warnings"] if w["metric"] == "memory_used_ratio")
    assert warning["entity"].startswith("redis/") and warning["eta"] > warning["at"]
    # Evidence charts: points of the series, and the baseline they left.
    charted = [s for s in inc["evidence_series"] if s["points"]]
    assert charted, inc["evidence_series"]
    assert all(len(s["points"]) <= POINTS for s in charted)
    assert any(s["baseline"] is not None for s in charted)
    assert "redis-sessions" in inc["runbook"] and "{" not in inc["runbook"].split("\n")[0]
    assert inc["silenced"] is None


def test_an_unknown_incident_is_404_in_json(served):
    status, headers, body = get(f"{served}/api/incidents/INC-nope")
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"error": "no incident 'INC-nope'"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_every_route_refuses_every_method_but_get(served, method):
    paths = [r.replace("{name}", "app.js").replace("{id}", "x") for r in ROUTES]
    for path in [*paths, "/nowhere"]:
        status, headers, _ = get(f"{served}{path}", method)
        assert status == 405, (method, path, status)
        assert headers["Allow"] == "GET,HEAD"


def test_the_page_and_its_assets_come_with_locked_down_headers(served):
    for path, kind in (("/", "text/html"), ("/static/app.js", "text/javascript")):
        status, headers, _ = get(f"{served}{path}")
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert get(f"{served}/static/../server.py")[0] == 404
    assert get(f"{served}/static/index.py")[0] == 404


def test_with_a_token_the_data_wants_it_and_no_answer_shows_it(guarded):
    for path in ("/api/incidents", "/api/health", "/api/graph", "/metrics", "/api/incidents/x"):
        status, headers, _ = get(f"{guarded}{path}")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert get(f"{guarded}{path}", headers={"Authorization": "Bearer wrong"})[0] == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answers = [get(f"{guarded}{p}", headers=bearer) for p in ("/api/incidents", "/metrics")]
    assert [status for status, _, _ in answers] == [200, 200]
    page = [get(f"{guarded}{p}") for p in ("/", "/static/app.js", "/static/app.css")]
    assert [status for status, _, _ in page] == [200, 200, 200]  # no data in them
    assert not [b for _, _, b in answers + page if TOKEN.encode() in b]


def test_the_stream_sends_the_listing_as_server_sent_events(served):
    with urllib.request.urlopen(f"{served}/api/stream", timeout=10) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        lines = [response.readline() for _ in range(2)]
    assert lines[0] == b"event: board\n"
    listing = json.loads(lines[1].removeprefix(b"data: "))
    assert listing["incidents"][0]["root_cause"] == "redis-sessions"
    assert listing["health"]["status"] == "ok"


def test_the_graph_is_the_topology(served, topology):
    graph = api(f"{served}/api/graph")
    assert {n["id"] for n in graph["nodes"]} == set(topology.nodes)
    lb = next(n for n in graph["nodes"] if n["id"] == "lb")
    assert lb["depends_on"] == list(topology.nodes["lb"].depends_on)


def test_the_board_keeps_a_bounded_number_of_resolved_incidents():
    board = Board()
    for i in range(KEEP_RESOLVED + 20):
        for kind, status in (("opened", "open"), ("resolved", "resolved")):
            board.take({"type": "incident", "kind": kind, "at": float(i), "id": f"INC-{i}",
                        "status": status, "sev": 2, "opened_at": float(i)})  # fmt: skip
    listed = board.incidents()
    assert len(listed) == KEEP_RESOLVED
    assert listed[0]["id"] == f"INC-{KEEP_RESOLVED + 19}"  # the latest first
    assert board.incident("INC-0") is None


def test_open_incidents_come_first_worst_first():
    board = Board()
    for iid, sev, status in (("a", 3, "open"), ("b", 1, "resolved"), ("c", 2, "open")):
        board.take({"type": "incident", "kind": "opened", "at": 1.0, "id": iid,
                    "status": status, "sev": sev, "opened_at": 1.0})  # fmt: skip
    assert [i["id"] for i in board.incidents()] == ["c", "a", "b"]
    assert board.open_by_sev() == {1: 0, 2: 1, 3: 1, 4: 0}


def test_a_silence_shows_on_the_incidents_it_covers():
    board = Board(muted=lambda page: "SIL-1" if page.root_cause == "db" else None)
    for iid, cause in (("a", "db"), ("b", "cdn")):
        board.take({"type": "incident", "kind": "opened", "at": 1.0, "id": iid, "text": "",
                    "dedup_key": iid, "status": "open", "sev": 2, "opened_at": 1.0,
                    "root_cause": cause})  # fmt: skip
    assert {i["id"]: i["silenced"] for i in board.incidents()} == {"a": "SIL-1", "b": None}
