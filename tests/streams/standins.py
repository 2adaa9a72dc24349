"""Local stand-ins for the SaaS endpoints a test cannot reach: PagerDuty's
Events API v2, a Slack incoming webhook and a signed JSON webhook. Each
checks every field its documentation requires (400 otherwise, which the
sinks treat as a refusal for good, so a test sees it), keeps what it took,
and answers from a script of statuses, in turn, to exercise retries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

PD_SEVERITIES = {"critical", "error", "warning", "info"}
SIGNATURE_MAX_AGE_S = 300


@dataclass
class Endpoint:
    """One stand-in: the statuses it answers in turn (a success ends in what
    it took), and everything it was sent."""

    statuses: Iterator[int]
    taken: list[dict[str, Any]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    on_taken: Callable[[int], None] = lambda count: None  # told each time it takes one


def pagerduty_problem(body: dict[str, Any], routing_key: str) -> str | None:
    """What is wrong with an Events API v2 event, if anything."""
    if body.get("routing_key") != routing_key:
        return "routing_key missing or wrong"
    if body.get("event_action") not in {"trigger", "acknowledge", "resolve"}:
        return "event_action must be trigger, acknowledge or resolve"
    key = body.get("dedup_key")
    if not isinstance(key, str) or not 0 < len(key) <= 255:
        return "dedup_key must be a string of 1 to 255 characters"
    if body["event_action"] != "trigger":
        return None
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return "a trigger needs a payload"
    summary = payload.get("summary")
    if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
        return "payload.summary must be 1 to 1024 characters"
    if not isinstance(payload.get("source"), str) or not payload["source"]:
        return "payload.source is required"
    if payload.get("severity") not in PD_SEVERITIES:
        return "payload.severity must be critical, error, warning or info"
    return None


def slack_problem(body: dict[str, Any]) -> str | None:
    if not isinstance(body.get("text"), str) and not isinstance(body.get("blocks"), list):
        return "text or blocks is required"
    for block in body.get("blocks", []):
        if not isinstance(block, dict) or "type" not in block:
            return "every block needs a type"
    return None


def webhook_problem(raw: bytes, headers: Any, secret: bytes) -> str | None:
    stamp = headers.get("X-Foreshock-Timestamp", "")
    signature = headers.get("X-Foreshock-Signature", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > SIGNATURE_MAX_AGE_S:
        return "timestamp missing or too old (a replay?)"
    expected = hmac.new(secret, stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, "v1=" + expected):
        return "signature does not match"
    return None


class StandIns:
    """The three endpoints on one local server: /pagerduty, /slack, /hook."""

    def __init__(self, statuses: Iterable[int], routing_key: str, secret: str) -> None:
        script = list(statuses)
        self.routing_key = routing_key
        self.secret = secret.encode()
        self.endpoints = {
            name: Endpoint(itertools.cycle(script)) for name in ("pagerduty", "slack", "hook")
        }
        self.app = web.Application()
        for name in self.endpoints:
            self.app.router.add_post(f"/{name}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.path.strip("/")
        endpoint = self.endpoints[name]
        raw = await request.read()
        if request.content_type != "application/json":
            return web.Response(status=400, text="Content-Type must be application/json")
        body = orjson.loads(raw)
        problem = {
            "pagerduty": lambda: pagerduty_problem(body, self.routing_key),
            "slack": lambda: slack_problem(body),
            "hook": lambda: webhook_problem(raw, request.headers, self.secret),
        }[name]()
        if problem is not None:
            return web.Response(status=400, text=problem)
        status = next(endpoint.statuses)
        endpoint.answered.append(status)
        if 200 <= status < 300:
            endpoint.taken.append(body)
            endpoint.on_taken(len(endpoint.taken))
            text = "ok" if name == "slack" else '{"status": "success"}'
            return web.Response(status=status, text=text)
        headers = {"Retry-After": "0"} if status == 429 else None
        return web.Response(status=status, text="try again", headers=headers)


class Threaded:
    """An aiohttp app served from a thread of its own, for tests that are not
    async: ``url`` while in ``with``."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> Threaded:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the stand-ins did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
