"""The Grafana dashboard, deploy/grafana/foreshock.json, checked against the
metrics a worker serves on ``/metrics/``.

Nothing here needs Grafana or Prometheus: the JSON is parsed, its layout
checked, and every series its queries name looked up in the registries the
worker fills (``streams.metrics.registry``, and the alert delivery's
``streams.alerts.delivery.Metrics``, which the worker registers there too).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infra.servers import Prometheus
from streams import metrics
from streams.alerts.delivery import Metrics as AlertMetrics
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "foreshock.json"

METRIC = re.compile(r"\bforeshock_[a-z_]+")
# a function over a range vector, applied straight to a series: rate(foreshock_x{...}[5m])
OVER_TIME = re.compile(r"\b(rate|irate|increase|delta|deriv)\(\s*(foreshock_[a-z_]+)")
PANEL_TYPES = {"row", "timeseries", "stat", "table", "bargauge", "gauge"}
UNITS = {"s", "short", "reqps", "ops", "bytes", "Bps", "percentunit"}
ROWS = ("Now", "Detection", "Input", "Alerts", "State")
GRID_WIDTH = 24

# Series each metric type is served as (prometheus_client's text format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}


@cache
def dashboard() -> dict[str, Any]:
    with DASHBOARD.open(encoding="utf-8") as f:
        data = json.load(f)
    assert isinstance(data, dict), f"{DASHBOARD} is not a JSON object"
    return data


def all_panels() -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and those inside collapsed rows."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def graphs() -> list[dict[str, Any]]:
    return [p for p in all_panels() if p["type"] != "row"]


def exprs() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    out = [
        (f"panel {p['title']!r} target {t.get('refId')}", t["expr"])
        for p in graphs()
        for t in p.get("targets", [])
    ]
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]  # Grafana 10+ writes an object, older ones the string
            text = query["query"] if isinstance(query, dict) else query
            out.append((f"variable {var['name']}", text))
    return out


def families(registry: CollectorRegistry) -> dict[str, str]:
    """Metric family name -> type, as the registry describes them."""
    return {family.name: family.type for family in registry.collect()}


def series(registry: CollectorRegistry) -> dict[str, str]:
    """Series name -> its family's type: every name the registry serves, or
    will serve once a labelled metric has a child (one without any serves
    nothing yet, but its name is fixed by its type)."""
    return {
        name + suffix: kind
        for name, kind in families(registry).items()
        for suffix in SUFFIXES[kind]
    }


def served(registry: CollectorRegistry) -> set[str]:
    """The series names the text exposition of ``registry`` holds now."""
    text = generate_latest(registry).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


@cache
def alert_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    alerts = AlertMetrics(registry)
    alerts.deliveries.labels("chat", "accepted")
    alerts.breaker_open.labels("chat")
    alerts.last_error.labels("chat").info({"error": "503"})
    return registry


@cache
def worker_series() -> dict[str, str]:
    return {**series(metrics.registry), **series(alert_registry())}


def test_identity() -> None:
    d = dashboard()
    assert d["uid"] == "foreshock"
    assert d["title"] == "Foreshock"
    assert 36 <= d["schemaVersion"] <= 41, (
        f"schemaVersion {d['schemaVersion']} is not one Grafana 10/11 writes"
    )
    assert d.get("id") is None, "an exported id clashes on import; leave it null"


def test_datasource_is_a_variable() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", (
        "the dashboard needs a `datasource` variable of type datasource, query prometheus"
    )
    assert "__inputs" not in dashboard(), "a provisioned dashboard cannot fill __inputs"
    for p in graphs():
        sources = [p.get("datasource"), *(t.get("datasource") for t in p.get("targets", []))]
        for source in sources:
            assert source == {"type": "prometheus", "uid": "${datasource}"}, (
                f"panel {p['title']!r} queries {source}, not the datasource variable"
            )


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in all_panels()]
    assert all(isinstance(i, int) for i in ids), f"panel ids must be integers: {ids}"
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"panel ids used more than once: {dupes}"


def test_panels_fit_the_grid_and_do_not_overlap() -> None:
    placed: list[tuple[str, set[tuple[int, int]]]] = []
    for p in dashboard()["panels"]:  # panels of collapsed rows have a grid of their own
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, p["title"]
        assert g["x"] + g["w"] <= GRID_WIDTH, f"{p['title']!r} is wider than the grid: {g}"
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        for title, other in placed:
            assert not cells & other, f"{p['title']!r} overlaps {title!r}"
        placed.append((p["title"], cells))


def test_rows_in_order() -> None:
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert tuple(rows) == ROWS


def test_every_panel_has_a_known_type_units_and_a_description() -> None:
    for p in graphs():
        assert p["type"] in PANEL_TYPES, f"panel {p['title']!r} is a {p['type']}"
        assert len(p.get("description", "")) >= 40, (
            f"panel {p['title']!r} does not tell the on-call what to do when it looks wrong"
        )
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), f"panel {p['title']!r} repeats a refId: {refs}"
        if p["type"] in ("timeseries", "stat"):
            unit = p["fieldConfig"]["defaults"].get("unit")
            assert unit in UNITS, f"panel {p['title']!r} has unit {unit!r}"


def test_queries_are_balanced() -> None:
    for where, expr in exprs():
        for opening, closing in ("()", "[]", "{}"):
            depth = 0
            for char in expr:
                depth += (char == opening) - (char == closing)
                assert depth >= 0, f"{where}: {closing!r} before its {opening!r} in {expr}"
            assert depth == 0, f"{where}: unbalanced {opening}{closing} in {expr}"


def test_queries_parse_as_promql(tmp_path: Path) -> None:
    """promtool (Prometheus' own parser) reads each query as a recording rule,
    Grafana's variables given plain values: ranges 5m, label values any."""
    require(Prometheus)  # promtool comes with Debian's prometheus
    promtool = shutil.which("promtool") or "promtool"
    rules = []
    for i, (where, expr) in enumerate(exprs()):
        if where.startswith("variable"):  # label_values(...) is Grafana's, not PromQL
            continue
        expr = re.sub(r"\[\$\{?__\w+\}?\]", "[5m]", expr)
        rules.append({"record": f"dashboard:query{i}", "expr": re.sub(r"\$\{?\w+\}?", ".*", expr)})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, f"promtool refuses a query:\n{done.stdout}{done.stderr}"


def test_series_names_derive_as_the_worker_serves_them() -> None:
    """The names ``series`` derives from a family's type are those the text
    format holds, for every family that serves samples already."""
    for registry in (metrics.registry, alert_registry()):
        missing = served(registry) - series(registry).keys()
        assert not missing, f"series served but not derived from the families: {missing}"


def test_every_metric_in_a_query_exists() -> None:
    known = worker_series()
    unknown = [
        f"{where}: {name}"
        for where, expr in exprs()
        for name in METRIC.findall(expr)
        if name not in known
    ]
    assert not unknown, f"queries name series no worker serves: {unknown}"


def test_rates_are_taken_of_counters_not_gauges() -> None:
    known = worker_series()
    for where, expr in exprs():
        for func, name in OVER_TIME.findall(expr):
            assert known.get(name) != "gauge", f"{where}: {func}() of the gauge {name}"
        for name in METRIC.findall(expr):
            if name.endswith("_bucket"):
                assert re.search(rf"\b(rate|increase)\(\s*{name}\b", expr), (
                    f"{where}: buckets of {name} taken without rate() or increase()"
                )


@pytest.mark.parametrize(
    "registry",
    [metrics.registry, alert_registry()],
    ids=["streams.metrics", "streams.alerts.delivery"],
)
def test_every_metric_is_on_a_panel(registry: CollectorRegistry) -> None:
    """A metric added to the worker shows up here until it has a panel.
    No allowlist: every family the worker serves is worth a look on call."""
    used = {name for _, expr in exprs() for name in METRIC.findall(expr)}
    forgotten = sorted(
        name
        for name, kind in families(registry).items()
        if not used & {name + suffix for suffix in SUFFIXES[kind]}
    )
    assert not forgotten, f"metrics on /metrics/ that no panel shows: {forgotten}"


def test_the_regex_sees_what_a_query_names() -> None:
    """The checks above are only as good as METRIC: a misspelt name fails."""
    assert METRIC.findall(
        'sum by (le) (rate(foreshock_window_decision_seconds_bucket{instance=~"$i"}[5m]))'
    ) == ["foreshock_window_decision_seconds_bucket"]
    assert "foreshock_rejected_total" not in worker_series()
    assert "foreshock_rejected_messages_total" in worker_series()
    assert "foreshock_window_decision_seconds_bucket" in worker_series()
    assert "foreshock_alert_deliveries_total" in worker_series()
