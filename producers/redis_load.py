"""A load on a real Redis for the lab: a leak and logins, counted by outcome.

The leak writes keys without a TTL at a byte rate, so under
``maxmemory-policy noeviction`` Redis fills until it refuses every write with
OOM. The logins (SET a session key with a TTL, GET it back) are the users who
then cannot log in: their failures, by kind, are what the incident costs.

``Load.run`` blocks for at most its duration; ``Load.start`` runs it in a
thread so that a caller reads the counters live (``snapshot()``) and may
``stop()`` it early. Each tick does what the rates owe since the last one,
never more than a second's worth, so a stall never turns into a burst.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

TIMEOUT_S = 2.0  # a command that takes longer counts as a failure, not a hang


@dataclass
class Tally:
    """Attempts, successes and failures by kind (``oom``, ``connection``,
    ``error``, ``mismatch``) of one activity."""

    attempts: int = 0
    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def copy(self) -> Tally:
        return Tally(self.attempts, self.successes, Counter(self.failures))


def failure_kind(exc: BaseException) -> str:
    """``oom`` when Redis is full, ``connection`` when it cannot be reached in
    time, ``error`` for any other refusal.

    redis-py raises OutOfMemoryError for Redis's ``-OOM ...`` reply and strips
    the ``OOM`` from its message (keeping it as ``status_code``); an older
    client raised a bare ResponseError whose message starts with ``OOM``.
    """
    if isinstance(exc, OutOfMemoryError) or getattr(exc, "status_code", None) == "OOM":
        return "oom"
    if isinstance(exc, ResponseError):
        return "oom" if str(exc).startswith("OOM") else "error"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return "connection"
    return type(exc).__name__


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)


def memory(url: str) -> tuple[int, int]:
    """``(used_memory, maxmemory)`` in bytes, from INFO memory and CONFIG GET."""
    conn = client(url)
    try:
        used = int(conn.info("memory")["used_memory"])
        maxmemory = int(conn.config_get("maxmemory").get("maxmemory") or 0)
    finally:
        conn.close()
    return used, maxmemory


@dataclass
class Snapshot:
    leak: Tally
    logins: Tally
    leaked_bytes: int
    first_oom_at: float | None


class Load:
    """A leak of ``leak_bytes_per_s`` (values of ``value_bytes``) and
    ``logins_per_s`` logins against the Redis at ``url``."""

    def __init__(
        self,
        url: str,
        leak_bytes_per_s: float,
        logins_per_s: float,
        value_bytes: int = 4096,
        session_ttl_s: int = 60,
        tick_s: float = 0.05,
        leak_after_s: float = 0.0,
    ) -> None:
        if value_bytes <= 0 or tick_s <= 0 or leak_bytes_per_s < 0 or logins_per_s < 0:
            raise ValueError("rates must be >= 0, value_bytes and tick_s > 0")
        self.url = url
        self.leak_bytes_per_s = leak_bytes_per_s
        self.logins_per_s = logins_per_s
        self.value_bytes = value_bytes
        self.session_ttl_s = session_ttl_s
        self.tick_s = tick_s
        self.leak_after_s = leak_after_s  # the leak starts this long after the logins
        # Counters, written by the running thread under the lock; read them
        # with snapshot() for a consistent view.
        self.leak = Tally()
        self.logins = Tally()
        self.leaked_bytes = 0
        self.first_oom_at: float | None = None  # time.time() of Redis's first OOM refusal
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prefix = os.urandom(4).hex()  # two loads on one Redis write apart
        self._leak_seq = 0
        self._login_seq = 0
        self._payload = b"\x00" * value_bytes
        self._client = client(url)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                self.leak.copy(), self.logins.copy(), self.leaked_bytes, self.first_oom_at
            )

    def run(self, duration_s: float) -> Snapshot:
        """Load Redis for ``duration_s`` (or until ``stop()``); the final counts."""
        self._stop.clear()
        now = time.monotonic()
        deadline, last = now + duration_s, now
        leak_from = now + self.leak_after_s
        leak_owed = logins_owed = 0.0
        try:
            while not self._stop.is_set() and (now := time.monotonic()) < deadline:
                elapsed, last = min(now - last, 1.0), now
                if now >= leak_from:
                    leak_owed += self.leak_bytes_per_s * elapsed / self.value_bytes
                logins_owed += self.logins_per_s * elapsed
                leaks, logins = int(leak_owed), int(logins_owed)
                leak_owed -= leaks
                logins_owed -= logins
                if leaks:
                    self._write_leak(leaks)
                for _ in range(logins):
                    self._login()
                self._stop.wait(self.tick_s)
        finally:
            self._client.close()
        return self.snapshot()

    def start(self, duration_s: float) -> threading.Thread:
        """``run`` in a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("this load is already running")
        self._thread = threading.Thread(
            target=self.run, args=(duration_s,), name="redis-load", daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self, timeout_s: float = 10.0) -> Snapshot:
        """Stop a running load (at its next tick) and wait for its thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.snapshot()

    def _failed(self, tally: Tally, exc: BaseException, count: int = 1) -> None:
        kind = failure_kind(exc)
        with self._lock:
            tally.failures[kind] += count
            if kind == "oom" and self.first_oom_at is None:
                self.first_oom_at = time.time()

    def _write_leak(self, count: int) -> None:
        """``count`` keys without a TTL, in one pipeline (each SET may fail alone)."""
        pipe = self._client.pipeline(transaction=False)
        for _ in range(count):
            self._leak_seq += 1
            pipe.set(f"leak:{self._prefix}:{self._leak_seq}", self._payload)
        with self._lock:
            self.leak.attempts += count
        try:
            results = pipe.execute(raise_on_error=False)
        except RedisError as exc:
            self._failed(self.leak, exc, count)
            return
        for result in results:
            if isinstance(result, Exception):
                self._failed(self.leak, result)
            else:
                with self._lock:
                    self.leak.successes += 1
                    self.leaked_bytes += self.value_bytes

    def _login(self) -> None:
        """A session key with a TTL, read back: the login succeeds if it reads the same."""
        self._login_seq += 1
        key = f"session:{self._prefix}:{self._login_seq}"
        token = os.urandom(8).hex().encode()
        with self._lock:
            self.logins.attempts += 1
        try:
            self._client.set(key, token, ex=self.session_ttl_s)
            read = self._client.get(key)
        except RedisError as exc:
            self._failed(self.logins, exc)
            return
        if read != token:
            with self._lock:
                self.logins.failures["mismatch"] += 1
            return
        with self._lock:
            self.logins.successes += 1


class LoginMetrics(Collector):
    """The logins as the service doing them would count them for Prometheus:
    ``login_attempts_total`` by ``outcome`` (success, timeout, failure), with
    the region and client they come from."""

    def __init__(self, load: Load, region: str, client: str) -> None:
        self.load = load
        self.where = {"region": region, "client": client}

    def collect(self) -> Iterator[CounterMetricFamily]:
        logins = self.load.snapshot().logins
        family = CounterMetricFamily(
            "login_attempts", "Logins tried, by outcome", labels=[*self.where, "outcome"]
        )
        timeouts = logins.failures["connection"]
        outcomes = {
            "success": logins.successes,
            "timeout": timeouts,
            "failure": logins.failed - timeouts,
        }
        for outcome, count in outcomes.items():
            family.add_metric([*self.where.values(), outcome], count)
        yield family


def serve_metrics(load: Load, region: str, client: str) -> tuple[WSGIServer, int]:
    """A /metrics page of the load's logins on a free port of 127.0.0.1;
    the server (``shutdown()`` stops it) and its port."""
    registry = CollectorRegistry()
    registry.register(LoginMetrics(load, region, client))
    server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
    return server, int(server.server_port)
