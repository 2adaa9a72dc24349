"""``foreshock bench memory``: what the models hold per series.

A world of ``series`` series (pods, each sending its five series) is fed
window by window through one detection stage, as a worker's partition would
be, until every model is past its warm-up. Two figures per series:

- **snapshot**: the bytes of the stage's snapshot, what a worker checkpoints
  and a restarted one reads back;
- **resident memory**: the growth of this process's RSS from before the
  stage was built to after it was fed, garbage collected both times. It
  includes everything the stage keeps: detectors, forecasts, creep watches,
  the open windows' sums, and the indexes over them.

And how a worker stores the snapshot (``streams/checkpoint.py``): the records
it is cut into and the largest, the seconds from state to records and from
records back to a stage that detects, and what a snapshot after one more
window, in which a hundredth of the pods reported, writes anew.

The same is measured for a world a tenth the size in the same run, so that
a fixed cost (the interpreter, the libraries) is not mistaken for a cost per
series: the growth between the two sizes is the marginal cost. Each size runs
in a fresh process, so that memory one freed is not counted in the other.
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psutil

from models.config import PipelineConfig
from models.detect_stage import DetectStage
from models.schema import WIRE_METRICS, Telemetry
from models.topology import Topology
from streams.checkpoint import pack, read_snapshot, snapshot_records, unpack

START = 1_700_000_000.0  # event time of the first window
_DRAWN = {  # pods' series: typical level and noise, in their units
    "request_rate": (1000.0, 20.0),
    "error_rate": (0.005, 0.001),
    "p99_latency_ms": (100.0, 8.0),
    "restarts": (0.0, 0.0),
    "ready_ratio": (1.0, 0.0),
}
assert set(_DRAWN) <= set(WIRE_METRICS["pods"])
PER_POD = len(_DRAWN)  # the series a pod without a connection pool sends


@dataclass(frozen=True)
class Footprint:
    series: int
    windows: int  # fed to every series
    snapshot_bytes: int
    rss_growth_bytes: int
    wall_s: float
    records: int  # the snapshot as stored: chunks and manifest
    largest_record: int
    write_s: float  # state to records
    restore_s: float  # records to a stage that detects
    rewritten_records: int  # after a window a hundredth of the pods reported in
    rewritten_bytes: int

    @property
    def snapshot_per_series(self) -> float:
        return self.snapshot_bytes / self.series

    @property
    def rss_per_series(self) -> float:
        return self.rss_growth_bytes / self.series


def world(pods: int) -> Topology:
    """One service of ``pods`` pods, nothing else."""
    width = len(str(pods))
    entities = f"svc/pod-{{{'1'.zfill(width)}..{pods}}}"
    return Topology.from_dict({"nodes": {"svc": {"family": "pods", "entities": [entities]}}})


def telemetry(
    topology: Topology, windows: range, seed: int = 1, window_s: float = 10.0
) -> Iterator[list[Telemetry]]:
    """A pods world's telemetry, window by window: one point per pod and
    series in each, cut one second into the window.

    >>> [[m.entity for m in batch] for batch in telemetry(world(2), range(2))]
    [['svc/pod-1', 'svc/pod-2'], ['svc/pod-1', 'svc/pod-2']]
    """
    names = sorted(topology.family_of)
    rng = np.random.default_rng(seed)
    for w in windows:
        at = START + w * window_s
        drawn = {
            m: (mu + sd * rng.standard_normal(len(names))).clip(0).tolist()
            for m, (mu, sd) in _DRAWN.items()
        }
        yield [
            Telemetry("pods", entity, at + 1.0, [at], {m: [v[i]] for m, v in drawn.items()})
            for i, entity in enumerate(names)
        ]


def footprint(series: int, windows: int | None = None, seed: int = 1) -> Footprint:
    """Feed ``series`` series (rounded up to whole pods) for ``windows``
    windows (default: the warm-up and as many again) and measure."""
    pods = -(-series // PER_POD)
    topology = world(pods)
    config = PipelineConfig()
    windows = windows or 2 * config.warm_up_windows
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    began = time.perf_counter()
    stage = DetectStage(topology, config)
    # The last window's data closes the one before.
    for batch in telemetry(topology, range(windows + 1), seed, config.window_s):
        for message in batch:
            outcome = stage.process(message)
            if not isinstance(outcome, list):
                raise RuntimeError(f"the world's own telemetry was refused: {outcome}")
    wall = time.perf_counter() - began
    gc.collect()
    grown = process.memory_info().rss - before
    return Footprint(
        series=pods * PER_POD,
        windows=windows,
        rss_growth_bytes=grown,
        wall_s=round(wall, 2),
        **_stored(stage, topology, config, windows + 1, seed),
    )


def _stored(
    stage: DetectStage, topology: Topology, config: PipelineConfig, window: int, seed: int
) -> dict[str, Any]:
    """The snapshot's bytes and how it is stored (see ``Footprint``), then
    what the next snapshot writes anew once a window that only a hundredth
    of the pods reported in is closed."""
    source = "pods:0"

    def hundredth(w: int) -> None:
        for message in next(telemetry(topology, range(w, w + 1), seed, config.window_s))[::100]:
            stage.process(message)

    # The windows every pod reported in close first (their lateness passed).
    for w in range(window, window + 2):
        hundredth(w)
    began = time.perf_counter()
    blob = pack(0, stage)
    chunks, manifest = snapshot_records(source, blob)
    write_s = time.perf_counter() - began
    stored = dict([*chunks, manifest])
    began = time.perf_counter()
    DetectStage.restore(unpack(read_snapshot(stored, source) or b"")[1], topology, config)
    restore_s = time.perf_counter() - began
    hundredth(window + 2)
    again, manifest = snapshot_records(source, pack(0, stage))
    new = [chunk for key, chunk in again if key not in stored] + [manifest[1]]
    records = [chunk for _, chunk in chunks] + [stored[source]]
    return {
        "snapshot_bytes": len(blob),
        "records": len(records),
        "largest_record": max(map(len, records)),
        "write_s": round(write_s, 2),
        "restore_s": round(restore_s, 2),
        "rewritten_records": len(new),
        "rewritten_bytes": sum(map(len, new)),
    }


def sizes(series: int) -> tuple[int, int]:
    """The two worlds measured: a tenth of ``series`` (at least one pod), and all of it."""
    return max(PER_POD, series // 10), series


def measure(series: int) -> dict[str, object]:
    """A tenth of the world, then the whole of it, each in a fresh process."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        small, large = (pool.submit(footprint, n).result() for n in sizes(series))
    marginal = (large.rss_growth_bytes - small.rss_growth_bytes) / (large.series - small.series)
    rows = [asdict(f) | _per_series(f) for f in (small, large)]
    return {"runs": rows, "rss_marginal_per_series": round(marginal)}


def _per_series(f: Footprint) -> dict[str, float]:
    return {
        "snapshot_per_series": round(f.snapshot_per_series),
        "rss_per_series": round(f.rss_per_series),
    }
