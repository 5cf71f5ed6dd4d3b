"""Branch models: one per modality family, registered by name in ``BRANCHES``.

Importing this package registers every branch module.
"""

from genrefusion.models import (attention, classical, cnn, efficientnet, mlp, pretrained, recurrent, resnet,  # noqa: F401
                                sequence, tag_prior)
from genrefusion.models.registry import BRANCHES, BranchSpec, build_branch, get_branch, register_branch

__all__ = ["BRANCHES", "BranchSpec", "build_branch", "get_branch", "register_branch"]
