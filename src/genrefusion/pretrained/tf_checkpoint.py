"""Read TensorFlow (v1/v2 bundle) checkpoints with numpy alone, no TensorFlow.

A checkpoint is ``<prefix>.index`` and ``<prefix>.data-00000-of-00001``. The index is an SSTable
(LevelDB's table format): data blocks of prefix-compressed key/value entries with a restart array,
an index block pointing at them, and a 48-byte footer ending in a magic number. Each value is a
``BundleEntryProto`` (dtype, shape, shard, offset, size) telling where a tensor's raw bytes lie
in the data file. Only uncompressed tables occur in practice, and only those are read here.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from genrefusion.errors import ModelError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5  # compression type byte + crc32c
#: TensorFlow DataType enum -> numpy dtype (the ones checkpoints of float models hold).
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 14: np.float16, 19: np.float16}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _block(data: bytes, offset: int, size: int, path: Path) -> list[tuple[bytes, bytes]]:
    """Entries of one table block (key, value), keys rebuilt from their shared prefixes."""
    if data[offset + size] != 0:
        raise ModelError("compressed checkpoint tables are not supported", path=path)
    block = data[offset:offset + size]
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + vlen]))
        pos += vlen
    return out


def _fields(msg: bytes) -> list[tuple[int, int, object]]:
    """Protobuf wire format: ``(field number, wire type, value)`` for every field."""
    pos, out = 0, []
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(msg, pos)
        elif wire == 1:
            value, pos = msg[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(msg, pos)
            value, pos = msg[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = msg[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        out.append((field, wire, value))
    return out


def _entry(value: bytes) -> dict:
    """A BundleEntryProto: dtype(1), shape(2: TensorShapeProto, dim(2): size(1)), shard_id(3), offset(4), size(5)."""
    entry = {"dtype": 0, "shape": [], "shard": 0, "offset": 0, "size": 0}
    for field, _, v in _fields(value):
        if field == 1:
            entry["dtype"] = v
        elif field == 2:
            entry["shape"] = [next((x for f, _, x in _fields(dim) if f == 1), 0)
                              for f, _, dim in _fields(v) if f == 2]
        elif field == 3:
            entry["shard"] = v
        elif field == 4:
            entry["offset"] = v
        elif field == 5:
            entry["size"] = v
    return entry


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a checkpoint, by variable name (e.g. ``"conv2d/kernel"``).

    ``prefix`` is the path before ``.index``; a folder means files named ``.index`` inside it.
    """
    base = str(prefix) + ("/" if Path(prefix).is_dir() else "")
    index_path = Path(base + ".index")
    data_path = Path(base + ".data-00000-of-00001")
    try:
        index = index_path.read_bytes()
        data = data_path.read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read checkpoint ({err.strerror})", path=err.filename) from None
    if len(index) < FOOTER_SIZE or struct.unpack_from("<Q", index, len(index) - 8)[0] != TABLE_MAGIC:
        raise ModelError("not a TensorFlow checkpoint index (bad table magic)", path=index_path)
    footer = index[-FOOTER_SIZE:]
    pos = 0
    _, pos = _varint(footer, pos)  # metaindex offset
    _, pos = _varint(footer, pos)  # metaindex size
    idx_offset, pos = _varint(footer, pos)
    idx_size, pos = _varint(footer, pos)
    tensors: dict[str, np.ndarray] = {}
    for _, handle in _block(index, idx_offset, idx_size, index_path):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block(index, off, size, index_path):
            if not key:  # the header entry (BundleHeaderProto)
                continue
            e = _entry(value)
            if e["shard"] != 0:
                raise ModelError("multi-shard checkpoints are not supported", path=index_path)
            dtype = DTYPES.get(e["dtype"])
            if dtype is None:
                raise ModelError(f"tensor {key.decode()!r} has unsupported dtype {e['dtype']}", path=index_path)
            raw = data[e["offset"]:e["offset"] + e["size"]]
            tensors[key.decode()] = np.frombuffer(raw, dtype=dtype).reshape(e["shape"]).copy()
    return tensors
