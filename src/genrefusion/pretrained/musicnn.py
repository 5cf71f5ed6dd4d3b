"""musicnn (Pons & Serra 2019), ported to PyTorch from the TensorFlow checkpoints in the
``musicnn==0.1.0`` wheel (ISC licence; install it with ``pip install --no-deps musicnn==0.1.0``).

Four models: ``msd-musicnn`` and ``mtt-musicnn`` (a musically motivated front end of timbral and
temporal filters, a dense mid end, temporal pooling back end; 200-d penultimate layer) and
``msd-vgg`` / ``mtt-vgg`` (five 3x3 conv blocks; 256-d pooled features), each with 50 tags of the
Million Song Dataset or MagnaTagATune. Input: 16 kHz audio, ``melspectrogram(n_fft=512,
hop_length=256, n_mels=96)`` (power 2), ``log10(10000 x + 1)``, cut into non-overlapping patches of
187 frames (3 s). Layer order as in the original: conv -> ReLU -> batch-norm (eps 1e-3).

Two flaws of the original extractor are not copied: it casts the mel spectrogram to float16 (inf
on loud input; float32 here), and it returns the first patch's features for every patch (each
patch's own features here).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genrefusion.errors import ModelError
from genrefusion.pretrained.musicnn_spec import (  # noqa: F401  (re-exported: mn.SR, mn.MODELS, ...)
    BN_EPS,
    HOP,
    MODELS,
    MSD_LABELS,
    MTT_LABELS,
    N_FFT,
    N_MELS,
    PATCH_FRAMES,
    SR,
    VECTOR_LAYERS,
    patch_indices,
)


def log_mel(y: np.ndarray, *, sr: int) -> np.ndarray:
    """musicnn's input representation of a mono signal: ``log10(10000 mel + 1)``, ``(n_frames, 96)`` float32 at
    62.5 frames/s (resampled to 16 kHz; the numpy mel of :mod:`genrefusion.features.dsp`, librosa's to float32)."""
    from genrefusion.audio import resample
    from genrefusion.features import dsp

    x = resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=SR)
    mel = dsp.mel_power(x, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS).T
    return np.log10(10000.0 * mel + 1.0).astype(np.float32)


def log_mel_patches(y: np.ndarray, *, sr: int, patches: int = 0) -> np.ndarray:
    """musicnn's input: ``(n_patches, 187, 96)`` float32 log-mel patches of a mono signal (see :func:`cut_patches`)."""
    return cut_patches(log_mel(y, sr=sr), patches=patches)


def cut_patches(rep: np.ndarray, *, patches: int = 0) -> np.ndarray:
    """musicnn's input ``(n_frames, 96)`` -> non-overlapping patches ``(n_patches, 187, 96)`` float32.

    A representation shorter than one patch is zero-padded (in the log domain, silence) to one patch;
    a tail shorter than a patch is dropped, as in the original. ``patches`` > 0 keeps that many, spread
    over the signal (:func:`patch_indices`): fewer network passes, for a faster and coarser reading.
    """
    rep = np.asarray(rep, np.float32)
    if rep.shape[0] < PATCH_FRAMES:
        rep = np.concatenate([rep, np.zeros((PATCH_FRAMES - rep.shape[0], N_MELS), np.float32)])
    n = 1 + (rep.shape[0] - PATCH_FRAMES) // PATCH_FRAMES
    return np.ascontiguousarray(np.stack([rep[i * PATCH_FRAMES:(i + 1) * PATCH_FRAMES] for i in patch_indices(n, patches)]))


def _bn(n: int, dims: int = 2) -> nn.Module:
    return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(n, eps=BN_EPS)


def _same_time_pad(k: int) -> tuple[int, int, int, int]:
    """TensorFlow's 'same' padding along time for a (k, 1) kernel: the extra frame goes after."""
    before = (k - 1) // 2
    return (0, 0, before, k - 1 - before)


class Musicnn(nn.Module):
    """musicnn on ``(B, 187, 96)`` patches (time, mel); returns the original's named activations."""

    def __init__(self, n_tags: int = 50, *, filt_mid: int = 64, units_back: int = 200):
        super().__init__()
        self.bn_input = _bn(1)
        timbral, temporal = int(1.6 * 128), int(1.6 * 32)
        self.timbral = nn.ModuleList([nn.Conv2d(1, timbral, (7, int(f * N_MELS))) for f in (0.4, 0.7)])
        self.timbral_bn = nn.ModuleList([_bn(timbral) for _ in range(2)])
        self.temporal_kernels = (128, 64, 32)
        self.temporal = nn.ModuleList([nn.Conv2d(1, temporal, (k, 1)) for k in self.temporal_kernels])
        self.temporal_bn = nn.ModuleList([_bn(temporal) for _ in range(3)])
        front = 2 * timbral + 3 * temporal
        self.mid = nn.ModuleList([nn.Conv1d(front if i == 0 else filt_mid, filt_mid, 7, padding=3) for i in range(3)])
        self.mid_bn = nn.ModuleList([_bn(filt_mid, 1) for _ in range(3)])
        pooled = 2 * (front + 3 * filt_mid)
        self.back_bn = _bn(pooled, 1)
        self.dense = nn.Linear(pooled, units_back)
        self.dense_bn = _bn(units_back, 1)
        self.out = nn.Linear(units_back, n_tags)
        self.embedding_dim = units_back

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.bn_input(x[:, None])  # (B, 1, T, F)
        padded = F.pad(h, (0, 0, 3, 3))
        timbral = [bn(F.relu(conv(padded))).amax(dim=3) for conv, bn in zip(self.timbral, self.timbral_bn)]
        temporal = [bn(F.relu(conv(F.pad(h, _same_time_pad(k))))).amax(dim=3)
                    for conv, bn, k in zip(self.temporal, self.temporal_bn, self.temporal_kernels)]
        front = torch.cat(timbral + temporal, dim=1)  # (B, 561, T)
        c1 = self.mid_bn[0](F.relu(self.mid[0](front)))
        c2 = self.mid_bn[1](F.relu(self.mid[1](c1))) + c1
        c3 = self.mid_bn[2](F.relu(self.mid[2](c2))) + c2
        feats = torch.cat([front, c1, c2, c3], dim=1)  # (B, 753, T)
        max_pool, mean_pool = feats.amax(dim=2), feats.mean(dim=2)
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # interleaved (max, mean) pairs
        penultimate = self.dense_bn(F.relu(self.dense(self.back_bn(pooled))))
        logits = self.out(penultimate)
        return {"logits": logits, "tags": torch.sigmoid(logits), "penultimate": penultimate,
                "timbral": torch.cat(timbral, 1).transpose(1, 2), "temporal": torch.cat(temporal, 1).transpose(1, 2),
                "cnn1": c1.transpose(1, 2), "cnn2": c2.transpose(1, 2), "cnn3": c3.transpose(1, 2),
                "mean_pool": mean_pool, "max_pool": max_pool, "max_mean_pool": torch.cat([max_pool, mean_pool], 1)}

    def load_tf(self, t: dict[str, np.ndarray]) -> "Musicnn":
        """Copy weights from the TensorFlow checkpoint's variables (tf.layers' creation-order names)."""
        convs = [self.timbral[0], self.timbral[1], *self.temporal]
        bns = [self.bn_input, self.timbral_bn[0], self.timbral_bn[1], *self.temporal_bn, *self.mid_bn, self.back_bn,
               self.dense_bn]
        for i, conv in enumerate(convs):
            _conv2d(conv, t, _name("conv2d", i))
        for i, conv in enumerate(self.mid):
            k = t[f"{_name('conv2d', 5 + i)}/kernel"]  # (7, C_in, 1, C_out)
            conv.weight.data.copy_(torch.from_numpy(k[:, :, 0, :].transpose(2, 1, 0)))
            conv.bias.data.copy_(torch.from_numpy(t[f"{_name('conv2d', 5 + i)}/bias"]))
        for i, bn in enumerate(bns):
            _batch_norm(bn, t, _name("batch_normalization", i))
        _dense(self.dense, t, "dense")
        _dense(self.out, t, "dense_1")
        return self


class MusicnnVGG(nn.Module):
    """The VGG-like baseline on ``(B, 187, 96)`` patches; ``penultimate`` is the flattened pool5 (256)."""

    def __init__(self, n_tags: int = 50, *, filters: int = 128):
        super().__init__()
        self.bn_input = _bn(1)
        self.convs = nn.ModuleList([nn.Conv2d(1 if i == 0 else filters, filters, 3, padding=1) for i in range(5)])
        self.bns = nn.ModuleList([_bn(filters) for _ in range(5)])
        self.pools = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]
        self.out = nn.Linear(2 * 1 * filters, n_tags)
        self.embedding_dim = 2 * filters

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.bn_input(x[:, None])
        out = {}
        for i, (conv, bn, (k, s)) in enumerate(zip(self.convs, self.bns, self.pools)):
            h = F.max_pool2d(bn(F.relu(conv(h))), k, s)
            out[f"pool{i + 1}"] = h.permute(0, 2, 3, 1)  # NHWC, as TensorFlow lays it out
        flat = out["pool5"].flatten(1)
        logits = self.out(flat)
        return {"logits": logits, "tags": torch.sigmoid(logits), "penultimate": flat, **out}

    def load_tf(self, t: dict[str, np.ndarray]) -> "MusicnnVGG":
        for i, conv in enumerate(self.convs):
            _conv2d(conv, t, f"{i + 1}CNN")
        for i, bn in enumerate([self.bn_input, *self.bns]):
            _batch_norm(bn, t, _name("batch_normalization", i))
        _dense(self.out, t, "dense")
        return self


def _name(base: str, i: int) -> str:
    return base if i == 0 else f"{base}_{i}"


def _conv2d(conv: nn.Conv2d, t, name: str) -> None:
    conv.weight.data.copy_(torch.from_numpy(t[f"{name}/kernel"].transpose(3, 2, 0, 1)))  # HWIO -> OIHW
    conv.bias.data.copy_(torch.from_numpy(t[f"{name}/bias"]))


def _batch_norm(bn: nn.Module, t, name: str) -> None:
    bn.weight.data.copy_(torch.from_numpy(t[f"{name}/gamma"]))
    bn.bias.data.copy_(torch.from_numpy(t[f"{name}/beta"]))
    bn.running_mean.copy_(torch.from_numpy(t[f"{name}/moving_mean"]))
    bn.running_var.copy_(torch.from_numpy(t[f"{name}/moving_variance"]))


def _dense(lin: nn.Linear, t, name: str) -> None:
    lin.weight.data.copy_(torch.from_numpy(t[f"{name}/kernel"].T))
    lin.bias.data.copy_(torch.from_numpy(t[f"{name}/bias"]))


def checkpoint_dir(model: str) -> Path:
    """Where the installed musicnn wheel keeps ``model``'s checkpoint (found without importing TensorFlow)."""
    if model not in MODELS:
        raise ModelError(f"unknown musicnn model {model!r}; known: {', '.join(MODELS)}")
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("musicnn weights not installed: pip install --no-deps musicnn==0.1.0 "
                         "(--no-deps: its TensorFlow and numpy<1.17 requirements must not be installed)")
    return Path(list(spec.submodule_search_locations)[0]) / MODELS[model][0]


@lru_cache(maxsize=4)
def load_musicnn(model: str = "msd-musicnn") -> nn.Module:
    """A pretrained musicnn model in eval mode, weights read from the installed wheel's checkpoint."""
    from genrefusion.pretrained.tf_checkpoint import read_checkpoint

    folder = checkpoint_dir(model)
    _, arch, labels = MODELS[model]
    net = (Musicnn if arch == "musicnn" else MusicnnVGG)(len(labels))
    net.load_tf(read_checkpoint(folder))
    return net.eval()


def tag_names(model: str) -> list[str]:
    return list(MODELS[model][2])


#: patches per forward pass: one at a time is fastest on a CPU core (measured on msd-musicnn: 42 ms a patch alone,
#: 94 ms a patch in batches of 10, whose feature maps no longer fit in cache)
PATCH_BATCH = 1


@torch.no_grad()
def run_patches(model: str, patches: np.ndarray, batch: int = PATCH_BATCH,
                layers: tuple[str, ...] = ("tags", "penultimate")) -> dict[str, np.ndarray]:
    """Each of ``layers`` (see ``VECTOR_LAYERS``; ``logits`` too) for each patch, ``(n_patches, D)``, from one
    forward pass: by default the tag probabilities (D = 50) and the penultimate features. The network runs in
    onnxruntime where its graph ships (:mod:`genrefusion.pretrained.musicnn_onnx`: the same outputs, faster),
    otherwise in torch."""
    arch = MODELS[model][1]
    unknown = [layer for layer in layers if layer not in VECTOR_LAYERS[arch] + ("logits",)]
    if unknown:
        raise ModelError(f"{model} has no vector layer(s) {unknown}; it has {list(VECTOR_LAYERS[arch])}")
    from genrefusion.pretrained import musicnn_onnx

    if batch == PATCH_BATCH:
        out = musicnn_onnx.run(model, np.ascontiguousarray(patches, np.float32), layers)
        if out is not None:
            return out
    net = load_musicnn(model)
    got: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for s in range(0, len(patches), batch):
        out = net(torch.from_numpy(patches[s:s + batch]))
        for layer in layers:
            got[layer].append(out[layer].numpy())
    return {layer: np.concatenate(parts) for layer, parts in got.items()}


def tag_file(path, *, model: str = "msd-musicnn") -> dict[str, float]:
    """Tag probabilities of one audio file, averaged over its 3 s patches, ``{tag: probability}``."""
    from genrefusion import audio

    y, sr = audio.load(path, sr=SR)
    tags = run_patches(model, log_mel_patches(y, sr=sr))["tags"].mean(0)
    return {name: float(p) for name, p in zip(tag_names(model), tags)}
