"""Foreshock against a broker that wants SASL/SCRAM-SHA-512: a second local
broker, started for this module in its own folder and wiped after it.

The right credentials carry telemetry from ``foreshock produce`` through a
worker; a wrong password stops both commands within seconds, naming the
cause; the password shows in no output and no log; the worker's web server
listens on 127.0.0.1 only and answers GET only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from bench.kafka import WorkerProcess, isolated, worker_env
from infra.settings import SaslMechanism, SecurityProtocol, Settings
from tests.foreshock.test_cli import SCENARIO
from tests.kafka.conftest import ROOT, _free_port

FAIL_FAST_S = 30.0  # a refused login must end a command well within this
# Every page a worker serves but its event stream (tests/streams/test_web.py).
SERVED = (
    "/", "/static/app.js", "/static/app.css", "/api/incidents", "/api/health", "/api/graph",
    "/metrics", "/metrics/",
)  # fmt: skip
FAUST_PAGES = ("/router/", "/table/", "/table/detect-state/", "/graph/", "/stats/")
USER = "foreshock"


@dataclass(frozen=True)
class ScramBroker:
    bootstrap: str
    password: str
    run: Path


def _broker(run: Path, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FORESHOCK_BROKER_RUN=str(run))  # never the shared broker's folder
    return subprocess.run(
        [sys.executable, str(ROOT / "broker" / "kafka.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScramBroker]:
    run = tmp_path_factory.mktemp("scram-broker") / "run"
    password = f"scram-{secrets.token_hex(8)}"  # recognisable in any output it leaks to
    try:
        started = _broker(
            run, "start", "--scram", "--user", USER, "--password", password, "--heap", "256m",
            timeout_s=300,
        )  # fmt: skip
        if started.returncode != 0:
            pytest.fail(f"the SCRAM broker did not start:\n{started.stderr[-3000:]}")
        yield ScramBroker(started.stdout.strip().splitlines()[-1], password, run)
    finally:
        _broker(run, "stop", "--wipe", timeout_s=120)
        shutil.rmtree(run, ignore_errors=True)


def scram_settings(
    broker: ScramBroker, password: str, mechanism: SaslMechanism = SaslMechanism.SCRAM_SHA_512
) -> Settings:
    return isolated(
        Settings(
            kafka_bootstrap=broker.bootstrap,
            kafka_security_protocol=SecurityProtocol.SASL_PLAINTEXT,
            kafka_sasl_mechanism=mechanism,
            kafka_sasl_username=USER,
            kafka_sasl_password=password,
        )
    )


def foreshock(
    settings: Settings, tmp_path: Path, *args: str, timeout_s: float = 120
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the ``foreshock`` command as a user would, with these settings."""
    (tmp_path / "music-errors.toml").write_text(SCENARIO)
    env = worker_env(settings) | {"FORESHOCK_SCENARIOS": str(tmp_path)}
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "foreshock", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return done, time.monotonic() - began


def processed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0  # not serving yet
    lines = text.splitlines()
    return sum(float(x.split()[-1]) for x in lines if x.startswith("foreshock_processed_messages"))


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (Linux /proc)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            if width == 8:
                found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
            else:
                found.add("::" if int(address, 16) == 0 else address)
    return found


def answer(port: int, method: str, path: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"{}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def status(port: int, method: str, path: str) -> int:
    return answer(port, method, path)[0]


# PLAIN sends the password itself, which aiokafka logs at DEBUG unless hidden.
@pytest.mark.parametrize("mechanism", [SaslMechanism.SCRAM_SHA_512, SaslMechanism.PLAIN])
def test_the_right_credentials_carry_telemetry_through_a_worker(scram_broker, tmp_path, mechanism):
    settings = scram_settings(scram_broker, scram_broker.password, mechanism)
    produced, _ = foreshock(settings, tmp_path, "produce", "music-errors", "--json")
    assert produced.returncode == 0, produced.stderr[-3000:]
    summary = orjson.loads(produced.stdout)
    password = scram_broker.password
    assert summary["messages"] > 0

    port = _free_port()
    env = worker_env(settings) | {"FORESHOCK_WEB_ENABLED": "true", "FORESHOCK_WEB_PORT": str(port)}
    argv = ("-m", "foreshock", "worker", "--loglevel", "debug")  # the chattiest it gets
    with WorkerProcess(env, tmp_path / "worker.log", tmp_path, argv) as worker:
        deadline = time.monotonic() + 600
        while processed(port) < summary["messages"]:
            assert worker.alive, worker.tail()
            assert time.monotonic() < deadline, f"processed {processed(port)}\n{worker.tail()}"
            time.sleep(2)

        # The web server: loopback only, Foreshock's own pages (none of Faust's:
        # router, tables, graph, statistics), nothing but GET anywhere.
        assert listening_addresses(port) == {"127.0.0.1"}
        pages = {path: answer(port, "GET", path) for path in (*SERVED, *FAUST_PAGES)}
        assert {path for path, (code, _) in pages.items() if code == 200} == set(SERVED)
        assert not [path for path, (_, body) in pages.items() if password in body.decode()]
        for path in (*SERVED, *FAUST_PAGES):
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                assert status(port, method, path) in (404, 405), (method, path)
    print(
        f"\n{mechanism}: produced {summary['messages']:,} messages, "
        f"the worker processed {processed(port) or summary['messages']:,.0f}"
    )

    outputs = produced.stdout + produced.stderr + worker.text()
    assert "SaslAuthenticate" in worker.text()  # the exchange was logged, and the secret hidden
    assert password not in outputs


@pytest.mark.parametrize("command", ["produce", "worker"])
def test_a_wrong_password_fails_fast_naming_the_cause(scram_broker, tmp_path, command):
    wrong = f"wrong-{secrets.token_hex(8)}"
    settings = scram_settings(scram_broker, wrong)
    args = ["produce", "music-errors", "--json"] if command == "produce" else ["worker"]
    done, took = foreshock(settings, tmp_path, *args, timeout_s=FAIL_FAST_S * 4)
    said = done.stdout + done.stderr
    print(f"\n{command}, wrong password: exit {done.returncode} after {took:.1f} s: {said.strip()}")
    assert done.returncode != 0
    assert took < FAIL_FAST_S
    assert "authentication failed" in done.stderr
    assert "FORESHOCK_KAFKA_SASL_PASSWORD" in done.stderr
    assert "Traceback" not in said
    assert done.stdout == ""  # no half-written --json
    assert wrong not in said and scram_broker.password not in said


def test_plaintext_against_the_scram_listener_fails_fast_naming_the_cause(scram_broker, tmp_path):
    settings = scram_settings(scram_broker, scram_broker.password).model_copy(
        update={"kafka_security_protocol": SecurityProtocol.PLAINTEXT}
    )
    done, took = foreshock(settings, tmp_path, "produce", "music-errors", timeout_s=FAIL_FAST_S * 4)
    assert done.returncode != 0
    assert took < FAIL_FAST_S
    assert "FORESHOCK_KAFKA_SECURITY_PROTOCOL" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_settings_never_show_the_password():
    password = f"secret-{secrets.token_hex(8)}"
    settings = Settings(kafka_sasl_password=password)
    assert password not in repr(settings) + str(settings) + settings.model_dump_json()
    assert "sasl_plain_password" not in settings.kafka_client_options()  # PLAINTEXT: not sent


def test_the_brokers_files_that_hold_the_password_are_the_owners_alone(scram_broker):
    run = scram_broker.run
    holding = [
        p
        for p in run.rglob("*")
        if p.is_file() and scram_broker.password in p.read_text(errors="replace")
    ]
    assert {p.name for p in holding} >= {"sasl.json", "server.properties"}
    for path in holding:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is mode {path.stat().st_mode & 0o777:o}"
