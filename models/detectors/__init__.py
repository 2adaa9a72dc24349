"""Per-series anomaly detectors behind one contract (``base.Detector``),
named here so that ``PipelineConfig.detector`` can pick one."""

from models.detectors.base import Detector
from models.detectors.surprise import SurpriseDetector

DETECTORS: dict[str, type[Detector]] = {"surprise": SurpriseDetector}

__all__ = ["DETECTORS", "Detector", "SurpriseDetector"]
