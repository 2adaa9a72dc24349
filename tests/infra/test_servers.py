"""Real Redis, redis_exporter, Prometheus and Alertmanager (Debian's
packages, ``make servers``) started by infra/servers.py, with the lab's load
filling Redis.

Outside CI a missing binary skips these tests with the reason; in CI
(CI=true) it fails them.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.servers import (
    Alertmanager,
    MissingBinary,
    Prometheus,
    Redis,
    RedisExporter,
    Server,
    ServerError,
    wait_for,
)
from producers.redis_load import Load, memory
from tests.conftest import require

pytestmark = pytest.mark.servers

MAXMEMORY = 4 * 1024 * 1024  # "4mb" to Redis


def gone(pid: int) -> bool:
    """No process with this pid, nor any left in its process group."""
    for probe in (os.kill, os.killpg):
        try:
            probe(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_a_leak_fills_redis_and_prometheus_scrapes_it() -> None:
    require(Redis, RedisExporter, Prometheus)
    with (
        Redis(maxmemory="4mb") as redis,
        RedisExporter(redis.url) as exporter,
        Prometheus({"redis": ([exporter.address], {"lab": "leak"})}, scrape_interval_s=1.0) as prom,
    ):
        servers: list[Server] = [redis, exporter, prom]
        pids = [server.pid for server in servers]
        dirs = [server.dir for server in servers]

        # ~1 s to fill 4 MB; the logins go on being refused after that.
        load = Load(redis.url, leak_bytes_per_s=4_000_000, logins_per_s=50, value_bytes=4096)
        load.start(duration_s=20)
        try:
            wait_for(
                lambda: load.snapshot().logins.failures["oom"] >= 10,
                timeout_s=15,
                what="logins refused with OOM",
            )
        finally:
            final = load.stop()

        assert final.leak.failures["oom"] > 0
        assert final.logins.successes > 0  # before Redis was full
        assert final.logins.failures["oom"] >= 10
        assert set(final.logins.failures) == {"oom"}
        assert final.first_oom_at is not None and final.first_oom_at <= time.time()
        used, maxmemory = memory(redis.url)
        assert maxmemory == MAXMEMORY
        assert used >= 0.9 * maxmemory

        selector = f'{{job="redis", instance="{exporter.address}", lab="leak"}}'

        def scraped_full() -> bool:
            used_series = prom.query(f"redis_memory_used_bytes{selector}")
            max_series = prom.query(f"redis_memory_max_bytes{selector}")
            return (
                len(used_series) == 1
                and len(max_series) == 1
                and float(max_series[0]["value"][1]) == MAXMEMORY
                and float(used_series[0]["value"][1]) >= 0.9 * MAXMEMORY
            )

        wait_for(scraped_full, timeout_s=15, what="Prometheus showing Redis full")

    for pid in pids:
        assert pid is not None and gone(pid), f"pid {pid} outlived its server"
    assert not any(path.exists() for path in dirs)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_alertmanager_takes_an_alert_then_its_resolution() -> None:
    require(Alertmanager)
    labels = {
        "alertname": "ForeshockIncident",
        "incident_id": "INC-1",
        "service": "redis-sessions",
        "severity": "SEV-1",
    }
    annotations = {"summary": "redis-sessions fills up", "runbook": "https://runbooks/redis-oom"}
    alert = {"labels": labels, "annotations": annotations, "startsAt": rfc3339(datetime.now(UTC))}
    with Alertmanager() as am:
        pid, folder = am.pid, am.dir
        assert am.post_alerts([alert]) == 200

        def listed_active() -> bool:
            found = am.alerts(filters=['incident_id="INC-1"'])
            return len(found) == 1 and found[0]["status"]["state"] == "active"

        wait_for(listed_active, timeout_s=10, what="the alert listed as active")
        (listed,) = am.alerts(filters=['incident_id="INC-1"'])
        assert listed["labels"] == labels
        assert listed["annotations"] == annotations
        assert listed["receivers"] == [{"name": "foreshock-null"}]

        # Resolved: an endsAt in the past, but not before startsAt (that is a 400).
        resolved = {**alert, "endsAt": rfc3339(datetime.now(UTC))}
        assert am.post_alerts([resolved]) == 200
        # A resolved alert is not listed at all (no "resolved" state), whatever the flags.
        wait_for(lambda: am.alerts() == [], timeout_s=10, what="the alert no longer active")

    assert pid is not None and gone(pid), f"pid {pid} outlived its server"
    assert not folder.exists()


def test_a_missing_binary_is_named_with_how_to_install_it() -> None:
    class Absent(Redis):
        binary = "foreshock-no-such-server"

    with pytest.raises(MissingBinary, match=r"foreshock-no-such-server .*`make servers`"):
        Absent().start()


def test_a_server_that_dies_at_start_shows_its_log_and_leaves_nothing() -> None:
    require(Redis)
    server = Redis(policy="no-such-policy")
    with pytest.raises(ServerError, match="exited with code 1") as raised:
        server.start()
    assert "noeviction" in str(raised.value)  # Redis's own complaint, from its log
    assert server.pid is not None and gone(server.pid)
    assert server.dir != Path() and not server.dir.exists()
