"""``foreshock ingest``: receive Prometheus remote_write and OTLP/HTTP
metrics, and publish them as telemetry."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer

from foreshock.cli.checks import port_free, reach_broker
from foreshock.cli.common import console, fail, settings_of, usable
from producers.receiver import Receiver, serve


def ingest(
    ctx: typer.Context,
    listen: Annotated[
        str, typer.Option(help="HOST:PORT to listen on (all interfaces: 0.0.0.0:PORT)")
    ] = "127.0.0.1:9201",
) -> None:
    """Receive remote_write (POST /api/v1/write) and OTLP (POST /v1/metrics) into Kafka."""
    settings = settings_of(ctx)
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        fail(f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:9201")
    port = int(port_text)
    topology = usable(settings.load_topology)
    mapping = usable(settings.load_mapping)
    port_free(host, port, "give --listen a free port", "give --listen another host")
    reach_broker(settings)

    def started(receiver: Receiver, bound: int) -> None:
        console.print(
            f"receiving on http://{host}:{bound}: remote_write at /api/v1/write, "
            f"OTLP at /v1/metrics; {len(mapping.rules)} mapping rules from {settings.mapping}; "
            f"publishing to {settings.kafka_bootstrap}"
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, mapping, topology, host, port, started=started))
