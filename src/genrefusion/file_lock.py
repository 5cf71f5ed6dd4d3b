"""An exclusive lock on a file, across processes (POSIX ``flock``), for work that two commands may
start at once: rewriting the benchmark report, training a branch of the shared branch cache, writing
a feature store, a tag database or its shards. The one implementation of locking in genrefusion."""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


class LockBusy(Exception):
    """The lock is held elsewhere and the caller asked not to wait (``exclusive(..., wait=False)``)."""


class Held:
    """A lock held until :meth:`release` (or the process ends): for a writer that lives longer than a block."""

    def __init__(self, path: str | Path, *, on_wait: Callable[[], None] | None = None, wait: bool = False):
        """Take the lock of file ``path`` (created, with its folder, if missing). If another process (or another
        open of the file) holds it: with ``wait``, call ``on_wait`` once and wait for it; else raise
        :class:`LockBusy`."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                self._fh.close()
                raise LockBusy(str(self.path)) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(self._fh, fcntl.LOCK_EX)

    def release(self) -> None:
        if not self._fh.closed:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()


@contextmanager
def exclusive(path: str | Path, *, on_wait: Callable[[], None] | None = None, wait: bool = True) -> Iterator[None]:
    """Hold the lock of file ``path`` for the block (:class:`Held`; by default waiting for it)."""
    held = Held(path, on_wait=on_wait, wait=wait)
    try:
        yield
    finally:
        held.release()
