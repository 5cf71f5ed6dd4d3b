"""The registry of branches: name -> model class, the input it takes, and its family.

Every branch is built the same way, ``build_branch(name, n_classes=, in_shape=, **args)``, and
returns ``{"embedding": (batch, embedding_dim), "logits": (batch, n_classes)}`` from its forward
pass. ``in_shape`` is one input's per-example shape (``(channels, n_bins, n_frames)`` for a
matrix, ``(n_features,)`` for a vector, ``(1, n_samples)`` for a waveform), or a dict of them for
branches that read several inputs at once (the multi-spectral CNNs).

Families: ``neural`` branches are ``nn.Module``s trained by the trainer; ``classical`` ones
follow scikit-learn's ``fit``/``predict_proba`` on vectors (see :mod:`genrefusion.models.classical`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from genrefusion.errors import ModelError
from genrefusion.registries import check_args, first_doc_line, keyword_defaults, lookup, register

#: What an input looks like to a branch, by its number of per-example dimensions.
INPUT_RANKS = {"vector": 1, "waveform": 2, "matrix": 3, "text": 1}


@dataclass(frozen=True)
class BranchSpec:
    name: str
    cls: type
    input: str  # "vector", "matrix" or "waveform"
    family: str  # "neural" or "classical"
    multi_input: bool  # reads a dict of named inputs
    description: str
    params: Mapping[str, Any]  # constructor keyword defaults (its hyper-parameters)


BRANCHES: dict[str, BranchSpec] = {}


def register_branch(name: str, *, input: str, family: str = "neural", multi_input: bool = False):
    """Class decorator: register a branch whose constructor takes ``n_classes``, ``in_shape`` and keywords."""
    if input not in INPUT_RANKS:
        raise ModelError(f"branch input must be one of {sorted(INPUT_RANKS)}, got {input!r}")

    def wrap(cls):
        params = keyword_defaults(cls.__init__, exclude=("n_classes", "in_shape"))
        register(BRANCHES, name, BranchSpec(name, cls, input, family, multi_input, first_doc_line(cls), params), "branch",
                 ModelError)
        cls.branch_name = name
        return cls

    return wrap


def get_branch(name: str) -> BranchSpec:
    return lookup(BRANCHES, name, "branch model", ModelError)


def build_branch(name: str, *, n_classes: int, in_shape, **args):
    """Instantiate a registered branch, checking its arguments and its input's rank first."""
    spec = get_branch(name)
    check_args(name, spec.params, args, "branch", ModelError)
    shapes = in_shape.values() if isinstance(in_shape, Mapping) else [in_shape]
    if spec.multi_input != isinstance(in_shape, Mapping):
        raise ModelError(f"branch {name!r} takes {'several named inputs' if spec.multi_input else 'one input'}")
    for shape in shapes:
        if len(tuple(shape)) != INPUT_RANKS[spec.input]:
            raise ModelError(f"branch {name!r} takes {spec.input} input of rank {INPUT_RANKS[spec.input]} "
                             f"per example, got shape {tuple(shape)}")
    if n_classes < 2:
        raise ModelError(f"branch {name!r} needs at least 2 classes, got {n_classes}")
    return spec.cls(n_classes=n_classes, in_shape=in_shape, **args)
