"""The registry of features: name -> pure function, its input modality, defaults and version.

A feature's identity in the store is the hash of (name, version, parameters, how the input was
read); changing any of them gives a new store key, so old results are never served for new
settings. Bump ``version`` when a function's output changes for the same parameters.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from genrefusion.errors import FeatureError
from genrefusion.registries import first_doc_line, keyword_defaults, lookup, register

INPUTS = ("audio", "image", "table", "lyrics")
#: How a feature's array is laid out, which says how models window it in time:
#: ``vector`` (n,) has no time axis; ``frames`` (n_bins, n_frames) at sr / hop_length frames per
#: second; ``image`` (H, W) or (C, H, W) whose width spans the clip; ``waveform`` (channels, n_samples);
#: ``text`` (n_bytes,) uint8, a UTF-8 text for text models that learn their own vocabulary;
#: ``sequence`` (n_steps, dim), e.g. embeddings of a text's chunks, used whole.
LAYOUTS = ("vector", "frames", "image", "waveform", "text", "sequence")
_DEFAULT_LAYOUT = {"audio": "frames", "image": "image", "table": "vector", "lyrics": "vector"}


@dataclass(frozen=True)
class FeatureSpec:
    """A registered feature.

    ``fn(x, **params)``: for ``input == "audio"`` ``x`` is a mono float32 signal and ``sr`` is
    passed as a keyword; for ``"image"`` ``x`` is an image array; for ``"table"`` a 1-D vector; for
    ``"lyrics"`` a ``str``.
    """

    name: str
    fn: Callable[..., np.ndarray]
    input: str
    shape: str
    description: str
    version: int = 1
    default: bool = False  # part of ``extract``'s default set for datasets with this input
    names: Callable[..., list[str]] | None = None  # column names of a vector feature
    params: Mapping[str, Any] = field(default_factory=dict)
    layout: str = "frames"  # one of LAYOUTS
    rate: Callable[[Mapping[str, Any], int], float] | None = None  # steps/s of the last axis, from (params, input sr)
    # the audio feature that computes this (image or table) feature's array from the signal, the parameters they
    # share carried over: what prediction on audio files uses where the run config names no audio_feature
    audio_twin: str | None = None

    def steps_per_second(self, params: Mapping[str, Any], sr: int) -> float | None:
        """Time steps per second along the last axis (frames or samples); None for vectors and images."""
        if self.rate is not None:
            return float(self.rate(params, sr))
        return sr / params["hop_length"] if self.layout == "frames" else None

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults merged with ``overrides``; an unknown parameter raises FeatureError."""
        overrides = dict(overrides or {})
        unknown = set(overrides) - set(self.params)
        if unknown:
            raise FeatureError(
                f"feature {self.name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(self.params)}"
            )
        return {**self.params, **overrides}

    def key(self, params: Mapping[str, Any], source: Mapping[str, Any]) -> str:
        """Store key: a hash of name, version, parameters and how the input was read (``source``)."""
        blob = json.dumps(
            {"feature": self.name, "version": self.version, "params": dict(params), "source": dict(source)},
            sort_keys=True, default=str,
        )
        return f"{self.name}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


FEATURES: dict[str, FeatureSpec] = {}


def register_feature(name: str, *, input: str, shape: str, version: int = 1, default: bool = False,
                     names: Callable[..., list[str]] | None = None, layout: str | None = None,
                     rate: Callable[[Mapping[str, Any], int], float] | None = None, audio_twin: str | None = None):
    """Decorator: register a pure function; its keyword-only defaults are its parameters."""
    if input not in INPUTS:
        raise FeatureError(f"feature input must be one of {INPUTS}, got {input!r}")
    layout = layout or _DEFAULT_LAYOUT[input]
    if layout not in LAYOUTS:
        raise FeatureError(f"feature layout must be one of {LAYOUTS}, got {layout!r}")

    def wrap(fn):
        params = keyword_defaults(fn, exclude=("sr",))
        register(FEATURES, name, FeatureSpec(name, fn, input, shape, first_doc_line(fn), version, default, names, params,
                                             layout, rate, audio_twin), "feature", FeatureError)
        return fn

    return wrap


def get_feature(name: str) -> FeatureSpec:
    return lookup(FEATURES, name, "feature", FeatureError)


def default_features(input: str) -> list[str]:
    """The features ``extract`` computes when none are named, for datasets with this input."""
    return [s.name for s in FEATURES.values() if s.input == input and s.default]
