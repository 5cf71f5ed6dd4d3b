"""The Ray engine against local worker processes, in one run, and what limits one driver.

    python benchmarks/ray_throughput.py [--data ../shared/data] [--files 400] [--out docs/benchmarks/ray.json]

1. ``predict_files`` of the shipped model (fast profile) over Emotify's real clips with 2 local worker
   processes, then with 2 Ray actors on a local Ray started for it (2 CPUs): clips per second, start-up
   included, and their ratio (the Ray overhead on this machine).
2. The per-task cost of the Ray engine: a task that does nothing, through the same pool, per second.
3. The driver's share: recording one result row in each of tag's result stores (SQLite, committed every
   2 s as ``tag`` does; Parquet shards of 5 000 rows, ``--shards``), per second: the ceiling of tracks per
   second one driver can take, whatever the cluster's size.

Every number in the output comes from this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from genrefusion import __version__


def _noop(x: int) -> int:
    return x


def _throughput(paths: list[str], engine: str) -> float:
    from genrefusion.inference.predictor import predict_files

    t0 = time.perf_counter()
    n = sum(1 for _, r, _ in predict_files(paths, workers=2, profile="fast", engine=engine, ordered=False)
            if r is not None)
    return n / (time.perf_counter() - t0)


def _task_rate(n: int) -> float:
    from genrefusion.ray_engine import ray_pool

    t0 = time.perf_counter()
    for _ in ray_pool(_noop, range(n), workers=2, in_flight_per_worker=16):
        pass
    return n / (time.perf_counter() - t0)


def _store_rates(paths: list[str], repeat: int) -> dict[str, float]:
    from genrefusion.inference.library import LibraryDB, ShardStore
    from genrefusion.inference.predictor import Predictor

    prediction = Predictor(profile="fast").predict_file(paths[0])
    rates = {}
    for name, store in (("sqlite", LibraryDB), ("parquet_shards", ShardStore)):
        with tempfile.TemporaryDirectory() as tmp, store(Path(tmp) / "results") as db:
            t0 = time.perf_counter()
            last = time.monotonic()
            for i in range(repeat):
                db.record(paths[i % len(paths)], "model", prediction, None)
                if time.monotonic() - last > 2.0:  # as tag_library commits
                    db.commit()
                    last = time.monotonic()
            db.commit(force=True)
            rates[name] = repeat / (time.perf_counter() - t0)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks/ray.json"))
    args = ap.parse_args()
    paths = sorted(str(p) for p in (args.data / "emotify" / "audio").rglob("*.ogg"))[: args.files]
    local = _throughput(paths, "local")
    on_ray = _throughput(paths, "ray")
    tasks = _task_rate(2000)
    rows = _store_rates(paths, 20000)
    result = {"command": "python benchmarks/ray_throughput.py", "files": len(paths), "workers": 2,
              "local_clips_per_s": round(local, 2), "ray_clips_per_s": round(on_ray, 2),
              "ray_over_local": round(on_ray / local, 3), "ray_empty_tasks_per_s": round(tasks, 1),
              "driver_db_rows_per_s": round(rows["sqlite"], 1),
              "driver_shard_rows_per_s": round(rows["parquet_shards"], 1), "genrefusion": __version__,
              "python": platform.python_version(), "cpus": os.cpu_count()}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
