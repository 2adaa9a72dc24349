"""The benchmark report as text: a markdown file, an HTML page and rich tables."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any


def _s(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} s" if abs(value) < 600 else f"{value / 60:.0f} min"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


COLUMNS = (
    "scenario",
    "kind",
    "expect",
    "seeds",
    "detected",
    "MTTD fault (med/p90/max)",
    "MTTD impact (med/p90/max)",
    "root cause after (med)",
    "SEV ok",
    "root cause ok",
    "pages",
    "false pages/day",
    "impact err",
    "gap reported",
)


def rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row of strings per scenario, in ``COLUMNS`` order."""
    out: list[tuple[str, ...]] = []
    for r in report["scenarios"]:
        f, i = r["mttd_from_fault_s"], r["mttd_from_impact_s"]
        out.append(
            (
                r["name"],
                r["kind"],
                r["expect"],
                str(r["seeds"]),
                _pct(r["detected"]),
                f"{_s(f['median'])} / {_s(f['p90'])} / {_s(f['max'])}",
                f"{_s(i['median'])} / {_s(i['p90'])} / {_s(i['max'])}",
                _s(r["time_to_root_cause_s"]["median"]),
                _pct(r["sev_correct"]),
                _pct(r["root_cause_correct"]),
                str(r["pages"]),
                f"{r['false_pages_per_day']:.2f}",
                _pct(r["impact_error"]),
                _pct(r["gap_reported"]),
            )
        )
    return out


def _overall(report: dict[str, Any]) -> str:
    return (
        f"{report['runs']} runs, {report['pages']} pages, {report['false_pages']} false: "
        f"paging precision {_pct(report['precision'])}, recall {_pct(report['recall'])}"
    )


TITLE = "Foreshock scenario benchmark"


def _scope(report: dict[str, Any]) -> str:
    return (
        f"{len(report['scenarios'])} scenarios × {report.get('seeds', '?')} seeds, "
        "embedded engine, event time."
    )


def _plots(report: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, file name)`` of each plot: the files lie beside the report,
    wherever the paths in ``report["plots"]`` said they were written."""
    return [(name, Path(path).name) for name, path in sorted(report.get("plots", {}).items())]


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# {TITLE}",
        "",
        _scope(report),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(report)]
    lines += ["", _overall(report), ""]
    lines += [f"![{name}]({file})" for name, file in _plots(report)]
    return "\n".join(lines) + "\n"


# Borders and weight, not colour, set the headings apart: the page reads the
# same printed in black and white.
_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #111; background: #fff; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: bold; padding: 0.3rem 0; }
th, td { border: 1px solid #555; padding: 0.2rem 0.45rem; text-align: right; white-space: nowrap; }
thead th { border-bottom: 3px double #111; vertical-align: bottom; white-space: normal; }
th[scope="row"], td.text { text-align: left; }
.overall { font-weight: bold; }
figure { margin: 1.5rem 0; }
figcaption { font-style: italic; }
img { max-width: 100%; height: auto; border: 1px solid #999; }
"""

# The scenario (a row heading), its kind and what it expects read as words;
# the rest are figures.
_TEXT_COLUMNS = 3


def _figure(name: str, png: bytes) -> str:
    # "mttd" is the distribution write_plots draws; its other plots are named by scenario.
    if name == "mttd":
        what = "MTTD from fault start, per scenario"
    else:
        what = f"{name}: key signals, seed 1"
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(what)}">'
        f"<figcaption>{escape(what)}</figcaption></figure>"
    )


def render_html(report: dict[str, Any], plots_dir: Path) -> str:
    """The markdown report's tables and plots as one page that needs nothing
    beside it: the PNGs from ``plots_dir`` are embedded as ``data:`` URIs, so
    it can be mailed or attached to a ticket as it is."""
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in COLUMNS)
    body = []
    for row in rows(report):
        cells = [f'<th scope="row">{escape(row[0])}</th>']
        cells += [
            f'<td class="text">{escape(c)}</td>' if n < _TEXT_COLUMNS else f"<td>{escape(c)}</td>"
            for n, c in enumerate(row[1:], 1)
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    figures = [_figure(name, (plots_dir / file).read_bytes()) for name, file in _plots(report)]
    return (
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en">',
                "<head>",
                '<meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{escape(TITLE)}</title>",
                f"<style>{_CSS}</style>",
                "</head>",
                "<body>",
                "<main>",
                f"<h1>{escape(TITLE)}</h1>",
                f"<p>{escape(_scope(report))}</p>",
                # Scrolls sideways on a narrow screen; focusable, so a keyboard can too.
                '<div class="wide" role="region" aria-label="per-scenario table" tabindex="0">',
                "<table>",
                f"<caption>Per scenario, over {escape(str(report.get('seeds', '?')))} seeds"
                "</caption>",
                f"<thead><tr>{head}</tr></thead>",
                "<tbody>",
                *body,
                "</tbody>",
                "</table>",
                "</div>",
                f'<p class="overall">{escape(_overall(report))}</p>',
                *figures,
                "</main>",
                "</body>",
                "</html>",
            ]
        )
        + "\n"
    )


# The same columns in a terminal of 120 columns: short two-line headings,
# kind and expectation in one, the seed count in the title.
TERMINAL_COLUMNS = (
    "scenario",
    "kind: expect",
    "found",
    "MTTD fault\nmed/p90/max",
    "MTTD impact\nmed/p90/max",
    "cause\nafter",
    "SEV\nok",
    "cause\nok",
    "pages",
    "false\n/day",
    "impact\nerr",
    "gap\nseen",
)


def _spread(med: float | None, p90: float | None, top: float | None) -> str:
    """Three times in the unit of the largest: ``12/15/40 s``, ``2/9/12 min``."""
    if top is None:
        return "–"
    minutes = abs(top) >= 600
    return "/".join(
        "–" if v is None else f"{v / 60 if minutes else v:.0f}" for v in (med, p90, top)
    ) + (" min" if minutes else " s")


def render_tables(report: dict[str, Any]) -> list[Any]:
    """The report as rich renderables: the per-scenario table and the totals.

    >>> from rich.console import Console
    >>> scenario = {"name": "deploy-overloads-datastore", "kind": "fault",
    ...     "expect": "warning+page", "seeds": 10, "detected": 1.0,
    ...     "mttd_from_fault_s": {"median": 95.0, "p90": 420.0, "max": 3000.0},
    ...     "mttd_from_impact_s": {"median": 10.0, "p90": 20.0, "max": 550.0},
    ...     "time_to_root_cause_s": {"median": 30.0}, "sev_correct": 0.9,
    ...     "root_cause_correct": 1.0, "pages": 10, "false_pages_per_day": 12.25,
    ...     "impact_error": 0.12, "gap_reported": None}
    >>> report = {"scenarios": [scenario], "seeds": 10, "runs": 10, "pages": 10,
    ...     "false_pages": 0, "precision": 1.0, "recall": 1.0}
    >>> console = Console(width=120, record=True)
    >>> console.print(*render_tables(report))  # doctest: +ELLIPSIS
    Scenario benchmark...
    >>> text = console.export_text()
    >>> max(map(len, text.splitlines())) <= 120, "deploy-overloads-datastore" in text
    (True, True)
    >>> "2/7/50 min" in text, "10/20/550 s" in text
    (True, True)
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    seeds = report.get("seeds")
    table = Table(
        title=f"Scenario benchmark, {seeds} seeds each" if seeds else "Scenario benchmark",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 0),  # the box keeps one space between columns
    )
    for col in TERMINAL_COLUMNS:
        left = col in TERMINAL_COLUMNS[:2]
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    for r, row in zip(report["scenarios"], rows(report), strict=True):
        f, i = r["mttd_from_fault_s"], r["mttd_from_impact_s"]
        name, kind, expect, _, found, _, _, *rest = row
        table.add_row(
            name,
            f"{kind}: {expect}",
            found,
            _spread(f["median"], f["p90"], f["max"]),
            _spread(i["median"], i["p90"], i["max"]),
            *rest,
        )
    return [table, Text(_overall(report), style="bold")]
