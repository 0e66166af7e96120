"""harborwatch detection layer, one sub-package per job (lowest first; see docs/architecture.md):
``core`` (Detection, registry, shared foundations) → ``ships``, ``trucks``, ``sar`` (detectors, their models
and training), ``counting`` (daily counts, visits, claims, AIS) → ``detectors`` (all registered),
``report`` → ``pipeline`` (the run) → ``cli``."""

from detect.core.geometry import Detection, feature_collection

__all__ = ["Detection", "feature_collection"]
