"""The decision path: window, detect, forecast, correlate, classify, estimate,
track. It reads no clock and does no I/O.

It runs in two stages so that the first can be split across workers:

- ``DetectStage`` (``models/detect_stage.py``) owns the series of one source
  (all telemetry in the embedded engine, one topic partition in the Faust
  app): it windows them, runs their detectors and forecasts, and reports
  each decided window (``models/report.py``);
- ``CorrelateStage`` (``models/correlate.py``) joins the reports of every
  source, window by window, and turns what the components show into
  incidents.

``DetectionPipeline`` chains the two in one process.

Besides anomalies, the detection stage reports slow drifts (``CreepWarning``,
against a long-run baseline) and entities that stopped reporting while the
others go on (``TelemetryGap``); both reach correlation as notes in the
window report. A drift is evidence like an anomaly, and on a user-facing
series it counts as users hurt. A gap is kept apart: it is never an outage
by itself, and a silent series keeps the state it was last known in. The
correlation stage also honours announced maintenance (``config.maintenance``):
announced components do not page and are not named root cause while their
window runs.

Each stage's learned state is snapshotted as plain data (``models/snapshot.py``).
"""

from __future__ import annotations

from models.changes import ChangeEvent
from models.config import PipelineConfig
from models.correlate import CorrelateStage
from models.detect import Anomaly
from models.detect_stage import Detected, DetectStage
from models.gaps import TelemetryGap
from models.impact import Business
from models.incident import IncidentEvent
from models.report import LatePoints, WindowReport
from models.schema import Rejection, Telemetry
from models.topology import Topology
from models.trend import CreepWarning, ExhaustionWarning

Event = Anomaly | ExhaustionWarning | CreepWarning | TelemetryGap | IncidentEvent | LatePoints


class DetectionPipeline:
    """Both stages in one process: what the embedded engine runs.

    Feed it validated telemetry in any order the watermark allows; it
    returns anomalies, warnings and incident events as windows are decided.
    """

    def __init__(
        self, topology: Topology, business: Business, config: PipelineConfig | None = None
    ) -> None:
        self.topology = topology
        self.config = config or PipelineConfig()
        self.detect = DetectStage(topology, self.config)
        self.correlate = CorrelateStage(topology, business, self.config)

    @property
    def series(self) -> int:
        return len(self.detect.monitors)

    @property
    def samples(self) -> int:
        return self.detect.samples

    @property
    def late_points(self) -> int:
        return self.detect.late_points

    def process(self, tel: Telemetry) -> list[Event] | Rejection:
        detected = self.detect.process(tel)
        return detected if isinstance(detected, Rejection) else self._chain(detected)

    def record_change(self, change: ChangeEvent) -> None:
        """A deploy, config push, flag, scaling or maintenance: evidence for
        the root-cause ranking, never an incident by itself."""
        self.correlate.record_change(change)

    def finish(self) -> list[Event]:
        return self._chain(self.detect.finish()) + self.correlate.finish()

    def _chain(self, detected: list[Detected]) -> list[Event]:
        events: list[Event] = []
        for event in detected:
            if isinstance(event, WindowReport):
                events.extend(self.correlate.add(event))
            else:
                events.append(event)
        return events
