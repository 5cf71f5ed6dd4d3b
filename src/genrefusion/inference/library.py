"""Tag a whole music library: predictions kept in an SQLite file, so runs resume and re-runs are cheap.

The database mirrors the library. A file is (re)tagged when the database has no row for it with
the same size, modification time and model, or when it failed last time (so a fixed file is
picked up without touching it); an interrupted run picks up where it stopped and a re-run touches
only new, changed or failed files. A file that is gone is marked ``missing`` (``prune`` deletes
its row). Results are committed as they arrive. One run at a time holds a database (a second is
refused). Writing the genre into the files' own tags (mutagen) is a separate, explicit step that
never replaces an existing genre unless asked.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from genrefusion.audio import Skipped, path_problem, scan_audio
from genrefusion.errors import GenreFusionError, UsageError, disk_full
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
    for name in ("bundle.json", "weights.pt", "arrays.npz", "objects.pkl"):
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


class LibraryDB:
    """The SQLite file of a library's predictions, held by one run at a time."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path.with_name(self.path.name + ".lock"), "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise GenreFusionError("another `genrefusion tag` is using this database; wait for it to finish, "
                                   "or pass another --db", path=self.path) from None
        self.conn = sqlite3.connect(str(self.path))
        self.conn.execute(SCHEMA)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()
        self._lock.close()

    def __enter__(self) -> "LibraryDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pending(self, files: list[Path], model: str) -> list[Path]:
        """Files without a current row (new, changed, tagged by another model, failed or missing last time)."""
        rows = {p: (s, m, mod) for p, s, m, mod in self.conn.execute(
            "SELECT path, size, mtime_ns, model FROM tracks WHERE status NOT IN ('error', 'missing')")}
        out = []
        for f in files:
            st = f.stat()
            if rows.get(str(f.resolve())) != (st.st_size, st.st_mtime_ns, model):
                out.append(f)
        return out

    def gone(self, root: Path, files: list[Path], *, prune: bool) -> int:
        """Rows under ``root`` whose file is no longer among ``files``: marked 'missing', or deleted with ``prune``."""
        present = {str(f.resolve()) for f in files}
        top = str(root.resolve())
        under = [p for (p,) in self.conn.execute("SELECT path FROM tracks")
                 if (p == top or p.startswith(top.rstrip("/") + "/")) and p not in present]
        if prune:
            self.conn.executemany("DELETE FROM tracks WHERE path = ?", [(p,) for p in under])
        else:
            self.conn.executemany("UPDATE tracks SET status = 'missing' WHERE path = ?", [(p,) for p in under])
        self.conn.commit()
        return len(under)

    def count(self, status: str) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM tracks WHERE status = ?", (status,)).fetchone()[0]

    def record(self, path: str, model: str, prediction, error: str | None) -> None:
        p = Path(path)
        st = p.stat()
        probs = dict(zip(prediction.labels, map(float, prediction.proba))) if prediction is not None else None
        if prediction is not None and not prediction.has_genre:
            probs, error = None, prediction.reason
        self.conn.execute(
            "INSERT OR REPLACE INTO tracks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(p.resolve()), st.st_size, st.st_mtime_ns, model, prediction.status if prediction is not None else "error",
             prediction.genre if prediction is not None else None, json.dumps(probs) if probs else None,
             prediction.duration_s if prediction is not None else None, error, time.time()))

    def rows(self) -> Iterator[dict]:
        cur = self.conn.execute("SELECT path, status, genre, probabilities, duration_s, error FROM tracks ORDER BY path")
        for path, status, genre, probs, duration, error in cur:
            probs = json.loads(probs) if probs else {}
            yield {"path": path, "status": status, "genre": genre, "probability": probs.get(genre),
                   "probabilities": probs, "duration_s": duration, "error": error}


def tag_library(root: str | Path, db: LibraryDB, *, bundle: str | Path | None = None, profile: str | None = None,
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
                db.conn.commit()
                last = time.monotonic()
            if on_progress:
                on_progress(done, len(todo))
        db.conn.commit()
    except (OSError, sqlite3.OperationalError) as err:
        if not disk_full(err):
            raise
        raise GenreFusionError(f"no space left on the device: {done} results kept, {len(todo) - done} files to go "
                               f"(about {max(1, (len(todo) - done) // 1000)} MB more, at ~1 kB a row); free space and re-run",
                               path=db.path) from None
    finally:
        try:
            db.conn.commit()  # what finished is kept, also on Ctrl-C
        except sqlite3.Error:  # a full disk: the last batch is lost, the rest is in the file
            pass
    return TagReport(len(files), len(files) - len(todo), done - failed, failed + len(unreadable),
                     time.perf_counter() - t0, missing, skipped)


def export(db: LibraryDB, path: str | Path, *, fmt: str | None = None) -> int:
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


def write_genre_tags(db: LibraryDB, *, dry_run: bool = True, overwrite: bool = False,
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
                    st = Path(row["path"]).stat()  # our own edit is not a change that needs re-tagging
                    db.conn.execute("UPDATE tracks SET size = ?, mtime_ns = ? WHERE path = ?",
                                    (st.st_size, st.st_mtime_ns, row["path"]))
        except (mutagen.MutagenError, OSError, KeyError, ValueError) as err:
            old, action = None, f"error: {err}"
        changes.append(TagChange(row["path"], old, new, action))
    db.conn.commit()
    return changes
