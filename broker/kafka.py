#!/usr/bin/env python3
"""A real single-node Apache Kafka broker (KRaft) for Foreshock's tests and CI.

Standard library only, so it runs before (or without) the project's venv:

    python broker/kafka.py start [--scram] [--password PW] [--partitions N] [--timeout S]
    python broker/kafka.py status
    python broker/kafka.py stop [--wipe]
    python broker/kafka.py restart
    python broker/kafka.py clean          # stop --wipe

`start` fetches the broker jars with Maven into broker/.jars/ when they are
missing (broker/pom.xml pins the version), writes a KRaft configuration into
broker/.run/, formats the storage once, launches the broker in the
background and waits until it answers a Kafka ApiVersions request. It prints
the bootstrap address (also written to broker/.run/bootstrap). The port is
picked once and recorded, so stop + start keeps the same address and data,
which is how tests simulate a broker restart; `stop --wipe` forgets both.
FORESHOCK_BROKER_RUN names another folder for a second, independent broker.

With --scram the client listener is SASL_PLAINTEXT with SCRAM-SHA-512 and a
user (default `foreshock`) created at format time, and PLAIN for the same
user and password; the controller and
inter-broker listeners stay plain. The credentials are written to
broker/.run/sasl.json. Switching between plain and --scram needs a wipe.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
JARS = HERE / ".jars"
JARS_STAMP = JARS / ".complete"
# A second broker (a SCRAM one, one a test restarts) gets its own folder.
RUN = Path(os.environ.get("FORESHOCK_BROKER_RUN", HERE / ".run")).resolve()
DATA = RUN / "data"
STATE = RUN / "state.json"  # ports, cluster id, mode: kept across stop/start
PROPS = RUN / "server.properties"
LOG4J = RUN / "log4j2.properties"
LOG = RUN / "broker.log"
PID = RUN / "broker.pid"
BOOTSTRAP = RUN / "bootstrap"
SASL = RUN / "sasl.json"
LOCK = RUN / ".lock"

HOST = "127.0.0.1"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
SCRAM_MECHANISM = "SCRAM-SHA-512"
DEFAULT_USER = "foreshock"
DEFAULT_PASSWORD = "foreshock-secret"
READY_LINE = "Kafka Server started"


class BrokerError(Exception):
    pass


def fail(message: str) -> NoReturn:
    print(f"broker/kafka.py: {message}", file=sys.stderr)
    sys.exit(1)


def info(message: str) -> None:
    print(f"broker/kafka.py: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# state


def read_state() -> dict[str, Any]:
    try:
        state = json.loads(STATE.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def write_private(path: Path, text: str) -> None:
    """A file only its owner may read (mode 0600), from its first byte."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_state(state: dict[str, Any]) -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(STATE)


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialise start/stop across processes (e.g. parallel test runners)."""
    RUN.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def running_pid() -> int | None:
    """The broker's pid if the recorded process is alive and is our broker."""
    try:
        pid = int(PID.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        cmdline = None
    if cmdline is not None:
        args = [part.decode(errors="replace") for part in cmdline]
        return pid if MAIN_CLASS in args and str(PROPS) in args else None
    # no /proc (not Linux): fall back to "some process has this pid"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


# --------------------------------------------------------------------------
# jars


def pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def ensure_jars() -> None:
    digest = pom_digest()
    if JARS_STAMP.is_file() and JARS_STAMP.read_text().strip() == digest:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is needed to fetch the Kafka jars and is not on PATH")
    info("fetching the Kafka broker jars with Maven into broker/.jars/ ...")
    started = time.monotonic()
    if JARS.exists():
        shutil.rmtree(JARS)
    tmp = HERE / ".jars.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
    ]
    proc = subprocess.run(
        cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BrokerError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    if not any(tmp.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"Maven ran but no kafka_2.13 jar is in {tmp}")
    (tmp / JARS_STAMP.name).write_text(digest + "\n")
    tmp.replace(JARS)
    info(f"jars fetched in {time.monotonic() - started:.1f} s")


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise BrokerError("java (17 or newer) is needed to run the broker and is not on PATH")
    return found


def java_cmd(main: str, *args: str, heap: str = "256m") -> list[str]:
    return [
        java(),
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J}",
        "-cp",
        str(JARS / "*"),
        main,
        *args,
    ]


# --------------------------------------------------------------------------
# configuration


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Java's server sockets use SO_REUSEADDR too: TIME_WAIT is no obstacle
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def new_cluster_id() -> str:
    # Kafka's Uuid.toString(): 16 random bytes, URL-safe base64, no padding;
    # like Uuid.randomUuid() avoid a leading '-', which CLIs would take for an option
    while True:
        cid = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def plan(scram: bool) -> dict[str, Any]:
    """The recorded ports and cluster id; picked on the first start (or after a wipe)."""
    state = read_state()
    mode = "scram" if scram else "plain"
    ports = ("port", "controller_port", "internal_port")
    if (DATA / "meta.properties").is_file():
        if state.get("mode", "plain") != mode:
            raise BrokerError(
                f"broker/.run/ holds a {state.get('mode', 'plain')} broker's data; "
                f"run `python broker/kafka.py stop --wipe` before starting it {mode}"
            )
        if not all(state.get(key) for key in (*ports, "cluster_id")):
            raise BrokerError(
                "broker/.run/state.json is missing or damaged: "
                "run `python broker/kafka.py stop --wipe`"
            )
        return state
    taken: set[int] = set()
    for key in ports:
        port = state.get(key) or free_port()
        while port in taken:
            port = free_port()
        state[key] = port
        taken.add(port)
    state["cluster_id"] = new_cluster_id()
    state["mode"] = mode
    write_state(state)
    return state


def server_properties(
    state: dict[str, Any], scram: bool, partitions: int = 1, user: str = "", password: str = ""
) -> str:
    port, cport, iport = state["port"], state["controller_port"], state["internal_port"]
    lines = [
        "# written by broker/kafka.py: single-node KRaft broker+controller for tests",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{HOST}:{cport}",
        "controller.listener.names=CONTROLLER",
    ]
    if scram:
        lines += [
            f"listeners=SASL_PLAINTEXT://{HOST}:{port},INTERNAL://{HOST}:{iport},CONTROLLER://{HOST}:{cport}",
            f"advertised.listeners=SASL_PLAINTEXT://{HOST}:{port},INTERNAL://{HOST}:{iport}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "inter.broker.listener.name=INTERNAL",
            f"sasl.enabled.mechanisms={SCRAM_MECHANISM},PLAIN",
            f"listener.name.sasl_plaintext.sasl.enabled.mechanisms={SCRAM_MECHANISM},PLAIN",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            # The same user with PLAIN, which sends the password itself.
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{user}="{password}";',
        ]
    else:
        lines += [
            f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{port}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
        ]
    lines += [
        f"log.dirs={DATA}",
        f"num.partitions={partitions}",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "auto.create.topics.enable=true",
        "delete.topic.enable=true",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=4",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "num.network.threads=2",
        "num.io.threads=4",
        "num.recovery.threads.per.data.dir=1",
        "log.retention.hours=168",
        "log.segment.bytes=67108864",
        "# shut down quickly on SIGTERM: there is no other broker to hand over to",
        "controlled.shutdown.enable=true",
    ]
    return "\n".join(lines) + "\n"


LOG4J_PROPERTIES = """\
# written by broker/kafka.py: everything to stdout, which goes to broker/.run/broker.log
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
"""


def format_storage(state: dict[str, Any], scram: bool, user: str, password: str) -> None:
    if (DATA / "meta.properties").is_file():
        return
    if DATA.exists():
        shutil.rmtree(DATA)  # a half-formatted directory from an interrupted run
    cmd = java_cmd(
        STORAGE_TOOL,
        "format",
        "--cluster-id",
        state["cluster_id"],
        "--config",
        str(PROPS),
        "--ignore-formatted",
    )
    if scram:
        cmd += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not (DATA / "meta.properties").is_file():
        raise BrokerError(
            f"formatting the storage failed ({proc.returncode}):\n{proc.stdout[-4000:]}"
        )


# --------------------------------------------------------------------------
# readiness: a raw ApiVersions (v0) request, which Kafka answers before SASL


def api_versions_ok(port: int, timeout: float = 2.0) -> bool:
    client_id = b"foreshock-broker-probe"
    header = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(header)) + header)
            size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
            body = _recv_exactly(sock, size)
    except (OSError, struct.error, ConnectionError):
        return False
    if len(body) < 6:
        return False
    correlation_id, error_code = struct.unpack(">ih", body[:6])
    return bool(correlation_id == 7 and error_code == 0)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("closed")
        chunks += chunk
    return bytes(chunks)


def log_tail(lines: int = 40) -> str:
    try:
        text = LOG.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no broker log)"
    return "\n".join(text[-lines:])


def log_says_started(offset: int) -> bool:
    try:
        with open(LOG, "rb") as handle:
            handle.seek(offset)
            return READY_LINE.encode() in handle.read()
    except FileNotFoundError:
        return False


# --------------------------------------------------------------------------
# commands


def start(args: argparse.Namespace) -> str:
    pid = running_pid()
    state = read_state()
    if pid is not None:
        wanted = "scram" if args.scram else "plain"
        if state.get("mode", "plain") != wanted:
            raise BrokerError(
                f"a {state.get('mode', 'plain')} broker is running (pid {pid}); "
                f"stop it before starting it {wanted}"
            )
        if api_versions_ok(state["port"]):
            address = f"{HOST}:{state['port']}"
            BOOTSTRAP.write_text(address + "\n")
            info(f"already running (pid {pid})")
            return address
        info(f"pid {pid} does not answer: restarting it")
        stop_process(pid, args.stop_timeout)
    PID.unlink(missing_ok=True)
    BOOTSTRAP.unlink(missing_ok=True)

    started = time.monotonic()
    ensure_jars()
    state = plan(args.scram)
    for key in ("port", "controller_port", "internal_port"):
        if not port_is_free(state[key]):
            raise BrokerError(
                f"port {state[key]} ({key}) recorded in broker/.run/state.json is taken "
                "by another process; free it or run `python broker/kafka.py stop --wipe` "
                "to pick new ports (and lose the data)"
            )
    # The properties hold the password with --scram: the owner's alone.
    write_private(
        PROPS, server_properties(state, args.scram, args.partitions, args.user, args.password)
    )
    LOG4J.write_text(LOG4J_PROPERTIES)
    if args.scram:
        credentials = {
            "mechanism": SCRAM_MECHANISM,
            "username": args.user,
            "password": args.password,
        }
        write_private(SASL, json.dumps(credentials, indent=2) + "\n")
    else:
        SASL.unlink(missing_ok=True)
    format_storage(state, args.scram, args.user, args.password)

    if LOG.exists():
        LOG.replace(LOG.with_suffix(".log.1"))
    cmd = java_cmd(MAIN_CLASS, str(PROPS), heap=args.heap)
    with open(LOG, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=RUN,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C on make does not hit it
            close_fds=True,
        )
    PID.write_text(f"{proc.pid}\n")

    deadline = time.monotonic() + args.timeout  # from launch: a slow jar fetch does not count
    while True:
        code = proc.poll()
        if code is not None:
            PID.unlink(missing_ok=True)
            raise BrokerError(
                f"the broker exited with code {code} while starting; "
                f"last lines of {LOG}:\n{log_tail()}"
            )
        if log_says_started(0) and api_versions_ok(state["port"]):
            break
        if time.monotonic() > deadline:
            stop_process(proc.pid, args.stop_timeout)
            PID.unlink(missing_ok=True)
            raise BrokerError(
                f"the broker did not answer on {HOST}:{state['port']} within {args.timeout:.0f} s; "
                f"last lines of {LOG}:\n{log_tail()}"
            )
        time.sleep(0.2)
    address = f"{HOST}:{state['port']}"
    BOOTSTRAP.write_text(address + "\n")
    protocol = "SASL_PLAINTEXT/SCRAM-SHA-512" if args.scram else "PLAINTEXT"
    info(f"started (pid {proc.pid}, {protocol}) in {time.monotonic() - started:.1f} s; log: {LOG}")
    return address


def stop_process(pid: int, timeout: float) -> None:
    def signal_group(sig: int) -> bool:
        try:
            os.killpg(pid, sig)  # start_new_session made pid its group leader
        except ProcessLookupError:
            return False
        except PermissionError:
            os.kill(pid, sig)
        return True

    if not signal_group(signal.SIGTERM):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    info(f"pid {pid} still alive after {timeout:.0f} s: SIGKILL")
    signal_group(signal.SIGKILL)
    for _ in range(50):
        if not _alive(pid):
            return
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    # reap it if it is our child (restart), then ask the kernel
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is as good as dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop(args: argparse.Namespace) -> None:
    pid = running_pid()
    if pid is not None:
        started = time.monotonic()
        stop_process(pid, args.stop_timeout)
        info(f"stopped pid {pid} in {time.monotonic() - started:.1f} s")
    else:
        info("not running")
    PID.unlink(missing_ok=True)
    BOOTSTRAP.unlink(missing_ok=True)
    if args.wipe and RUN.exists():
        for entry in RUN.iterdir():
            if entry != LOCK:  # the lock we hold stays, so waiters share one lock file
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        info(f"wiped {RUN} (data, ports, log)")


def status(_: argparse.Namespace) -> int:
    pid = running_pid()
    state = read_state()
    if pid is None:
        print("stopped")
        return 3
    address = f"{HOST}:{state.get('port')}"
    answering = bool(state.get("port")) and api_versions_ok(state["port"])
    word = "running" if answering else "not answering"
    print(f"{word} {address} pid {pid} ({state.get('mode', 'plain')})")
    return 0 if answering else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="broker/kafka.py", description=(__doc__ or "").split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser(
        "start", help="start the broker (or print the address of the running one)"
    )
    p_restart = sub.add_parser(
        "restart", help="stop, then start on the same port with the same data"
    )
    for p in (p_start, p_restart):
        p.add_argument(
            "--scram", action="store_true", help="SASL_PLAINTEXT + SCRAM-SHA-512 client listener"
        )
        # The names Foreshock's own settings read, so that one environment
        # serves the broker and the clients that log in to it.
        p.add_argument(
            "--user",
            default=os.environ.get("FORESHOCK_KAFKA_SASL_USERNAME", DEFAULT_USER),
            help="the SCRAM user (env FORESHOCK_KAFKA_SASL_USERNAME)",
        )
        p.add_argument(
            "--password",
            default=os.environ.get("FORESHOCK_KAFKA_SASL_PASSWORD", DEFAULT_PASSWORD),
            help="the SCRAM user's password (env FORESHOCK_KAFKA_SASL_PASSWORD)",
        )
        p.add_argument(
            "--partitions",
            type=int,
            default=1,
            help="num.partitions of auto-created topics (Faust does not create its source topics)",
        )
        p.add_argument(
            "--timeout", type=float, default=120.0, help="seconds to wait for the broker"
        )
        p.add_argument(
            "--heap", default=os.environ.get("FORESHOCK_KAFKA_HEAP", "512m"), help="JVM -Xmx"
        )
    p_stop = sub.add_parser("stop", help="stop the broker, keeping its port and data")
    p_stop.add_argument(
        "--wipe", action="store_true", help="also delete broker/.run/ (data, port, log)"
    )
    sub.add_parser("clean", help="stop --wipe")
    sub.add_parser("status", help="exit 0 if running and answering")
    for p in (p_start, p_restart, p_stop):
        p.add_argument("--stop-timeout", type=float, default=30.0, help="seconds before SIGKILL")
    args = parser.parse_args(argv)
    args.stop_timeout = getattr(args, "stop_timeout", 30.0)

    try:
        with locked():
            if args.command == "start":
                print(start(args), flush=True)
            elif args.command == "restart":
                stop(argparse.Namespace(wipe=False, stop_timeout=args.stop_timeout))
                print(start(args), flush=True)
            elif args.command == "stop":
                stop(args)
            elif args.command == "clean":
                stop(argparse.Namespace(wipe=True, stop_timeout=args.stop_timeout))
            else:
                return status(args)
    except BrokerError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
