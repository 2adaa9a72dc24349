"""The benchmark's figures: a timeline per scenario and the MTTD distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from producers.scenario import Scenario


def write_plots(
    report: dict[str, Any],
    runs: list[dict[str, Any]],
    signals: dict[str, list[dict[str, Any]]],
    scenarios: dict[str, Scenario],
    out: Path,
) -> dict[str, str]:
    """A timeline per scenario (its key signals, seed 1) and the MTTD distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, str] = {}
    first = {r["scenario"]: r for r in runs if r["seed"] == 1}
    for name, series in sorted(signals.items()):
        sc = scenarios[name]
        run = first[name]
        fig, axes = plt.subplots(len(series), 1, figsize=(10, 1.9 * len(series) + 0.8), sharex=True)
        axes = np.atleast_1d(axes)
        origin = sc.start

        def minutes(t: float, origin: float = origin) -> float:
            return (t - origin) / 60

        for ax, s in zip(axes, series, strict=True):
            ax.plot([minutes(t) for t in s["t"]], s["v"], lw=0.8, color="tab:blue")
            ax.set_ylabel(s["label"], fontsize=7, rotation=0, ha="right", va="center")
            ax.tick_params(labelsize=7)
            for m in sc.maintenance:
                ax.axvspan(minutes(m.start), minutes(m.end), color="tab:green", alpha=0.12)
            for g in run["gaps"]:
                end = g["ended_at"] if g["ended_at"] is not None else sc.end
                ax.axvspan(minutes(g["start"]), minutes(end), color="grey", alpha=0.15)
            if sc.truth.fault_start is not None:
                ax.axvline(minutes(sc.truth.fault_start), color="red", ls="--", lw=1)
            if sc.truth.impact_start is not None:
                ax.axvline(minutes(sc.truth.impact_start), color="orange", ls="--", lw=1)
            for w in run["warnings"]:
                ax.axvline(minutes(w), color="purple", ls=":", lw=1)
            for inc in run["incidents"]:
                ax.axvline(minutes(inc["opened_at"]), color="black", lw=1.2)
        axes[-1].set_xlabel("minutes from scenario start (seed 1)")
        handles = [
            plt.Line2D([], [], color="red", ls="--", label="fault start"),
            plt.Line2D([], [], color="orange", ls="--", label="impact start"),
            plt.Line2D([], [], color="purple", ls=":", label="warning"),
            plt.Line2D([], [], color="black", label="page (incident opened)"),
        ]
        axes[0].legend(handles=handles, fontsize=6, loc="upper left", ncol=4)
        fig.suptitle(f"{name}: {sc.description}", fontsize=9)
        fig.tight_layout()
        path = out / f"timeline-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[name] = str(path)
    mttd = {
        r["name"]: [x["mttd_from_fault_s"] for x in r["runs"] if x["mttd_from_fault_s"] is not None]
        for r in report["scenarios"]
    }
    mttd = {k: v for k, v in mttd.items() if v}
    if mttd:
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(mttd) + 1.2))
        names = sorted(mttd, key=lambda n: float(np.median(mttd[n])))
        ax.boxplot([mttd[n] for n in names], orientation="horizontal", tick_labels=names)
        ax.set_xscale("symlog", linthresh=60)
        ax.set_xlabel("MTTD from fault start, s (pages; warnings and gaps for those kinds)")
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        path = out / "mttd.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths["mttd"] = str(path)
    return paths
