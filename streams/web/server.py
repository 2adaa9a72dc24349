"""The web server: read-only, loopback unless told otherwise, and a bearer
token when one is set.

Every method but GET (and HEAD) is refused with 405. With a token, the API,
the stream and the metrics ask for ``Authorization: Bearer TOKEN``; the page
and its script hold no data and are served to anyone who reaches them, and
the page sends the token it is given in its address (``#token=...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from streams import metrics
from streams.board import Board

STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css"}
STREAM_EVERY_S = 0.5  # how often the stream looks for a change to send
HEARTBEAT_S = 15.0  # a comment line on a quiet stream, so that proxies keep it
SHUTDOWN_S = 3.0  # what requests still running get when the server stops
OPEN_TO_ALL = frozenset({"/", "/static/app.js", "/static/app.css"})

BOARD = web.AppKey("board", Board)
HEALTH: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("health")
EXPOSITION: web.AppKey[Callable[[], bytes]] = web.AppKey("exposition")
CLOSING = web.AppKey("closing", asyncio.Event)

# Nothing the page loads comes from elsewhere, and no other site may frame it.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def operators_app(
    board: Board,
    *,
    token: str | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
    exposition: Callable[[], bytes] = metrics.exposition,
) -> web.Application:
    """The page, the API over ``board``, and the metrics; ``health`` adds
    what the engine knows of its own state to ``/api/health``."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"], headers=HEADERS)
        if token and request.path not in OPEN_TO_ALL and not _bearer(request, token):
            raise web.HTTPUnauthorized(
                headers={**HEADERS, "WWW-Authenticate": 'Bearer realm="foreshock"'},
                text="a bearer token is needed",
            )
        response = await handler(request)
        if not response.prepared:
            response.headers.update(HEADERS)
        return response

    app = web.Application(middlewares=[guard])
    app[BOARD] = board
    app[HEALTH] = health or (lambda: {})
    app[EXPOSITION] = exposition
    app[CLOSING] = asyncio.Event()

    async def close_streams(app: web.Application) -> None:
        app[CLOSING].set()

    app.on_shutdown.append(close_streams)
    app.router.add_get("/", _page)
    app.router.add_get("/static/{name}", _asset)
    app.router.add_get("/api/incidents", _incidents)
    app.router.add_get("/api/incidents/{id}", _incident)
    app.router.add_get("/api/health", _health)
    app.router.add_get("/api/graph", _graph)
    app.router.add_get("/api/stream", _stream)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/metrics/", _metrics)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Bind ``app``; stop it with ``await runner.cleanup()``."""
    # Open streams end at the shutdown signal; the rest get a short grace.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


class Served:
    """An application served from a thread of its own, beside a caller that
    is not a loop (a replay feeding the board, a test)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.runner = self.loop.run_until_complete(serve(app, host, port))
        except BaseException:
            self.loop.close()
            raise
        self.port = self.runner.addresses[0][1]  # the one bound, when 0 was asked
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def wait(self) -> None:
        """Serve until SIGINT (Ctrl-C) or SIGTERM."""
        stopped = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopped.set())
        stopped.wait()
        self.stop()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bearer(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
    )


async def _page(request: web.Request) -> web.Response:
    return web.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html")


async def _asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.Response(body=(STATIC / name).read_bytes(), content_type=ASSETS[name])


def _listing(request: web.Request) -> dict[str, Any]:
    board = request.app[BOARD]
    return {
        "version": board.version,
        "event_time": board.clock,
        "incidents": board.incidents(),
        "health": _state(request),
    }


def _state(request: web.Request) -> dict[str, Any]:
    board = request.app[BOARD]
    own = {"silent_sources": [], "silent_entities": board.silent(), **request.app[HEALTH]()}
    silent = own["silent_sources"] or own["silent_entities"]
    status = "lagging" if own.get("lagging") else "silent" if silent else "ok"
    return {"status": status, "event_time": board.clock, **own}


async def _incidents(request: web.Request) -> web.Response:
    return _json(_listing(request))


async def _incident(request: web.Request) -> web.Response:
    found = request.app[BOARD].incident(request.match_info["id"])
    if found is None:
        return _json({"error": f"no incident {request.match_info['id']!r}"}, 404)
    return _json(found)


async def _health(request: web.Request) -> web.Response:
    return _json(_state(request))


async def _graph(request: web.Request) -> web.Response:
    return _json(request.app[BOARD].graph())


async def _metrics(request: web.Request) -> web.Response:
    # The content type carries parameters, which aiohttp takes only as a header.
    return web.Response(
        body=request.app[EXPOSITION](), headers={"Content-Type": metrics.CONTENT_TYPE}
    )


async def _stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the listing (as ``/api/incidents``) each time the
    board changes, at most every STREAM_EVERY_S."""
    response = web.StreamResponse(
        headers={**HEADERS, "Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    board, sent, quiet = request.app[BOARD], None, 0.0
    closing = request.app[CLOSING]
    try:
        while not closing.is_set() and request.transport and not request.transport.is_closing():
            health = _state(request)
            now = (board.version, health["status"])
            if now != sent or quiet >= HEARTBEAT_S:
                sent, quiet = now, 0.0
                listing = {**_listing(request), "health": health}
                await response.write(b"event: board\ndata: " + orjson.dumps(listing) + b"\n\n")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), STREAM_EVERY_S)
            quiet += STREAM_EVERY_S
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response
