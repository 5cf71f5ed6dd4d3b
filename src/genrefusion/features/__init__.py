"""Features: pure functions registered by name, and the on-disk feature store.

Importing this package registers every feature module's functions in ``FEATURES``.
"""

from genrefusion.features import images, musicnn, spectral, summary, text  # noqa: F401  (registration)
from genrefusion.features.registry import FEATURES, FeatureSpec, default_features, get_feature, register_feature

__all__ = ["FEATURES", "FeatureSpec", "default_features", "get_feature", "register_feature"]
