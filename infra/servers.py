"""Real Redis, redis_exporter, Prometheus, Alertmanager and chromedriver
servers, as child processes on 127.0.0.1, for the lab and its tests.

Each server is a context manager: entering picks a free port, writes its
configuration into a temporary folder, starts the binary in its own process
group and waits (bounded) until it answers; leaving stops it by PID (SIGTERM,
then SIGKILL after a bound) and removes the folder. The binaries are Debian's
(``redis-server``, ``prometheus-redis-exporter``, ``prometheus``,
``prometheus-alertmanager``, ``chromedriver`` with ``chromium``); ``make
servers`` installs them. Nothing here runs as a service or touches /etc.

Standard library only, like broker/kafka.py, so that it works before the
clients are installed and pulls no client into the infra layer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server could not be started, or did not answer in time."""


class MissingBinary(ServerError):
    """The server's binary is not installed."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1
) -> None:
    """Poll ``condition`` until it holds; TimeoutError naming ``what`` after ``timeout_s``.
    An exception from the condition counts as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        try:
            if condition():
                return
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            why = f" (last error: {last!r})" if last is not None else ""
            raise TimeoutError(f"{what}: not within {timeout_s:g} s{why}")
        time.sleep(interval_s)


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")


def http_post_json(url: str, payload: Any, timeout_s: float = 2.0) -> tuple[int, str]:
    """(status, body) of a POST of ``payload`` as JSON; an HTTP error status is
    returned, not raised."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")


class Server:
    """One server process: start, wait until ready, stop, its log's tail.

    Subclasses name their ``binary`` and ``package`` and give ``command()`` and
    ``ready()``; ``prepare()`` may write configuration into ``self.dir``.
    """

    binary: ClassVar[str]
    package: ClassVar[str]  # the Debian package that installs the binary
    start_timeout_s: ClassVar[float] = 30.0
    stop_timeout_s: ClassVar[float] = 10.0

    def __init__(self) -> None:
        self.port = 0
        self.dir = Path()
        self.log = Path()
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def installed(cls) -> bool:
        return shutil.which(cls.binary) is not None

    @classmethod
    def missing(cls) -> str:
        """Why the server cannot run here."""
        return (
            f"{cls.binary} is not installed (not on PATH): "
            f"`make servers` installs it (Debian package {cls.package})"
        )

    # -- for subclasses

    def prepare(self) -> None:
        """Write configuration into ``self.dir`` before the start."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- the process

    def start(self) -> Self:
        path = shutil.which(self.binary)
        if path is None:
            raise MissingBinary(self.missing())
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"foreshock-{self.binary}-"))
        self.log = self.dir / "server.log"
        try:
            self.prepare()
            cmd = [path, *self.command()]
            with open(self.log, "ab") as log:
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=self.dir,
                    env=self.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: Ctrl-C on pytest does not hit it
                    close_fds=True,
                )
            self.pid = self._proc.pid
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ServerError(
                    f"{self.binary} exited with code {code} while starting; "
                    f"last lines of its log:\n{self.log_tail()}"
                )
            try:
                if self.ready():
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"{self.binary} did not answer on {HOST}:{self.port} within "
                    f"{self.start_timeout_s:g} s; last lines of its log:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after ``stop_timeout_s``; remove the folder."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            self._signal(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(proc.pid, signal.SIGKILL)
                proc.wait(self.stop_timeout_s)
        if self.dir != Path() and self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)  # start_new_session made pid its group leader
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Redis(Server):
    """A Redis with a memory cap and no persistence: once full, writes fail
    with OOM under ``noeviction``, which is the leak's visible failure."""

    binary = "redis-server"
    package = "redis-server"

    def __init__(self, maxmemory: str = "32mb", policy: str = "noeviction") -> None:
        super().__init__()
        self.maxmemory = maxmemory
        self.policy = policy

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def command(self) -> list[str]:
        return [
            "--port", str(self.port),
            "--bind", HOST,
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", self.policy,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
        ]  # fmt: skip

    def ready(self) -> bool:
        with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")


class RedisExporter(Server):
    """Oliver006's redis_exporter (Debian's build) in front of one Redis."""

    binary = "prometheus-redis-exporter"
    package = "prometheus-redis-exporter"

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.redis_url = redis_url

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        return ["--redis.addr", self.redis_url, "--web.listen-address", self.address]

    def env(self) -> dict[str, str]:
        # Its flags default to REDIS_* variables (REDIS_PASSWORD...): none leak in.
        return {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}

    def ready(self) -> bool:
        status, body = http_get(f"http://{self.address}/metrics")
        return status == 200 and "\nredis_up 1\n" in body


def duration(seconds: float) -> str:
    """Prometheus's duration syntax, to the millisecond."""
    return f"{max(1, round(seconds * 1000))}ms"


class Prometheus(Server):
    """A Prometheus scraping ``jobs`` (job name -> its targets, and labels
    set on them) and, when given a URL, remote-writing every sample there
    with a lab's short delays.

    Ready means its API answers: its scrape manager applies targets on a 5 s
    tick, so the first samples come up to ~5 s later.
    """

    binary = "prometheus"
    package = "prometheus"

    def __init__(
        self,
        jobs: Mapping[str, tuple[Sequence[str], Mapping[str, str]]],
        remote_write_url: str | None = None,
        scrape_interval_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.jobs = {job: (list(targets), dict(labels)) for job, (targets, labels) in jobs.items()}
        self.remote_write_url = remote_write_url
        self.scrape_interval_s = scrape_interval_s

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def config(self) -> dict[str, Any]:
        interval = duration(self.scrape_interval_s)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets, "labels": labels}]}
                for job, (targets, labels) in self.jobs.items()
            ],
        }
        if self.remote_write_url:
            config["remote_write"] = [
                {
                    "url": self.remote_write_url,
                    "queue_config": {
                        "batch_send_deadline": "1s",
                        "min_backoff": "100ms",
                        "max_backoff": "1s",
                    },
                }
            ]
        return config

    def prepare(self) -> None:
        # JSON is YAML: no quoting rules to get wrong for labels and URLs.
        text = "# written by infra/servers.py\n" + json.dumps(self.config(), indent=2) + "\n"
        (self.dir / "prometheus.yml").write_text(text)
        (self.dir / "data").mkdir()

    def command(self) -> list[str]:
        # Binds only the web address; 2.42 has no update check or telemetry to turn off.
        return [
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
            # The default waits a minute on stop for an unreachable remote_write.
            "--storage.remote.flush-deadline=2s",
        ]

    def ready(self) -> bool:
        return http_get(f"{self.url}/-/ready")[0] == 200

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: the ``result`` list of ``/api/v1/query``."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url, timeout_s=5.0)
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise ServerError(f"query {expr!r}: HTTP {status}: {body[:500]}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


class Alertmanager(Server):
    """An Alertmanager whose one route sends everything to one receiver
    ("foreshock-null"), which notifies ``webhook_url`` (Alertmanager's webhook
    integration) when given, and nobody otherwise: alerts are kept, grouped
    and listed by the API v2. Groups are flushed after 1 s; ``resolve_timeout``
    is the default (5 m).

    Binds only the web address: ``--cluster.listen-address=`` turns off the
    gossip port (HA mode). Ready when ``/-/ready`` answers 200.
    """

    binary = "prometheus-alertmanager"
    package = "prometheus-alertmanager"
    receiver: ClassVar[str] = "foreshock-null"

    def __init__(self, webhook_url: str | None = None) -> None:
        super().__init__()
        self.webhook_url = webhook_url  # where the receiver notifies, if anywhere

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def config(self) -> dict[str, Any]:
        receiver: dict[str, Any] = {"name": self.receiver}
        if self.webhook_url:
            receiver["webhook_configs"] = [{"url": self.webhook_url, "send_resolved": True}]
        return {
            "route": {"receiver": self.receiver, "group_wait": "1s", "group_interval": "1s"},
            "receivers": [receiver],
        }

    def prepare(self) -> None:
        # JSON is YAML, as for Prometheus.
        text = "# written by infra/servers.py\n" + json.dumps(self.config(), indent=2) + "\n"
        (self.dir / "alertmanager.yml").write_text(text)
        (self.dir / "data").mkdir()

    def command(self) -> list[str]:
        # 0.25 has no update check or telemetry; the UI is served from the web address.
        return [
            f"--config.file={self.dir / 'alertmanager.yml'}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
            "--cluster.listen-address=",
        ]

    def ready(self) -> bool:
        return http_get(f"{self.url}/-/ready")[0] == 200

    def alerts(
        self,
        active: bool | None = True,
        silenced: bool | None = None,
        inhibited: bool | None = None,
        filters: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts not yet resolved, as the API gives
        them. ``None`` leaves a flag to the API's default (true); ``filters`` are
        label matchers such as ``'incident_id="INC-1"'``. Resolved alerts (an
        ``endsAt`` in the past) are never listed, whatever the flags."""
        params: list[tuple[str, str]] = []
        for name, flag in (("active", active), ("silenced", silenced), ("inhibited", inhibited)):
            if flag is not None:
                params.append((name, "true" if flag else "false"))
        params.extend(("filter", matcher) for matcher in filters or [])
        url = f"{self.url}/api/v2/alerts"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url, timeout_s=5.0)
        if status != 200:
            raise ServerError(f"GET /api/v2/alerts: HTTP {status}: {body[:500]}")
        result: list[dict[str, Any]] = json.loads(body)
        return result

    def post_alerts(self, alerts: list[dict[str, Any]]) -> int:
        """``POST /api/v2/alerts`` (``labels``, ``annotations``, ``startsAt``,
        ``endsAt``, ``generatorURL``): the HTTP status, 200 when taken. An
        ``endsAt`` before ``startsAt`` is a 400."""
        return http_post_json(f"{self.url}/api/v2/alerts", alerts, timeout_s=5.0)[0]


class ChromeDriver(Server):
    """Debian's chromedriver, which drives Debian's headless chromium (the
    ``chromium`` package) over the WebDriver protocol: a test's browser.

    It binds 127.0.0.1 and answers only local clients. Ready when
    ``/status`` says so. A WebDriver client (Selenium) asks it for a session
    with ``binary`` as the browser.
    """

    binary = "chromedriver"
    package = "chromium-driver"
    browser: ClassVar[str] = "chromium"

    @classmethod
    def installed(cls) -> bool:
        return super().installed() and shutil.which(cls.browser) is not None

    @classmethod
    def missing(cls) -> str:
        return (
            f"{cls.binary} or {cls.browser} is not installed (not on PATH): "
            "`make servers` installs them (Debian packages chromium-driver, chromium)"
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def browser_path(self) -> str:
        return shutil.which(self.browser) or self.browser

    def command(self) -> list[str]:
        return [f"--port={self.port}", "--allowed-ips=127.0.0.1", f"--log-path={self.log}"]

    def ready(self) -> bool:
        status, body = http_get(f"{self.url}/status")
        return status == 200 and bool(json.loads(body).get("value", {}).get("ready"))
