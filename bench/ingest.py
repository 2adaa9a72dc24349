"""``foreshock bench ingest``: how fast ``foreshock ingest`` takes remote_write
bodies into Kafka, as Prometheus sends them.

The world is the topology's: every Redis node as redis_exporter shows it (its
gauges, counters and per-command counters) and every service's pods as an
HTTP server's client library does (requests by code, a latency histogram).
It is scraped every second and cut into bodies of ``samples_per_request``
samples, as Prometheus's shards cut their queue, and sent by ``concurrency``
senders at once, as fast as the receiver answers. The receiver runs as its
own process (one core: it is one event loop), publishing to the broker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

from bench.kafka import worker_env
from infra.ingest import remote_write
from infra.servers import free_port, http_get, wait_for
from infra.settings import Settings
from models.topology import Topology

COMMANDS = ("get", "set", "del", "expire", "hget", "hset", "incr", "mget", "ping", "ttl")
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
PODS = 10


def _series(topology: Topology) -> list[tuple[dict[str, str], bool]]:
    """Every series scraped: its labels, and whether it is a counter."""
    out: list[tuple[dict[str, str], bool]] = []
    for entity, family in sorted(topology.family_of.items()):
        if family == "redis":
            node = {"instance": entity.partition("/")[2], "job": "redis"}
            for name in ("redis_memory_used_bytes", "redis_memory_max_bytes"):
                out.append(({"__name__": name, **node}, False))
            out.append(({"__name__": "redis_connected_clients", **node}, False))
            for name in ("redis_commands_processed_total", "redis_evicted_keys_total"):
                out.append(({"__name__": name, **node}, True))
            for cmd in COMMANDS:
                for name in ("redis_commands_total", "redis_commands_duration_seconds_total"):
                    out.append(({"__name__": name, "cmd": cmd, **node}, True))
        elif family == "pods" and "/" not in entity:  # a service, served by its pods
            for pod in range(PODS):
                labels = {"job": entity, "pod": f"{entity}-{pod:02d}"}
                for code in ("200", "500"):
                    out.append(({"__name__": "http_requests_total", "code": code, **labels}, True))
                for le in BUCKETS:
                    name = "http_request_duration_seconds_bucket"
                    out.append(({"__name__": name, "le": le, **labels}, True))
    return out


def bodies(topology: Topology, requests: int, samples_per_request: int) -> list[bytes]:
    """``requests`` bodies of consecutive 1 s scrapes, ending now."""
    series = _series(topology)
    scrapes = -(-requests * samples_per_request // len(series))
    rng = np.random.default_rng(1)
    start = time.time() - scrapes
    totals = np.zeros(len(series))
    counters = np.array([counter for _, counter in series])
    samples: list[tuple[int, float, float]] = []  # series, seconds, value
    for i in range(scrapes):
        totals += np.where(counters, rng.poisson(50.0, len(series)), 0.0)
        values = np.where(counters, totals, rng.uniform(1e6, 3e7, len(series)))
        at = float(start + i)
        samples += [(s, at, float(v)) for s, v in enumerate(values)]
    out = []
    for first in range(0, requests * samples_per_request, samples_per_request):
        by_series: dict[int, list[tuple[float, float]]] = {}
        for s, at, value in samples[first : first + samples_per_request]:
            by_series.setdefault(s, []).append((at, value))
        out.append(remote_write.body((series[s][0], points) for s, points in by_series.items()))
    return out


async def _send(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], list[int]]:
    """Send every body, ``concurrency`` at a time; each request's seconds and status."""
    latencies: list[float] = []
    statuses: list[int] = []
    queue = list(reversed(bodies))
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }

    async def sender(session: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            began = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                statuses.append(answer.status)
            latencies.append(time.perf_counter() - began)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
    return latencies, statuses


def throughput(
    settings: Settings,
    topology: Topology,
    workdir: Path,
    requests: int,
    samples_per_request: int,
    concurrency: int,
) -> dict[str, Any]:
    """Start a receiver, send it the bodies, and measure."""
    prepared = bodies(topology, requests, samples_per_request)
    port = free_port()
    log = (workdir / "ingest.log").open("ab")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "foreshock", "ingest", "--listen", f"127.0.0.1:{port}"],
        env=worker_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=os.getcwd(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{url}/-/healthy")[0] == 200, 60, "the receiver to answer")
        # A first body opens the connection to Kafka and its topics: not timed.
        asyncio.run(_send(f"{url}/api/v1/write", prepared[:1], 1))
        process = psutil.Process(receiver.pid)
        cpu_before = sum(process.cpu_times()[:2])
        began = time.perf_counter()
        latencies, statuses = asyncio.run(_send(f"{url}/api/v1/write", prepared[1:], concurrency))
        wall = time.perf_counter() - began
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        metrics = http_get(f"{url}/metrics")[1]
    finally:
        receiver.terminate()
        receiver.wait(30)
        log.close()
    sent = (len(prepared) - 1) * samples_per_request
    taken = sum(1 for s in statuses if 200 <= s < 300)
    ms = np.array(latencies) * 1000
    return {
        "requests": len(statuses),
        "taken": taken,
        "samples_per_request": samples_per_request,
        "concurrency": concurrency,
        "samples": sent,
        "wall_s": round(wall, 3),
        "samples_per_s": round(sent / wall),
        "receiver_cpu_s": round(cpu, 3),
        "samples_per_cpu_s": round(sent / cpu) if cpu > 0 else None,
        "latency_p50_ms": round(float(np.percentile(ms, 50)), 1),
        "latency_p99_ms": round(float(np.percentile(ms, 99)), 1),
        "published_samples": _counter(metrics, "foreshock_ingest_samples_total"),
        "body_bytes_mean": round(sum(map(len, prepared)) / len(prepared)),
    }


def _counter(text: str, name: str) -> float:
    """The sum of a counter's series on a metrics page."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )
