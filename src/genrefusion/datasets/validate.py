"""Checking that a dataset's files are usable: headers by default, full decodes on request."""

from __future__ import annotations

from typing import Callable

from genrefusion.datasets.base import Dataset, Problem
from genrefusion.errors import GenreFusionError


def check_file(kind: str, path: str, decode: bool) -> str | None:
    """The reason ``path`` is unusable, or None. ``kind`` is "audio" or "image"."""
    from genrefusion import audio
    from genrefusion.features.images import load_image

    try:
        if kind == "image":
            load_image(path)
        elif decode:
            audio.load(path, sr=None, allow_silent=False)
        else:
            info = audio.probe(path)
            if info.frames == 0:
                return "header says the file holds no samples"
    except GenreFusionError as err:
        return err.reason
    except Exception as err:  # an unexpected decoder error is still this file's problem
        return f"{type(err).__name__}: {err}"
    return None


def _check(args: tuple[str, str, str, bool]) -> tuple[str, str, str | None]:
    tid, kind, path, decode = args
    return tid, path, check_file(kind, path, decode)


def validate_dataset(dataset: Dataset, *, decode: bool = False, workers: int = 1,
                     on_progress: Callable[[int, int], None] | None = None) -> list[Problem]:
    """Indexing problems plus every unreadable audio or image file.

    ``decode=False`` reads headers (fast); ``decode=True`` decodes every file in full and also
    catches truncated, non-finite and all-silent audio.
    """
    jobs = [(t.track_id, kind, str(p), decode) for t in dataset.tracks
            for kind, p in (("audio", t.audio_path), ("image", t.image_path)) if p is not None]
    problems = list(dataset.problems)
    if on_progress:
        on_progress(0, len(jobs))
    if workers > 1 and len(jobs) > 1:
        from genrefusion.workers import CRASHED, run_pool

        results = ((r or (job[0], job[2], CRASHED)) for job, r in run_pool(_check, jobs, workers=workers,
                                                                        in_flight_per_worker=16))
        problems += sorted(_collect(results, len(jobs), on_progress), key=lambda p: str(p.path))
    else:
        problems += _collect(map(_check, jobs), len(jobs), on_progress)
    return problems


def _collect(results, total, on_progress) -> list[Problem]:
    found = []
    for i, (tid, path, reason) in enumerate(results, start=1):
        if reason:
            found.append(Problem(reason, path=path, track_id=tid))
        if on_progress:
            on_progress(i, total)
    return found


