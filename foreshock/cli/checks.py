"""Pre-flight checks: each stops the command with one line and exit code 2
when what it needs is not there, before anything starts half-way."""

from __future__ import annotations

import asyncio
import errno
import socket

from foreshock.cli.common import fail
from infra.kafka import BrokerAccessError, check_broker
from infra.settings import Settings


def reach_broker(settings: Settings) -> None:
    """Stop here, with the cause, when the broker cannot be used: a wrong
    password must not look like a hang or a traceback."""
    try:
        asyncio.run(check_broker(settings))
    except BrokerAccessError as exc:
        fail(str(exc))


def web_port_free(settings: Settings) -> None:
    """Stop here when the worker's web server cannot bind: Faust would find
    out only after joining the group, and end with a traceback."""
    if settings.web_enabled:
        port_free(
            settings.web_host,
            settings.web_port,
            "set FORESHOCK_WEB_PORT to a free port, or FORESHOCK_WEB_ENABLED=false",
            "set FORESHOCK_WEB_HOST, or FORESHOCK_WEB_ENABLED=false",
        )


def port_free(host: str, port: int, other_port: str, other_host: str) -> None:
    """Stop here, saying what to change, when ``host:port`` cannot be bound."""
    try:
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind, proto) as probe:
                # As a web server binds: a port left in TIME_WAIT is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is taken: {other_port}")
        fail(f"cannot serve on {host}:{port} ({exc.strerror or exc}): {other_host}")
