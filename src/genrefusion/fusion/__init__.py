"""Fusion strategies, registered by name in ``FUSIONS``: neural heads and decision-level combiners.

Importing this package registers every strategy module.
"""

from genrefusion.fusion import coattention, decision, heads  # noqa: F401  (registration)
from genrefusion.fusion.registry import FUSIONS, FusionSpec, build_fusion, get_fusion, register_fusion

__all__ = ["FUSIONS", "FusionSpec", "build_fusion", "get_fusion", "register_fusion"]
