"""The command line, on a small scenario written the way users write theirs."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from typer.testing import CliRunner

from foreshock.cli import app

SCENARIO = """
name = "music-errors"
description = "music-svc starts failing half of its requests for eight minutes"
start = "2022-10-04T10:00:00Z"
end = "2022-10-04T10:40:00Z"

[truth]
fault_start = "10:20"
impact_start = "+0s"
root_cause = "music-svc"
sev = 1
affected = ["music-svc", "api-gateway"]
recovery = "10:28"

[[effects]]
target = "music-svc*"
param = "error_rate"
keyframes = [["10:20", 0.005], ["10:21", 0.5], ["10:28", 0.5], ["10:28:30", 0.005]]

[[effects]]
target = "api-gateway"
param = "error_rate"
keyframes = [["10:20:30", 0.01], ["10:21:30", 0.3], ["10:28", 0.3], ["10:28:30", 0.01]]
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    (tmp_path / "music-errors.toml").write_text(SCENARIO)
    monkeypatch.setenv("FORESHOCK_SCENARIOS", str(tmp_path))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_scenarios_lists_a_users_scenario(cli):
    result = cli("scenarios")
    assert result.exit_code == 0, result.output
    assert "music-errors" in result.output and "music-svc" in result.output


def test_replay_json_reports_what_other_tools_read(cli):
    result = cli("replay", "music-errors", "--seed", "2", "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert report["scenario"] == "music-errors" and report["seed"] == 2
    [incident] = report["incidents"]
    assert incident["root_cause"] == "music-svc"
    assert incident["sev"] == report["truth"]["sev"] == 1
    assert incident["resolved_at"] > report["truth"]["recovery"]
    assert 0 < report["mttd"]["from_impact_s"] <= 120
    assert report["samples"] > 0 and report["series"] >= 500 and report["wall_s"] > 0


def test_replay_prints_a_timeline_and_the_mttd(cli, tmp_path):
    out = tmp_path / "incidents.jsonl"
    result = cli("replay", "music-errors", "--out", str(out))
    assert result.exit_code == 0, result.output
    for words in ("anomaly", "opened", "resolved", "MTTD from fault start", "music-svc"):
        assert words in result.output
    kinds = [orjson.loads(line)["kind"] for line in out.read_bytes().splitlines()]
    assert kinds[0] == "opened" and kinds[-1] == "resolved"


def test_the_timeline_says_when_a_service_goes_silent_and_comes_back(cli, tmp_path):
    silent = SCENARIO.replace('name = "music-errors"', 'name = "music-silent"')
    silent += '\n[[gaps]]\ntarget = "playlist-svc*"\nstart = "10:10"\nend = "10:15"\n'
    (tmp_path / "music-silent.toml").write_text(silent)
    result = cli("replay", "music-silent")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    [gap] = [line for line in lines if "gap " in line and "silent since 10:10:00" in line]
    assert "playlist-svc" in gap and "health unknown" in gap
    [back] = [line for line in lines if "gap ended" in line]
    assert "playlist-svc: reports again" in back


def test_unknown_scenario_is_a_clear_error(cli):
    result = cli("replay", "no-such-thing")
    assert result.exit_code != 0
    assert "music-errors" in result.output


def test_nab_is_a_benchmark_among_the_others(cli):
    assert cli("nab", "--help").exit_code == 2  # no longer a top-level command
    result = cli("bench", "nab", "--help")
    assert result.exit_code == 0, result.output
    assert "NAB" in result.output


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ("bench", "--scenarios", "nope", "--seeds", "1"),
            "error: unknown scenarios: nope",
        ),
        (
            ("bench", "nab", "--data", "/x", "--labels", "/y.json", "--compare", "surprise,nope"),
            "error: no detector nope; registered: river-gaussian, river-holt-winters, "
            "river-hst, river-sad, river-snarimax, surprise",
        ),
        (
            ("bench", "nab", "--data", "/no/such/folder", "--labels", "/no/such/file.json"),
            "error: cannot read the NAB corpus: /no/such/file.json: no such file; "
            "give NAB's labels (a JSON file)",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(cli, args, line):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == line
    assert "Traceback" not in result.output


def test_a_setting_that_does_not_parse_is_named(cli, monkeypatch):
    monkeypatch.setenv("FORESHOCK_PARTITIONS", "many")
    result = cli("scenarios")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: FORESHOCK_PARTITIONS: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_detector_chosen_in_the_settings_runs_the_replay(cli, monkeypatch):
    monkeypatch.setenv("FORESHOCK_DETECTORS", '{"pods": "river-sad"}')
    result = cli("replay", "music-errors", "--seed", "2", "--json")
    assert result.exit_code == 0, result.output
    [incident] = orjson.loads(result.stdout)["incidents"]
    assert incident["root_cause"] == "music-svc"
    monkeypatch.setenv("FORESHOCK_DETECTORS", '{"pods": "river-typo"}')
    result = cli("replay", "music-errors", "--seed", "2", "--json")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: FORESHOCK_DETECTORS: no detector river-typo")


def test_the_command_line_loads_no_detector_library_before_it_detects():
    """``foreshock --help`` (or a typo) answers without loading River's
    models or scipy (a second of CPU): they are loaded when a model is made.
    (River's base classes are light, and the detector contract.)"""
    heavy = "{'river.anomaly', 'river.time_series', 'river.proba', 'scipy'}"
    probe = f"import sys, foreshock.cli; print(sorted({heavy} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
