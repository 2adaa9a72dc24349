"""Every user error ends in one line on stderr and exit code 2, naming what to
fix (the option, the setting, the file), never in a traceback.

Each case runs the real app on a bad option, file or setting; none needs a
broker (the bootstrap points at a closed port, in case a check is missed).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foreshock.cli import app

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
    "unknown scenario": (("replay", "nope"), {}, "nope"),
    "nab: missing data folder": (nab("no", "nab/none.json"), {}, "{tmp}/no: not a folder"),
    "nab: empty corpus": (nab("nab", "nab/none.json"), {}, "{tmp}/nab/none.json: names no"),
    "nab: labels not JSON": (nab("nab", "bad.json"), {}, "{tmp}/bad.json: not JSON"),
    "nab: empty data file": (nab("nab", "nab/empty.json"), {}, "{tmp}/nab/a/empty.csv"),
    "nab: windows not timestamps": (nab("nab", "nab/untidy.json"), {}, "a/g.csv: windows"),
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
        "bad.json": "name = [",
        "nab/a/g.csv": SERIES,
        "nab/a/empty.csv": "",
        "nab/none.json": "{}",
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
