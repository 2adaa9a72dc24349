"""Every decision Foreshock makes: pure, synchronous, driven by event time only."""

from models.correlate import Suspect, blast_radius, rank_root_causes
from models.detect import AdaptiveZScore, Anomaly, SeriesMonitor
from models.impact import Business, Impact, ImpactMeter
from models.incident import Incident, IncidentEvent, IncidentTracker
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
from models.trend import ExhaustionWarning, ExhaustionWatch, TimeToExhaustion
from models.window import ClosedWindow, Windower

__all__ = [
    "AdaptiveZScore",
    "Anomaly",
    "Business",
    "ClosedWindow",
    "CorrelateStage",
    "DetectStage",
    "DetectionPipeline",
    "Event",
    "ExhaustionWarning",
    "ExhaustionWatch",
    "Impact",
    "ImpactMeter",
    "Incident",
    "IncidentEvent",
    "IncidentTracker",
    "LatePoints",
    "Node",
    "Note",
    "PipelineConfig",
    "Rejection",
    "SeriesMonitor",
    "SeverityPolicy",
    "Suspect",
    "Telemetry",
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
    "validate",
]
