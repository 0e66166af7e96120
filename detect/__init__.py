"""harborwatch detection layer: models, inference, aggregation into daily counts, pipeline and CLI."""

from detect.core.geometry import Detection, feature_collection

__all__ = ["Detection", "feature_collection"]
