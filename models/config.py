"""The settings of the decision path (``PipelineConfig``)."""

from __future__ import annotations

from dataclasses import dataclass

from models.detectors import DETECTORS
from models.maintenance import MaintenanceWindow


@dataclass(frozen=True)
class PipelineConfig:
    window_s: float = 10.0
    lateness_s: float = 5.0
    max_ahead_s: float = 900.0  # refuse a message this far ahead of the stream's watermark
    detector: str = "surprise"  # the per-series detector, by its name in models.detectors
    # Another detector for some metrics or families: (metric or family, detector)
    # pairs; a metric's entry wins over its family's.
    detectors: tuple[tuple[str, str], ...] = ()
    # Step the surprise detectors of a window together, as arrays
    # (models/detect_bank.py); False runs one SeriesMonitor per series, with
    # the same decisions, slower (for comparing the two).
    vectorised: bool = True
    enter: float = 6.0  # anomaly score that starts an anomaly
    leave: float = 3.0  # ... and under which it calms down
    clear_windows: int = 3
    fading_factor: float = 0.02
    warm_up_windows: int = 30
    max_hold_windows: int = 2160  # relearn after 6 h of a lasting change
    horizon_s: float = 7200.0  # warn when a resource runs out within this
    trend_window_s: float = 1200.0
    page_persist_windows: int = 3  # one user-facing series alone pages after this long
    # A component user journeys depend on, failing on several metrics that
    # went wrong within this of each other, opens an incident before users
    # are hurt (SEV-4, escalated when they are).
    failing_together_s: float = 60.0
    # A failure reaches the callers of what failed within this. A caller that
    # goes wrong later, just after another of its dependencies did, which
    # failed this long after the first, fails because of that one.
    cascade_s: float = 60.0
    # The part of a window delivered so far may raise an open incident's SEV
    # from a user-facing series losing at least this share of its users.
    early_loss_floor: float = 0.02
    resolve_after_s: float = 600.0
    reopen_within_s: float = 1800.0
    gap_after_s: float = 60.0  # an entity silent this long while others report is a gap
    creep_rel: float = 0.5  # a drift of this share of the long-run baseline is a creep
    creep_confirm_windows: int = 30  # ... when it lasts this long
    creep_warm_up_windows: int = 180
    creep_fast: float = 1 / 30  # weight of a window in the recent level (5 min)
    creep_slow: float = 1 / 720  # ... and in the long-run baseline (2 h)
    # A change on a component this long before its first symptom may have caused it.
    change_lead_s: float = 1800.0
    # Announced maintenance: these components do not page during their window.
    maintenance: tuple[MaintenanceWindow, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted({self.detector, *(d for _, d in self.detectors)} - DETECTORS.keys())
        if unknown:
            raise ValueError(
                f"no detector {', '.join(unknown)}; registered: {', '.join(sorted(DETECTORS))}"
            )

    def detector_for(self, family: str, metric: str) -> str:
        """The detector that watches ``metric`` of an entity of ``family``.

        >>> cfg = PipelineConfig(detectors=(("redis", "river-sad"), ("latency_p99_ms", "surprise")))
        >>> cfg.detector_for("redis", "ops_per_s"), cfg.detector_for("redis", "latency_p99_ms")
        ('river-sad', 'surprise')
        >>> cfg.detector_for("pods", "error_rate")
        'surprise'
        """
        chosen = dict(self.detectors)
        return chosen.get(metric, chosen.get(family, self.detector))
