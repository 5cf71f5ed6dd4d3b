"""Worker processes for the long commands (``extract``, ``predict``, ``tag``, ``datasets validate``).

One pool implementation with three guarantees the commands share:

- **No orphans.** Each worker dies with the process that started it: on Linux the kernel sends it
  SIGKILL when its parent goes (``prctl(PR_SET_PDEATHSIG)``), and everywhere a watchdog thread
  exits it once its parent id changes. A kill -9 of the command therefore leaves no worker (and
  multiprocessing's resource tracker, which exits when the last of them does) holding memory or
  the command's stdout and stderr.
- **Prompt stop.** Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group);
  the parent stops them. When the parent is interrupted (Ctrl-C, or SIGTERM turned into
  :class:`Interrupted` by :func:`stop_on_signals`) the pool's processes are terminated at once
  instead of finishing their tasks, and the caller commits what it has.
- **A crashed worker costs one input.** A worker that dies outright (a decoder fault, the OOM
  killer) is replaced; the inputs that were in flight are retried one at a time in a pool of
  one, so the input that kills a worker is named (``on_crash``) and every other one finishes.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from typing import Callable, Iterable, Iterator, TypeVar

from genrefusion.errors import GenreFusionError, UsageError

T = TypeVar("T")
R = TypeVar("R")

#: Seconds between a watchdog's looks at its parent (the fallback where PR_SET_PDEATHSIG is missing).
WATCHDOG_S = 0.5
#: The reason given for an input that crashed its worker twice.
CRASHED = "worker process crashed on this input (decoder fault or out of memory)"
#: Workers that died alone on this many inputs in a row before any input was done cannot start at all.
DEAD_ON_START = 3
NO_START = ("worker processes exit as they start ({n} in a row, no input done): a script that calls genrefusion "
            "must keep its code under `if __name__ == \"__main__\":`, as each worker process imports it")


class Interrupted(KeyboardInterrupt):
    """The command was asked to stop by signal ``signum`` (SIGINT or SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)


@dataclass
class Stop:
    """What :func:`stop_on_signals` saw: the first stopping signal, if any."""

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + (self.signum or signal.SIGINT)


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """SIGTERM and SIGINT raise :class:`Interrupted` in the main thread for the block, so a stopped
    command unwinds like a Ctrl-C: pools stop their workers, stores and databases commit. The
    yielded :class:`Stop` keeps the signal (click turns the exception into an exit code)."""
    stop = Stop()

    def handler(signum, frame):
        if stop.signum is None:
            stop.signum = signum
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    before = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the watchdog alone
        pass
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)

    def watch():
        while True:
            threading.Event().wait(WATCHDOG_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="genrefusion-watchdog", daemon=True).start()


def one_thread() -> None:
    """This worker process uses one BLAS/OpenMP thread: N workers on N cores, no oversubscription."""
    os.environ["OMP_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _init(parent: int, setup: Callable[..., None] | None, args: tuple) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    one_thread()
    if setup is not None:
        setup(*args)


def _pool(workers: int, setup, args) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may hold threads (the progress bar, torch) and SQLite handles
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_init,
                               initargs=(os.getpid(), setup, args))


def _stop(pool: ProcessPoolExecutor, now: bool) -> None:
    if now:  # interrupted: what the workers hold is lost anyway, so do not wait for it
        for p in list((pool._processes or {}).values()):
            if p.is_alive():
                p.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def run_pool(fn: Callable[[T], R], tasks: Iterable[T], *, workers: int | None, setup: Callable[..., None] | None = None,
             setup_args: tuple = (), in_flight_per_worker: int = 2) -> Iterator[tuple[T, R | None]]:
    """``(task, fn(task))`` as tasks finish, computed by ``workers`` spawned processes.

    ``setup(*setup_args)`` runs once in each worker (load a model). At most ``in_flight_per_worker``
    tasks per worker are submitted at a time, so a long task list is never queued whole. A task
    whose worker crashes is retried alone; if it crashes its worker again it comes back as
    ``(task, None)`` (so ``fn`` itself never returns None). Leaving the iterator early, or an
    interrupt, terminates the workers at once.
    """
    workers = workers or os.cpu_count() or 1
    queue = list(reversed(list(tasks)))
    suspects: list[T] = []
    done = dead = 0  # inputs done; workers in a row that died alone on their input before any was done
    while queue or suspects:
        isolating = not queue
        if isolating:  # after a crash: the tasks that were in flight, one by one
            queue, suspects = suspects[::-1], []
        limit = 1 if isolating else in_flight_per_worker * workers
        pool = _pool(1 if isolating else workers, setup, setup_args)
        in_flight: dict = {}
        clean = False
        try:
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    task = queue.pop()
                    in_flight[pool.submit(fn, task)] = task
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    result = fut.result()  # BrokenProcessPool if a worker died
                    done += 1
                    yield in_flight.pop(fut), result
            clean = True
        except BrokenProcessPool:
            clean = True
            if isolating:  # alone in its pool, so this task is what killed the worker
                dead = dead + 1 if not done else 0
                if dead >= DEAD_ON_START:  # not this input: no worker lives long enough to take any
                    raise GenreFusionError(NO_START.format(n=dead)) from None
                (task,) = in_flight.values()
                yield task, None
            else:
                suspects.extend(in_flight.values())
        finally:
            _stop(pool, now=not clean)


def engine_pool(engine: str = "local", address: str | None = None) -> Callable[..., Iterator]:
    """The pool function of an engine (:data:`ENGINES`): ``local`` worker processes, or ``ray`` actors on a
    cluster at ``address`` (None: a local Ray). Both keep :func:`run_pool`'s contract."""
    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if address is not None and engine != "ray":
        raise UsageError("--address names a Ray cluster: add --engine ray")
    return ENGINES[engine](address)


def _ray_pool(address):
    from genrefusion.ray_engine import ray_pool, require_ray

    require_ray()  # a missing extra is said before any work
    return partial(ray_pool, address=address)


#: The engines long commands run on (``--engine``): each gives a pool function with :func:`run_pool`'s contract.
ENGINES: dict[str, Callable[[str | None], Callable[..., Iterator]]] = {"local": lambda address: run_pool,
                                                                       "ray": _ray_pool}


def map_ordered(fn: Callable[[T], R], tasks: list[T], *, pool: Callable[..., Iterator] = run_pool,
                **kwargs) -> Iterator[tuple[T, R | None]]:
    """``pool`` (:func:`run_pool` or an engine's) in the order of ``tasks``."""
    results: dict[int, R | None] = {}
    nxt = 0
    for (i, _), result in pool(_Indexed(fn), list(enumerate(tasks)), **kwargs):
        results[i] = result
        while nxt in results:
            yield tasks[nxt], results.pop(nxt)
            nxt += 1


class _Indexed:
    """``fn`` over ``(index, task)`` pairs (a class, not a closure: it travels to spawned workers)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, item):
        return self.fn(item[1])
