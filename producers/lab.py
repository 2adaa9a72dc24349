"""The lab: a real Redis that leaks, watched as a site would watch it.

Redis runs with a ``maxmemory`` and no eviction; redis_exporter shows it to
Prometheus, which scrapes every second, with the logins' own counter, and
remote-writes every sample to ``foreshock ingest`` (here, in a thread),
which publishes Foreshock's telemetry to Kafka. The load logs users in
(a session key in Redis) and, after ``leak_after_s``, leaks keys without a
TTL until Redis is full and refuses writes: logins then fail too.

A worker (started by the caller) detects it. ``full_at`` is when Redis
itself, by INFO, first used all of its ``maxmemory``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Self

from infra.servers import Prometheus, Redis, RedisExporter
from infra.settings import DEFAULTS, Settings
from producers.receiver import Background
from producers.redis_load import Load, memory, serve_metrics

TOPOLOGY = DEFAULTS / "lab-topology.toml"
NODE = "node-01"  # redis/node-01 in the lab's topology
REGION, CLIENT = "lab", "web"  # logins/lab/web


@dataclass(frozen=True)
class LabConfig:
    maxmemory: str = "16mb"
    leak_bytes_per_s: float = 150_000.0
    leak_after_s: float = 10.0
    logins_per_s: float = 20.0
    duration_s: float = 900.0  # the load stops by itself after this


class Lab:
    """Every part of the lab, started on enter and stopped on exit."""

    def __init__(self, settings: Settings, config: LabConfig | None = None) -> None:
        self.settings = settings
        self.config = config or LabConfig()
        self.full_at: float | None = None  # time.time() Redis first reached maxmemory
        self.used = (0, 0)  # Redis's used_memory and maxmemory, as last read
        self._stop = threading.Event()
        self._parts = contextlib.ExitStack()

    def __enter__(self) -> Self:
        with self._parts as parts:  # each stopped if a later one cannot start
            self._start(parts)
            self._parts = parts.pop_all()
        return self

    def _start(self, parts: contextlib.ExitStack) -> None:
        cfg = self.config
        self.redis = parts.enter_context(Redis(maxmemory=cfg.maxmemory))
        self.exporter = parts.enter_context(RedisExporter(self.redis.url))
        mapping, topology = self.settings.load_mapping(), self.settings.load_topology()
        self.receiver = parts.enter_context(Background(self.settings, mapping, topology))
        self.load = Load(
            self.redis.url, cfg.leak_bytes_per_s, cfg.logins_per_s, leak_after_s=cfg.leak_after_s
        )
        metrics, port = serve_metrics(self.load, REGION, CLIENT)
        parts.callback(metrics.shutdown)
        self.prometheus = parts.enter_context(
            Prometheus(
                {
                    "redis": ([self.exporter.address], {"instance": NODE}),
                    "logins": ([f"127.0.0.1:{port}"], {}),
                },
                remote_write_url=f"{self.receiver.url}/api/v1/write",
            )
        )
        self.load.start(cfg.duration_s)
        parts.callback(self.load.stop)
        watch = threading.Thread(target=self._watch_memory, name="lab-memory", daemon=True)
        watch.start()
        parts.callback(watch.join, 5.0)
        parts.callback(self._stop.set)

    def _watch_memory(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.used = used, maxmemory = memory(self.redis.url)
            except Exception:
                continue  # stopping, or a slow answer: read it again
            if self.full_at is None and maxmemory and used >= maxmemory:
                self.full_at = time.time()

    def __exit__(self, *exc: object) -> None:
        self._parts.close()
