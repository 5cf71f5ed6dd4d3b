"""Fuzzing the decoders and the prediction path with a seeded corpus of mutated audio files.

Mutations of real (``../shared/data``) and synthetic files in five formats: truncations, bit
flips, header edits, zeroed stretches, garbage appended and wrong extensions. Every file must be
decoded or named with a reason: no crash (an exception that is not genrefusion's), no hang (an
alarm per file), no silent wrong answer for a file that does not decode.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genrefusion import audio
from tests.conftest import SHARED, SR, chirp, noise, tone, write

FORMATS = (".wav", ".flac", ".ogg", ".mp3", ".m4a")


def _seeds(root: Path) -> list[Path]:
    """Intact files to mutate: synthetic ones in every format, and real clips where the shared data is."""
    y = np.concatenate([tone(330, 2.0), chirp(seconds=2.0), noise(2.0)]) * 0.8
    files = [write(root / "seed.wav", y), write(root / "seed.flac", y), write(root / "seed.ogg", y)]
    files += [audio.encode(root / f"seed{ext}", y, sr=SR) for ext in (".mp3", ".m4a")]
    if SHARED.is_dir():
        files += sorted((SHARED / "gtzan" / "audio").rglob("*.flac"))[::25]
        files += sorted((SHARED / "emotify" / "audio").rglob("*.ogg"))[::100]
    return files


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "header", "zero", "append", "splice"])
    n = len(data)
    b = bytearray(data)
    if kind == "truncate":
        b = b[: rng.randint(0, n - 1)]
    elif kind == "flip":
        for _ in range(rng.choice([1, 8, 64, 512])):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "header":
        for i in rng.sample(range(min(n, 128)), rng.randint(1, 16)):
            b[i] = rng.randrange(256)
    elif kind == "zero":
        start = rng.randrange(n)
        end = min(n, start + rng.randint(1, n // 4))
        b[start:end] = bytes(end - start)
    elif kind == "append":
        b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
    else:  # a piece of the file repeated somewhere else
        a = rng.randrange(n)
        piece = b[a : a + rng.randint(1, 4096)]
        at = rng.randrange(n)
        b[at:at] = piece
    return kind, bytes(b)


def make_corpus(root: Path, n: int, seed: int) -> list[Path]:
    """``n`` seeded mutants of the seed files (a fifth with a wrong extension)."""
    rng = random.Random(seed)
    seeds = _seeds(root / "seeds")
    out = []
    for i in range(n):
        src = rng.choice(seeds)
        kind, data = _mutate(src.read_bytes(), rng)
        ext = rng.choice(FORMATS) if rng.random() < 0.2 else src.suffix
        path = root / "corpus" / f"{i:04d}-{kind}-{src.stem}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out.append(path)
    return out


def _fuzz(tmp_path: Path, n: int, seed: int) -> list[dict]:
    files = make_corpus(tmp_path, n, seed)
    (tmp_path / "list.txt").write_text("\n".join(map(str, files)))
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz.harness", str(tmp_path / "list.txt"), str(out)],
                          capture_output=True, text=True, timeout=120 + 25 * n,
                          cwd=Path(__file__).resolve().parents[2])
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    assert proc.returncode == 0 and len(rows) == n, f"the harness died after {len(rows)} files: {proc.stderr[-2000:]}"
    assert proc.stderr.strip() == "", proc.stderr[-2000:]  # decoders' own messages are kept off the terminal
    return rows


def _check(rows: list[dict]) -> dict[str, int]:
    bad = [r for r in rows if any(str(r[k]).startswith(("crash", "hang")) for k in ("load", "predict"))]
    assert not bad, bad[:5]
    statuses = {"ok", "not_sure", "no_music", "too_short"}
    for r in rows:  # a reason in words; a prediction only where the parts prediction reads decode (it seeks)
        for what in ("load", "predict"):
            assert r[what] in statuses | {"ok"} or (r[what].startswith("error: ") and len(r[what]) > 12), r
            assert "Traceback" not in r[what] and "0x" not in r[what], r
    return {"decoded": sum(r["load"] == "ok" for r in rows), "named": sum(r["load"] != "ok" for r in rows)}


def test_a_small_seeded_slice_decodes_or_names_every_file(tmp_path):
    counts = _check(_fuzz(tmp_path, 40, seed=0))
    assert counts["named"] > 0 and counts["decoded"] > 0  # the corpus holds both kinds


@pytest.mark.slow
def test_a_thousand_mutated_files_decode_or_are_named(tmp_path):
    rows = _fuzz(tmp_path, 1000, seed=1)
    counts = _check(rows)
    slowest = max(r["seconds"] for r in rows)
    print(f"fuzz: {len(rows)} files, {counts['decoded']} decoded, {counts['named']} named with a reason, "
          f"slowest {slowest:.2f} s")
