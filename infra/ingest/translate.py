"""Outside series become Foreshock telemetry, by the rules of a mapping.

A source (a remote_write body, an OTLP request) hands the translator its
series one by one (``add``); ``flush`` then returns the telemetry messages
made of them, one per entity and set of metrics. Counters become per-second
rates, across resets (a value lower than the last one restarted from zero)
and across requests: the translator keeps each counter's last value, and the
latest value of every series a rule sums, so that a numerator and its
denominator need not come in the same request (Prometheus shards series
over parallel requests).

What cannot be used is counted by reason in ``dropped``, never raised.
"""

from __future__ import annotations

import math
import struct
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from infra.ingest.mapping import Mapping, Rule
from models.schema import Rejection, Telemetry, validate

# Prometheus marks a series gone with this NaN; it is routine, not an error.
STALE_MARKER = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
STALE_S = 300.0  # a series not heard from for this long no longer counts in sums
DROP_REASONS = {
    "unmapped": "no rule reads this metric, or its labels match no rule's patterns",
    "missing_label": "a label the rule's entity template needs is absent",
    "stale_marker": "Prometheus's marker of a series that ended",
    "non_finite": "NaN or infinity",
    "negative_value": "a negative gauge where Foreshock's metrics are non-negative",
    "out_of_order": "a counter sample no later than the last one taken",
    "bad_interval": "a delta whose interval ends before it starts",
}


class Kind(Enum):
    GAUGE = "gauge"
    CUMULATIVE = "cumulative"  # a counter that only resets to zero
    DELTA = "delta"  # each value counts what happened since its start


SeriesKey = Hashable


@dataclass(frozen=True, slots=True)
class Description:
    """What a series is: its metric's name, its labels, and how it counts."""

    name: str
    labels: dict[str, str]
    kind: Kind = Kind.GAUGE


@dataclass(slots=True)
class Series:
    """One outside series: its identity (``key``, the same from one body to
    the next), its points ``(ts, value, start)``, and what it is
    (``describe``), read only when the translator meets the series first.
    ``start`` (OpenTelemetry's start time) is 0 where the source has none."""

    key: SeriesKey
    points: Sequence[tuple[float, float, float]]
    describe: Callable[[], Description]

    @classmethod
    def of(
        cls,
        name: str,
        labels: dict[str, str],
        points: Sequence[tuple[float, float, float]],
        kind: Kind = Kind.GAUGE,
    ) -> Series:
        """A series known by its name and labels."""
        key = (name, tuple(sorted(labels.items())))
        return cls(key, points, lambda: Description(name, labels, kind))


@dataclass(slots=True)
class _Route:
    """Where one series' values go, worked out once: how it counts, the
    cells of the rules it matches (whether it is their denominator), and
    what to count instead."""

    kind: Kind
    cells: list[tuple[tuple[int, str], _Cell, bool]]
    used: bool  # some rule reads it
    missing: bool  # some rule reads it but lacks a label for its entity


@dataclass(slots=True)
class _Cell:
    """What one rule knows of one entity: each series' latest value, and the
    values new since the last flush by timestamp, each a sample to make
    (whether it is of the denominator, its series, the value)."""

    num: dict[SeriesKey, tuple[float, float]] = field(default_factory=dict)
    den: dict[SeriesKey, tuple[float, float]] = field(default_factory=dict)
    pending: dict[float, list[tuple[bool, SeriesKey, float]]] = field(default_factory=dict)
    bounds: dict[SeriesKey, float] = field(default_factory=dict)  # a histogram bucket's ``le``
    last_ts: float | None = None  # of the last sample made, for counts between samples


class Translator:
    """Keeps what counters and sums need between requests.

    >>> from infra.ingest.mapping import from_dict
    >>> rules = from_dict({"map": [{"to": "redis.ops_per_s", "entity": "redis/{instance}",
    ...                             "from": "redis_commands_processed_total"}]})
    >>> t = Translator(rules)
    >>> for ts, total in ((1e9, 100.0), (1e9 + 1, 350.0), (1e9 + 2, 40.0)):  # then a reset
    ...     t.add(Series.of("redis_commands_processed_total", {"instance": "node-01"},
    ...                     [(ts, total, 0.0)], Kind.CUMULATIVE))
    ...     [(m.entity, m.metrics) for m in t.flush()]
    []
    [('redis/node-01', {'ops_per_s': [250.0]})]
    [('redis/node-01', {'ops_per_s': [40.0]})]
    """

    def __init__(self, mapping: Mapping, known_entity: Callable[[str], bool] | None = None):
        mapping.declare()
        self.mapping = mapping
        self.known_entity = known_entity
        self.dropped: Counter[str] = Counter()
        self._counters: dict[SeriesKey, tuple[float, float, float]] = {}  # ts, value, start
        self._cells: dict[tuple[int, str], _Cell] = {}
        self._touched: set[tuple[int, str]] = set()
        self._routes: dict[SeriesKey, _Route] = {}
        self._rules = {rule.index: rule for rule in mapping.rules}
        self._newest = -math.inf
        self._pruned = -math.inf

    def add(self, series: Series) -> None:
        """Take one series' points."""
        route = self._routes.get(series.key)
        if route is None:
            route = self._routes[series.key] = self._route(series.key, series.describe())
        if not route.used:
            self.dropped["unmapped"] += len(series.points)
            return
        if route.missing:
            self.dropped["missing_label"] += len(series.points)
        if not route.cells:
            return
        values = self._values(series, route.kind)
        if not values:
            return
        for cell_key, cell, denominator in route.cells:
            for ts, value in values:
                cell.pending.setdefault(ts, []).append((denominator, series.key, value))
            self._touched.add(cell_key)

    def _route(self, key: SeriesKey, what: Description) -> _Route:
        route = _Route(what.kind, [], used=False, missing=False)
        for rule, denominator in self.mapping.readers.get(what.name, ()):
            selector = rule.over if denominator and rule.over else rule.source
            if not selector.matches(what.labels):
                continue
            route.used = True
            entity = rule.entity_of(what.labels)
            if entity is None:
                route.missing = True
                continue
            cell_key = (rule.index, entity)
            cell = self._cells.get(cell_key)
            if cell is None:
                cell = self._cells[cell_key] = _Cell()
            if rule.quantile is not None:
                try:
                    cell.bounds[key] = float(what.labels.get("le", "nan"))
                except ValueError:
                    cell.bounds[key] = math.nan
            route.cells.append((cell_key, cell, denominator))
        return route

    def translate(self, series: Iterable[Series]) -> list[Telemetry]:
        """``add`` every series, then ``flush``."""
        for one in series:
            self.add(one)
        return self.flush()

    def flush(self) -> list[Telemetry]:
        """The telemetry made of everything added since the last flush."""
        rows: dict[tuple[str, str], dict[float, dict[str, float]]] = defaultdict(dict)
        for index, entity in sorted(self._touched):
            rule = self._rules[index]
            cell = self._cells[(index, entity)]
            for ts in sorted(cell.pending):
                for denominator, key, v in cell.pending[ts]:
                    (cell.den if denominator else cell.num)[key] = (ts, v)
                value = self._sample(rule, cell, ts)
                if value is not None:
                    rows[(rule.family, entity)].setdefault(ts, {})[rule.metric] = value
            cell.pending.clear()
        self._touched.clear()
        if self._newest - self._pruned > STALE_S:
            self._prune()
        return [
            m for (family, entity), row in rows.items() for m in self._messages(family, entity, row)
        ]

    def _values(self, series: Series, kind: Kind) -> list[tuple[float, float]]:
        """The series' points as gauge values or per-second rates."""
        out: list[tuple[float, float]] = []
        key = series.key
        last = self._counters.get(key)
        for ts, value, start in series.points:
            if not math.isfinite(value):
                stale = math.isnan(value) and struct.pack("<d", value) == struct.pack(
                    "<d", STALE_MARKER
                )
                self.dropped["stale_marker" if stale else "non_finite"] += 1
                continue
            self._newest = max(self._newest, ts)
            if kind is Kind.GAUGE:
                if value < 0:
                    self.dropped["negative_value"] += 1
                else:
                    out.append((ts, value))
            elif kind is Kind.DELTA:
                if ts <= start:
                    self.dropped["bad_interval"] += 1
                else:
                    out.append((ts, max(value, 0.0) / (ts - start)))
            elif last is None:
                # The first value only tells where counting starts (a start
                # time would give a rate over another span than the others').
                last = (ts, value, start)
            elif ts <= last[0]:
                self.dropped["out_of_order"] += 1
            else:
                restarted = value < last[1] or start != last[2]
                increase = value if restarted else value - last[1]
                out.append((ts, max(increase, 0.0) / (ts - last[0])))
                last = (ts, value, start)
        if last is not None:
            self._counters[key] = last
        return out

    def _sample(self, rule: Rule, cell: _Cell, ts: float) -> float | None:
        """The rule's value for an entity at ``ts``, from each series' latest."""
        live = ts - STALE_S
        if rule.quantile is not None:
            per_bound: dict[float, float] = defaultdict(float)
            for k, (t, v) in cell.num.items():
                if t > live:
                    per_bound[cell.bounds[k]] += v
            value = _quantile(rule.quantile, per_bound)
        elif cell.num or rule.share:
            value = sum(v for t, v in cell.num.values() if t > live)
        else:
            value = None
        if value is None:
            return None
        if rule.over is not None:
            den = sum(v for t, v in cell.den.values() if t > live)
            if den <= 0:
                return None
            value /= den
        value *= rule.scale
        spec = rule.spec
        if spec.counter:
            # A count on the wire is what happened since the previous sample.
            since, cell.last_ts = cell.last_ts, ts
            if since is None or ts <= since:
                return None
            value *= ts - since
        if spec.ratio:
            value = min(value, 1.0)  # a store may run a little past its limit
        return value

    def _messages(
        self, family: str, entity: str, row: dict[float, dict[str, float]]
    ) -> list[Telemetry]:
        """One message per set of metrics sent together, validated."""
        groups: dict[tuple[str, ...], list[float]] = defaultdict(list)
        for ts in sorted(row):
            groups[tuple(sorted(row[ts]))].append(ts)
        out = []
        for metrics, ts_list in groups.items():
            body = {
                "v": 1,
                "family": family,
                "entity": entity,
                "time": ts_list[-1],
                "ts": ts_list,
                "metrics": {m: [row[ts][m] for ts in ts_list] for m in metrics},
            }
            tel = validate(body, self.known_entity)
            if isinstance(tel, Rejection):
                self.dropped[tel.reason] += len(ts_list) * len(metrics)
            else:
                out.append(tel)
        return out

    def _prune(self) -> None:
        """Forget series not heard from for STALE_S: the state stays bounded."""
        live = self._newest - STALE_S
        self._counters = {k: v for k, v in self._counters.items() if v[0] > live}
        for key, cell in list(self._cells.items()):
            cell.num = {k: v for k, v in cell.num.items() if v[0] > live}
            cell.den = {k: v for k, v in cell.den.items() if v[0] > live}
            if not cell.num and not cell.den:
                del self._cells[key]
        self._routes.clear()  # they may name cells just removed
        self._pruned = self._newest


def _quantile(q: float, per_bound: dict[float, float]) -> float | None:
    """The ``q`` quantile of a histogram given as per-second counts of its
    cumulative buckets by upper bound (NaN: a bucket without one),
    interpolated within the bucket it falls in, as Prometheus's
    histogram_quantile does.

    >>> round(_quantile(0.5, {0.1: 10.0, 0.2: 30.0, math.inf: 40.0}), 6)
    0.15
    """
    bounds = sorted(b for b in per_bound if not math.isnan(b))
    if not bounds or per_bound[bounds[-1]] <= 0:
        return None
    rank = q * per_bound[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = per_bound[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # in the open bucket: the highest finite bound
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
