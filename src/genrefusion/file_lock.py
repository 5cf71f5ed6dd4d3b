"""An exclusive lock on a file, across processes (POSIX ``flock``), for work that two commands may
start at once: rewriting the benchmark report, training a branch of the shared branch cache."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


class LockBusy(Exception):
    """The lock is held elsewhere and the caller asked not to wait (``exclusive(..., wait=False)``)."""


@contextmanager
def exclusive(path: str | Path, *, on_wait: Callable[[], None] | None = None, wait: bool = True) -> Iterator[None]:
    """Hold the lock of file ``path`` (created, with its folder, if missing) for the block. If another
    process (or another open of the file) holds it, call ``on_wait`` once, then wait for it; or, with
    ``wait=False``, raise :class:`LockBusy`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise LockBusy(str(path)) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
