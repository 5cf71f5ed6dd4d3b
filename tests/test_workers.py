"""The worker pool every long command uses: a crashed worker costs one input, interrupts stop it at once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from genrefusion.workers import map_ordered, run_pool
from tests.conftest import alive, wait_for, workers_of


def square_or_die(x: int) -> int:
    if x == 7:  # what a decoder fault or the OOM killer does to a worker
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def slow(x: int) -> int:
    time.sleep(30)
    return x


def test_a_task_that_kills_its_worker_is_named_and_every_other_task_finishes():
    results = dict(run_pool(square_or_die, range(20), workers=2))
    assert results.pop(7) is None
    assert results == {x: x * x for x in range(20) if x != 7}


def test_ordered_results_keep_the_input_order_around_a_crash():
    assert list(map_ordered(square_or_die, list(range(10)), workers=2)) == [
        (x, None if x == 7 else x * x) for x in range(10)]


def test_an_interrupt_stops_the_workers_at_once_instead_of_waiting_for_their_tasks():
    import threading

    seen = {}

    def ring(signum, frame):  # an interrupt arriving while the pool waits for results
        seen["workers"], seen["at"] = workers_of(os.getpid()), time.monotonic()
        raise KeyboardInterrupt

    def interrupt_once_both_work():
        if wait_for(lambda: len(workers_of(os.getpid())) == 2, timeout=60):
            time.sleep(0.5)  # their tasks (30 s each) are under way
        os.kill(os.getpid(), signal.SIGALRM)

    before = signal.signal(signal.SIGALRM, ring)
    threading.Thread(target=interrupt_once_both_work, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            list(run_pool(slow, range(4), workers=2))
    finally:
        signal.signal(signal.SIGALRM, before)
    assert len(seen["workers"]) == 2, "the workers must be running for this test to mean anything"
    assert time.monotonic() - seen["at"] < 2.0 and not alive(seen["workers"])


def test_a_script_without_a_main_guard_gets_one_error_not_a_worker_per_input(genre_tree, tmp_path):
    """Spawned workers import the script that started them; unguarded, each would run it again."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text("import genrefusion\n"
                      f"genrefusion.extract({str(genre_tree)!r}, store={str(tmp_path / 'store')!r}, "
                      "features=['mfcc'], workers=2)\n")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0 and 'if __name__ == "__main__":' in proc.stderr.splitlines()[-1]
    assert proc.stderr.count("unguarded.py") < 40  # a few workers' tracebacks, not one per input of 12
    assert time.monotonic() - t0 < 120
