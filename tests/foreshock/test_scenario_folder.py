"""FORESHOCK_SCENARIOS adds a folder to the shipped library: a broken file
there is told and skipped, never breaking the others; a file can be given by
its path."""

from __future__ import annotations

import os

import orjson
import pytest
from typer.testing import CliRunner

from foreshock.cli import app
from producers.scenario import SCENARIO_DIR

TINY = """
name = "tiny"
start = "2022-10-04T10:00:00Z"
end = "2022-10-04T10:03:00Z"
blips_per_hour = 0
"""


@pytest.fixture
def cli(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("FORESHOCK_")]:
        monkeypatch.delenv(name)
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "typo.toml").write_text(TINY.replace('"tiny"', '"typo"') + "[[effect]]\n")
    monkeypatch.setenv("FORESHOCK_SCENARIOS", str(tmp_path))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_scenarios_lists_the_good_and_tells_the_broken(cli, tmp_path):
    result = cli("scenarios")
    assert result.exit_code == 0, result.output
    assert "tiny" in result.stdout and "reference-2022-10-04" in result.stdout
    assert "typo" not in result.stdout
    [line] = result.stderr.strip().splitlines()
    assert (
        line == f"skipped: {tmp_path}/typo.toml: [[effect]] is unknown; did you mean [[effects]]?"
    )


def test_replaying_a_broken_file_says_why_it_is_broken(cli, tmp_path):
    result = cli("replay", "typo")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path}/typo.toml: [[effect]] is unknown; did you mean [[effects]]?"
    )


def test_a_name_the_library_has_already_is_refused_naming_both_files(cli, tmp_path):
    (tmp_path / "mine.toml").write_text(TINY.replace('"tiny"', '"reference-2022-10-04"'))
    result = cli("replay", "reference-2022-10-04")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert f"{tmp_path}/mine.toml" in line and str(SCENARIO_DIR / "reference-2022-10-04") in line


def test_replay_takes_a_file(cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "other.toml").write_text(TINY.replace('"tiny"', '"other"'))
    result = cli("replay", str(elsewhere / "other.toml"), "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["scenario"] == "other"
    result = cli("replay", str(elsewhere / "none.toml"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {elsewhere}/none.toml: no such file; give a TOML file"


def test_bench_takes_files_too(cli, tmp_path):
    from bench import scenarios as bench

    bench._world.cache_clear()  # the world of this test's settings
    try:
        chosen = bench.choose([str(tmp_path / "tiny.toml"), "baseline-24h"])
        assert list(chosen) == ["tiny", "baseline-24h"]
        with pytest.raises(ValueError, match="did you mean"):
            bench.choose(["typo"])
        with pytest.raises(KeyError, match="unknown scenarios: nope"):
            bench.choose(["nope", "tiny"])
    finally:
        bench._world.cache_clear()
