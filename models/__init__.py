"""Every decision Foreshock makes: pure, synchronous, driven by event time only."""

from models.correlate import Suspect, blast_radius, rank_root_causes
from models.detect import Anomaly, SeriesMonitor, SurpriseDetector
from models.gaps import GapWatch, TelemetryGap
from models.impact import Business, Impact, ImpactMeter
from models.incident import Incident, IncidentEvent, IncidentTracker
from models.maintenance import MaintenanceWindow, under_maintenance
from models.pipeline import (
    CorrelateStage,
    DetectionPipeline,
    DetectStage,
    Event,
    LatePoints,
    Note,
    PipelineConfig,
    WindowReport,
)
from models.schema import Rejection, Telemetry, decode, encode, validate
from models.severity import SeverityPolicy, UserImpact, classify
from models.topology import Node, Topology
from models.trend import (
    CreepWarning,
    CreepWatch,
    ExhaustionWarning,
    ExhaustionWatch,
    LatencyCreep,
    TimeToExhaustion,
)
from models.window import ClosedWindow, Windower

__all__ = [
    "Anomaly",
    "Business",
    "ClosedWindow",
    "CorrelateStage",
    "CreepWarning",
    "CreepWatch",
    "DetectStage",
    "DetectionPipeline",
    "Event",
    "ExhaustionWarning",
    "ExhaustionWatch",
    "GapWatch",
    "Impact",
    "ImpactMeter",
    "Incident",
    "IncidentEvent",
    "IncidentTracker",
    "LatePoints",
    "LatencyCreep",
    "MaintenanceWindow",
    "Node",
    "Note",
    "PipelineConfig",
    "Rejection",
    "SeriesMonitor",
    "SeverityPolicy",
    "SurpriseDetector",
    "Suspect",
    "Telemetry",
    "TelemetryGap",
    "TimeToExhaustion",
    "Topology",
    "UserImpact",
    "WindowReport",
    "Windower",
    "blast_radius",
    "classify",
    "decode",
    "encode",
    "rank_root_causes",
    "under_maintenance",
    "validate",
]
