"""Fit the model a run config describes on given tracks, and predict with it.

Three shapes of model, chosen by the config (no string ladders: the branch and fusion registries
say what each name is):

- one branch, no fusion: a neural branch trained on windows, or a classical one fitted on vectors;
- ``fusion.mode: joint``: every branch and a neural fusion head trained end to end, each branch
  also learning from its own loss (``train.aux_weight``);
- ``fusion.mode: frozen`` (two-stage): each branch trained alone on ``train``; the fusion (a
  neural head or a decision-level strategy) then fitted on the branches' outputs for *other*
  tracks (``fusion_part``), so it learns how far to trust each branch on unseen music. With
  ``fusion.cross_fit: k`` (classical branches) those outputs are out-of-fold ones for every
  training track instead, and the branches are refitted on all of them. Mean, product and vote learn
  nothing, so over classical branches they need neither: those branches train on every training track.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from genrefusion.config import RunConfig, TrainConfig, build_section
from genrefusion.errors import ConfigError, ModelError
from genrefusion.evaluation.metrics import aggregate
from genrefusion.features.registry import get_feature
from genrefusion.file_lock import LockBusy, exclusive
from genrefusion.bundle import AudioSource, InputSpec
from genrefusion.fusion.model import LAYOUT_INPUT, Fitted, FrozenFusion, FusionModel
from genrefusion.fusion.registry import build_fusion, get_fusion
from genrefusion.models.registry import build_branch, get_branch
from genrefusion.registries import check_args
from genrefusion.splits import inner_folds
from genrefusion.track_data import EVAL_BATCH, TrackData, Windowing, batches, predict_windows
from genrefusion.training.trainer import Trainer, TrainResult, Validation



class BranchBusy(Exception):
    """A cached branch this fit needs is being trained by another process, and the caller (inside
    :func:`defer_busy_branches`) would rather do other work first than wait for it."""


_DEFER_BUSY: ContextVar[bool] = ContextVar("defer_busy_branches", default=False)


@contextmanager
def defer_busy_branches() -> Iterator[None]:
    """In the block, a fit that needs a cached branch another process is training raises
    :class:`BranchBusy` instead of waiting for it."""
    token = _DEFER_BUSY.set(True)
    try:
        yield
    finally:
        _DEFER_BUSY.reset(token)


def input_meta(cfg: RunConfig, data: TrackData, windowing: Windowing) -> dict[str, InputSpec]:
    """What each input is, for model construction and for the bundle (``audio``: how to compute it
    from audio, or None where it cannot be)."""
    return {n: InputSpec(d.feature, d.layout, d.fps, tuple(d.example_shape(windowing.window_s)), d.spec,
                         audio_source(cfg, n, d.spec), cfg.inputs[n].resize, cfg.inputs[n].channels,
                         cfg.inputs[n].seconds) for n, d in data.inputs.items()}


def audio_source(cfg: RunConfig, name: str, stored_spec: dict) -> AudioSource | None:
    """How input ``name`` is computed from a signal, or None; ``eval.predict_params`` set where the feature
    takes them."""
    inp = cfg.inputs[name]
    spec = get_feature(inp.feature)
    if spec.input == "audio":
        feature, params = inp.feature, dict(stored_spec.get("params", {}))
    elif inp.audio_feature:
        feature, params = inp.audio_feature, get_feature(inp.audio_feature).resolve(inp.audio_params)
    elif spec.audio_twin:  # the same array from audio; the parameters both take carry over
        twin = get_feature(spec.audio_twin)
        stored = stored_spec.get("params", {})
        feature, params = twin.name, twin.resolve({k: v for k, v in stored.items() if k in twin.params})
    else:
        return None
    takes = get_feature(feature).params
    return AudioSource(feature, {**params, **{k: v for k, v in cfg.eval.predict_params.items() if k in takes}},
                       cfg.data.sr)


class WindowSource:
    """Random windows of every training track each epoch; struggling classes may get more (hyper-dynamic)."""

    def __init__(self, data: TrackData, windowing: Windowing, cfg: TrainConfig):
        self.data, self.windowing, self.cfg = data, windowing, cfg

    def epoch_batches(self, rng, class_boost):
        per_track = np.maximum(1, np.round(self.cfg.windows_per_track * class_boost[self.data.y])).astype(int)
        windows = self.windowing.random_windows(self.data, rng, per_track)
        for x, y, _ in batches(self.data, windows, self.windowing.window_s, self.cfg.batch_size):
            yield x, y


class WindowValidation:
    """Window-level loss and track-level accuracy (windows aggregated) on validation tracks."""

    def __init__(self, data: TrackData, windowing: Windowing, how: str):
        self.data, self.windowing, self.how = data, windowing, how
        self.windows = windowing.eval_windows(data)

    def evaluate(self, model) -> Validation:
        p, idx = predict_windows(model, self.data, self.windowing, windows=self.windows)
        return _validation(p, idx, self.data.y, len(self.data.labels), self.how)


def _validation(p, idx, y_tracks, n_classes, how) -> Validation:
    y_win = y_tracks[idx]
    loss = float(-np.log(np.clip(p[np.arange(len(p)), y_win], 1e-12, None)).mean())
    tp = aggregate(p, idx, len(y_tracks), how)
    pred = tp.argmax(1)
    per_class = np.array([(pred[y_tracks == c] == c).mean() if np.any(y_tracks == c) else 1.0 for c in range(n_classes)])
    return Validation(loss, float((pred == y_tracks).mean()), per_class)


class OutputSource:
    """Precomputed branch outputs of windows, for training a fusion head on frozen branches."""

    def __init__(self, outputs: dict[str, dict[str, torch.Tensor]], y: np.ndarray, batch_size: int):
        self.outputs, self.y, self.batch_size = outputs, torch.as_tensor(y), batch_size

    def epoch_batches(self, rng, class_boost):
        order = torch.from_numpy(rng.permutation(len(self.y)))
        for s in range(0, len(order), self.batch_size):
            i = order[s:s + self.batch_size]
            yield {b: {k: v[i] for k, v in o.items()} for b, o in self.outputs.items()}, self.y[i]


class OutputValidation:
    def __init__(self, outputs, idx, y_tracks, n_classes, how):
        self.outputs, self.idx, self.y_tracks, self.n_classes, self.how = outputs, idx, y_tracks, n_classes, how

    @torch.no_grad()
    def evaluate(self, head) -> Validation:
        head.eval()
        p = torch.softmax(head(self.outputs)["logits"], 1).double().numpy()
        return _validation(p, self.idx, self.y_tracks, self.n_classes, self.how)


def validate_config(cfg: RunConfig) -> None:
    """Every name and combination checked against the registries, once, before any data is read or model trained
    (types, choices and ranges were checked when the config was loaded: :mod:`genrefusion.config`)."""
    if not cfg.branches:
        raise ConfigError("the config has no branches")
    if cfg.eval.predict_params:
        from genrefusion.features.registry import FEATURES

        names = {f for i in cfg.inputs.values() for f in (i.feature, i.audio_feature) if f}
        taken = {k for f in names if f in FEATURES for k in FEATURES[f].params}
        unused = sorted(set(cfg.eval.predict_params) - taken)
        if unused:
            raise ConfigError(f"eval.predict_params {unused}: no input's feature takes them")
    for name, b in cfg.branches.items():
        try:
            spec = get_branch(b.model)
        except ModelError as err:
            raise ConfigError(f"branches.{name}: {err}") from None
        try:
            check_args(b.model, spec.params, b.args, "branch", ModelError)
        except ModelError as err:
            raise ConfigError(f"branches.{name}: {err}") from None
        if "labels" in spec.params and "labels" in b.args:
            raise ConfigError(f"branches.{name}.args.labels: {b.model!r} is given the run's labels; remove it")
        _check_layouts(cfg, name, spec)
        _check_train_keys(b.train, f"branches.{name}.train")
    if cfg.fusion is None:
        if len(cfg.branches) != 1:
            raise ConfigError(f"{len(cfg.branches)} branches but no fusion: add a 'fusion' section")
        return
    try:
        fspec = get_fusion(cfg.fusion.strategy)
        check_args(cfg.fusion.strategy, fspec.params, cfg.fusion.args, "fusion strategy", ModelError)
    except ModelError as err:
        raise ConfigError(f"fusion: {err}") from None
    if cfg.fusion.cross_fit:
        neural = [n for n, b in cfg.branches.items() if get_branch(b.model).family == "neural"]
        if cfg.fusion.cross_fit < 2 or cfg.fusion.mode != "frozen" or neural:
            raise ConfigError(f"fusion.cross_fit: {cfg.fusion.cross_fit} needs at least 2 folds, fusion.mode: frozen and "
                              f"classical branches only (it refits every branch once per fold; neural: {neural})")
        if not fspec.learns:
            raise ConfigError(f"fusion.cross_fit: {cfg.fusion.strategy!r} learns nothing from branch outputs, so there is "
                              f"nothing to cross-fit; without cross_fit its classical branches train on every training track")
    _check_train_keys(cfg.fusion.train, "fusion.train")
    if cfg.fusion.train and (cfg.fusion.mode != "frozen" or fspec.kind != "neural"):
        raise ConfigError(f"fusion.train sets the training of a neural head fitted on frozen branches; {cfg.fusion.strategy!r} "
                          f"in mode {cfg.fusion.mode!r} has no such head (joint fusion trains with the run's 'train' section)")
    if cfg.fusion.mode == "joint":
        if fspec.kind == "decision":
            raise ConfigError(f"fusion {cfg.fusion.strategy!r} is decision-level: use fusion.mode: frozen")
        classical = [n for n, b in cfg.branches.items() if get_branch(b.model).family != "neural"]
        if classical:
            raise ConfigError(f"classical branches {classical} cannot train end to end: use fusion.mode: frozen")
        own = [n for n, b in cfg.branches.items() if b.train]
        if own:
            raise ConfigError(f"branches {own} set their own 'train' but joint fusion trains all branches together: "
                              "set them in the run's 'train' section or use fusion.mode: frozen")


def _check_train_keys(overrides: dict, where: str) -> None:
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"{where}: unknown training setting(s) {sorted(unknown)}")


def _check_layouts(cfg: RunConfig, name: str, spec) -> None:
    """A branch's inputs must be of the kind it reads (known from the feature registry, before extraction)."""
    from genrefusion.features.registry import FEATURES

    layouts = {i: FEATURES[cfg.inputs[i].feature].layout for i in cfg.branches[name].inputs
               if i in cfg.inputs and cfg.inputs[i].feature in FEATURES}
    kinds = {LAYOUT_INPUT[v] for v in layouts.values()}
    if len(kinds) > 1:
        raise ConfigError(f"branches.{name} mixes inputs of different kinds {layouts}; early fusion joins one kind")
    if kinds and kinds != {spec.input}:
        raise ConfigError(f"branches.{name}: {spec.name!r} takes {spec.input} input, but {sorted(layouts)} "
                          f"{'is' if len(layouts) == 1 else 'are'} {kinds.pop()} ({', '.join(sorted(set(layouts.values())))})")


def _model_inputs(meta: dict[str, InputSpec], names) -> dict:
    return {n: meta[n].stage() for n in names}


def branch_cache_key(model: FusionModel, cfg: RunConfig, train: TrackData, valid: TrackData | None,
                     windowing: Windowing) -> str:
    """What decides a trained network: its spec, the training settings and seed, the windows, and the
    exact input arrays and labels of the training and validation tracks (hashed, so a changed feature
    or a different split is a different key)."""
    digest = hashlib.sha1()
    for part in (train, valid):
        if part is None:
            continue
        digest.update(json.dumps([part.ids, part.y.tolist()]).encode())
        for name in model.stages:
            for arr in part.inputs[name].arrays:
                a = np.ascontiguousarray(arr)
                digest.update(f"{a.dtype}{a.shape}".encode())
                digest.update(a.data)
    train_cfg = {k: v for k, v in dataclasses.asdict(cfg.train).items() if k not in ("reuse_branches", "threads")}
    described = json.dumps({"spec": model.spec(), "train": train_cfg, "window": dataclasses.astuple(windowing),
                            "eval": cfg.eval.aggregate, "data": digest.hexdigest()}, sort_keys=True, default=str)
    return hashlib.sha1(described.encode()).hexdigest()[:20]


def _train_neural(model: FusionModel, cfg: RunConfig, train: TrackData, valid: TrackData | None, windowing: Windowing,
                  checkpoint_dir: Path | None, log, tag: str) -> TrainResult:
    model.fit_inputs({n: train.inputs[n].arrays for n in model.stages})
    torch.manual_seed(cfg.train.seed)
    fingerprint: Any = {"spec": model.spec(), "train": dataclasses.asdict(cfg.train), "ids": train.ids,
                        "window": dataclasses.astuple(windowing)}
    if cfg.train.reuse_branches:  # a finished checkpoint there is "resumed" at its end: nothing to train
        fingerprint = branch_cache_key(model, cfg, train, valid, windowing)
        checkpoint_dir = Path(cfg.data.store) / "branches" / fingerprint
        log(f"[{tag}] branch cache {checkpoint_dir}")
    elif checkpoint_dir:
        checkpoint_dir = checkpoint_dir / tag
    trainer = Trainer(model, cfg.train, n_classes=len(train.labels), y_train=train.y, checkpoint_dir=checkpoint_dir,
                      fingerprint=fingerprint, aux_loss=model.head is not None,
                      layouts={n: d.layout for n, d in train.inputs.items()},
                      features={n: d.feature for n, d in train.inputs.items()},
                      log=lambda m: log(f"[{tag}] {m}"), name=tag)
    valid_src = WindowValidation(valid, windowing, cfg.eval.aggregate) if valid is not None and len(valid) else None

    def waiting():
        log(f"[{tag}] waiting: another process is training this branch")

    # two commands training the same cached branch would write one last.pt in turns: the second waits
    # (or, deferring, does other work first), then resumes the finished checkpoint (nothing left to train)
    try:
        lock = exclusive(checkpoint_dir / ".lock", on_wait=waiting, wait=not _DEFER_BUSY.get()) \
            if cfg.train.reuse_branches else nullcontext()
        with lock:
            return trainer.fit(WindowSource(train, windowing, cfg.train), valid_src)
    except LockBusy:
        raise BranchBusy(f"[{tag}] another process is training this branch") from None


def _train_config(base: TrainConfig, overrides: dict) -> TrainConfig:
    """A branch's (or a frozen fusion head's) own training settings over the run's, typed and checked
    as the run's section is."""
    return build_section(TrainConfig, {**dataclasses.asdict(base), **overrides}, "train") if overrides else base


def _seeded_model(seed: int, make: Callable[..., Any], **kwargs):
    torch.manual_seed(seed)  # initial weights depend on the run seed only
    return make(**kwargs)


def fit_model(cfg: RunConfig, train: TrackData, valid: TrackData | None, *, fusion_part: TrackData | None = None,
              windowing: Windowing, checkpoint_dir: str | Path | None = None,
              log: Callable[[str], None] = lambda m: None) -> Fitted:
    """Train what ``cfg`` describes on ``train`` (early stopping on ``valid``).

    Frozen fusion is fitted on ``fusion_part`` (default: ``valid``), tracks the branches never trained on;
    cross-fitted (``fusion.cross_fit``), on out-of-fold outputs of ``train``; one that learns nothing (mean,
    product, vote) needs neither.
    """
    train.check_classes("train")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    n_classes = len(train.labels)
    meta = input_meta(cfg, train, windowing)
    fitted = Fitted(model=None, labels=list(train.labels), windowing=windowing, inputs=meta)  # type: ignore[arg-type]
    branch_cfg = {n: {"model": b.model, "inputs": list(b.inputs), "args": dict(b.args)} for n, b in cfg.branches.items()}
    if cfg.fusion is not None and cfg.fusion.mode == "joint":
        model = _seeded_model(cfg.train.seed, FusionModel, n_classes=n_classes, inputs=_model_inputs(meta, cfg.inputs),
                              branches=branch_cfg, fusion={"strategy": cfg.fusion.strategy, "args": dict(cfg.fusion.args)})
        fitted.training["joint"] = _train_neural(model, cfg, train, valid, windowing, checkpoint_dir, log, "joint")
        fitted.model = model
        return fitted

    branches: dict[str, Any] = {}
    for name, b in branch_cfg.items():
        spec = get_branch(b["model"])
        if spec.family == "neural":
            model = _seeded_model(cfg.train.seed, FusionModel, n_classes=n_classes,
                                  inputs=_model_inputs(meta, b["inputs"]), branches={name: b})
            own = dataclasses.replace(cfg, train=_train_config(cfg.train, cfg.branches[name].train))
            fitted.training[name] = _train_neural(model, own, train, valid, windowing, checkpoint_dir, log, name)
            branches[name] = model
        else:
            branches[name] = _fit_classical(b, train, n_classes)
            width = branches[name].in_shape[0]  # 0: texts, which have no fixed width
            log(f"[{name}] fitted {b['model']} on {len(train)} tracks" + (f" x {width} features" if width else ""))
    fusion_obj, fusion_spec, dims = None, {}, {}
    if cfg.fusion is not None:
        fusion_spec = {"strategy": cfg.fusion.strategy, "args": dict(cfg.fusion.args)}
        if cfg.fusion.cross_fit:
            part = train
            outs, idx = _out_of_fold_outputs(cfg, branch_cfg, train, windowing, log)
        else:
            part = fusion_part if fusion_part is not None else valid
            if (part is None or not len(part)) and not get_fusion(cfg.fusion.strategy).learns:
                part = train  # nothing to fit: these outputs only give the fusion its branches' widths
            if part is None or not len(part):
                raise ConfigError("frozen fusion needs tracks the branches did not train on (a valid or fusion part)")
            if len(np.unique(part.y)) < 2:
                raise ConfigError(f"the fusion tracks ({len(part)}) hold fewer than two classes: too few to fit a fusion")
            outs, idx = _outputs(_frozen(branches, branch_cfg, n_classes), part, windowing)
        dims = {n: (int(o["embedding"].shape[1]), n_classes, int(o["sequence"].shape[-1]) if "sequence" in o else 0)
                for n, o in outs.items()}
        fusion_obj = _seeded_model(cfg.train.seed, build_fusion, name=cfg.fusion.strategy, branches=dims,
                                   n_classes=n_classes, **cfg.fusion.args)
        if get_fusion(cfg.fusion.strategy).kind == "neural":
            fitted.training["fusion"] = _train_head(fusion_obj, cfg, outs, idx, part, checkpoint_dir, log)
        else:
            fusion_obj.fit({n: {k: v.numpy() for k, v in o.items()} for n, o in outs.items()}, part.y[idx],
                           groups=part.groups()[idx])
            log(f"[fusion] fitted {cfg.fusion.strategy} on {len(idx)} windows of {len(part)} tracks"
                + (f" (out-of-fold outputs, {cfg.fusion.cross_fit} folds)" if cfg.fusion.cross_fit else ""))
    fitted.model = _frozen(branches, branch_cfg, n_classes, fusion=fusion_obj, fusion_spec=fusion_spec, fusion_dims=dims)
    return fitted


def _fit_classical(b: dict, data: TrackData, n_classes: int):
    """A classical branch (``b``: its model, inputs and args) fitted on every track of ``data``; a branch that
    takes ``labels`` (e.g. the tag table's) is given the run's."""
    spec = get_branch(b["model"])
    x = spec.cls.prepare([data.inputs[i].arrays for i in b["inputs"]])
    shape = (x.shape[1],) if isinstance(x, np.ndarray) else (0,)  # texts have no fixed width
    labels = {"labels": list(data.labels)} if "labels" in spec.params else {}
    return build_branch(b["model"], n_classes=n_classes, in_shape=shape, **b["args"], **labels).fit(
        x, data.y, groups=data.groups())


def _frozen(branches: dict, branch_cfg: dict, n_classes: int, **fusion) -> FrozenFusion:
    """Fitted branches and, where given, their fusion as one model; without a fusion, to read the
    branches' outputs."""
    return FrozenFusion(n_classes=n_classes, branches=branches, branch_inputs={n: b["inputs"] for n, b in branch_cfg.items()},
                        **{"fusion": None, "fusion_spec": {}, **fusion})


def _out_of_fold_outputs(cfg: RunConfig, branch_cfg: dict, train: TrackData, windowing: Windowing, log):
    """Every training track's branch outputs from branches fitted without it: ``cross_fit`` stratified
    folds of the tracks (an artist's tracks in one fold), branches refitted on the other folds.

    Returns ``(outputs, idx)`` as :func:`_outputs` does for ``train``: the fusion then learns from all
    training tracks, where a held-out fusion part would cost the branches those tracks."""
    n_classes = len(train.labels)
    one_artist = train.one_artist_classes()
    if one_artist:
        raise ConfigError(f"cross-fitting: class(es) {one_artist} have one artist among the training tracks, and "
                          "artist-grouped folds would fit a fold without them. Accept artist leakage with "
                          "split.group_by_artist: false and split.leaky: true, or fuse without cross_fit")
    pieces = []
    for k, (fit_rows, held_rows) in enumerate(inner_folds(train.y, groups=train.groups(), k=cfg.fusion.cross_fit,
                                                          seed=cfg.train.seed)):
        fit = train.subset([train.ids[i] for i in fit_rows])
        fit.check_classes(f"cross-fit fold {k + 1}")
        branches = {n: _fit_classical(b, fit, n_classes) for n, b in branch_cfg.items()}
        outs, idx = _outputs(_frozen(branches, branch_cfg, n_classes), train.subset([train.ids[i] for i in held_rows]),
                             windowing)
        pieces.append((outs, held_rows[idx]))
        log(f"[fusion] cross-fit fold {k + 1}: branches fitted on {len(fit)} tracks, outputs for {len(held_rows)}")
    return _concat([o for o, _ in pieces]), np.concatenate([i for _, i in pieces])


def _outputs(frozen: FrozenFusion, data: TrackData, windowing: Windowing):
    windows = windowing.eval_windows(data)
    parts = [frozen.branch_outputs(x) for x, _, _ in batches(data, windows, windowing.window_s, EVAL_BATCH)]
    return _concat(parts), np.array([i for i, _ in windows])


def _concat(parts: list[dict]) -> dict:
    """Branch outputs of consecutive row blocks (batches, folds) joined along the rows."""
    return {n: {k: torch.cat([p[n][k] for p in parts]) for k in ("embedding", "logits", "sequence", "mask")
                if k in parts[0][n]} for n in parts[0]}


def _train_head(head, cfg: RunConfig, outs, idx, part: TrackData, checkpoint_dir, log) -> TrainResult:
    """Train a neural fusion head on frozen outputs; early stopping on a seeded fifth of the fusion tracks."""
    rng = np.random.default_rng(cfg.train.seed)
    hold = np.zeros(len(part), bool)
    for c in np.unique(part.y):
        members = rng.permutation(np.flatnonzero(part.y == c))
        hold[members[: len(members) // 5]] = True
    fit_w, val_w = ~hold[idx], hold[idx]
    sel = lambda mask: {n: {k: v[torch.from_numpy(mask)] for k, v in o.items()} for n, o in outs.items()}  # noqa: E731
    val_tracks = np.flatnonzero(hold)
    remap = {t: j for j, t in enumerate(val_tracks)}
    own = _train_config(cfg.train, cfg.fusion.train)
    head_cfg = dataclasses.replace(own, augment=type(own.augment)(), aux_weight=0.0)
    trainer = Trainer(head, head_cfg, n_classes=len(part.labels), y_train=part.y[idx][fit_w],
                      checkpoint_dir=checkpoint_dir / "fusion" if checkpoint_dir else None,
                      fingerprint={"fusion": cfg.fusion.strategy, "args": cfg.fusion.args, "train": dataclasses.asdict(head_cfg),
                                   "ids": part.ids},
                      log=lambda m: log(f"[fusion] {m}"), name="fusion")
    valid = OutputValidation(sel(val_w), np.array([remap[t] for t in idx[val_w]]), part.y[val_tracks],
                             len(part.labels), cfg.eval.aggregate) if hold.any() else None
    return trainer.fit(OutputSource(sel(fit_w), part.y[idx][fit_w], head_cfg.batch_size), valid)
