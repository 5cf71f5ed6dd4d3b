"""Runs mutated files through ``audio.load`` and ``predict``, one JSON line per file (the fuzz tests' child).

Usage: ``python -m tests.fuzz.harness LIST OUT``: LIST holds one path per line. Each file gets
``{"path", "load", "predict", "seconds"}``: ``load`` and ``predict`` are "ok" (or the prediction's
status) or the reason genrefusion gave; an exception that is not genrefusion's is recorded as
``"crash: <type>: <message>"``. A file that takes longer than ``PER_FILE_S`` is ended by an alarm
and recorded as ``"hang"``; a hang in native code that no alarm can end shows as a missing line.
"""

from __future__ import annotations

import json
import signal
import sys
import time

PER_FILE_S = 20


class _Hang(Exception):
    pass


def _ring(signum, frame):
    raise _Hang


def _try(fn) -> str:
    from genrefusion.errors import GenreFusionError

    signal.alarm(PER_FILE_S)
    try:
        return fn()
    except GenreFusionError as err:
        return f"error: {err.reason}"
    except _Hang:
        return "hang"
    except Exception as err:  # what the fuzz test looks for
        return f"crash: {type(err).__name__}: {err}"
    finally:
        signal.alarm(0)


def main(list_file: str, out_file: str) -> None:
    from genrefusion import audio
    from genrefusion.inference.predictor import Predictor

    signal.signal(signal.SIGALRM, _ring)
    predictor = Predictor(profile="fast")
    with open(list_file) as f, open(out_file, "w") as out:
        for path in (line.strip() for line in f if line.strip()):
            t0 = time.monotonic()
            load = _try(lambda: (audio.load(path), "ok")[1])
            predict = _try(lambda: predictor.predict_file(path).status)
            out.write(json.dumps({"path": path, "load": load, "predict": predict,
                                  "seconds": round(time.monotonic() - t0, 2)}) + "\n")
            out.flush()


if __name__ == "__main__":
    main(*sys.argv[1:3])
