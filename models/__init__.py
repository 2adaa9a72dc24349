"""Every decision Foreshock makes: pure, synchronous, driven by event time only."""

from models.config import PipelineConfig
from models.correlate import CorrelateStage, blast_radius, rank_root_causes
from models.detect import Anomaly, SeriesMonitor
from models.detect_bank import SurpriseBank
from models.detect_stage import DetectStage
from models.detectors import DETECTORS, Detector, SurpriseDetector
from models.evidence import Evidence, EvidenceKind, Suspect
from models.gaps import GapWatch, TelemetryGap
from models.impact import Business, Impact, ImpactMeter
from models.incident import Change, Incident, IncidentEvent, IncidentTracker, Status
from models.maintenance import MaintenanceWindow, under_maintenance
from models.pipeline import DetectionPipeline, Event
from models.report import LatePoints, Note, WindowReport
from models.schema import Rejection, Telemetry, decode, encode, validate
from models.severity import SeverityPolicy, UserImpact, classify
from models.snapshot import IncompatibleSnapshot
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
    "DETECTORS",
    "Anomaly",
    "Business",
    "Change",
    "ClosedWindow",
    "CorrelateStage",
    "CreepWarning",
    "CreepWatch",
    "DetectStage",
    "DetectionPipeline",
    "Detector",
    "Event",
    "Evidence",
    "EvidenceKind",
    "ExhaustionWarning",
    "ExhaustionWatch",
    "GapWatch",
    "Impact",
    "ImpactMeter",
    "Incident",
    "IncidentEvent",
    "IncidentTracker",
    "IncompatibleSnapshot",
    "LatePoints",
    "LatencyCreep",
    "MaintenanceWindow",
    "Node",
    "Note",
    "PipelineConfig",
    "Rejection",
    "SeriesMonitor",
    "SeverityPolicy",
    "Status",
    "SurpriseBank",
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
