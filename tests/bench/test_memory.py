"""``foreshock bench memory``: state per series, measured on worlds that learnt."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import orjson
from typer.testing import CliRunner

from bench.memory import PER_POD, footprint, world
from foreshock.cli import app
from streams.checkpoint import CHUNK_BYTES


def test_the_world_has_the_pods_asked_for():
    topology = world(12)
    assert sorted(topology.family_of) == [f"svc/pod-{n:02}" for n in range(1, 13)]


def test_state_grows_with_the_series_and_every_series_is_in_the_snapshot():
    # Each in a fresh process, as the command measures: in this one, memory
    # other tests freed is used again and resident memory need not grow.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        small, large = (
            pool.submit(footprint, n, 40).result() for n in (200 * PER_POD, 400 * PER_POD)
        )
    assert (small.series, large.series) == (1000, 2000)
    # Past the warm-up every series holds its detector's state: twice the
    # series, about twice the bytes (the stage's own fields are few).
    assert 1.9 < large.snapshot_bytes / small.snapshot_bytes < 2.1
    assert 300 < large.snapshot_per_series < 5_000
    assert large.rss_growth_bytes > 0
    # Stored as records under the bound, and a snapshot after a window that
    # a hundredth of the pods reported in writes a small part of it again.
    assert large.records > 1 and large.largest_record <= CHUNK_BYTES
    assert 0 < large.rewritten_bytes < large.snapshot_bytes / 2


def test_the_command_prints_both_sizes_and_the_margin():
    result = CliRunner().invoke(app, ["bench", "memory", "--series", "200", "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert [run["series"] for run in report["runs"]] == [20, 200]
    assert all(run["snapshot_per_series"] > 0 for run in report["runs"])
    assert isinstance(report["rss_marginal_per_series"], int)
    assert all(run["records"] >= 1 and run["restore_s"] >= 0 for run in report["runs"])
