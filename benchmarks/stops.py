"""How fast the long commands stop, and whether anything of them outlives the stop.

    python benchmarks/stops.py [--data ../shared/data] [--out docs/benchmarks/stops.json]

Runs ``predict``, ``tag`` and ``extract`` (2 workers) on Emotify's 400 real clips as a user would,
waits until both workers run and 4 s of work are done, then sends SIGINT (Ctrl-C), SIGTERM or
SIGKILL. Records the exit code, the seconds until the command ended and until its last worker
was gone, and any process left. Reads the process tree from /proc (Linux). Every number in the
output comes from this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from genrefusion import __version__

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import alive, wait_for, workers_of  # noqa: E402  (the tests' /proc helpers; needs .[test])


def measure(data: Path, work: Path) -> dict:
    emotify = data / "emotify"
    commands = {"predict": ["predict", str(emotify / "audio"), "--workers", "2", "--format", "jsonl"],
                "tag": ["tag", str(emotify / "audio"), "--db", "tags.sqlite", "--workers", "2"],
                "extract": ["extract", str(emotify), "--features", "summary_gtzan", "--workers", "2", "--store", "s",
                            "--run-dir", "run"]}
    rows = {}
    for name, args in commands.items():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            proc = subprocess.Popen([sys.executable, "-m", "genrefusion.cli", *args], cwd=work,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            workers = wait_for(lambda: len(workers_of(proc.pid)) == 2 and workers_of(proc.pid), 120) or []
            time.sleep(4.0)
            t0 = time.monotonic()
            proc.send_signal(sig)
            proc.wait(timeout=30)
            ended = time.monotonic() - t0
            wait_for(lambda: not alive(workers), 10, step=0.01)
            gone = time.monotonic() - t0
            rows[f"{name} {sig.name}"] = {"exit_code": proc.returncode, "command_ended_s": round(ended, 3),
                                          "workers_gone_s": round(gone, 3), "workers": len(workers),
                                          "left_running": len(alive(workers))}
            print(name, sig.name, rows[f"{name} {sig.name}"], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/stops.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(args.data.resolve(), Path(tmp) / "work")
    args.out.write_text(json.dumps({"command": "python benchmarks/stops.py", "genrefusion": __version__,
                                    "python": platform.python_version(), "cpus": os.cpu_count(),
                                    "stops": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
