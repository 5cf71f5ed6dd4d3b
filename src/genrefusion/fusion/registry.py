"""The registry of fusion strategies.

Every strategy takes a dict of branch outputs, ``{branch: {"embedding": (N, D_b), "logits": (N, C)}}``.

- ``neural`` strategies are ``nn.Module`` heads, ``Head(branches={name: (embedding_dim, n_classes[, sequence_dim])},
  n_classes=, **args)``, whose forward returns at least ``{"logits": (N, C)}``. They train jointly
  with the branches (end-to-end) or on frozen branches' outputs (two-stage).
- ``decision`` strategies fit on frozen branches' outputs as numpy arrays, ``fit(outputs, y)``,
  and give ``predict_proba(outputs) -> (N, C)``; they never train the branches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from genrefusion.errors import ModelError
from genrefusion.registries import check_args, first_doc_line, keyword_defaults, lookup, register

KINDS = ("neural", "decision")


@dataclass(frozen=True)
class FusionSpec:
    name: str
    cls: type
    kind: str
    description: str
    params: Mapping[str, Any]

    @property
    def learns(self) -> bool:
        """Whether fitting learns from branch outputs (a neural head, weights, a stacker). Mean, product
        and vote learn nothing, so they need no tracks held out from the branches."""
        return self.kind == "neural" or self.cls.learns()


FUSIONS: dict[str, FusionSpec] = {}


def register_fusion(name: str, *, kind: str):
    """Class decorator: register a fusion strategy of ``kind`` "neural" or "decision"."""
    if kind not in KINDS:
        raise ModelError(f"fusion kind must be one of {KINDS}, got {kind!r}")

    def wrap(cls):
        params = keyword_defaults(cls.__init__, exclude=("branches", "n_classes"))
        register(FUSIONS, name, FusionSpec(name, cls, kind, first_doc_line(cls), params), "fusion strategy", ModelError)
        cls.fusion_name = name
        return cls

    return wrap


def get_fusion(name: str) -> FusionSpec:
    return lookup(FUSIONS, name, "fusion strategy", ModelError)


def build_fusion(name: str, *, branches: Mapping[str, tuple[int, ...]], n_classes: int, **args):
    """Instantiate a strategy for branches ``{name: (embedding_dim, n_classes[, sequence_dim])}``
    (``sequence_dim``: the width of the branch's ``"sequence"`` output, where it has one)."""
    spec = get_fusion(name)
    check_args(name, spec.params, args, "fusion strategy", ModelError)
    if not branches:
        raise ModelError(f"fusion strategy {name!r} needs at least one branch")
    wrong = {b: d[1] for b, d in branches.items() if d[1] != n_classes}
    if wrong:
        raise ModelError(f"fusion {name!r}: branches {sorted(wrong)} predict {sorted(set(wrong.values()))} classes, "
                         f"the task has {n_classes}")
    return spec.cls(branches=dict(branches), n_classes=n_classes, **args)
