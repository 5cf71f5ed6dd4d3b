"""The trainer: AdamW, a cosine or constant LR schedule, early stopping on validation, class weights,
optional hyper-dynamic class schedule, a checkpoint each epoch, and exact resume after a kill.

Determinism: each epoch's window draws, augmentation and dropout come from generators seeded by
``(seed, epoch)``, and the checkpoint holds the model, optimiser, schedule and early-stopping
state, so an interrupted run that resumes ends with the same weights as one that was never stopped.
"""

from __future__ import annotations

import copy
import contextvars
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from genrefusion.config import TrainConfig
from genrefusion.training.augment import augment, mixup

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]

#: Set by a front end (the CLI's progress bars) to hear ``(stage, epochs_done, epochs_total)`` after each epoch.
epoch_progress: contextvars.ContextVar[Callable[[str, int, int], None] | None] = contextvars.ContextVar(
    "epoch_progress", default=None)


class TrainSource(Protocol):
    """Where training batches come from."""

    def epoch_batches(self, rng: np.random.Generator, class_boost: np.ndarray) -> Iterable[Batch]: ...


@dataclass
class Validation:
    loss: float
    accuracy: float  # the selection metric (track-level where windows are aggregated)
    per_class: np.ndarray  # accuracy (recall) of each class


class ValidSource(Protocol):
    def evaluate(self, model: nn.Module) -> Validation: ...


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best_accuracy: float = 0.0
    stopped_early: bool = False
    resumed_from: int | None = None
    seconds: float = 0.0


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights, mean 1 over the classes present."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return w / w[counts > 0].mean()


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)


class Trainer:
    """Train ``model`` (forward(x) -> {"logits", optional "branches"}) with ``cfg``.

    ``checkpoint_dir`` gets ``last.pt`` after every epoch; ``fingerprint`` (any JSON-able
    description of model, data and config) must match for a checkpoint to be resumed. ``aux_loss``: add
    each branch's own loss (``cfg.aux_weight``), for a model that fuses several branches end to end.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, *, n_classes: int, y_train: np.ndarray,
                 checkpoint_dir: str | Path | None = None, fingerprint: Any = None,
                 layouts: dict[str, str] | None = None, features: dict[str, str] | None = None,
                 log: Callable[[str], None] | None = None, name: str = "model", aux_loss: bool = False):
        self.model, self.cfg, self.n_classes, self.aux_loss = model, cfg, n_classes, aux_loss
        self.base_weights = class_weights(y_train, n_classes) if cfg.class_weights else np.ones(n_classes)
        self.boost = np.ones(n_classes)  # hyper-dynamic multipliers
        self.checkpoint = Path(checkpoint_dir) / "last.pt" if checkpoint_dir else None
        self.fingerprint = hashlib.sha1(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()
        self.layouts, self.features = layouts or {}, features or {}
        self.log = log or (lambda msg: None)
        self.name = name

    def _loss(self, out: dict, y: torch.Tensor, weights: torch.Tensor, perm=None, lam: float = 1.0) -> torch.Tensor:
        def ce(logits):
            loss = F.cross_entropy(logits, y, weight=weights)
            return loss if perm is None else lam * loss + (1 - lam) * F.cross_entropy(logits, y[perm], weight=weights)

        loss = ce(out["logits"])
        branches = out.get("branches") or {}
        if self.aux_loss and self.cfg.aux_weight and branches:
            loss = loss + self.cfg.aux_weight * sum(ce(b["logits"]) for b in branches.values()) / len(branches)
        return loss

    def _schedule(self, optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        total = max(1, self.cfg.epochs)
        if self.cfg.schedule == "cosine":
            fn = lambda e: 0.5 * (1 + math.cos(math.pi * min(e, total) / total))  # noqa: E731
        elif self.cfg.schedule == "constant":
            fn = lambda e: 1.0  # noqa: E731
        else:
            from genrefusion.errors import ConfigError

            raise ConfigError(f"train.schedule must be 'cosine' or 'constant', got {self.cfg.schedule!r}")
        return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

    def _update_boost(self, per_class: np.ndarray) -> None:
        hd = self.cfg.hyper_dynamic
        target = np.where(per_class >= hd.graduate_at, hd.graduate_weight,
                          1.0 + (hd.max_boost - 1.0) * (1.0 - np.clip(per_class / hd.graduate_at, 0, 1)))
        self.boost = hd.momentum * self.boost + (1 - hd.momentum) * target

    def fit(self, train: TrainSource, valid: ValidSource | None) -> TrainResult:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = self._schedule(optimizer)
        result = TrainResult()
        best_state, best_key, bad_epochs, start = copy.deepcopy(self.model.state_dict()), (-1.0, -math.inf), 0, 0
        if self.checkpoint is not None and self.checkpoint.is_file():
            ck = torch.load(self.checkpoint, weights_only=False)
            if ck.get("fingerprint") == self.fingerprint:
                self.model.load_state_dict(ck["model"])
                optimizer.load_state_dict(ck["optimizer"])
                scheduler.load_state_dict(ck["scheduler"])
                best_state, best_key, bad_epochs = ck["best_state"], tuple(ck["best_key"]), ck["bad_epochs"]
                self.boost, result = np.asarray(ck["boost"]), ck["result"]
                start = ck["epoch"] + 1
                result.resumed_from = start
                self.log(f"resumed from {self.checkpoint} at epoch {start}")
        t0 = time.perf_counter() - result.seconds
        for epoch in range(start, cfg.epochs):
            if result.stopped_early:
                break
            rng = np.random.default_rng([cfg.seed, epoch])
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            weights = torch.as_tensor(self.base_weights * self.boost, dtype=torch.float32)
            window_boost = np.clip(self.boost, 1.0, None) if cfg.hyper_dynamic.enabled else np.ones(self.n_classes)
            self.model.train()
            total, count = 0.0, 0
            for x, y in train.epoch_batches(rng, window_boost):
                if len(y) < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
                    continue  # batch-norm cannot train on one example
                if self.layouts and (cfg.augment.gain_db or cfg.augment.time_masks or cfg.augment.freq_masks):
                    x = augment(x, self.layouts, self.features, cfg.augment, rng)
                perm, lam = None, 1.0
                if cfg.augment.mixup_alpha > 0:
                    x, perm, lam = mixup(x, cfg.augment.mixup_alpha, rng)
                loss = self._loss(self.model(x), y, weights, perm, lam)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                total, count = total + loss.item() * len(y), count + len(y)
            scheduler.step()
            row = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": optimizer.param_groups[0]["lr"]}
            if valid is not None:
                self.model.eval()
                v = valid.evaluate(self.model)
                row.update(valid_loss=v.loss, valid_accuracy=v.accuracy)
                key = (v.accuracy, -v.loss)
                if key > best_key:
                    best_key, best_state, bad_epochs = key, copy.deepcopy(self.model.state_dict()), 0
                    result.best_epoch, result.best_accuracy = epoch, v.accuracy
                else:
                    bad_epochs += 1
                if cfg.hyper_dynamic.enabled:
                    self._update_boost(v.per_class)
                    row["class_weights"] = [round(float(w), 3) for w in self.base_weights * self.boost]
                if cfg.patience and bad_epochs >= cfg.patience:
                    result.stopped_early = True
            else:
                best_state, result.best_epoch = copy.deepcopy(self.model.state_dict()), epoch
            result.seconds = time.perf_counter() - t0
            row["seconds"] = round(result.seconds, 2)
            result.history.append(row)
            self.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                              if k != "class_weights"))
            progress = epoch_progress.get()
            if progress is not None:
                progress(self.name, epoch + 1, cfg.epochs)
            if self.checkpoint is not None:
                self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
                _atomic_save({"fingerprint": self.fingerprint, "epoch": epoch, "model": self.model.state_dict(),
                              "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                              "best_state": best_state, "best_key": list(best_key), "bad_epochs": bad_epochs,
                              "boost": self.boost.tolist(), "result": result}, self.checkpoint)
        progress = epoch_progress.get()
        if progress is not None and result.stopped_early:
            progress(self.name, cfg.epochs, cfg.epochs)  # the stage is done
        self.model.load_state_dict(best_state)
        return result
