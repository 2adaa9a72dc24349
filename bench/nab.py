"""The Numenta Anomaly Benchmark (NAB): corpus, scorer and runner.

NAB (github.com/numenta/NAB) asks a detector to read each series once, in
order, and to give every row an anomaly score in [0, 1] that uses only the
rows up to it. It then rewards the earliest detection inside each labelled
anomaly window and charges every detection outside one. This module
implements that scoring from its published rules (see the NAB corpus's
README); it reproduces NAB's own scorer:

- **Probation.** The first ``min(floor(0.15 * rows), 750)`` rows of a file
  are not scored.
- **Detections.** A row is a detection when its score is at or above the
  threshold, one number for the whole corpus, chosen per profile to maximise
  the corpus' total raw score over every distinct score value.
- **Windows.** Only the earliest detection in a window counts, and earns
  ``tp * S(p) / S(-1)`` with ``S(p) = 2 / (1 + exp(5 p)) - 1`` and
  ``p = -(right - i + 1) / width``. A window without detection costs ``-fn``.
- **False positives.** A detection outside every window costs ``fp * S(p)``
  where ``p`` is its distance past the previous window's right edge divided by
  that window's width minus one (``S = -1`` for ``p >= 3``), or ``-fp`` when no
  window precedes it.
- **Normalisation.** ``100 * (raw - null) / (perfect - null)``: the null
  detector never detects (every window a miss), the perfect one detects on
  the left edge of every window and nowhere else.

A window is mapped to the rows whose timestamps lie in ``[start, end]``
(NAB's labels are aligned with rows, so this equals NAB's exact match). A
window with no scorable row (inside the probation) always counts as a miss,
for the detector and the null alike; NAB's corpus has none.

Layout of result files, as in NAB: ``<dir>/<detector>/<folder>/<detector>_<file>.csv``
with the columns ``timestamp,value,anomaly_score,label``.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from river import anomaly

from infra.settings import read_file
from models.detectors import DETECTORS, Detector

FloatArray = npt.NDArray[np.float64]

# NAB's labels are some 20 KB and its largest series under 1 MB: anything
# far larger is not what was meant (/dev/zero would never end).
MAX_LABELS_BYTES = 16 << 20
MAX_SERIES_BYTES = 256 << 20
PROBATION_FRACTION = 0.15
PROBATION_MAX = 750  # 0.15 * 5000 rows, as in NAB


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Series:
    """One NAB data file with its anomaly windows.

    ``name`` is the path relative to the data folder, as in NAB's labels, for
    example ``"realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"``.
    ``timestamps`` are epoch seconds (the naive NAB timestamps read as UTC),
    ``windows`` are ``(start, end)`` epoch seconds, both ends included.
    """

    folder: str
    name: str
    timestamps: FloatArray  # NaN where a row's timestamp cannot be read
    values: FloatArray  # NaN where a row's value is blank or not a number
    windows: list[tuple[float, float]] = field(default_factory=list)
    warning: str = ""  # what is untidy about the file, if anything

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def file(self) -> str:
        """The file name without its folder, e.g. ``ec2_cpu_utilization_5f5533.csv``."""
        return self.name.rsplit("/", 1)[-1]

    @property
    def probation(self) -> int:
        """Number of leading rows that are not scored."""
        return probation_length(len(self))

    def window_rows(self) -> list[tuple[int, int]]:
        """Each window as ``(first, last)`` row indices, both included.

        A window runs from the first row stamped inside it to the last, in
        file order (a clock that goes back does not reorder rows). A window
        that covers no row is dropped.
        """
        rows = []
        for start, end in self.windows:
            inside = np.flatnonzero((self.timestamps >= start) & (self.timestamps <= end))
            if len(inside):
                rows.append((int(inside[0]), int(inside[-1])))
        return rows

    def labels(self) -> npt.NDArray[np.int8]:
        """1 for a row inside a window, else 0."""
        out = np.zeros(len(self), dtype=np.int8)
        for first, last in self.window_rows():
            out[first : last + 1] = 1
        return out


def probation_length(rows: int) -> int:
    """Rows at the start of a file that NAB does not score.

    >>> probation_length(4032), probation_length(100), probation_length(10_000)
    (604, 15, 750)
    """
    return min(math.floor(PROBATION_FRACTION * rows), PROBATION_MAX)


def parse_timestamps(texts: Sequence[str]) -> FloatArray:
    """NAB timestamps (``YYYY-MM-DD HH:MM:SS[.ffffff]``, UTC) to epoch seconds.

    >>> parse_timestamps(["1970-01-01 00:01:00", "1970-01-01 00:00:01.500000"]).tolist()
    [60.0, 1.5]
    """
    stamps = np.array(list(texts), dtype="datetime64[us]")
    return stamps.astype(np.int64).astype(np.float64) / 1e6


def format_timestamps(seconds: FloatArray) -> list[str]:
    """Epoch seconds back to NAB's ``YYYY-MM-DD HH:MM:SS``.

    >>> format_timestamps(np.array([60.0]))
    ['1970-01-01 00:01:00']
    """
    stamps = np.round(np.nan_to_num(seconds)).astype(np.int64).astype("datetime64[s]")
    texts = [s.replace("T", " ") for s in np.datetime_as_string(stamps, unit="s")]
    return [t if s == s else "" for t, s in zip(texts, seconds.tolist(), strict=True)]


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = read_file(path, MAX_SERIES_BYTES, "a NAB series (a CSV file)").decode().splitlines()
    if not lines:
        raise ValueError(f"{path}: empty, expected a header line")
    header = lines[0].strip().split(",")
    rows = [line.split(",") for line in lines[1:] if line.strip()]
    return header, rows


def _timestamp(text: str) -> float:
    try:
        return float(parse_timestamps([text.strip()])[0])
    except ValueError:
        return math.nan


def _value(fields: list[str]) -> float:
    try:
        v = float(fields[1])
    except (IndexError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def read_series(data_dir: Path | str, name: str, windows: Iterable[Sequence[str]] = ()) -> Series:
    """Read ``<data_dir>/<name>`` (``timestamp,value``) with its windows.

    Real files are untidy: rows stay in file order whatever their clock does
    (backwards, repeated), a blank or non-numeric value is read as NaN and
    an unreadable timestamp too, and what was found is said in ``warning``.
    """
    header, rows = _read_csv(Path(data_dir) / name)
    if header[:2] != ["timestamp", "value"]:
        raise ValueError(f"{name}: expected columns timestamp,value, got {header}")
    try:
        timestamps = parse_timestamps([r[0].strip() for r in rows])
    except ValueError:
        timestamps = np.array([_timestamp(r[0]) for r in rows], dtype=np.float64)
    values = np.array([_value(r) for r in rows], dtype=np.float64)
    try:
        limits = [(float(a), float(b)) for a, b in (parse_timestamps(list(w)) for w in windows)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: windows are [start, end] timestamps ({exc})") from exc
    folder = name.rsplit("/", 1)[0] if "/" in name else ""
    return Series(
        folder, name, timestamps, values, sorted(limits), _untidy(name, timestamps, values)
    )


def _untidy(name: str, timestamps: FloatArray, values: FloatArray) -> str:
    """One line on what is untidy about a file, or ``""``."""
    steps = np.diff(timestamps[~np.isnan(timestamps)])
    found = [
        f"{what} {count} time{'s' if count > 1 else ''}"
        for what, count in (
            ("the clock goes back", int((steps < 0).sum())),
            ("a timestamp repeats", int((steps == 0).sum())),
        )
        if count
    ]
    found += [
        f"{count} {what}"
        for what, count in (
            ("unreadable timestamps", int(np.isnan(timestamps).sum())),
            ("blank or non-numeric values (scored 0, not learnt)", int(np.isnan(values).sum())),
        )
        if count
    ]
    return f"{name}: {'; '.join(found)}; every row scored, in file order" if found else ""


def load_corpus(data_dir: Path | str, labels_file: Path | str) -> list[Series]:
    """Every series named in NAB's ``combined_windows.json``, sorted by name.

    ``ValueError`` (or ``OSError``) naming the file or folder that cannot be used.
    """
    raw = read_file(Path(labels_file), MAX_LABELS_BYTES, "NAB's labels (a JSON file)")
    try:
        labels: dict[str, list[list[str]]] = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{labels_file}: not JSON ({exc})") from exc
    if not Path(data_dir).is_dir():
        raise ValueError(f"{data_dir}: not a folder, expected NAB's data folder")
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"{labels_file}: names no series, expected {{series: windows}}")
    return [read_series(data_dir, name, labels[name]) for name in sorted(labels)]


# --------------------------------------------------------------------------- result files


def result_path(out_dir: Path | str, detector: str, name: str) -> Path:
    """``<out_dir>/<detector>/<folder>/<detector>_<file>``, NAB's results layout."""
    folder, _, file = name.rpartition("/")
    return Path(out_dir) / detector / folder / f"{detector}_{file}"


def read_results(
    results_dir: Path | str, detector: str, series: Sequence[Series]
) -> dict[str, FloatArray]:
    """The ``anomaly_score`` column of a detector's NAB result file per series.

    Scores are matched to rows by position, as NAB does; the row count must match.
    """
    scores = {}
    for s in series:
        path = result_path(results_dir, detector, s.name)
        header, rows = _read_csv(path)
        column = header.index("anomaly_score")
        values = np.array([float(r[column]) for r in rows], dtype=np.float64)
        if len(values) != len(s):
            raise ValueError(f"{path}: {len(values)} rows, the data file has {len(s)}")
        scores[s.name] = values
    return scores


def write_results(
    out_dir: Path | str,
    series: Sequence[Series],
    scores: Mapping[str, FloatArray],
    detector: str = "foreshock",
) -> list[Path]:
    """Write one NAB result file per series: ``timestamp,value,anomaly_score,label``."""
    paths = []
    for s in series:
        score = np.asarray(scores[s.name], dtype=np.float64)
        if len(score) != len(s):
            raise ValueError(f"{s.name}: {len(score)} scores for {len(s)} rows")
        path = result_path(out_dir, detector, s.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["timestamp,value,anomaly_score,label"]
        stamps = format_timestamps(s.timestamps)
        labels = s.labels()
        for t, v, a, lab in zip(
            stamps, s.values.tolist(), score.tolist(), labels.tolist(), strict=True
        ):
            lines.append(f"{t},{v!r},{a!r},{lab}")
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- scorer


@dataclass(frozen=True)
class Profile:
    """NAB application profile: the weights of a hit, a false alarm and a miss."""

    name: str
    tp: float
    fp: float
    fn: float


STANDARD = Profile("standard", 1.0, 0.11, 1.0)
LOW_FP = Profile("reward_low_FP_rate", 1.0, 0.22, 1.0)
LOW_FN = Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)
PROFILES: dict[str, Profile] = {p.name: p for p in (STANDARD, LOW_FP, LOW_FN)}


def scaled_sigmoid(p: FloatArray | float) -> FloatArray:
    """NAB's ``S(p) = 2 / (1 + exp(5 p)) - 1``, and -1 for ``p >= 3``.

    >>> [round(float(x), 5) for x in scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 3.0]))]
    [0.98661, 0.84828, 0.0, -0.98661, -1.0]
    """
    p = np.asarray(p, dtype=np.float64)
    return np.where(p >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(p, 3.0))) - 1.0)


MAX_TP = float(scaled_sigmoid(-1.0))


@dataclass(frozen=True)
class _Rows:
    """The scorable rows of one file, with what a detection there would be worth.

    ``window`` is the window index in the file, or -1 outside every window;
    ``tp_value`` is ``S(p) / S(-1)`` inside a window, ``fp_value`` is ``S(p)``
    outside (both unweighted; a profile multiplies them).
    """

    index: npt.NDArray[np.int64]
    window: npt.NDArray[np.int64]
    tp_value: FloatArray
    fp_value: FloatArray
    windows: int


def _rows(series: Series) -> _Rows:
    n = len(series)
    window = np.full(n, -1, dtype=np.int64)
    tp_value = np.zeros(n)
    # Outside windows: -1 until the first window has ended, then by distance.
    fp_value = np.full(n, -1.0)
    spans = series.window_rows()
    for k, (first, last) in enumerate(spans):
        width = last - first + 1
        idx = np.arange(first, last + 1)
        window[first : last + 1] = k
        tp_value[first : last + 1] = scaled_sigmoid(-(last - idx + 1) / width) / MAX_TP
        following = spans[k + 1][0] if k + 1 < len(spans) else n
        after = np.arange(last + 1, following)
        if width > 1:
            fp_value[last + 1 : following] = scaled_sigmoid((after - last) / (width - 1))
        # A one-row window gives a zero denominator; NAB would divide by zero. Treat as far.
    keep = np.arange(series.probation, n)
    return _Rows(keep, window[keep], tp_value[keep], fp_value[keep], len(spans))


@dataclass(frozen=True)
class ProfileResult:
    """A detector's NAB result for one profile.

    ``score`` is normalised (null 0, perfect 100); ``raw`` is the corpus' summed
    raw score at ``threshold``; ``per_file`` the raw score of each file.
    """

    score: float
    threshold: float
    raw: float
    null: float
    perfect: float
    per_file: dict[str, float]


def score_file(
    series: Series, scores: npt.ArrayLike, threshold: float, profile: Profile = STANDARD
) -> float:
    """Raw NAB score of one file when rows scoring ``>= threshold`` are detections."""
    score = _check_scores(series, scores)
    rows = _rows(series)
    hit = score[rows.index] >= threshold
    inside = rows.window >= 0
    total = profile.fp * float(rows.fp_value[hit & ~inside].sum())
    for k in range(rows.windows):
        detected = hit & (rows.window == k)
        if detected.any():
            total += profile.tp * float(rows.tp_value[detected].max())
        else:
            total -= profile.fn
    return total


def _check_scores(series: Series, scores: npt.ArrayLike) -> FloatArray:
    score = np.asarray(scores, dtype=np.float64)
    if score.shape != (len(series),):
        raise ValueError(f"{series.name}: {score.shape} scores for {len(series)} rows")
    if np.isnan(score).any():
        raise ValueError(f"{series.name}: NaN anomaly score")
    return score


@dataclass(frozen=True)
class Sweep:
    """Corpus raw score for every candidate threshold, thresholds descending.

    ``thresholds[0]`` is ``inf`` (no detection); the others are the distinct
    scores of the scorable rows.
    """

    thresholds: FloatArray
    raw: FloatArray

    def best(self) -> tuple[float, float]:
        """``(threshold, raw)`` with the highest raw score; the highest threshold on a tie."""
        k = int(np.argmax(self.raw))
        return float(self.thresholds[k]), float(self.raw[k])


def sweep(
    series: Sequence[Series], scores: Mapping[str, npt.ArrayLike], profile: Profile = STANDARD
) -> Sweep:
    """Raw corpus score at every distinct score value used as the threshold.

    Exact and vectorised: each scorable row gets the change in raw score that
    its becoming a detection causes once every row scoring higher already is
    one (an FP's cost; in a window, the gain of the running best hit over the
    previous one, the first also cancelling the miss). The raw score at a
    threshold is then a cumulative sum over the rows sorted by score,
    read at the last row of each distinct score.
    """
    all_scores: list[FloatArray] = []
    all_deltas: list[FloatArray] = []
    windows = 0
    for s in series:
        score = _check_scores(s, scores[s.name])
        rows = _rows(s)
        windows += rows.windows
        row_score = score[rows.index]
        delta = profile.fp * rows.fp_value
        inside = rows.window >= 0
        delta[inside] = 0.0
        for k in range(rows.windows):
            members = np.flatnonzero(rows.window == k)
            if len(members) == 0:
                continue
            ordered = members[np.argsort(-row_score[members], kind="stable")]
            best = np.maximum.accumulate(profile.tp * rows.tp_value[ordered])
            gain = np.diff(best, prepend=-profile.fn)
            delta[ordered] = gain
        all_scores.append(row_score)
        all_deltas.append(delta)
    score_all = np.concatenate(all_scores) if all_scores else np.zeros(0)
    delta_all = np.concatenate(all_deltas) if all_deltas else np.zeros(0)
    order = np.argsort(-score_all, kind="stable")
    sorted_scores = score_all[order]
    running = -profile.fn * windows + np.cumsum(delta_all[order])
    # The last row of each run of equal scores closes that threshold.
    last = np.flatnonzero(np.diff(sorted_scores, append=-np.inf) != 0)
    thresholds = np.concatenate(([np.inf], sorted_scores[last]))
    raw = np.concatenate(([-profile.fn * windows], running[last]))
    return Sweep(thresholds, raw)


def score_corpus(
    series: Sequence[Series],
    scores: Mapping[str, npt.ArrayLike],
    profiles: Iterable[Profile] = PROFILES.values(),
) -> dict[str, ProfileResult]:
    """NAB score per profile, with the threshold optimised over the whole corpus."""
    results = {}
    windows = sum(len(s.window_rows()) for s in series)
    for profile in profiles:
        threshold, _ = sweep(series, scores, profile).best()
        per_file = {s.name: score_file(s, scores[s.name], threshold, profile) for s in series}
        raw = sum(per_file.values())
        null = -profile.fn * windows
        perfect = profile.tp * windows
        normalised = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
        results[profile.name] = ProfileResult(normalised, threshold, raw, null, perfect, per_file)
    return results


# --------------------------------------------------------------------------- runner


class OnlineDetector(Protocol):
    """Scores a row from what it has seen before, then learns it."""

    def update(self, timestamp: float, value: float) -> float:
        """Anomaly score in [0, 1] of this row; then take the row into the model."""
        ...


@dataclass(frozen=True)
class Run:
    """Scores per series, and the time spent in the detectors."""

    scores: dict[str, FloatArray]
    points: int
    seconds: float

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else math.inf


def run(series: Sequence[Series], detector_factory: Callable[[], OnlineDetector]) -> Run:
    """Feed each series, row by row, into a fresh detector; collect a score per row.

    Only the construction and the ``update`` calls are timed, not the reading
    of the data or the checks.
    """
    scores: dict[str, FloatArray] = {}
    seconds = 0.0
    points = 0
    for s in series:
        stamps = s.timestamps.tolist()
        values = s.values.tolist()
        start = time.perf_counter()
        detector = detector_factory()
        update = detector.update
        out = [update(t, v) for t, v in zip(stamps, values, strict=True)]
        seconds += time.perf_counter() - start
        score = np.array(out, dtype=np.float64)
        if np.isnan(score).any() or (score < 0).any() or (score > 1).any():
            raise ValueError(f"{s.name}: detector scores must lie in [0, 1]")
        scores[s.name] = score
        points += len(s)
    return Run(scores, points, seconds)


# --------------------------------------------------------------------------- Foreshock's detector


class DetectorScorer:
    """Any registered detector (``models.detectors.DETECTORS``) behind NAB's
    interface: the surprise of each row becomes a score in [0, 1),
    ``s / (s + alert)``, damped by ``damp`` for ``refractory_days`` (as many
    rows as that is) after a surprise of ``quiet_at``, so that one event
    gives one alert.

    The detector is built from its ``params_for_rows`` for the series' time
    step, read from the first two rows. A blank value scores 0 and is not
    learnt.

    >>> d = DetectorScorer("surprise")
    >>> scores = [d.update(300.0 * i, 10.0 + (i % 3) * 0.1) for i in range(80)]
    >>> max(scores) < 0.5, d.update(300.0 * 80, 30.0) > 0.5
    (True, True)
    """

    def __init__(
        self,
        name: str,
        *,
        alert: float = 10.0,
        quiet_at: float = 9.0,
        refractory_days: float = 1.4,
        damp: float = 0.1,
    ) -> None:
        self.kind = DETECTORS[name]
        self.alert = alert
        self.quiet_at = quiet_at
        self.refractory_days = refractory_days
        self.refractory = 400  # rows, until the time step is known
        self.damp = damp
        self.detector: Detector | None = None
        self.step = 0.0  # seconds between the first two rows, once read
        self._first: tuple[float, float] | None = None
        self._quiet = 0

    def update(self, timestamp: float, value: float) -> float:
        s = self.surprise(timestamp, value)
        return 0.0 if s is None else self.calibrate(s)

    def surprise(self, timestamp: float, value: float) -> float | None:
        """The detector's surprise at this row, then learnt; None for a blank
        row and for the first (which only tells the time step)."""
        if value != value:  # blank or not a number
            return None
        if self.detector is None:
            if self._first is None:
                self._first = (timestamp, value)
                return None
            self.step = abs(timestamp - self._first[0])
            self.detector = self.kind(**self.kind.params_for_rows(self.step))
            self.pace(self.step)
            self.detector.learn_one(None, self._first[1])
        s = float(self.detector.score_one(None, value))
        self.detector.learn_one(None, value)
        return s

    def pace(self, step: float) -> None:
        """Quiet for a duration, whatever the sampling rate."""
        if step > 0:
            self.refractory = max(20, round(self.refractory_days * 86400.0 / step))

    def calibrate(self, s: float) -> float:
        """A surprise as a score in [0, 1), damped while quiet after an alert."""
        score = s / (s + self.alert)
        if self._quiet > 0:
            self._quiet -= 1
            return score * self.damp
        if s >= self.quiet_at:
            self._quiet = self.refractory
        return score


# --------------------------------------------------------------------------- cross-validation

# The scorer's settings leave-one-folder-out chooses among: the alert level,
# the surprise that starts a quiet spell, its length in days, and its damping.
GRID: dict[str, tuple[float, ...]] = {
    "alert": (5.0, 10.0, 20.0),
    "quiet_at": (6.0, 9.0, 14.0),
    "refractory_days": (0.7, 1.4, 2.8),
    "damp": (0.03, 0.1, 0.3),
}

Surprises = dict[str, tuple[float, list[float | None]]]  # series -> (time step, per row)


def surprises(series: Sequence[Series], detector: str = "surprise") -> Surprises:
    """A detector's surprise at every row of each series: what every setting
    of the scorer calibrates, so that the detector reads each series once."""
    found: Surprises = {}
    for s in series:
        scorer = DetectorScorer(detector)
        stamps, values = s.timestamps.tolist(), s.values.tolist()
        rows = [scorer.surprise(t, v) for t, v in zip(stamps, values, strict=True)]
        found[s.name] = (scorer.step, rows)
    return found


def calibrated(
    found: tuple[float, list[float | None]], detector: str, settings: Mapping[str, float]
) -> FloatArray:
    """The scores ``DetectorScorer(detector, **settings)`` gives those surprises."""
    step, rows = found
    scorer = DetectorScorer(detector, **settings)
    scorer.pace(step)
    calibrate = scorer.calibrate
    return np.array([0.0 if s is None else calibrate(s) for s in rows], dtype=np.float64)


@dataclass(frozen=True)
class Fold:
    """One folder scored with what was tuned on the others.

    ``settings`` and ``threshold`` are those that scored best on the other
    folders (``train``); ``held_out`` is this folder's normalised score with
    them, None when it has no window (only false alarms could count there:
    ``false_alarms``, detections outside every window).
    """

    folder: str
    series: int
    windows: int
    settings: dict[str, float]
    threshold: float
    train: float
    held_out: float | None
    false_alarms: int


@dataclass(frozen=True)
class CrossValidation:
    folds: list[Fold]
    profile: str

    @property
    def scored(self) -> list[float]:
        return [f.held_out for f in self.folds if f.held_out is not None]

    @property
    def mean(self) -> float:
        """The mean of the held-out folds that have windows: the figure to judge by."""
        return statistics.fmean(self.scored) if self.scored else math.nan

    @property
    def spread(self) -> float:
        """The held-out folds' standard deviation."""
        return statistics.stdev(self.scored) if len(self.scored) > 1 else 0.0


def normalised(series: Sequence[Series], raw: float, profile: Profile) -> float | None:
    """NAB's ``100 * (raw - null) / (perfect - null)``; None without windows."""
    windows = sum(len(s.window_rows()) for s in series)
    null, perfect = -profile.fn * windows, profile.tp * windows
    return 100.0 * (raw - null) / (perfect - null) if windows else None


def cross_validate(
    series: Sequence[Series],
    detector: str = "surprise",
    grid: Mapping[str, Sequence[float]] = GRID,
    profile: Profile = STANDARD,
) -> CrossValidation:
    """Leave-one-folder-out: for each folder, the scorer's setting and the
    threshold that score best on every other folder, then this folder's score
    with them. No choice ever sees the folder it is judged on."""
    found = surprises(series, detector)
    choices = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    # On a tie the setting nearest the scorer's defaults wins: a choice the
    # other folders cannot tell apart is no reason to move.
    defaults = inspect.signature(DetectorScorer).parameters
    choices.sort(key=lambda c: sum(v != defaults[k].default for k, v in c.items()))
    scores = [{s.name: calibrated(found[s.name], detector, c) for s in series} for c in choices]
    folds = []
    for folder in sorted({s.folder for s in series}):
        train = [s for s in series if s.folder != folder]
        test = [s for s in series if s.folder == folder]
        # The best on the others; on a tie, the first (nearest the defaults).
        sweeps = [sweep(train, scored, profile).best() for scored in scores]
        k = max(range(len(choices)), key=lambda i: (sweeps[i][1], -i))
        threshold, raw = sweeps[k]
        held = sum(score_file(s, scores[k][s.name], threshold, profile) for s in test)
        alarms = 0
        for s in test:
            rows = _rows(s)
            hit = scores[k][s.name][rows.index] >= threshold
            alarms += int((hit & (rows.window < 0)).sum())
        folds.append(
            Fold(
                folder,
                len(test),
                sum(len(s.window_rows()) for s in test),
                choices[k],
                threshold,
                normalised(train, raw, profile) or 0.0,
                normalised(test, held, profile),
                alarms,
            )
        )
    return CrossValidation(folds, profile.name)


class RiverBaseline:
    """River's ``StandardAbsoluteDeviation`` with its defaults: the baseline to
    beat, run in the same command. Its score ``|y - mean| / sd`` becomes
    ``d / (d + 1)``: strictly increasing, so NAB's threshold sweep sees the
    same ranking.
    """

    def __init__(self) -> None:
        self.model = anomaly.StandardAbsoluteDeviation()

    def update(self, timestamp: float, value: float) -> float:
        if value != value:  # blank or not a number
            return 0.0
        d = float(self.model.score_one(None, value))
        self.model.learn_one(None, value)
        return d / (d + 1.0)
