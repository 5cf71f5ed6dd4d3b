"""Model inputs in memory: stored features per track, windowed in time, assembled into batches.

Shared by training and prediction (``inference`` reads a model's inputs through it, without the training
package).

A run's inputs (named in its config) are read from the feature store into :class:`TrackData`:
one array per track and input, as stored. :class:`Windowing` cuts every time-axis input at the
same seconds, so window ``k`` of a track covers the same stretch of music in its log-mel, its
MFCC and its spectrogram image; vector inputs (summary statistics, table rows) are repeated for
each window. Training draws random windows per epoch (a seeded random crop in time); evaluation
uses a fixed hop and aggregates window predictions to the track.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from genrefusion.datasets.base import FoldKey
from genrefusion.errors import ConfigError


@dataclass
class InputData:
    """One named input for a set of tracks: arrays as stored, and how to read them in time.

    ``layout`` is the feature's (vector, frames, image, waveform); ``fps`` is steps per second of
    the last axis (None for vectors). ``example_rank`` is what a branch sees per example:
    ``(C, F, T)`` for frames and images, ``(C, n)`` for waveforms, ``(n,)`` for vectors.
    """

    name: str
    feature: str
    layout: str
    arrays: list[np.ndarray]
    fps: float | None
    spec: dict = field(default_factory=dict)  # the store's spec (feature, params, source)

    @property
    def timed(self) -> bool:
        return self.fps is not None

    def seconds(self, i: int) -> float:
        return self.arrays[i].shape[-1] / self.fps if self.timed else float("inf")

    def steps(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.fps)))

    def cut(self, i: int, start_s: float, window_s: float) -> np.ndarray:
        """Track ``i``'s window as float32 with a channel axis; zero-padded past the end."""
        a = self.arrays[i]
        if self.layout == "text":
            return a  # UTF-8 bytes, decoded by the text model
        if not self.timed:
            return self._with_channel(np.asarray(a, np.float32))
        n = self.steps(window_s)
        s = min(int(round(start_s * self.fps)), max(a.shape[-1] - n, 0))
        w = np.asarray(a[..., s:s + n], np.float32)
        if w.shape[-1] < n:
            w = np.concatenate([w, np.zeros(w.shape[:-1] + (n - w.shape[-1],), np.float32)], axis=-1)
        return self._with_channel(w)

    def _with_channel(self, w: np.ndarray) -> np.ndarray:
        return w[None] if self.layout in ("frames", "image", "sequence") and w.ndim == 2 else w

    def example_shape(self, window_s: float) -> tuple[int, ...]:
        return tuple(self.cut(0, 0.0, window_s).shape)


@dataclass
class TrackData:
    """Tracks with their labels (indices into ``labels``) and their inputs."""

    ids: list[str]
    y: np.ndarray
    labels: list[str]
    inputs: dict[str, InputData]
    fold_keys: list[FoldKey | None] | None = None  # each track's artist or fold group (``Track.fold_key``)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, ids: Sequence[str]) -> "TrackData":
        pos = {t: i for i, t in enumerate(self.ids)}
        idx = [pos[t] for t in ids if t in pos]
        inputs = {n: replace(d, arrays=[d.arrays[i] for i in idx]) for n, d in self.inputs.items()}
        keys = [self.fold_keys[i] for i in idx] if self.fold_keys is not None else None
        return TrackData([self.ids[i] for i in idx], self.y[idx], self.labels, inputs, keys)

    def groups(self) -> np.ndarray:
        """(N,) int: tracks that must stay on one side of an inner fold share a value (the position
        of the first track with their artist, or fold group where the artist is unknown); a track with
        neither is its own group, so without them this is ``arange(N)``. A class whose tracks lie in one
        fold group, or all one artist's, could not be folded: its tracks leave it, so that a model's own selection
        (stacking's C, SVM calibration) still sees the class in every fold, at the price of that artist on both
        sides of it. Cross-fitting, whose outputs a fusion learns from, refuses such a class instead
        (:meth:`one_artist_classes`)."""
        keys = list(self.fold_keys or [None] * len(self))
        groups_of = defaultdict(set)  # each class's artists and fold groups
        unkeyed = set()  # the classes with a track of neither
        for c, key in zip(self.y.tolist(), keys):
            if key is not None:
                groups_of[c].add(key)
            else:
                unkeyed.add(c)
        keys = [None if key is not None and len(groups_of[c]) < 2 and (key.kind == "group" or c not in unkeyed)
                else key for c, key in zip(self.y.tolist(), keys)]
        first: dict[FoldKey, int] = {}
        return np.array([first.setdefault(key, i) if key is not None else i for i, key in enumerate(keys)], np.int64)

    def one_artist_classes(self) -> list[str]:
        """The classes whose tracks here are all one artist's: artist-grouped inner folds fit a fold without each."""
        keys_of = defaultdict(set)
        for c, key in zip(self.y.tolist(), self.fold_keys or [None] * len(self)):
            keys_of[c].add(key if key is not None and key.kind == "artist" else None)
        return sorted(self.labels[c] for c, keys in keys_of.items() if len(keys) == 1 and None not in keys)

    def check_classes(self, part: str) -> None:
        """Refuse a part in which a class has no track (before any training)."""
        missing = [self.labels[c] for c in range(len(self.labels)) if not np.any(self.y == c)]
        if missing:
            raise ConfigError(f"part {part!r} has no track of class(es) {missing}; every class needs training examples")


@dataclass(frozen=True)
class Windowing:
    """Windows of ``window_s`` seconds; evaluation steps by ``hop_s`` (default: no overlap)."""

    window_s: float
    hop_s: float | None = None

    @staticmethod
    def resolve(data: TrackData, window_s: float | None, hop_s: float | None) -> "Windowing":
        """``window_s=None`` means whole tracks: the shortest track's duration, so every track fits one window."""
        timed = [d for d in data.inputs.values() if d.timed]
        if window_s is None:
            if not timed:  # only vectors and whole images: one "window" per track
                return Windowing(1.0, None)
            shortest = min(min(d.seconds(i) for d in timed) for i in range(len(data)))
            return Windowing(float(shortest), None)
        if window_s <= 0 or (hop_s is not None and hop_s <= 0):
            raise ConfigError(f"train.window_s and train.hop_s must be positive, got {window_s}, {hop_s}")
        return Windowing(float(window_s), hop_s)

    def track_seconds(self, data: TrackData, i: int) -> float:
        timed = [d.seconds(i) for d in data.inputs.values() if d.timed]
        return min(timed) if timed else self.window_s

    def eval_windows(self, data: TrackData) -> list[tuple[int, float]]:
        """Every track's windows at the hop; at least one window per track."""
        hop = self.hop_s or self.window_s
        out = []
        for i in range(len(data)):
            n = 1 + max(0, int(np.floor((self.track_seconds(data, i) - self.window_s) / hop + 1e-6)))
            out += [(i, k * hop) for k in range(n)]
        return out

    def random_windows(self, data: TrackData, rng: np.random.Generator, per_track: np.ndarray) -> list[tuple[int, float]]:
        """``per_track[i]`` windows of track ``i`` at uniformly random start times, shuffled."""
        out = []
        for i, k in enumerate(per_track):
            room = max(0.0, self.track_seconds(data, i) - self.window_s)
            out += [(i, float(s)) for s in rng.uniform(0.0, room, int(k))]
        order = rng.permutation(len(out))
        return [out[j] for j in order]


def make_batch(data: TrackData, windows: Sequence[tuple[int, float]], window_s: float) -> dict[str, torch.Tensor]:
    """Stack the windows of every input: ``{input: (B, *example_shape)}`` float32 (text inputs: a list of str)."""
    return {name: [bytes(d.arrays[i]).decode("utf-8") for i, _ in windows] if d.layout == "text"
            else torch.from_numpy(np.stack([d.cut(i, s, window_s) for i, s in windows]))
            for name, d in data.inputs.items()}


def batches(data: TrackData, windows: Sequence[tuple[int, float]], window_s: float, batch_size: int):
    """Yield ``(inputs, y, windows)`` batches in order."""
    for start in range(0, len(windows), batch_size):
        chunk = windows[start:start + batch_size]
        y = torch.as_tensor(data.y[[i for i, _ in chunk]], dtype=torch.long)
        yield make_batch(data, chunk, window_s), y, chunk


#: windows per batch when predicting
EVAL_BATCH = 64


def predict_windows(model, data: TrackData, windowing: Windowing, *, windows=None, branches: bool = False):
    """``(n_windows, C)`` probabilities and each window's track index; with ``branches``, also each
    branch's own ``{name: (n_windows, C)}`` probabilities."""
    windows = windows if windows is not None else windowing.eval_windows(data)
    fused, alone = [], []
    for x, _, _ in batches(data, windows, windowing.window_s, EVAL_BATCH):
        p, b = model.predict(x)
        fused.append(p)
        alone.append(b)
    idx = np.array([i for i, _ in windows])
    if not branches:
        return np.concatenate(fused), idx
    return np.concatenate(fused), idx, {n: np.concatenate([b[n] for b in alone]) for n in alone[0]}
