"""The registry of fusion strategies.

Every strategy takes a dict of branch outputs, ``{branch: {"embedding": (N, D_b), "logits": (N, C)}}``.

- ``neural`` strategies are ``nn.Module`` heads, ``Head(branches={name: (embedding_dim, n_classes)},
  n_classes=, **args)``, whose forward returns at least ``{"logits": (N, C)}``. They train jointly
  with the branches (end-to-end) or on frozen branches' outputs (two-stage).
- ``decision`` strategies fit on frozen branches' outputs as numpy arrays, ``fit(outputs, y)``,
  and give ``predict_proba(outputs) -> (N, C)``; they never train the branches.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any, Mapping

from genrefusion.errors import ModelError

KINDS = ("neural", "decision")


@dataclass(frozen=True)
class FusionSpec:
    name: str
    cls: type
    kind: str
    description: str
    params: Mapping[str, Any]


FUSIONS: dict[str, FusionSpec] = {}


def register_fusion(name: str, *, kind: str):
    """Class decorator: register a fusion strategy of ``kind`` "neural" or "decision"."""
    if kind not in KINDS:
        raise ModelError(f"fusion kind must be one of {KINDS}, got {kind!r}")

    def wrap(cls):
        if name in FUSIONS:
            raise ModelError(f"fusion strategy {name!r} registered twice")
        sig = inspect.signature(cls.__init__)
        params = {p.name: p.default for p in sig.parameters.values()
                  if p.kind is p.KEYWORD_ONLY and p.name not in ("branches", "n_classes") and p.default is not p.empty}
        doc = (cls.__doc__ or "").strip().splitlines()
        FUSIONS[name] = FusionSpec(name, cls, kind, doc[0] if doc else "", params)
        cls.fusion_name = name
        return cls

    return wrap


def get_fusion(name: str) -> FusionSpec:
    try:
        return FUSIONS[name]
    except KeyError:
        close = difflib.get_close_matches(name, FUSIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ModelError(f"unknown fusion strategy {name!r}{hint}; known: {', '.join(sorted(FUSIONS))}") from None


def build_fusion(name: str, *, branches: Mapping[str, tuple[int, int]], n_classes: int, **args):
    """Instantiate a strategy for branches ``{name: (embedding_dim, n_classes)}``."""
    from genrefusion.models.registry import check_args

    spec = get_fusion(name)
    check_args(name, spec.params, args, "fusion strategy")
    if not branches:
        raise ModelError(f"fusion strategy {name!r} needs at least one branch")
    wrong = {b: c for b, (_, c) in branches.items() if c != n_classes}
    if wrong:
        raise ModelError(f"fusion {name!r}: branches {sorted(wrong)} predict {sorted(set(wrong.values()))} classes, "
                         f"the task has {n_classes}")
    return spec.cls(branches=dict(branches), n_classes=n_classes, **args)
