"""The Ray engine: the worker pool of :mod:`genrefusion.workers` on a Ray cluster (``--engine ray``).

Same contract as :func:`genrefusion.workers.run_pool`: ``(task, fn(task))`` as tasks finish, a task whose
worker dies twice comes back as ``(task, None)``, leaving early stops the work. Each worker is a Ray actor
(one CPU) that runs ``setup`` once (loads the model), so a model is loaded once per actor, not per file;
files are read by the actors (paths must be visible on every node: a shared file system). At most
``in_flight_per_worker`` tasks per actor are submitted at a time, so the driver never holds the whole
library, and the parent (driver) stays the only writer of the database or store.

An actor that dies (its process killed, its node lost) is replaced; the tasks it held are retried one
at a time on a fresh actor, so a file that kills its worker is named and every other one finishes, as on
one machine. ``address``: None starts a local Ray (stopped at the end); ``"auto"`` or ``"ray://host:port"``
joins an existing cluster.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, TypeVar

from genrefusion.errors import GenreFusionError

T = TypeVar("T")
R = TypeVar("R")


class _Worker:
    """One actor: threads limited to its CPU, ``setup`` run once."""

    def __init__(self, setup, setup_args):
        from genrefusion.workers import one_thread

        one_thread()
        if setup is not None:
            setup(*setup_args)

    def run(self, fn, task):
        return fn(task)


def require_ray():
    try:
        import ray
    except ImportError:
        raise GenreFusionError("--engine ray needs the optional 'ray' extra: pip install 'genrefusion[ray]'") from None
    return ray


def ray_pool(fn: Callable[[T], R], tasks: Iterable[T], *, workers: int | None = None,
             setup: Callable[..., None] | None = None, setup_args: tuple = (), in_flight_per_worker: int = 2,
             address: str | None = None) -> Iterator[tuple[T, R | None]]:
    """:func:`genrefusion.workers.run_pool` on Ray; ``workers``: actors (None: one per CPU of the cluster)."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        local = {"num_cpus": workers, "include_dashboard": False, "_node_ip_address": "127.0.0.1"} \
            if address is None else {}
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR, **local)
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(_Worker)
        yield from _schedule(ray, actor_class, fn, list(tasks), n, setup, setup_args, in_flight_per_worker)
    finally:
        if started:
            ray.shutdown()


def _schedule(ray, actor_class, fn, tasks, n, setup, setup_args, per_actor):
    from ray.exceptions import RayActorError, RayTaskError

    queue = list(reversed(tasks))
    suspects: list = []
    while queue or suspects:
        isolating = not queue
        if isolating:  # after a crash: the tasks that were in flight, one at a time
            queue, suspects = suspects[::-1], []
        # never more actors than the cluster has CPUs now: one that cannot be placed would hold its tasks forever
        size = 1 if isolating else min(n, max(1, int(ray.cluster_resources().get("CPU", 1))))
        load = {actor_class.remote(setup, setup_args): 0 for _ in range(size)}
        in_flight: dict = {}  # ref -> (task, actor)
        try:
            while queue or in_flight:
                for actor in list(load):
                    while queue and load[actor] < (1 if isolating else per_actor):
                        task = queue.pop()
                        in_flight[actor.run.remote(fn, task)] = (task, actor)
                        load[actor] += 1
                done, _ = ray.wait(list(in_flight), num_returns=1)
                ref = done[0]
                task, actor = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except RayTaskError as err:  # fn itself raised: as on one machine, the caller sees it
                    raise err.as_instanceof_cause() from None
                except RayActorError:  # its process or node died
                    lost = [task]
                    for other, (t, a) in list(in_flight.items()):
                        if a is actor:
                            del in_flight[other]
                            lost.append(t)
                    del load[actor]
                    ray.kill(actor, no_restart=True)
                    if isolating:
                        yield task, None  # alone on its actor, so this task is what killed it
                    else:
                        suspects.extend(lost)
                    if not load:  # none left (a lost node takes its CPUs with it): start what the cluster holds
                        cpus = int(ray.available_resources().get("CPU", 0)) or 1
                        load.update({actor_class.remote(setup, setup_args): 0 for _ in range(min(size, cpus))})
                    continue
                load[actor] -= 1
                yield task, result
        finally:
            for actor in load:
                ray.kill(actor, no_restart=True)
