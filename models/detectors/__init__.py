"""Per-series anomaly detectors behind one contract (``base.Detector``, a
River ``SupervisedAnomalyDetector``), named here so that the pipeline's
configuration and ``foreshock bench nab --detector`` can pick one."""

from models.detectors.base import Assessment, Detector
from models.detectors.river_models import RiverDetector, river_detector
from models.detectors.surprise import SurpriseDetector

DETECTORS: dict[str, type[Detector]] = {
    "surprise": SurpriseDetector,
    **{name: river_detector(name) for name in RiverDetector.MODELS},
}

__all__ = ["DETECTORS", "Assessment", "Detector", "RiverDetector", "SurpriseDetector"]
