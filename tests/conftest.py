"""Shared fixtures: synthetic signals written as real audio files, and the shared real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real data not found at {SHARED} (../shared/data)")

SR = 22050


def tone(freq: float, seconds: float = 2.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def clicks(bpm: float, seconds: float = 10.0, sr: int = SR) -> np.ndarray:
    y = np.zeros(int(seconds * sr), np.float32)
    period = int(round(60.0 / bpm * sr))
    burst = np.hanning(64).astype(np.float32) * np.random.default_rng(0).standard_normal(64).astype(np.float32)
    for start in range(0, y.size - 64, period):
        y[start : start + 64] += burst
    return y


def chirp(f0: float = 200.0, f1: float = 8000.0, seconds: float = 3.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2)
    return (0.5 * np.sin(phase)).astype(np.float32)


def noise(seconds: float = 2.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = SR, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kw)
    return path


@pytest.fixture
def genre_tree(tmp_path) -> Path:
    """``<genre>/<genre>.0000N.wav``: 3 genres x 4 clips of distinct synthetic sounds (GTZAN layout)."""
    root = tmp_path / "gtzan"
    makers = {"blues": lambda i: tone(220 * (i + 1)), "metal": lambda i: noise(seed=i),
              "classical": lambda i: chirp(100 + 50 * i, 4000, 2.0)}
    for genre, make in makers.items():
        for i in range(4):
            write(root / genre / f"{genre}.{i:05d}.wav", make(i))
    return root


def fit_steps(module, forward, y, *, lr: float, max_steps: int = 200, min_steps: int | None = None,
              stop_loss: float = 0.02) -> list[float]:
    """Train ``module`` with Adam on cross-entropy of ``forward()["logits"]`` against ``y``; stop after
    ``min_steps`` (default: all) once the loss is under ``stop_loss``. Returns the losses."""
    import torch

    opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    module.train()
    losses = []
    for step in range(max_steps):
        loss = torch.nn.functional.cross_entropy(forward()["logits"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if min_steps is not None and step >= min_steps and loss.item() < stop_loss:
            break
    return losses


def descendants(pid: int) -> list[int]:
    """Live (not zombie) processes below ``pid``, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended while we looked
            continue
        fields = text.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` that still run (zombies count as gone: they hold no memory and no files)."""
    live = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            live.append(pid)
    return live


def wait_for(condition, timeout: float, step: float = 0.05):
    """Poll ``condition()`` until it is truthy (returned) or ``timeout`` seconds pass (None)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return None


def workers_of(pid: int) -> list[int]:
    """The multiprocessing workers (spawned) below ``pid``."""
    found = []
    for p in descendants(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes():
                found.append(p)
        except OSError:
            pass
    return found


def stop_when(proc, ready, how: int, *, timeout: float) -> list[int]:
    """Send ``how`` to ``proc`` once ``ready()`` holds and wait for it to end (killing its group if it does not
    within 10 s); returns the workers it had, after checking they are gone within 2 s."""
    import os
    import signal

    try:
        wait_for(lambda: ready() or proc.poll() is not None, timeout=timeout)
        assert proc.poll() is None and ready(), "the run ended (or never got there) before the stop"
        workers = workers_of(proc.pid)
        proc.send_signal(how)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert wait_for(lambda: not alive(workers), timeout=2.0), f"workers {alive(workers)} outlived the command"
    return workers
