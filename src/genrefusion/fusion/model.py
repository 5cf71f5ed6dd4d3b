"""Composed models, named stages: input stages -> branches -> fusion.

The model core: every trained model is a :class:`Model`, and only this module tells its kinds apart.
:class:`FusionModel` is the end-to-end network (every branch neural, a neural head or a single
branch). :class:`FrozenFusion` holds separately trained branches (neural or classical) and a
fusion strategy fitted on their outputs on other tracks (two-stage). Both keep one contract:
``predict(batch) -> (probabilities (N, C), {branch: (N, C)})``, ``networks()`` (the torch networks by
name: what ONNX export writes and a bundle's weights hold), ``with_networks(stand_ins)`` (the same
model over other networks, e.g. ONNX graphs), and ``to_bundle``/:func:`model_from_bundle`, which
:mod:`genrefusion.bundle` uses to write and rebuild them without the training code. A frozen model's
branches keep one runner contract too: ``family`` (``"neural"`` or ``"classical"``) and
``branch_output(batch, inputs)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genrefusion.bundle import InputSpec
from genrefusion.errors import ModelError
from genrefusion.fusion.registry import build_fusion, get_fusion
from genrefusion.models.estimators import softmax
from genrefusion.models.layers import resize_height
from genrefusion.models.registry import build_branch, get_branch

LAYOUT_INPUT = {"vector": "vector", "frames": "matrix", "image": "matrix", "waveform": "waveform", "text": "text",
                "sequence": "matrix"}


class InputStage(nn.Module):
    """Standardise one input with training-set statistics, then optionally resize and repeat channels.

    Statistics are per feature for vectors, per (channel, bin) row for spectrograms and images, and
    global for waveforms; they are buffers, so they travel with the weights.
    """

    def __init__(self, *, layout: str, shape: tuple[int, ...], resize: list[int] | None = None,
                 channels: int | None = None, standardize: bool = True):
        super().__init__()
        self.layout, self.shape, self.standardize = layout, tuple(shape), standardize
        self.resize = list(resize) if resize else None
        self.channels = channels
        if layout == "vector":
            stat_shape = tuple(shape)
        elif layout == "waveform":
            stat_shape = (1, 1)
        else:
            stat_shape = (shape[0], shape[1], 1)
        self.register_buffer("mean", torch.zeros(stat_shape))
        self.register_buffer("std", torch.ones(stat_shape))

    def fit(self, arrays: list[np.ndarray]) -> "InputStage":
        """Mean and std over the training tracks' whole arrays (float64 sums); nothing for raw inputs."""
        if not self.standardize:
            return self
        if self.layout == "vector":
            x = np.stack([np.asarray(a, np.float64) for a in arrays])
            mean, std = x.mean(0), x.std(0)
        else:
            s1 = s2 = 0.0
            n = 0
            for a in arrays:
                m = np.asarray(a, np.float64)
                m = m.reshape(1, 1, -1) if self.layout == "waveform" else (m[None] if m.ndim == 2 else m)
                s1, s2, n = s1 + m.sum(-1), s2 + (m * m).sum(-1), n + m.shape[-1]
            mean = s1 / n
            std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(self.mean.shape))
        self.std.copy_(torch.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32).reshape(self.std.shape))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if self.resize:
            x = F.interpolate(x, size=tuple(self.resize), mode="bilinear", align_corners=False)
        if self.channels and x.shape[1] != self.channels:
            x = x.repeat(1, self.channels // x.shape[1], *([1] * (x.ndim - 2)))
        return x

    def out_shape(self) -> tuple[int, ...]:
        shape = list(self.shape)
        if self.resize:
            shape[-2:] = self.resize
        if self.channels:
            shape[0] = self.channels
        return tuple(shape)


def combine(tensors: list[torch.Tensor], layout: str) -> torch.Tensor:
    """Early fusion of inputs: vectors concatenated; spectrograms resized to the first one's height,
    cropped to the shortest, stacked as channels."""
    if len(tensors) == 1:
        return tensors[0]
    if layout == "vector":
        return torch.cat([t.flatten(1) for t in tensors], dim=1)
    width = min(t.shape[-1] for t in tensors)
    height = tensors[0].shape[-2]
    return torch.cat([resize_height(t[..., :width], height) for t in tensors], dim=1)


def combined_shape(shapes: list[tuple[int, ...]], layout: str) -> tuple[int, ...]:
    if len(shapes) == 1:
        return shapes[0]
    if layout == "vector":
        return (sum(int(np.prod(s)) for s in shapes),)
    return (sum(s[0] for s in shapes), shapes[0][1], min(s[-1] for s in shapes))


class Model(Protocol):
    """What every trained model does (:class:`FusionModel`, :class:`FrozenFusion`)."""

    n_classes: int

    def predict(self, x: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, dict[str, np.ndarray]]: ...
    def predict_proba(self, x: Mapping[str, torch.Tensor]) -> np.ndarray: ...
    def networks(self) -> dict[str, "FusionModel"]: ...
    def with_networks(self, nets: Mapping[str, Any]) -> Any: ...
    def to_bundle(self, weights: dict, keep: "Keep") -> dict: ...


#: ``keep(part, key) -> entry``: how a bundle stores a fitted classical branch or decision fusion (its arrays or
#: its scikit-learn object); ``restore(entry, key, build) -> part`` gives it back (:mod:`genrefusion.bundle`)
Keep = Callable[[Any, str], dict]
Restore = Callable[[dict, str, Callable[[], Any]], Any]


class FusionModel(nn.Module):
    """End-to-end model: ``stages`` (one per input) -> ``branches`` -> ``head`` (None: the single branch decides).

    ``inputs``: ``{name: {"layout", "shape", "resize", "channels"}}``; ``branches``:
    ``{name: {"model", "inputs", "args"}}``; ``fusion``: ``{"strategy", "args"}`` or None.
    """

    family = "neural"  # as a branch of a frozen model: a one-branch network

    def __init__(self, *, n_classes: int, inputs: Mapping[str, Mapping[str, Any]],
                 branches: Mapping[str, Mapping[str, Any]], fusion: Mapping[str, Any] | None = None):
        super().__init__()
        self._spec = {"n_classes": n_classes, "inputs": {k: dict(v) for k, v in inputs.items()},
                      "branches": {k: dict(v) for k, v in branches.items()}, "fusion": dict(fusion) if fusion else None}
        self.n_classes = n_classes
        # inputs of pretrained branches reach them as the network was trained on them
        raw = {i for b in branches.values() if getattr(get_branch(b["model"]).cls, "raw_input", False) for i in b["inputs"]}
        self.stages = nn.ModuleDict({n: InputStage(layout=i["layout"], shape=tuple(i["shape"]), resize=i.get("resize"),
                                                   channels=i.get("channels"), standardize=n not in raw)
                                     for n, i in inputs.items()})
        self.branch_inputs = {n: list(b["inputs"]) for n, b in branches.items()}
        mods, dims = {}, {}
        for name, b in branches.items():
            spec = get_branch(b["model"])
            if spec.family != "neural":
                raise ModelError(f"branch {name!r} ({b['model']}) is {spec.family}: it can only be fused frozen "
                                 f"(fusion.mode: frozen)")
            layouts = {inputs[i]["layout"] for i in b["inputs"]}
            if len(layouts) > 1:
                raise ModelError(f"branch {name!r} mixes input layouts {sorted(layouts)}; early fusion needs one kind")
            layout = layouts.pop()
            if LAYOUT_INPUT[layout] != spec.input:
                raise ModelError(f"branch {name!r} ({b['model']}) takes {spec.input} input, but its input(s) "
                                 f"{b['inputs']} are {layout}")
            shapes = {i: self.stages[i].out_shape() for i in b["inputs"]}
            in_shape = shapes if spec.multi_input else combined_shape(list(shapes.values()), layout)
            mods[name] = build_branch(b["model"], n_classes=n_classes, in_shape=in_shape, **b.get("args", {}))
            dims[name] = (mods[name].embedding_dim, n_classes, getattr(mods[name], "sequence_dim", 0))
        # 2-D convolutions in channels-last memory order: on CPU ~2x faster to train (EfficientNet-Lite0,
        # the image CNN) and to run; the values are the same up to float rounding
        self.channels_last = {n: any(isinstance(m, nn.Conv2d) for m in mod.modules()) for n, mod in mods.items()}
        for name, mod in mods.items():
            if self.channels_last[name]:
                mod.to(memory_format=torch.channels_last)
        self.branches = nn.ModuleDict(mods)
        self.multi = {n: get_branch(b["model"]).multi_input for n, b in branches.items()}
        self.layouts = {n: inputs[b["inputs"][0]]["layout"] for n, b in branches.items()}
        if fusion is None:
            if len(branches) != 1:
                raise ModelError(f"{len(branches)} branches need a fusion strategy")
            self.head = None
        else:
            if get_fusion(fusion["strategy"]).kind != "neural":
                raise ModelError(f"fusion {fusion['strategy']!r} is decision-level: it fuses frozen branches "
                                 f"(fusion.mode: frozen), it cannot be trained end to end")
            self.head = build_fusion(fusion["strategy"], branches=dims, n_classes=n_classes, **fusion.get("args", {}))

    def spec(self) -> dict:
        return self._spec

    def fit_inputs(self, arrays: Mapping[str, list[np.ndarray]]) -> None:
        for n, stage in self.stages.items():
            stage.fit(arrays[n])

    def branch_outputs(self, x: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        z = {n: stage(x[n]) for n, stage in self.stages.items()}
        return {name: self._branch(name, z) for name in self.branches}

    def run_branch(self, name: str, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Branch ``name`` alone on a batch (its inputs' stages, then the branch)."""
        return self._branch(name, {i: self.stages[i](x[i]) for i in self.branch_inputs[name]})

    def _branch(self, name: str, z: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        names = self.branch_inputs[name]
        arg = {i: z[i] for i in names} if self.multi[name] else combine([z[i] for i in names], self.layouts[name])
        if self.channels_last[name]:
            arg = {i: _channels_last(t) for i, t in arg.items()} if self.multi[name] else _channels_last(arg)
        return self.branches[name](arg)

    def forward(self, x: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        outs = self.branch_outputs(x)
        if self.head is None:
            return {"logits": next(iter(outs.values()))["logits"], "branches": outs}
        fused = self.head(outs)
        return {**fused, "branches": outs}

    @torch.no_grad()
    def predict(self, x: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Fused ``(N, C)`` probabilities and each branch's own, from one forward pass."""
        out = _in_eval_mode(self)(x)
        return softmax(out["logits"]), {n: softmax(o["logits"]) for n, o in out["branches"].items()}

    def predict_proba(self, x: Mapping[str, torch.Tensor]) -> np.ndarray:
        return self.predict(x)[0]

    @torch.no_grad()
    def branch_output(self, x: Mapping[str, torch.Tensor], inputs: list[str]) -> dict[str, torch.Tensor]:
        """As a frozen model's branch (a one-branch network): its branch's outputs on a batch."""
        return _in_eval_mode(self)(x)["branches"][next(iter(self.branches))]

    def networks(self) -> dict[str, "FusionModel"]:
        return {"model": self}

    def with_networks(self, nets: Mapping[str, Any]) -> Any:
        return nets.get("model", self)

    def to_bundle(self, weights: dict, keep: Keep) -> dict:
        weights["model"] = self.state_dict()
        return {"type": "joint", "spec": self.spec()}

    @classmethod
    def from_bundle(cls, entry: dict, *, n_classes: int, weights: dict, restore: Restore) -> "FusionModel":
        return _loaded(cls(**_no_initial_weights(entry["spec"])), weights["model"])


def _in_eval_mode(module):
    """``module`` switched to eval mode if it is training. ``.eval()`` walks every submodule (~1 ms
    per clip for the default model's three networks, measured), and prediction calls this for each
    clip; train()/eval() set a whole tree at once, so the root's flag tells."""
    if getattr(module, "training", False):
        module.eval()
    return module


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


class FrozenFusion:
    """Two-stage model: each branch trained alone (a one-branch :class:`FusionModel`, or a classical
    branch on a vector input), then ``fusion`` fitted on their outputs for other tracks.

    ``fusion`` is a neural head or a decision strategy object, as the fusion registry declares its strategy
    (``fusion_spec["strategy"]``); None: a single branch decides.
    """

    def __init__(self, *, n_classes: int, branches: Mapping[str, Any], branch_inputs: Mapping[str, list[str]],
                 fusion: Any, fusion_spec: Mapping[str, Any], fusion_dims: Mapping[str, tuple[int, int]] | None = None):
        self.n_classes, self.branches, self.branch_inputs = n_classes, dict(branches), dict(branch_inputs)
        self.fusion, self.fusion_spec, self.fusion_dims = fusion, dict(fusion_spec), dict(fusion_dims or {})
        self.fusion_kind = get_fusion(self.fusion_spec["strategy"]).kind if fusion is not None else None

    @torch.no_grad()
    def branch_outputs(self, x: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
        return {name: self.run_branch(name, x) for name in self.branches}

    @torch.no_grad()
    def run_branch(self, name: str, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Branch ``name`` alone on a batch."""
        return self.branches[name].branch_output(x, self.branch_inputs[name])

    @torch.no_grad()
    def predict(self, x: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Fused ``(N, C)`` probabilities and each branch's own."""
        outs = self.branch_outputs(x)
        alone = {n: softmax(o["logits"]) for n, o in outs.items()}
        if self.fusion is None:  # a single branch decides
            return next(iter(alone.values())), alone
        if self.fusion_kind == "neural":
            return softmax(_in_eval_mode(self.fusion)(outs)["logits"]), alone
        return self.fusion.predict_proba({n: {k: v.numpy() for k, v in o.items()} for n, o in outs.items()}), alone

    def predict_proba(self, x: Mapping[str, torch.Tensor]) -> np.ndarray:
        return self.predict(x)[0]

    def networks(self) -> dict[str, FusionModel]:
        """The neural branches (each a one-branch network); a neural fusion head is saved with the bundle but
        runs in torch."""
        return {n: b for n, b in self.branches.items() if b.family == "neural"}

    def with_networks(self, nets: Mapping[str, Any]) -> "FrozenFusion":
        return FrozenFusion(n_classes=self.n_classes, branches={n: nets.get(n, b) for n, b in self.branches.items()},
                            branch_inputs=self.branch_inputs, fusion=self.fusion, fusion_spec=self.fusion_spec,
                            fusion_dims=self.fusion_dims)

    def to_bundle(self, weights: dict, keep: Keep) -> dict:
        branches = {}
        for name, b in self.branches.items():
            if b.family == "neural":
                branches[name] = {"type": "neural", "spec": b.spec()}
                weights[f"branch/{name}"] = b.state_dict()
            else:
                branches[name] = {"type": "classical", "model": b.branch_name, "params": b.params,
                                  "in_shape": list(b.in_shape), **keep(b, f"branch/{name}")}
        fusion: dict = {"type": None}
        if self.fusion_kind == "neural":
            fusion = {"type": "neural", **self.fusion_spec, "dims": {n: list(d) for n, d in self.fusion_dims.items()}}
            weights["fusion"] = self.fusion.state_dict()
        elif self.fusion is not None:
            fusion = {"type": "decision", **self.fusion_spec, "branches": list(self.fusion.names),
                      **keep(self.fusion, "fusion")}
        return {"type": "frozen", "branches": branches, "branch_inputs": self.branch_inputs, "fusion": fusion}

    @classmethod
    def from_bundle(cls, entry: dict, *, n_classes: int, weights: dict, restore: Restore) -> "FrozenFusion":
        def branch(n: str, b: dict):
            if b["type"] == "neural":
                return FusionModel.from_bundle(b, n_classes=n_classes, weights={"model": weights[f"branch/{n}"]},
                                               restore=restore)
            return restore(b, f"branch/{n}", lambda: build_branch(b["model"], n_classes=n_classes,
                                                                  in_shape=tuple(b["in_shape"]), **b["params"]))

        branches = {n: branch(n, b) for n, b in entry["branches"].items()}
        f = entry["fusion"]
        fusion = None
        if f["type"] == "neural":
            dims = {n: tuple(d) for n, d in f["dims"].items()}
            fusion = _loaded(build_fusion(f["strategy"], branches=dims, n_classes=n_classes, **f["args"]),
                             weights["fusion"])
        elif f["type"] == "decision":
            fusion = restore(f, "fusion", lambda: build_fusion(
                f["strategy"], branches={n: (0, n_classes) for n in f.get("branches", entry["branches"])},
                n_classes=n_classes, **f["args"]))
        return cls(n_classes=n_classes, branches=branches, branch_inputs=entry["branch_inputs"], fusion=fusion,
                   fusion_spec={k: f[k] for k in ("strategy", "args")} if f["type"] else {},
                   fusion_dims={n: tuple(d) for n, d in f.get("dims", {}).items()})


@dataclass
class Fitted:
    """A trained model with what it needs to predict: labels, inputs and windows (``training``: how each of its
    networks trained, by name; empty for a model read from a bundle)."""

    model: Model
    labels: list[str]
    windowing: Any  # genrefusion.track_data.Windowing
    inputs: dict[str, InputSpec]
    training: dict[str, Any] = field(default_factory=dict)


#: how a bundle's ``model.type`` is rebuilt
MODEL_TYPES: dict[str, Callable[..., Model]] = {"joint": FusionModel.from_bundle, "frozen": FrozenFusion.from_bundle}


def model_from_bundle(entry: dict, *, n_classes: int, weights: dict, restore: Restore) -> Model:
    """The model a bundle's ``model`` entry describes (:data:`MODEL_TYPES`), with its weights and fitted parts."""
    if entry.get("type") not in MODEL_TYPES:
        raise ModelError(f"unknown model type {entry.get('type')!r} in the bundle; known: {', '.join(MODEL_TYPES)}")
    return MODEL_TYPES[entry["type"]](entry, n_classes=n_classes, weights=weights, restore=restore)


def _no_initial_weights(net_spec: dict) -> dict:
    """The network spec with ``pretrained=False`` for branches that take it: the bundle's weights replace
    the initial (e.g. ImageNet) ones, which need not be read, nor their package installed."""
    import copy

    out = copy.deepcopy(net_spec)
    for b in out["branches"].values():
        if "pretrained" in get_branch(b["model"]).params:
            b.setdefault("args", {})["pretrained"] = False
    return out


def _loaded(module: nn.Module, state: dict) -> nn.Module:
    module.load_state_dict(state)
    return module.eval()
