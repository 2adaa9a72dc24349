"""Every user error ends in one line on stderr and exit code 2, naming what to
fix (the option, the setting, the file), never in a traceback.

Each case runs the real app on a bad option, file or setting; none needs a
broker (the bootstrap points at a closed port, in case a check is missed).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foreshock.cli import app
from infra.settings import Settings

SCENARIO = """
name = "tiny"
start = "2022-10-04T10:00:00Z"
end = "2022-10-04T10:05:00Z"
"""
SERIES = "timestamp,value\n" + "".join(f"2020-01-01 00:{m:02d}:00,{m % 7}\n" for m in range(30))
REPLAY = ("replay", "tiny")


def nab(data: str, labels: str) -> tuple[str, ...]:
    """``bench nab`` on a data folder and a labels file of the test's folder."""
    return ("bench", "nab", "--data", f"{{tmp}}/{data}", "--labels", f"{{tmp}}/{labels}")


# (command line, environment, what the line must name); {tmp} is the test's folder.
CASES: dict[str, tuple[tuple[str, ...], dict[str, str], str]] = {
    "negative seed": ((*REPLAY, "--seed", "-1"), {}, "--seed"),
    "unknown speed": ((*REPLAY, "--speed", "fast"), {}, "--speed': 'fast' is not one of"),
    "unknown option": ((*REPLAY, "--sed", "1"), {}, "--sed"),
    "unknown command": (("replai",), {}, "replai"),
    "no seeds": (("bench", "--seeds", "0"), {}, "--seeds"),
    "soak rate of 0": (("bench", "soak", "--rate", "0"), {}, "--rate"),
    "memory beyond any machine": (
        ("bench", "memory", "--series", "10000000000000"),
        {},
        "--series",
    ),
    "unknown scenario": (("replay", "nope"), {}, "nope"),
    "out into a missing folder": ((*REPLAY, "--out", "{tmp}/no/x.jsonl"), {}, "{tmp}/no/x.jsonl"),
    "missing topology": (
        REPLAY,
        {"TOPOLOGY": "{tmp}/no.toml"},
        "FORESHOCK_TOPOLOGY: {tmp}/no.toml",
    ),
    "missing business": (
        REPLAY,
        {"BUSINESS": "{tmp}/no.toml"},
        "FORESHOCK_BUSINESS: {tmp}/no.toml",
    ),
    "topology not TOML": (REPLAY, {"TOPOLOGY": "{tmp}/bad.toml"}, "{tmp}/bad.toml: not valid TOML"),
    "topology a folder": (
        REPLAY,
        {"TOPOLOGY": "{tmp}"},
        "FORESHOCK_TOPOLOGY: {tmp}: not a regular",
    ),
    "topology another file": (REPLAY, {"TOPOLOGY": "{tmp}/other.toml"}, "missing key 'nodes'"),
    "calendar a device": (REPLAY, {"MAINTENANCE": os.devnull}, f"{os.devnull}: not a regular"),
    "calendar over 1 MiB": (REPLAY, {"MAINTENANCE": "{tmp}/big.toml"}, "{tmp}/big.toml: larger"),
    "calendar without one": (REPLAY, {"MAINTENANCE": "{tmp}/other.toml"}, "maintenance = []"),
    "unknown detector": (REPLAY, {"DETECTOR": "nope"}, "FORESHOCK_DETECTOR: no detector nope"),
    "detectors not JSON": (REPLAY, {"DETECTORS": "redis"}, "FORESHOCK_DETECTORS: not valid JSON"),
    "detectors: unknown metric": (
        REPLAY,
        {"DETECTORS": '{{"latency_p99": "surprise"}}'},  # braces doubled: a format string
        "FORESHOCK_DETECTORS: latency_p99: no such family or metric",
    ),
    "unknown log level": (REPLAY, {"LOG_LEVEL": "loud"}, "FORESHOCK_LOG_LEVEL"),
    "no partitions": (("worker",), {"PARTITIONS": "0"}, "FORESHOCK_PARTITIONS"),
    "negative partitions": (("produce", "tiny"), {"PARTITIONS": "-1"}, "FORESHOCK_PARTITIONS"),
    "seed beyond 64 bits": ((*REPLAY, "--seed", "18446744073709551616"), {}, "--seed"),
    "worker's detector": (("worker",), {"DETECTOR": "nope"}, "FORESHOCK_DETECTOR"),
    "missing scenario folder": (("scenarios",), {"SCENARIOS": "{tmp}/no"}, "{tmp}/no"),
    "scenario not TOML": (
        ("replay", "bad"),
        {"SCENARIOS": "{tmp}/untidy"},
        "{tmp}/untidy/bad.toml",
    ),
    "scenario lacks a key": (REPLAY, {"SCENARIOS": "{tmp}/keyless"}, "missing key 'start'"),
    "change: unknown kind": (("change", "lb", "reboot"), {}, "'reboot' is not one of 'deploy'"),
    "change: unknown component": (("change", "lbb", "config"), {}, "'lbb' is no component"),
    "change: --at not a time": (("change", "lb", "flag", "--at", "soon"), {}, "--at 'soon'"),
    "change: --at long ago": (("change", "lb", "flag", "--at", "1990-01-01"), {}, "--at 1990"),
    "change: no broker": (("change", "lb", "flag"), {}, "FORESHOCK_KAFKA_BOOTSTRAP"),
    "nab: missing data folder": (nab("no", "nab/none.json"), {}, "{tmp}/no: not a folder"),
    "nab: empty corpus": (nab("nab", "nab/none.json"), {}, "{tmp}/nab/none.json: names no"),
    "nab: labels not JSON": (nab("nab", "bad.json"), {}, "{tmp}/bad.json: not JSON"),
    "nab: labels a device": (
        ("bench", "nab", "--data", "{tmp}/nab", "--labels", "/dev/zero"),
        {},
        "/dev/zero: not a regular file",
    ),
    "nab: empty data file": (nab("nab", "nab/empty.json"), {}, "{tmp}/nab/a/empty.csv"),
    "nab: windows not timestamps": (nab("nab", "nab/untidy.json"), {}, "a/g.csv: windows"),
    "nab: out is a file": (
        (*nab("nab", "nab/g.json"), "--out", "{tmp}/bad.toml"),
        {},
        "--out {tmp}/bad.toml",
    ),
}


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of bad and good files, and an environment without other FORESHOCK_ settings."""
    for name in [n for n in os.environ if n.startswith("FORESHOCK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FORESHOCK_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("FORESHOCK_WEB_ENABLED", "false")
    files = {
        "scenarios/tiny.toml": SCENARIO,
        "untidy/bad.toml": "name = [",
        "keyless/tiny.toml": SCENARIO.replace('start = "2022-10-04T10:00:00Z"', ""),
        "bad.toml": "name = [",
        "bad.json": "name = [",
        "other.toml": '[project]\nname = "other"\n',
        "big.toml": "#" * (1 << 20) + "\n",
        "nab/a/g.csv": SERIES,
        "nab/a/empty.csv": "",
        "nab/none.json": "{}",
        "nab/g.json": '{"a/g.csv": []}',
        "nab/empty.json": '{"a/empty.csv": []}',
        "nab/untidy.json": '{"a/g.csv": [["x", "y"]]}',
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setenv("FORESHOCK_SCENARIOS", str(tmp_path / "scenarios"))
    return tmp_path


@pytest.mark.parametrize("args, env, names", CASES.values(), ids=CASES.keys())
def test_a_user_error_is_one_line_naming_what_to_fix(
    tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    names: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(f"FORESHOCK_{name}", value.format(tmp=tmp))
    result = CliRunner().invoke(app, [arg.format(tmp=tmp) for arg in args])
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and names.format(tmp=tmp) in line
    assert "Traceback" not in result.stdout + result.stderr
    assert "Value error" not in line  # pydantic's wording, not the user's


@pytest.mark.parametrize("text", ["maintenance = []\n", "", "# none announced\n"])
def test_a_calendar_without_maintenance_says_so(tmp_path: Path, text: str) -> None:
    calendar = tmp_path / "maintenance.toml"
    calendar.write_text(text)
    settings = Settings(maintenance=calendar)
    assert settings.load_maintenance(settings.load_topology()) == ()


def test_the_log_level_is_taken_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESHOCK_LOG_LEVEL", "debug")
    assert Settings().log_level == "DEBUG"
    result = CliRunner().invoke(app, ["scenarios"])
    assert result.exit_code == 0, result.output


def test_the_producer_never_logs_its_payloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESHOCK_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("FORESHOCK_KAFKA_BOOTSTRAP", "127.0.0.1:9")  # closed: it stops there
    monkeypatch.setattr(logging.getLogger(), "level", logging.DEBUG)  # as the CLI's run sets it
    monkeypatch.setattr(logging.getLogger("aiokafka"), "level", logging.NOTSET)
    result = CliRunner().invoke(app, ["produce", "reference-2022-10-04"])
    assert result.exit_code == 2, result.output
    # The Kafka client logs every request, payloads and all, at DEBUG.
    assert logging.getLogger("aiokafka").getEffectiveLevel() == logging.INFO
