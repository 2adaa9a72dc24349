"""report.html: the markdown report's tables and plots in one page that can be
sent on its own. The report comes from the real scoring and plotting code, fed
hand-made replays instead of the engine, so that it takes a second."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bench.plots import write_plots
from bench.replay import Replay
from bench.report import COLUMNS, render_html, render_markdown, rows
from bench.score import evaluate, summarize
from models.impact import Impact
from models.incident import Change, Incident, IncidentEvent
from models.topology import Topology
from producers.scenario import Scenario, Truth
from streams.embedded import RunStats

FAULT = 1_664_877_600.0  # 2022-10-04 10:00 UTC
NONE = Impact(0.5, 1e6, 0.1, 100.0, 1000.0, 0.0, 0.5, 1e6)
HOSTILE = '<img src="x.png"> & "co"'  # a scenario name that is markup if left raw


def paged(at: float) -> IncidentEvent:
    inc = Incident("INC-1", at, FAULT, 2, (), "postgres", (), (), NONE)
    return IncidentEvent(Change.OPENED, at, "", inc)


def scenario(name: str, truth: Truth) -> Scenario:
    return Scenario(name, f"{name}, by hand", FAULT - 600, FAULT + 3600, truth)


class Page(HTMLParser):
    """The tags, attributes and text of a page, and whether it parsed whole."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in {"meta", "img", "br", "link", "!doctype"}:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


@pytest.fixture(scope="module")
def written(
    tmp_path_factory: pytest.TempPathFactory, topology: Topology
) -> tuple[dict[str, Any], Path]:
    """Three scenarios, one seed each: a fault paged in 30 s (its timeline
    drawn), one with a hostile name paged in 90 s, and a quiet decoy."""
    fault = Truth(fault_start=FAULT, root_cause="postgres", sev=2)
    scenarios = {
        "db-fault": scenario("db-fault", fault),
        HOSTILE: scenario(HOSTILE, fault),
        "quiet": scenario("quiet", Truth(kind="decoy", expects=("none",))),
    }
    events = {"db-fault": [paged(FAULT + 30)], HOSTILE: [paged(FAULT + 90)], "quiet": []}
    runs = [
        evaluate(Replay(sc, 1, RunStats(), events[name]), topology)  # type: ignore[arg-type]
        for name, sc in scenarios.items()
    ]
    minutes = [FAULT - 600 + 60 * n for n in range(70)]
    signals = {
        "db-fault": [
            {"label": "postgres error_rate", "t": minutes, "v": [n % 7 for n in range(70)]}
        ]
    }
    report = summarize(runs, scenarios)
    report["seeds"] = 1
    out = tmp_path_factory.mktemp("report-html")
    report["plots"] = write_plots(report, runs, signals, scenarios, out)
    return report, out


@pytest.fixture(scope="module")
def page(written: tuple[dict[str, Any], Path]) -> str:
    return render_html(*written)


def test_the_page_parses_and_says_what_it_is(page: str) -> None:
    parsed = Page(page)
    assert parsed.open == [], f"left open: {parsed.open}"
    assert [a.get("lang") for a in parsed.all("html")] == ["en"]
    assert len(parsed.all("title")) == 1 and "Foreshock scenario benchmark" in parsed.text
    assert page.startswith("<!DOCTYPE html>") and not parsed.all("script")


def test_one_row_per_scenario_with_headings_for_columns_and_rows(
    written: tuple[dict[str, Any], Path], page: str
) -> None:
    report = written[0]
    table = page[page.index("<table>") : page.index("</table>")]
    parsed = Page(table)
    assert len(parsed.all("table")) == 1 and len(parsed.all("caption")) == 1
    assert len(parsed.all("thead")) == 1
    assert [a["scope"] for a in parsed.all("th")].count("col") == len(COLUMNS)
    heads = re.findall(r'<th scope="row">(.*?)</th>', table)
    assert len(heads) == len(report["scenarios"]) == 3
    assert len(parsed.all("tr")) == 1 + 3  # the heading row, then the scenarios
    assert {"db-fault", "quiet", HOSTILE} <= set(parsed.text)
    # The cells are those of the markdown table, from the same rows.
    for row in rows(report):
        assert all(cell in parsed.text for cell in row)
        assert "| " + " | ".join(row) + " |" in render_markdown(report)
    assert "30 s / 30 s / 30 s" in parsed.text  # db-fault's MTTD from fault start


def test_the_overall_figures_are_on_the_page(page: str) -> None:
    assert "3 runs, 2 pages, 0 false: paging precision 100%, recall 100%" in Page(page).text


def test_markup_in_a_scenario_name_is_shown_not_obeyed(page: str) -> None:
    assert HOSTILE not in page
    assert "&lt;img src=&quot;x.png&quot;&gt; &amp; &quot;co&quot;" in page
    assert [a["src"] for a in Page(page).all("img") if a["src"] == "x.png"] == []


def test_it_needs_no_other_file(written: tuple[dict[str, Any], Path], page: str) -> None:
    report = written[0]
    assert sorted(report["plots"]) == ["db-fault", "mttd"]
    assert "http://" not in page and "https://" not in page
    images = Page(page).all("img")
    assert len(images) == len(report["plots"])
    for img in images:
        assert (img["src"] or "").startswith("data:image/png;base64,iVBORw0KGgo")  # a PNG
        assert img["alt"]
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert not any(Path(p).name in page for p in report["plots"].values())
    # What it embeds is the plots as written, whole.
    embedded = [base64.b64decode((img["src"] or "").partition(",")[2]) for img in images]
    assert sorted(embedded) == sorted(Path(p).read_bytes() for p in report["plots"].values())


def test_the_plots_are_found_beside_the_report_wherever_they_were_written(
    written: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    report, out = written
    for path in report["plots"].values():
        (tmp_path / Path(path).name).write_bytes(Path(path).read_bytes())
    elsewhere = {n: f"/elsewhere/{Path(p).name}" for n, p in report["plots"].items()}
    moved = {**report, "plots": elsewhere}
    assert render_html(moved, tmp_path) == render_html(report, out)
    with pytest.raises(FileNotFoundError):
        render_html(report, tmp_path / "empty")
