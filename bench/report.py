"""The benchmark report as text: a markdown file and rich tables."""

from __future__ import annotations

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


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Foreshock scenario benchmark",
        "",
        f"{len(report['scenarios'])} scenarios × {report.get('seeds', '?')} seeds, "
        "embedded engine, event time.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(report)]
    lines += ["", _overall(report), ""]
    for name, path in sorted(report.get("plots", {}).items()):
        lines.append(f"![{name}]({Path(path).name})")
    return "\n".join(lines) + "\n"


def render_tables(report: dict[str, Any]) -> list[Any]:
    """The report as rich renderables: the per-scenario table and the totals."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Scenario benchmark", title_justify="left")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("scenario", "kind", "expect") else "right")
    for row in rows(report):
        table.add_row(*row)
    return [table, Text(_overall(report), style="bold")]
