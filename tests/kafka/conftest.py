"""A real Apache Kafka broker for the tests in this folder, and the means to
run Foreshock's producer and workers against it as separate processes.

The broker is, in order: the one named by FORESHOCK_KAFKA_BOOTSTRAP; the one
``make test`` started (``broker/kafka.py``); one started by testcontainers
where a Docker engine is present. In CI a missing broker fails the tests.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord

from bench.kafka import WorkerProcess, isolated, records, worker_env
from infra import kafka
from infra.settings import Settings
from models.schema import Telemetry
from producers.kafka import Published, publish
from streams.checkpoint import read_snapshot

ROOT = Path(__file__).parents[2]
BROKER_RUN = ROOT / "broker" / ".run"


def _answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _kafka_version() -> str:
    import xml.etree.ElementTree as ET

    pom = ET.parse(ROOT / "broker" / "pom.xml").getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = pom.find("m:properties/m:kafka.version", ns)
    assert version is not None and version.text
    return version.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _docker_broker() -> Iterator[str] | None:
    """The official Apache Kafka image, single-node KRaft, as in docker-compose.yml."""
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return None
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = _free_port()
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }
    container = DockerContainer(f"apache/kafka:{_kafka_version()}").with_bind_ports(9092, port)
    for key, value in env.items():
        container = container.with_env(key, value)

    def run() -> Iterator[str]:
        with container:
            wait_for_logs(container, "Kafka Server started", timeout=120)
            yield f"127.0.0.1:{port}"

    return run()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("FORESHOCK_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    started = BROKER_RUN / "bootstrap"
    if started.exists() and _answers(address := started.read_text().strip()):
        yield address
        return
    container = _docker_broker()
    if container is not None:
        yield from container
        return
    why = (
        "no Kafka broker: set FORESHOCK_KAFKA_BOOTSTRAP, run `make broker-start`, "
        "or provide a Docker engine"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


@dataclass
class Namespace:
    """Topics, consumer group and tables of one test, apart from every other."""

    bootstrap: str
    workdir: Path
    settings: Settings = field(init=False)
    started: list[WorkerProcess] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        # A killed worker's partitions move on after 10 s, not a minute.
        fast = Settings(
            kafka_bootstrap=self.bootstrap, kafka_session_timeout_s=10, kafka_heartbeat_interval_s=1
        )
        self.settings = isolated(fast)

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def publish(self, messages: Iterable[Telemetry]) -> Published:
        """Publish telemetry as ``foreshock produce`` does."""
        return asyncio.run(publish(self.settings, messages))

    def worker(self, label: str = "worker", env: dict[str, str] | None = None) -> WorkerProcess:
        """A worker with this test's settings (and ``env`` on top)."""
        environment = worker_env(self.settings) | (env or {})
        worker = WorkerProcess(environment, self.workdir / f"{label}.log", self.workdir)
        self.started.append(worker)  # stopped with the test, whatever it does
        return worker

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``foreshock ARGS`` as a user would run it, with this test's settings."""
        return subprocess.run(
            [sys.executable, "-m", "foreshock", *args],
            env=worker_env(self.settings),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def records(self, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record on one of this test's topics."""
        return asyncio.run(read_all(self.settings, self.topic(topic)))

    def read(self, topic: str) -> list[dict[str, Any]]:
        """Every record on one of this test's topics, decoded."""
        return [orjson.loads(r.value) for r in self.records(topic)]

    def committed(self, topic: str) -> tuple[int, int]:
        """Offsets the workers' group has committed on a topic, and its end offsets."""
        offsets = asyncio.run(
            kafka.group_offsets(self.settings, self.settings.app_id, [self.topic(topic)])
        )
        return sum(done for done, _ in offsets.values()), sum(end for _, end in offsets.values())

    def snapshots(self, table: str) -> dict[str, bytes]:
        """The latest snapshot (``pack``'s bytes) of every partition in one of
        the workers' tables, put together from its changelog as a worker
        restoring it would."""
        changelog = kafka.changelog_topic(self.settings, table)
        recs = asyncio.run(read_all(self.settings, changelog))
        stored: dict[str, bytes] = {}
        for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
            key = orjson.loads(r.key)
            if r.value is None:  # a tombstone
                stored.pop(key, None)
            else:
                stored[key] = r.value
        manifests = [key for key in stored if "/" not in key]  # the rest are chunks
        return {key: blob for key in manifests if (blob := read_snapshot(stored, key))}

    def reports_correlated(self) -> bool:
        """Whether the correlator has committed every window report sent so far."""
        done, end = self.committed("foreshock.windows")
        return 0 < done == end

    def offsets(self, source: str) -> tuple[int, int]:
        """The offset the workers' group has committed on one partition
        (``topic:partition``), and its end offset."""
        topic, _, partition = source.rpartition(":")
        offsets = asyncio.run(kafka.group_offsets(self.settings, self.settings.app_id, [topic]))
        return next(pair for tp, pair in offsets.items() if tp.partition == int(partition))

    def wait_for(
        self,
        what: str,
        found: Callable[[], Any],
        timeout_s: float,
        workers: list[WorkerProcess],
        still: Callable[[], str] | None = None,
    ) -> Any:
        """``found()`` once true; on time-out, fail with what ``still``
        says is missing and the workers' last log lines."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = found()
            if result:
                return result
            for w in workers:
                assert w.alive, f"{w.log.name} exited early:\n{w.tail()}"
            time.sleep(2)
        tails = "\n".join(f"--- {w.log.name}\n{w.tail()}" for w in workers)
        missing = f" ({still()})" if still is not None else ""
        raise AssertionError(
            f"timed out after {timeout_s:.0f} s waiting for {what}{missing}\n{tails}"
        )


async def read_all(settings: Settings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on a topic (the whole topic, not only a test's prefix)."""
    want = sum((await kafka.end_offsets(settings, [topic])).values())
    return await records(settings, [topic], lambda seen: len(seen) >= want, timeout_s=60)


@pytest.fixture
def namespace(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Namespace]:
    ns = Namespace(kafka_bootstrap, tmp_path)
    yield ns
    for worker in ns.started:
        worker.stop()
