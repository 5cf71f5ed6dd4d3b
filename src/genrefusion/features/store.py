"""The on-disk feature store: arrays keyed by track x feature x parameter hash x input fingerprint.

Layout (one folder per feature key, i.e. per feature name + parameter hash)::

    <store>/fingerprints.sqlite                    path -> (size, mtime_ns, content digest) cache
    <store>/features/<name>-<hash>/spec.json       feature name, version, parameters, input source
    <store>/features/<name>-<hash>/index.sqlite    track_id -> fingerprint, pack, offset, dtype, shape
    <store>/features/<name>-<hash>/packs/000000.pack   raw array bytes, append-only, ~1 GiB each

Why packs: 100 000 tracks x a few features would otherwise be hundreds of thousands of tiny
files. Arrays are appended to a pack, the pack is fsynced, and only then is the index row
committed (SQLite, WAL): an entry is visible only once its bytes are durable, so a kill at any
moment loses at most the uncommitted batch and never leaves a corrupt entry. A writer holds an
exclusive lock on its feature folder and, on opening, truncates bytes that no committed row
points to. Reads memory-map the packs: a training set's arrays come back as zero-copy views.

Damage from outside (a pack cut short by an interrupted copy or restore, flipped bits) is never
written over: each entry records a checksum of its bytes; a writer refuses to open a feature
whose packs are shorter than its index says, a read of an entry past a pack's end fails naming
it, and :meth:`StoredFeature.verify` (``genrefusion store verify``) checks every entry's length
and checksum and, with ``repair``, forgets the damaged entries so the next extract recomputes them.
A changed input (new fingerprint) appends a new version and repoints the row; ``compact()``
reclaims the old bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from genrefusion.errors import FeatureError
from genrefusion.file_lock import Held, LockBusy

PACK_BYTES = 1 << 30
ALIGN = 64
_HASH_BLOCK = 1 << 20


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    return con


class StoredFeature:
    """One feature key's arrays. Open for reading anywhere; writing needs :meth:`writer`."""

    def __init__(self, folder: Path, spec: Mapping | None = None):
        self.folder = Path(folder)
        (self.folder / "packs").mkdir(parents=True, exist_ok=True)
        spec_path = self.folder / "spec.json"
        if spec is not None and not spec_path.exists():
            tmp = spec_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(dict(spec), indent=2, sort_keys=True, default=str))
            tmp.replace(spec_path)
        self.spec = json.loads(spec_path.read_text()) if spec_path.exists() else {}
        self._con = _connect(self.folder / "index.sqlite")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS entries (track_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, "
            "pack INTEGER NOT NULL, offset INTEGER NOT NULL, nbytes INTEGER NOT NULL, dtype TEXT NOT NULL, "
            "shape TEXT NOT NULL, created REAL NOT NULL, checksum TEXT)")
        columns = {r[1] for r in self._con.execute("PRAGMA table_info(entries)")}
        if "checksum" not in columns:  # a store written before entries had checksums: their lengths are still checked
            self._con.execute("ALTER TABLE entries ADD COLUMN checksum TEXT")
        self._maps: dict[int, np.memmap] = {}

    @property
    def key(self) -> str:
        return self.folder.name

    def __len__(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def ids(self) -> list[str]:
        return [r[0] for r in self._con.execute("SELECT track_id FROM entries ORDER BY track_id")]

    def fingerprints(self, track_ids: Iterable[str] | None = None) -> dict[str, str]:
        """``{track_id: fingerprint}`` of stored entries (all, or those among ``track_ids``)."""
        rows = self._con.execute("SELECT track_id, fingerprint FROM entries").fetchall()
        if track_ids is None:
            return dict(rows)
        wanted = set(track_ids)
        return {t: f for t, f in rows if t in wanted}

    def _pack_path(self, pack: int) -> Path:
        return self.folder / "packs" / f"{pack:06d}.pack"

    def _map(self, pack: int, end: int) -> np.memmap:
        m = self._maps.get(pack)
        if m is None or m.shape[0] < end:
            path = self._pack_path(pack)
            if not path.is_file() or path.stat().st_size == 0:  # cut to nothing, or lost: no bytes to map
                return np.zeros(0, np.uint8)
            m = self._maps[pack] = np.memmap(path, dtype=np.uint8, mode="r")
        return m

    def read(self, track_ids: Iterable[str]) -> list[np.ndarray]:
        """Arrays of these tracks in the given order (read-only views into the packs)."""
        track_ids = list(track_ids)
        rows = {}
        for chunk in range(0, len(track_ids), 900):  # SQLite's bound-parameter limit
            part = track_ids[chunk : chunk + 900]
            q = f"SELECT track_id, pack, offset, nbytes, dtype, shape FROM entries WHERE track_id IN ({','.join('?' * len(part))})"
            rows.update({r[0]: r[1:] for r in self._con.execute(q, part)})
        missing = [t for t in track_ids if t not in rows]
        if missing:
            raise FeatureError(f"{len(missing)} tracks not in the store for {self.key}, e.g. {missing[:3]}; "
                               "run `genrefusion extract` first", path=self.folder)
        out = []
        for tid in track_ids:
            pack, offset, nbytes, dtype, shape = rows[tid]
            raw = self._map(pack, offset + nbytes)[offset : offset + nbytes]
            if raw.shape[0] != nbytes:
                raise FeatureError(f"entry {tid!r} lies past the end of pack {pack:06d}.pack (the file was cut short); "
                                   "run `genrefusion store verify --repair` and extract again", path=self.folder)
            out.append(raw.view(np.dtype(dtype)).reshape(json.loads(shape)))
        return out

    def damaged(self, *, checksums: bool = False) -> list[tuple[str, str]]:
        """``(track_id, reason)`` of every entry whose bytes are missing (a pack shorter than the index says) or,
        with ``checksums``, differ from what was written."""
        self._maps.clear()  # see the packs as they are now
        sizes: dict[int, int] = {}
        found = []
        for tid, pack, offset, nbytes, checksum in self._con.execute(
                "SELECT track_id, pack, offset, nbytes, checksum FROM entries ORDER BY pack, offset"):
            if pack not in sizes:
                path = self._pack_path(pack)
                sizes[pack] = path.stat().st_size if path.is_file() else -1
            if sizes[pack] < 0:
                found.append((tid, f"pack {pack:06d}.pack is missing"))
            elif offset + nbytes > sizes[pack]:
                found.append((tid, f"pack {pack:06d}.pack ends at byte {sizes[pack]}, before this entry's end "
                                   f"({offset + nbytes})"))
            elif checksums and checksum is not None:
                raw = self._map(pack, offset + nbytes)[offset : offset + nbytes]
                if bytes_checksum(raw) != checksum:
                    found.append((tid, "bytes differ from what was written (checksum mismatch)"))
        return found

    def verify(self, *, repair: bool = False) -> list[tuple[str, str]]:
        """Every damaged entry with its reason (lengths and checksums); ``repair`` deletes their rows, so the next
        extract computes them again (needs the writer's lock)."""
        found = self.damaged(checksums=True)
        if repair and found:
            with self.writer(check=False) as w:
                w.forget([tid for tid, _ in found])
        return found

    def read_stacked(self, track_ids: Iterable[str]) -> np.ndarray:
        """``(n_tracks, *shape)`` for a fixed-shape feature (summary vectors, images)."""
        arrays = self.read(track_ids)
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise FeatureError(f"{self.key}: arrays differ in shape ({sorted(shapes)[:3]}); read them one by one")
        return np.stack(arrays) if arrays else np.zeros((0,))

    def writer(self, *, check: bool = True, wait: bool = False) -> "StoreWriter":
        """The feature's single writer; ``wait``: for another process's writer to finish, instead of refusing."""
        return StoreWriter(self, check=check, wait=wait)

    def stats(self) -> dict:
        live = self._con.execute("SELECT COALESCE(SUM(nbytes), 0) FROM entries").fetchone()[0]
        on_disk = sum(p.stat().st_size for p in (self.folder / "packs").glob("*.pack"))
        return {"key": self.key, "entries": len(self), "live_bytes": live, "pack_bytes": on_disk}

    def compact(self) -> None:
        """Rewrite the packs with only the bytes live rows point to."""
        with self.writer() as w:
            w.compact()

    def close(self) -> None:
        self._maps.clear()
        self._con.close()


class StoreWriter:
    """The single writer of a :class:`StoredFeature` (exclusive lock): ``put`` then ``commit``."""

    def __init__(self, feature: StoredFeature, *, pack_bytes: int = PACK_BYTES, check: bool = True,
                 wait: bool = False):
        self.feature = feature
        self.pack_bytes = pack_bytes
        try:
            self._lock = Held(feature.folder / ".lock", wait=wait)
        except LockBusy:
            raise FeatureError("another process is writing this feature store; wait for it or use another --store",
                               path=feature.folder) from None
        if check:  # a pack cut short would otherwise be appended to over bytes the index still points at
            damaged = feature.damaged()
            if damaged:
                self._lock.release()
                raise FeatureError(f"{len(damaged)} entries lie past the end of their pack (e.g. {damaged[0][0]!r}: "
                                   f"{damaged[0][1]}); nothing was written. Run `genrefusion store verify --repair` "
                                   "to forget them, then extract again", path=feature.folder)
        self._pending: list[tuple] = []
        self._pack, self._file = self._open_tail()

    def _open_tail(self):
        con = self.feature._con
        packs = sorted(int(p.stem) for p in (self.feature.folder / "packs").glob("*.pack"))
        for pack in packs:  # drop bytes written by a run that died before committing them
            end = con.execute("SELECT COALESCE(MAX(offset + nbytes), 0) FROM entries WHERE pack = ?", (pack,)).fetchone()[0]
            path = self.feature._pack_path(pack)
            if path.stat().st_size > end:
                with open(path, "r+b") as f:
                    f.truncate(end)
        pack = packs[-1] if packs else 0
        return pack, open(self.feature._pack_path(pack), "ab")

    def put(self, track_id: str, fingerprint: str, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if array.dtype.hasobject:
            raise FeatureError(f"cannot store an object array for track {track_id!r}")
        offset = self._file.tell()
        if offset and offset + array.nbytes > self.pack_bytes:
            self._roll()
            offset = 0
        pad = -offset % ALIGN
        if pad:
            self._file.write(b"\0" * pad)
            offset += pad
        raw = array.tobytes()
        self._file.write(raw)
        self._pending.append((track_id, fingerprint, self._pack, offset, array.nbytes, array.dtype.str,
                              json.dumps(list(array.shape)), time.time(), bytes_checksum(raw)))

    def _roll(self) -> None:
        self._sync()
        self._file.close()
        self._pack += 1
        self._file = open(self.feature._pack_path(self._pack), "ab")

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def commit(self) -> int:
        """Make everything put so far durable and visible; returns how many entries."""
        if not self._pending:
            return 0
        self._sync()
        con = self.feature._con
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT OR REPLACE INTO entries (track_id, fingerprint, pack, offset, nbytes, dtype, shape, "
                        "created, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._pending)
        con.execute("COMMIT")
        n, self._pending = len(self._pending), []
        return n

    def forget(self, track_ids: list[str]) -> None:
        """Delete these entries' rows (their bytes become dead space that :meth:`compact` reclaims)."""
        self.commit()
        con = self.feature._con
        con.execute("BEGIN IMMEDIATE")
        con.executemany("DELETE FROM entries WHERE track_id = ?", [(t,) for t in track_ids])
        con.execute("COMMIT")

    def compact(self) -> None:
        self.commit()
        con = self.feature._con
        rows = con.execute("SELECT track_id, fingerprint, pack, offset, nbytes, dtype, shape, created FROM entries "
                           "ORDER BY pack, offset").fetchall()
        old = sorted(int(p.stem) for p in (self.feature.folder / "packs").glob("*.pack"))
        self._file.close()
        self._pack = (old[-1] + 1) if old else 0
        self._file = open(self.feature._pack_path(self._pack), "ab")
        for tid, fp, pack, offset, nbytes, dtype, shape, _ in rows:
            raw = self.feature._map(pack, offset + nbytes)[offset : offset + nbytes]
            self.put(tid, fp, np.asarray(raw).view(np.dtype(dtype)).reshape(json.loads(shape)))
        self.commit()
        self.feature._maps.clear()
        for pack in old:
            self.feature._pack_path(pack).unlink()

    def close(self) -> None:
        self.commit()
        self.abandon()

    def abandon(self) -> None:
        """Let go without committing what is pending (after an interrupt or a fault): the next writer trims
        its bytes. Safe to call after :meth:`close`."""
        self._pending = []
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:  # the buffered tail could not be written (a full disk): uncommitted anyway
                pass
        self._lock.release()

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bytes_checksum(raw) -> str:
    """Checksum of an entry's bytes (BLAKE2b-64), kept in the index to find damage later."""
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def file_digest(path: str | Path) -> str:
    """Content digest of a file (BLAKE2b-128 over all bytes)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
    return h.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """Digest of an in-memory input (a table row): dtype, shape and bytes."""
    a = np.ascontiguousarray(array)
    return hashlib.blake2b(f"{a.dtype.str}{a.shape}".encode() + a.tobytes(), digest_size=16).hexdigest()


class FeatureStore:
    """A store folder: a :class:`StoredFeature` per feature key, plus the fingerprint cache."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            (self.root / "features").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise FeatureError(f"cannot create feature store ({err.strerror})", path=self.root) from None
        self._fp = _connect(self.root / "fingerprints.sqlite")
        self._fp.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                         "digest TEXT)")
        self._open: dict[str, StoredFeature] = {}

    def feature(self, key: str, spec: Mapping | None = None) -> StoredFeature:
        """The stored feature with this key (created, with ``spec`` recorded, if new)."""
        if key not in self._open:
            folder = self.root / "features" / key
            if spec is None and not folder.exists():
                raise FeatureError(f"no feature {key!r} in the store; known: {', '.join(self.keys()) or 'none'}",
                                   path=self.root)
            self._open[key] = StoredFeature(folder, spec)
        return self._open[key]

    def keys(self) -> list[str]:
        return sorted(p.name for p in (self.root / "features").iterdir() if (p / "index.sqlite").exists())

    def cached_digest(self, path: str | Path) -> str | None:
        """The content digest recorded for ``path`` if its size and mtime are unchanged since."""
        st = os.stat(path)
        row = self._fp.execute("SELECT size, mtime_ns, digest FROM files WHERE path = ?",
                               (os.path.abspath(path),)).fetchone()
        return row[2] if row and row[0] == st.st_size and row[1] == st.st_mtime_ns else None

    def remember_digests(self, items: Iterable[tuple[str, int, int, str]]) -> None:
        """Record ``(path, size, mtime_ns, digest)`` rows (paths stored absolute)."""
        rows = [(os.path.abspath(p), size, mtime, digest) for p, size, mtime, digest in items]
        self._fp.execute("BEGIN IMMEDIATE")
        self._fp.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", rows)
        self._fp.execute("COMMIT")

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()
        self._fp.close()
