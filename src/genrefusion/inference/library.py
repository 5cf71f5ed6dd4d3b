"""Tag a whole music library: predictions kept in an SQLite file, so runs resume and re-runs are cheap.

The database mirrors the library. A file is (re)tagged when the database has no row for it with
the same size, modification time and model, or when it failed last time (so a fixed file is
picked up without touching it); an interrupted run picks up where it stopped and a re-run touches
only new, changed or failed files. A file that is gone is marked ``missing`` (``prune`` deletes
its row). Results are committed as they arrive. One run at a time holds a database (a second is
refused). Writing the genre into the files' own tags (mutagen) is a separate, explicit step that
never replaces an existing genre unless asked.

Two result stores keep that contract: :class:`LibraryDB` (one SQLite file, the default) and
:class:`ShardStore` (a folder of Parquet shards, for libraries past what one SQLite writer holds
comfortably, and for tables read by Arrow/pandas/Spark): each batch of results becomes one shard,
written under a temporary name and renamed into place, so a shard is whole or absent; read back,
the shards are one table with the newest row of each path.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from genrefusion.audio import Skipped, path_problem, scan_audio
from genrefusion.errors import GenreFusionError, UsageError, disk_full
from genrefusion.file_lock import Held, LockBusy
from genrefusion.inference.predictor import predict_files, resolve_bundle

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracks (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,          -- 'ok', 'not_sure', 'no_music', 'too_short', 'error' or 'missing' (file gone)
    genre TEXT,                    -- NULL for no_music, too_short and error
    probabilities TEXT,            -- JSON {genre: probability}
    duration_s REAL,
    error TEXT,
    tagged_at REAL NOT NULL
)"""
EXPORT_FORMATS = ("csv", "json")
EXPORT_COLUMNS = ("path", "status", "genre", "probability", "probabilities", "duration_s", "error")


def model_id(bundle: str | Path | None, profile: str | None = None) -> str:
    """A short hash of the bundle's metadata and weights: a new model (or profile) re-tags everything."""
    folder = resolve_bundle(bundle, profile)
    h = hashlib.sha1()
    for name in ("bundle.json", "arrays.npz", "sklearn.skops", "weights.pt", "objects.pkl"):  # today's files, then format 1's
        if (folder / name).is_file():
            h.update((folder / name).read_bytes())
    return h.hexdigest()[:12]


def scan(root: str | Path) -> tuple[list[Path], list[Skipped]]:
    """Audio files under ``root`` (recursive, sorted), or ``root`` itself if it is one, and the entries not
    taken with their reasons (:func:`genrefusion.audio.scan_audio`)."""
    root = Path(root)
    if root.is_file():
        return [root], []
    if not root.is_dir():
        raise GenreFusionError(path_problem(root) or "not a folder", path=root)
    return scan_audio(root)


def check_export(path: str | Path, fmt: str | None = None) -> str:
    """The export format of ``path`` (by ``fmt`` or its extension), checked before any work is done."""
    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"export format must be {' or '.join(EXPORT_FORMATS)} (by the file's extension), got "
                         f"{fmt or 'no extension'!r}", path=path)
    return fmt


@dataclass
class TagReport:
    found: int
    skipped: int  # unchanged since an earlier run with the same model
    tagged: int
    failed: int  # failed in this run (files that could not be read or predicted)
    seconds: float
    missing: int = 0  # rows of files no longer in the library: marked 'missing', or deleted with prune
    not_taken: list[Skipped] = field(default_factory=list)  # entries of the folder not tagged, and why


class Results(Protocol):
    """Where ``tag`` keeps a library's predictions: :class:`LibraryDB` or :class:`ShardStore`."""

    path: Path

    def pending(self, files: list[Path], model: str) -> list[Path]: ...
    def gone(self, root: Path, files: list[Path], *, prune: bool) -> int: ...
    def record(self, path: str, model: str, prediction, error: str | None) -> None: ...
    def commit(self, force: bool = False) -> None: ...
    def touch(self, path: str) -> None: ...
    def rows(self) -> Iterator[dict]: ...
    def close(self) -> None: ...


def _hold(lock_path: Path, what: str, option: str, where: Path) -> Held:
    """An exclusive lock on ``lock_path`` for this run, or the error (naming ``where``) that another run holds it."""
    try:
        return Held(lock_path)
    except LockBusy:
        raise GenreFusionError(f"another `genrefusion tag` is using this {what}; wait for it to finish, "
                               f"or pass another {option}", path=where) from None


def _row(path: str, model: str, prediction, error: str | None) -> tuple:
    """One result as a row of the stores (the columns of SCHEMA, in order)."""
    p = Path(path)
    st = p.stat()
    probs = dict(zip(prediction.labels, map(float, prediction.proba))) if prediction is not None else None
    if prediction is not None and not prediction.has_genre:
        probs, error = None, prediction.reason
    return (str(p.resolve()), st.st_size, st.st_mtime_ns, model, prediction.status if prediction is not None else "error",
            prediction.genre if prediction is not None else None, json.dumps(probs) if probs else None,
            prediction.duration_s if prediction is not None else None, error, time.time())


def _export_row(path, status, genre, probs, duration, error) -> dict:
    probs = json.loads(probs) if probs else {}
    return {"path": path, "status": status, "genre": genre, "probability": probs.get(genre),
            "probabilities": probs, "duration_s": duration, "error": error}


def _current(rows: dict, files: list[Path], model: str) -> list[Path]:
    """``files`` whose (size, mtime, model) differ from ``rows`` (path -> that triple)."""
    out = []
    for f in files:
        st = f.stat()
        if rows.get(str(f.resolve())) != (st.st_size, st.st_mtime_ns, model):
            out.append(f)
    return out


def _under(paths: Iterator[str], root: Path, present: set[str]) -> list[str]:
    top = str(root.resolve())
    return [p for p in paths if (p == top or p.startswith(top.rstrip("/") + "/")) and p not in present]


class LibraryDB:
    """The SQLite file of a library's predictions, held by one run at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _hold(self.path.with_name(self.path.name + ".lock"), "database", "--db", self.path)
        self.conn = sqlite3.connect(str(self.path))
        self.conn.execute(SCHEMA)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()
        self._lock.release()

    def __enter__(self) -> "LibraryDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pending(self, files: list[Path], model: str) -> list[Path]:
        """Files without a current row (new, changed, tagged by another model, failed or missing last time)."""
        return _current({p: (s, m, mod) for p, s, m, mod in self.conn.execute(
            "SELECT path, size, mtime_ns, model FROM tracks WHERE status NOT IN ('error', 'missing')")}, files, model)

    def gone(self, root: Path, files: list[Path], *, prune: bool) -> int:
        """Rows under ``root`` whose file is no longer among ``files``: marked 'missing', or deleted with ``prune``."""
        under = _under((p for (p,) in self.conn.execute("SELECT path FROM tracks")), root,
                       {str(f.resolve()) for f in files})
        if prune:
            self.conn.executemany("DELETE FROM tracks WHERE path = ?", [(p,) for p in under])
        else:
            self.conn.executemany("UPDATE tracks SET status = 'missing' WHERE path = ?", [(p,) for p in under])
        self.conn.commit()
        return len(under)

    def record(self, path: str, model: str, prediction, error: str | None) -> None:
        self.conn.execute("INSERT OR REPLACE INTO tracks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          _row(path, model, prediction, error))

    def commit(self, force: bool = False) -> None:
        self.conn.commit()

    def touch(self, path: str) -> None:
        """Take the file's current size and mtime (after our own edit of its tags: no re-tag needed)."""
        st = Path(path).stat()
        self.conn.execute("UPDATE tracks SET size = ?, mtime_ns = ? WHERE path = ?", (st.st_size, st.st_mtime_ns, path))

    def rows(self) -> Iterator[dict]:
        cur = self.conn.execute("SELECT path, status, genre, probabilities, duration_s, error FROM tracks ORDER BY path")
        for row in cur:
            yield _export_row(*row)


class ShardStore:
    """A folder of Parquet shards holding a library's predictions (``tag --shards``), held by one run at a time.

    Results are buffered and written as one shard per batch (``rows_per_shard`` rows or ``flush_every_s``
    seconds, whichever comes first, and at the end or on an interrupt), each under a temporary name and
    renamed into place: a killed run loses at most its unwritten batch, which a re-run redoes. Reading
    takes every ``part-*.parquet`` (by any Parquet reader) with the newest row of each path winning.
    """

    def __init__(self, folder: str | Path, *, rows_per_shard: int = 5000, flush_every_s: float = 30.0,
                 lock: bool = True):
        pa = _arrow()
        self.path = Path(folder)
        if self.path.exists() and not self.path.is_dir():
            raise UsageError("--shards must be a folder", path=self.path)
        self._lock = None
        if lock:  # a reader (``lock=False``) neither creates nor holds the folder
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = _hold(self.path / ".lock", "folder", "--shards", self.path)
        self.schema = pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
                                 ("model", pa.string()), ("status", pa.string()), ("genre", pa.string()),
                                 ("probabilities", pa.string()), ("duration_s", pa.float64()),
                                 ("error", pa.string()), ("tagged_at", pa.float64())])
        self.rows_per_shard, self.flush_every_s = rows_per_shard, flush_every_s
        self._buffer: list[tuple] = []
        self._touched: dict[str, os.stat_result] = {}
        self._flushed = time.monotonic()
        self._run = f"{time.time_ns():020d}-{os.getpid()}"
        self._written = 0

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "ShardStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def shards(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet"))

    def table(self):
        """Every shard as one Arrow table, the newest row of each path only, sorted by path."""
        import pyarrow.parquet as pq

        pa = _arrow()
        parts = [pq.read_table(p, schema=self.schema) for p in self.shards()]
        if not parts:
            return self.schema.empty_table()
        table = pa.concat_tables(parts)
        at = table.column("tagged_at").to_pylist()
        newest: dict[str, int] = {}
        for i, path in enumerate(table.column("path").to_pylist()):
            j = newest.get(path)
            if j is None or at[i] >= at[j]:  # shards are read oldest first, so a tie goes to the later one
                newest[path] = i
        return table.take([newest[p] for p in sorted(newest)])

    def pending(self, files: list[Path], model: str) -> list[Path]:
        t = self.table()
        rows = {p: (s, m, mod) for p, s, m, mod, st in zip(*(t.column(c).to_pylist() for c in
                ("path", "size", "mtime_ns", "model", "status"))) if st not in ("error", "missing")}
        return _current(rows, files, model)

    def gone(self, root: Path, files: list[Path], *, prune: bool) -> int:
        t = self.table()
        under = set(_under(iter(t.column("path").to_pylist()), root, {str(f.resolve()) for f in files}))
        if not under:
            return 0
        if prune:  # the current rows less those, as one shard that replaces all the others
            old = self.shards()
            keep = [i for i, p in enumerate(t.column("path").to_pylist()) if p not in under]
            self._write(t.take(keep))
            for p in old:
                p.unlink()
        else:
            rows = [r for r in t.to_pylist() if r["path"] in under and r["status"] != "missing"]
            self._buffer.extend(tuple({**r, "status": "missing"}.values()) for r in rows)
            self.commit(force=True)
        return len(under)

    def record(self, path: str, model: str, prediction, error: str | None) -> None:
        self._buffer.append(_row(path, model, prediction, error))
        if len(self._buffer) >= self.rows_per_shard:
            self.commit(force=True)

    def commit(self, force: bool = False) -> None:
        """Write the buffered rows as a shard when the batch is due (or ``force``)."""
        if self._touched:
            for row in self.table().to_pylist():
                st = self._touched.get(row["path"])
                if st is not None:
                    self._buffer.append(tuple({**row, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                               "tagged_at": time.time()}.values()))
            self._touched = {}
        if self._buffer and (force or time.monotonic() - self._flushed >= self.flush_every_s):
            pa = _arrow()
            self._write(pa.Table.from_pylist([dict(zip(self.schema.names, r)) for r in self._buffer], schema=self.schema))
            self._buffer = []
            self._flushed = time.monotonic()

    def touch(self, path: str) -> None:
        self._touched[path] = Path(path).stat()  # merged into a shard at the next commit

    def rows(self) -> Iterator[dict]:
        t = self.table()
        for row in zip(*(t.column(c).to_pylist() for c in
                         ("path", "status", "genre", "probabilities", "duration_s", "error"))):
            yield _export_row(*row)

    def _write(self, table) -> None:
        import pyarrow.parquet as pq

        self._written += 1
        final = self.path / f"part-{self._run}-{self._written:06d}.parquet"
        tmp = final.with_name("." + final.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, final)


def _arrow():
    try:
        import pyarrow
    except ImportError:
        raise GenreFusionError("--shards needs pyarrow: pip install 'genrefusion[ray]' (or pyarrow)") from None
    return pyarrow


def read_tags(folder: str | Path):
    """The results of ``tag --shards folder`` as one Arrow table (newest row per path; ``.to_pandas()`` for pandas)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GenreFusionError("no such shard folder", path=folder)
    return ShardStore(folder, lock=False).table()


def tag_library(root: str | Path, db: Results, *, bundle: str | Path | None = None, profile: str | None = None,
                workers: int | None = 1, backend: str = "torch", prune: bool = False, engine: str = "local",
                address: str | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                on_error: Callable[[str, str], None] | None = None, commit_every_s: float = 2.0) -> TagReport:
    """Predict every new, changed or failed audio file under ``root`` and record it in ``db``; mark (or, with
    ``prune``, delete) the rows of files that are gone. ``on_error(path, reason)`` hears of each failure."""
    t0 = time.perf_counter()
    root = Path(root)
    files, skipped = scan(root)
    model = model_id(bundle, profile)
    todo = db.pending(files, model)
    missing = db.gone(root, files, prune=prune) if root.is_dir() else 0
    unreadable = [s for s in skipped if s.failed]  # broken links, loops, pipes: no row, but failures
    for s in unreadable:
        if on_error:
            on_error(s.path, s.reason)
    done = failed = 0
    last = time.monotonic()
    if on_progress:
        on_progress(0, len(todo))
    try:
        for path, prediction, error in predict_files(todo, bundle=bundle, profile=profile, workers=workers,
                                                     backend=backend, ordered=False, engine=engine, address=address):
            db.record(path, model, prediction, error)
            done += 1
            if error is not None:
                failed += 1
                if on_error:
                    on_error(path, error)
            if time.monotonic() - last > commit_every_s:
                db.commit()
                last = time.monotonic()
            if on_progress:
                on_progress(done, len(todo))
    except (OSError, sqlite3.OperationalError) as err:
        if not disk_full(err):
            raise
        raise GenreFusionError(f"no space left on the device: {done} results kept, {len(todo) - done} files to go "
                               f"(about {max(1, (len(todo) - done) // 1000)} MB more, at ~1 kB a row); free space and re-run",
                               path=db.path) from None
    finally:
        try:
            db.commit(force=True)  # what finished is kept, also on Ctrl-C
        except sqlite3.Error:  # a full disk: the last batch is lost, the rest is in the file
            pass
    return TagReport(len(files), len(files) - len(todo), done - failed, failed + len(unreadable),
                     time.perf_counter() - t0, missing, skipped)


def export(db: Results, path: str | Path, *, fmt: str | None = None) -> int:
    """Write every row to CSV or JSON (by ``fmt`` or the file's extension); returns the row count."""
    path = Path(path)
    fmt = check_export(path, fmt)
    rows = list(db.rows())
    if fmt == "json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    else:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=EXPORT_COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({**r, "probabilities": json.dumps(r["probabilities"])})
    return len(rows)


@dataclass
class TagChange:
    path: str
    old: str | None
    new: str
    action: str  # "write", "keep" (an existing genre, not overwritten), "same", "error: ..."


def write_genre_tags(db: Results, *, dry_run: bool = True, overwrite: bool = False,
                     capitalize: bool = True) -> list[TagChange]:
    """Put each tagged file's predicted genre into its own genre tag (mutagen's easy tags).

    An existing, different genre is kept unless ``overwrite``; ``dry_run`` only reports.
    """
    import mutagen

    changes = []
    for row in db.rows():
        if row["genre"] is None or row["status"] == "missing":  # no genre to write, or no file to write it to
            continue
        new = row["genre"].title() if capitalize else row["genre"]
        try:
            f = mutagen.File(row["path"], easy=True)
            if f is None:
                raise mutagen.MutagenError("no tag format mutagen can write for this file")
            old = (f.get("genre") or [None])[0] if f.tags is not None else None
            if old and old.strip().lower() == new.lower():
                action = "same"
            elif old and not overwrite:
                action = "keep"
            else:
                action = "write"
                if not dry_run:
                    if f.tags is None:
                        f.add_tags()
                    f["genre"] = [new]
                    f.save()
                    db.touch(row["path"])  # our own edit is not a change that needs re-tagging
        except (mutagen.MutagenError, OSError, KeyError, ValueError) as err:
            old, action = None, f"error: {err}"
        changes.append(TagChange(row["path"], old, new, action))
    db.commit(force=True)
    return changes
