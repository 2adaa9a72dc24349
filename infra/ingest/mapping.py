"""The mapping file: which outside metric becomes which Foreshock series.

A rule names the series it makes (``to = "family.metric"``), the entity it
belongs to (a template over labels, or OpenTelemetry attributes), the source
metric it reads (``from``, with optional label patterns in ``where``), and
optionally a denominator (``over``, ``over_where``), a ``scale`` and a
``quantile`` of a histogram's ``_bucket`` series::

    [[map]]
    to = "redis.memory_used_ratio"
    entity = "redis/{instance}"
    from = "redis_memory_used_bytes"
    over = "redis_memory_max_bytes"

Metrics the models do not know yet are declared under ``[metrics.FAMILY.NAME]``
(unit, the bad direction, the smallest deviation that matters, and whether it
is a ratio, a counter, or has a limit forecast to exhaustion); the workers read
the same file, so that they learn them too.

A bad file stops the start with one line naming the file (``Settings``) and the key.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from models.schema import SERIES_METRICS, WIRE_METRICS, Bad, MetricSpec

_PLACE = re.compile(r"\{([^{}]+)\}")
_RULE_KEYS = {"to", "entity", "from", "where", "over", "over_where", "scale", "quantile"}
_METRIC_KEYS = {"unit", "bad", "floor", "ratio", "counter", "limit"}


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names file and key."""


@dataclass(frozen=True)
class Selector:
    """A source metric by name, and patterns its labels must match in full."""

    name: str
    where: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        return all(p.fullmatch(labels.get(k, "")) for k, p in self.where)


@dataclass(frozen=True)
class Rule:
    """One series Foreshock makes from outside metrics.

    >>> rule = Rule("redis", "memory_used_ratio", "redis/{instance}",
    ...             Selector("redis_memory_used_bytes"))
    >>> rule.entity_of({"instance": "node-01"}), rule.entity_of({"job": "redis"})
    ('redis/node-01', None)
    """

    family: str
    metric: str
    entity: str
    source: Selector
    over: Selector | None = None
    scale: float = 1.0
    quantile: float | None = None
    index: int = 0  # the rule's place in its file, which names it in counters

    @property
    def share(self) -> bool:
        """Whether the rule is the share of a metric that some of its series
        make (errors among requests): 0 while none of those series exists."""
        return self.over is not None and self.over.name == self.source.name

    @property
    def spec(self) -> MetricSpec:
        return WIRE_METRICS[self.family][self.metric]

    def entity_of(self, labels: dict[str, str]) -> str | None:
        """The entity named by the template, or None if a label it needs is absent."""
        missing = False

        def value(m: re.Match[str]) -> str:
            nonlocal missing
            found = labels.get(m.group(1))
            missing = missing or not found
            return found or ""

        entity = _PLACE.sub(value, self.entity)
        return None if missing else entity


@dataclass
class Mapping:
    """Every rule, indexed by the source metric names it reads."""

    rules: list[Rule]
    metrics: dict[str, dict[str, MetricSpec]] = field(default_factory=dict)
    # Source name -> (rule, whether the name is the rule's denominator).
    readers: dict[str, list[tuple[Rule, bool]]] = field(init=False)

    def __post_init__(self) -> None:
        self.readers = defaultdict(list)
        for rule in self.rules:
            self.readers[rule.source.name].append((rule, False))
            if rule.over is not None:
                self.readers[rule.over.name].append((rule, True))

    def declare(self) -> None:
        """Teach the schema the metrics this file adds (idempotent). The
        schema is the process's: every telemetry validated here after this
        may carry them."""
        for family, specs in self.metrics.items():
            for name, spec in specs.items():
                WIRE_METRICS[family].setdefault(name, spec)


def from_dict(data: dict[str, Any]) -> Mapping:
    """Build a mapping from parsed TOML; an error names the key at fault.

    >>> try:
    ...     from_dict({"map": [{"to": "redis.nope", "entity": "r", "from": "x"}]})
    ... except MappingError as exc:
    ...     print(exc)
    map[0].to: redis has no metric 'nope'
    """
    unknown = set(data) - {"map", "metrics"}
    if unknown:
        raise MappingError(f"{sorted(unknown)[0]}: not a key of a mapping file")
    metrics = _metrics(data.get("metrics", {}))
    rules = [_rule(raw, f"map[{i}]", metrics, i) for i, raw in enumerate(data.get("map", []))]
    return Mapping(rules, metrics)


def _metrics(data: Any) -> dict[str, dict[str, MetricSpec]]:
    out: dict[str, dict[str, MetricSpec]] = {}
    if not isinstance(data, dict):
        raise MappingError("metrics: must be a table of families")
    for family, specs in data.items():
        if family not in WIRE_METRICS or SERIES_METRICS[family] is not WIRE_METRICS[family]:
            # Logins and mentions become series by their own arithmetic.
            raise MappingError(f"metrics.{family}: takes no new metrics (redis, pods do)")
        for name, raw in specs.items():
            key = f"metrics.{family}.{name}"
            if not isinstance(raw, dict) or set(raw) - _METRIC_KEYS:
                raise MappingError(f"{key}: takes only {sorted(_METRIC_KEYS)}")
            try:
                spec = MetricSpec(
                    name,
                    str(raw.get("unit", "")),
                    Bad(raw.get("bad", "either")),
                    float(raw["floor"]),
                    counter=bool(raw.get("counter", False)),
                    ratio=bool(raw.get("ratio", False)),
                    limit=None if raw.get("limit") is None else float(raw["limit"]),
                )
            except KeyError:
                why = "missing (the smallest change that matters)"
                raise MappingError(f"{key}.floor: {why}") from None
            except (TypeError, ValueError) as exc:
                raise MappingError(f"{key}: {exc}") from None
            if WIRE_METRICS[family].get(name, spec) != spec:  # the same, declared before: fine
                raise MappingError(f"{key}: {family} has this metric already")
            out.setdefault(family, {})[name] = spec
    return out


def _rule(raw: Any, key: str, metrics: dict[str, dict[str, MetricSpec]], index: int) -> Rule:
    if not isinstance(raw, dict):
        raise MappingError(f"{key}: must be a table")
    for name in sorted(set(raw) - _RULE_KEYS):
        raise MappingError(f"{key}.{name}: not a key of a rule ({sorted(_RULE_KEYS)})")
    for name in ("to", "entity", "from"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise MappingError(f"{key}.{name}: missing, or not a string")
    family, _, metric = raw["to"].partition(".")
    if family not in WIRE_METRICS or family == "social":
        raise MappingError(f"{key}.to: {family!r} is not a family with metrics")
    if metric not in WIRE_METRICS[family] and metric not in metrics.get(family, {}):
        raise MappingError(f"{key}.to: {family} has no metric {metric!r}")
    scale = raw.get("scale", 1.0)
    if not isinstance(scale, int | float) or isinstance(scale, bool) or scale <= 0:
        raise MappingError(f"{key}.scale: must be a number above 0")
    quantile = raw.get("quantile")
    if quantile is not None:
        if not isinstance(quantile, float) or not 0 < quantile < 1:
            raise MappingError(f"{key}.quantile: must be a number between 0 and 1")
        if not raw["from"].endswith("_bucket") or "over" in raw:
            raise MappingError(f"{key}.quantile: reads a histogram's _bucket series, alone")
    over = None
    if "over" in raw:
        if not isinstance(raw["over"], str) or not raw["over"]:
            raise MappingError(f"{key}.over: must be a metric name")
        over = Selector(raw["over"], _where(raw.get("over_where", {}), f"{key}.over_where"))
    elif "over_where" in raw:
        raise MappingError(f"{key}.over_where: only with over")
    source = Selector(raw["from"], _where(raw.get("where", {}), f"{key}.where"))
    return Rule(family, metric, raw["entity"], source, over, float(scale), quantile, index)


def _where(raw: Any, key: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    if not isinstance(raw, dict):
        raise MappingError(f"{key}: must be a table of label = pattern")
    out = []
    for label, pattern in raw.items():
        if not isinstance(pattern, str):
            raise MappingError(f"{key}.{label}: must be a pattern string")
        try:
            out.append((label, re.compile(pattern)))
        except re.error as exc:
            raise MappingError(f"{key}.{label}: not a pattern: {exc}") from None
    return tuple(out)
