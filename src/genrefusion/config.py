"""Typed run configuration: dataclasses loaded from YAML or TOML, strictly.

A key that no dataclass field names fails at load with the file, the dotted key and the closest
valid name, so a typo never silently trains the wrong model; a value of the wrong type, outside its
``Literal`` choices or its range (``Annotated[int, at_least(1)]``) fails the same way, naming the key.
``overrides`` (``"train.epochs=3"``) apply on top, with the same checks. What needs the registries
(branch, fusion and feature names and their combinations) is checked by
:func:`genrefusion.training.fit.validate_config`, once, before any data is read. The groups mirror the source tree: ``data`` (datasets +
features), ``split`` (splits), ``inputs`` (features), ``branches`` (models), ``fusion``,
``train`` (training), ``eval`` (evaluation), ``protocol`` (training.protocols).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import yaml

from genrefusion.errors import ConfigError


@dataclass(frozen=True)
class Check:
    """A range a number must be in (``Annotated`` metadata of a config field)."""

    test: Callable[[float], bool]
    words: str  # what the value must be, e.g. "at least 1"


def at_least(low: float) -> Check:
    return Check(lambda v: v >= low, f"at least {low:g}")


def above(low: float) -> Check:
    return Check(lambda v: v > low, f"above {low:g}")


def fraction(*, open_low: bool = True) -> Check:
    return Check((lambda v: 0 < v < 1) if open_low else (lambda v: 0 <= v < 1), "between 0 and 1" if open_low
                 else "from 0 up to 1")


Positive = Annotated[float, above(0)]
NonNegative = Annotated[float, at_least(0)]
Count = Annotated[int, at_least(1)]
NonNegativeInt = Annotated[int, at_least(0)]
#: window -> track aggregation (:data:`genrefusion.evaluation.metrics.AGGREGATORS`; a test keeps them equal)
Aggregate = Literal["mean", "vote", "max"]
Engine = Literal["local", "ray"]


@dataclass
class DataConfig:
    """Where the tracks come from and how audio is read for feature extraction."""

    path: str = ""  # dataset folder, manifest or table
    kind: str | None = None  # dataset kind; detected when None
    store: str = "store"  # feature store folder
    sr: Count = 22050  # audio resampled to this rate (Hz)
    duration: Positive | None = None  # seconds read per file; None: all
    workers: NonNegativeInt = 1  # extraction worker processes (0: in the training process)
    exclude: list[str] = field(default_factory=list)  # track ids never used (e.g. held-out audio clips)
    genres: list[str] = field(default_factory=list)  # keep only these genres; empty: all
    # more labelled collections trained on beside ``path`` (e.g. Emotify beside GTZAN's clips)
    collections: list[CollectionConfig] = field(default_factory=list)


@dataclass
class CollectionConfig:
    """Another labelled collection whose tracks join the run's (``data.collections``): its own folder, read
    with the run's inputs. Track ids must differ from every other collection's."""

    path: str = ""  # dataset folder, manifest or table
    kind: str | None = None  # dataset kind; detected when None
    exclude: list[str] = field(default_factory=list)  # track ids never used
    genres: list[str] = field(default_factory=list)  # keep only these genres; empty: all
    part: str = "train"  # the part its tracks join in a published or file split (random splits split them too)


@dataclass
class SplitConfig:
    """How tracks are assigned to parts. ``published`` wins over ``fractions``."""

    published: str | None = None  # a split that came with the dataset, e.g. fault_filtered
    file: str | None = None  # a split CSV (track_id,part)
    fractions: dict[str, Annotated[float, fraction()]] = field(
        default_factory=lambda: {"train": 0.7, "valid": 0.15, "test": 0.15})
    seed: int = 0
    group_by_artist: bool | None = None  # None: when artists are known
    # the split is known to let artists cross its parts (a leaky protocol reported for comparison, e.g. GTZAN's
    # published random split): the leak checker then skips artists; files and windows are still checked
    leaky: bool = False
    valid_fraction: Annotated[float, fraction()] = 0.15  # carved out of a training part that has no validation part


@dataclass
class InputConfig:
    """One named model input: a stored feature and how it is shaped for a branch."""

    feature: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    seconds: Positive | None = None  # duration an image's width covers (GTZAN's images: 30 s); audio: from sr/hop
    resize: list[int] | None = None  # [height, width] each example is resized to (bilinear), e.g. for ImageNet nets
    channels: int | None = None  # repeat a 1-channel input to this many channels (3 for RGB backbones)
    # For an input read from images or a table: the audio feature that yields the same array, so
    # that the trained bundle predicts on audio files (e.g. image_pixels <- mel_image).
    audio_feature: str | None = None
    audio_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BranchConfig:
    model: str = ""  # a registered branch (``genrefusion architectures list``)
    inputs: list[str] = field(default_factory=list)  # input names; several for early fusion or multi-spectral
    args: dict[str, Any] = field(default_factory=dict)
    # Training settings of this branch alone (``train`` keys, e.g. a pretrained network's smaller
    # ``lr``), over the run's ``train`` section; frozen fusion and single-branch runs only.
    train: dict[str, Any] = field(default_factory=dict)


@dataclass
class FusionConfig:
    strategy: str = "feature"  # a registered fusion strategy
    args: dict[str, Any] = field(default_factory=dict)
    mode: Literal["joint", "frozen"] = "joint"  # end-to-end, or branches first, then fusion on other tracks
    # frozen, classical branches only: fit the fusion on out-of-fold outputs of ``cross_fit`` track folds
    # (artist-grouped where known) of all training tracks, then refit each branch on all of them; 0: off
    cross_fit: NonNegativeInt = 0
    # Training settings of a frozen neural fusion head (``train`` keys) over the run's ``train``
    # section, which is set for the branches: a head of a few thousand weights on a few hundred
    # tracks needs far more steps than 30 epochs of a CNN's rate give it.
    train: dict[str, Any] = field(default_factory=dict)


@dataclass
class AugmentConfig:
    """Seeded training-time augmentation; all off by default."""

    gain_db: NonNegative = 0.0  # uniform +-gain_db added to dB-valued inputs
    time_masks: NonNegativeInt = 0  # SpecAugment time masks per example
    freq_masks: NonNegativeInt = 0
    mask_fraction: Annotated[float, fraction(open_low=False)] = 0.1  # largest mask, as a fraction of the axis
    mixup_alpha: NonNegative = 0.0  # Beta(alpha, alpha) mixing of example pairs; 0: off


@dataclass
class HyperDynamicConfig:
    """Classes that pass ``graduate_at`` validation accuracy are down-weighted; struggling ones get
    up to ``max_boost`` x loss weight and x windows per track; updated each epoch."""

    enabled: bool = False
    graduate_at: Annotated[float, fraction()] = 0.9
    graduate_weight: Positive = 0.5
    max_boost: Annotated[float, at_least(1)] = 2.0
    momentum: Annotated[float, fraction(open_low=False)] = 0.5  # share of the previous epoch's weights kept


@dataclass
class TrainConfig:
    epochs: Count = 30
    batch_size: Count = 32
    lr: Positive = 1e-3
    weight_decay: NonNegative = 1e-2
    schedule: Literal["cosine", "constant"] = "cosine"
    patience: NonNegativeInt = 8  # epochs without validation improvement before stopping; 0: never
    class_weights: bool = True  # inverse-frequency loss weights
    window_s: Positive | None = None  # training/eval window length in seconds; None: whole tracks
    hop_s: Positive | None = None  # evaluation hop between windows; None: window_s (no overlap)
    windows_per_track: Count = 4  # random windows drawn per track per epoch
    aux_weight: NonNegative = 0.3  # weight of each branch's own loss in joint fusion training
    grad_clip: Positive = 5.0
    seed: int = 0
    threads: NonNegativeInt = 0  # torch threads; 0: torch's default
    # Reuse a network trained with identical architecture, input arrays, tracks and settings from
    # the store's branch cache (``<data.store>/branches``): frozen fusions over the same branches
    # and repeated benchmark runs then train each branch once. Never changes a result.
    reuse_branches: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    hyper_dynamic: HyperDynamicConfig = field(default_factory=HyperDynamicConfig)


@dataclass
class EvalConfig:
    aggregate: Aggregate = "mean"  # window -> track: mean (of probabilities), vote or max
    top_k: Count = 3
    # Predicting on audio of any length: features are computed on segments of this many seconds
    # (the training clips' length), and their windows are aggregated to the file.
    segment_s: Positive = 30.0
    # Parameters that prediction from audio gives every input feature that takes them, over the training ones,
    # e.g. {patches: 2}: musicnn reads two 3 s patches per segment instead of all ten (faster, coarser)
    predict_params: dict[str, Any] = field(default_factory=dict)
    # Prediction says "too short" below this many seconds of audio (None: genrefusion's default, one 3 s patch)
    min_seconds: Positive | None = None
    # Prediction says "not sure" when the best genre's probability is below this (None: genrefusion's default)
    sure_probability: Annotated[float, fraction()] | None = None


@dataclass
class ProtocolConfig:
    """``holdout``: the split's train/valid/test; ``two_stage``: branches/fusion/test parts;
    ``repeated``: ``repeats`` random stratified train/test splits (mean +- std); ``kfold``: ``folds``
    stratified (artist-grouped) folds, each tested once;
    ``cv_grid``: k-fold CV grid search on the training parts, refit, then test."""

    name: str = "holdout"  # a registered protocol (checked with the registries)
    repeats: Count = 10
    test_fraction: Annotated[float, fraction()] = 0.2
    folds: Annotated[int, at_least(2)] = 3
    grid: dict[str, list[Any]] = field(default_factory=dict)  # dotted config key -> candidate values
    seeds: list[int] = field(default_factory=list)  # extra seeds for holdout (mean +- std); empty: train.seed
    # after the evaluations, train once more on every track (no test part) and save that model as the run's
    # bundle: the evaluations estimate how well it does, the bundle learns from all the data
    refit: bool = False
    # where the seeds, repeats and folds run: "local" (one after another here) or "ray" (as Ray tasks, one
    # actor per CPU of the cluster at ``address``; None starts a local Ray); the results are the same
    engine: Engine = "local"
    address: str | None = None


@dataclass
class RunConfig:
    name: str = "run"
    description: str = ""  # what the run reproduces, its data and protocol (goes in the report)
    reference: str = ""  # a published result this run compares with, e.g. "Author 2021: 74.9 %"
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    inputs: dict[str, InputConfig] = field(default_factory=dict)
    branches: dict[str, BranchConfig] = field(default_factory=dict)
    fusion: FusionConfig | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)


def _build(cls, value: Any, where: str, source: str):
    """Turn plain data into dataclass ``cls``, refusing unknown keys and wrong types."""
    hints = typing.get_type_hints(cls, include_extras=True)
    if not isinstance(value, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping, got {type(value).__name__}", path=source)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, v in value.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown key {where + '.' if where else ''}{key}{hint}", path=source)
        kwargs[key] = _coerce(hints[key], v, f"{where}.{key}" if where else str(key), source)
    return cls(**kwargs)


def _coerce(tp, v: Any, where: str, source: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        value = _coerce(args[0], v, where, source)
        for check in args[1:]:
            if not check.test(value):
                raise ConfigError(f"{where} must be {check.words}, got {v!r}", path=source)
        return value
    if origin is Literal:
        if v not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, args))}, got {v!r}", path=source)
        return v
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], v, where, source)
    if dataclasses.is_dataclass(tp):
        return _build(tp, v, where, source)
    if origin is dict:
        if not isinstance(v, dict):
            raise ConfigError(f"{where} must be a mapping, got {v!r}", path=source)
        return {str(k): _coerce(args[1], x, f"{where}.{k}", source) for k, x in v.items()}
    if origin is list:
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {v!r}", path=source)
        return [_coerce(args[0], x, f"{where}[{i}]", source) for i, x in enumerate(v)]
    if tp is Any:
        return v
    if tp is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise ConfigError(f"{where} must be a number, got {v!r}", path=source)
    if tp in (int, str, bool) and not (isinstance(v, tp) and not (tp is int and isinstance(v, bool))):
        raise ConfigError(f"{where} must be {tp.__name__}, got {v!r}", path=source)
    return v


def build_section(cls, data: dict, where: str, *, source: str = "<config>"):
    """One typed config section (``cls``) from plain data, checked as in a whole config."""
    return _build(cls, data, where, source)


def config_from_dict(data: dict, *, source: str = "<config>") -> RunConfig:
    return _build(RunConfig, data, "", source)


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config ({err.strerror})", path=path) from None
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        return yaml.safe_load(text) or {}
    except Exception as err:  # yaml and toml raise their own types
        raise ConfigError(f"not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {err}".splitlines()[0], path=path) from None


def apply_override(data: dict, item: str) -> None:
    """Set ``a.b.c=value`` (YAML-parsed value) in nested ``data``."""
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"an override is KEY=VALUE with a dotted key, got {item!r}")
    set_dotted(data, key.strip(), yaml.safe_load(value))


def set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {p!r} is not a mapping")
    node[parts[-1]] = value


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) run config, apply overrides, validate."""
    path = Path(path)
    data = _read(path)
    for item in overrides:
        apply_override(data, item)
    return config_from_dict(data, source=str(path))


def config_to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: RunConfig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
    return path
