"""Audio input: decode, mix to mono, resample, normalise, and cut into windows.

Decoding tries libsndfile (``soundfile``: wav, flac, ogg/vorbis, opus, mp3, au/snd, aiff) first
and falls back to FFmpeg through PyAV (m4a/aac, wma, odd containers, anything libsndfile refuses).
Both paths seek, so ``offset``/``duration`` read a part of an hours-long file without decoding
the rest. Every failure is an :class:`~genrefusion.errors.AudioError` naming the file.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from genrefusion.errors import AudioError

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aif", ".aiff",
     ".m4a", ".aac", ".wma", ".webm"}
)
#: Peak amplitude at or below which a signal counts as digital silence (about -100 dBFS).
SILENCE_PEAK = 1e-5
#: A decode that yields less than this share of the frames the header promises is "truncated".
TRUNCATION_TOLERANCE = 0.01


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, without decoding the samples."""

    path: str
    sample_rate: int
    channels: int
    frames: int  # at ``sample_rate``; an estimate for some compressed formats
    backend: str  # "soundfile" or "pyav"

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def is_audio_path(path: str | Path) -> bool:
    """True where the file name has an audio extension genrefusion decodes."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def path_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a file, in words (None: a regular, non-empty, readable file)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop"
        if path.is_symlink():
            return f"broken symbolic link (to {os.readlink(path)})"
        if err.errno == errno.EACCES:
            return "permission denied"
        return "file not found"
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device"
        return f"not a regular file: {kind}"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _check_file(path: Path) -> None:
    problem = path_problem(path)
    if problem is not None:
        raise AudioError(problem, path=path)


@dataclass(frozen=True)
class Skipped:
    """An entry of a folder (or a path a user named) that is not processed, and why."""

    path: str
    reason: str
    failed: bool  # True: meant as audio but unreadable (counts as a failure); False: not audio by its name

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def scan_audio(root: str | Path) -> tuple[list[Path], list[Skipped]]:
    """Audio files below folder ``root`` (recursive, sorted, symbolic links followed to files) and every
    other entry with its reason: broken links, link loops, FIFOs and other non-files, folders named like
    audio, unreadable files, and files whose name is not audio."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for d in dirs:
            if os.path.islink(os.path.join(folder, d)):  # not followed: a link can lead back up the tree
                skipped.append(Skipped(os.path.join(folder, d), "symbolic link to a folder (not followed; name the "
                                       "folder itself)", False))
            elif is_audio_path(d):  # a folder named x.mp3: walked into, and said
                skipped.append(Skipped(os.path.join(folder, d), "a folder named like an audio file", True))
        for name in sorted(names):
            path = Path(folder) / name
            problem = path_problem(path)
            if not is_audio_path(path):
                if problem is None or "link" not in problem:
                    skipped.append(Skipped(str(path), f"not an audio file name ({path.suffix or 'no extension'})",
                                           False))
                    continue
            if problem is not None and problem != "empty file (0 bytes)":  # an empty file fails on decode
                skipped.append(Skipped(str(path), problem, True))
            else:
                files.append(path)
    return files, skipped


def probe(path: str | Path) -> AudioInfo:
    """Read a file's header: sample rate, channels, length. Raises AudioError if undecodable."""
    path = Path(path)
    _check_file(path)
    try:
        with _quiet_native_stderr(True):
            info = sf.info(str(path))
        if info.samplerate > 0 and info.channels > 0:
            return AudioInfo(str(path), int(info.samplerate), int(info.channels), int(info.frames), "soundfile")
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        sf_err = err
    else:
        sf_err = "no audio stream"
    return _probe_pyav(path, sf_err)


def _probe_pyav(path: Path, sf_err) -> AudioInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError("no audio stream in file", path=path)
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            else:
                seconds = 0.0
            return AudioInfo(str(path), rate, int(stream.channels or 1), int(round(seconds * rate)), "pyav")
    except AudioError:
        raise
    except Exception as err:  # PyAV raises many FFmpeg error types
        raise _undecodable(path, sf_err, err) from None


#: What decoders say, in words a person understands (first match wins; the rest is kept as said).
_PLAIN = (
    (r"File does not exist or is not a regular file", "format not recognised"),  # libsndfile, for non-MP3 data
    (r"Format not recognised", "format not recognised"),
    (r"Invalid data found when processing input", "invalid data"),
    (r"^End of file", "no audio data"),
    (r"psf_fseek\(\) failed|unexpected end of file|End of file", "the file ends early"),
    (r"lost sync", "the data is damaged (decoder lost sync)"),
    (r"codec can't decode byte", "unreadable text in its metadata"),
)


def _short(err) -> str:
    """A decoder's message in words, first line only, without the path (the error names the file already)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"^Error opening '.*?': ", "", text)
    text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    text = re.sub(r": '[^']*'$", "", text)
    for pattern, plain in _PLAIN:
        if re.search(pattern, text):
            return plain
    return text.rstrip(".")[:160]


def _undecodable(path: Path, sf_err, ff_err) -> AudioError:
    return AudioError(f"not audio, or too damaged to decode (libsndfile: {_short(sf_err)}; ffmpeg: {_short(ff_err)})",
                      path=path)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Mix ``(n_samples, n_channels)`` down to ``(n_samples,)`` by the mean over channels."""
    if y.ndim == 1:
        return y
    return y.mean(axis=1, dtype=np.float64).astype(np.float32) if y.shape[1] > 1 else y[:, 0]


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``(n_samples,)`` or ``(n_samples, n_channels)`` with soxr's high quality (librosa's default)."""
    if orig_sr == target_sr:
        return y
    if orig_sr <= 0 or target_sr <= 0:
        raise AudioError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def normalize_peak(y: np.ndarray, *, peak: float = 1.0) -> np.ndarray:
    """Scale so that ``max |y| == peak``; silence is returned unchanged."""
    top = float(np.max(np.abs(y))) if y.size else 0.0
    return y if top <= SILENCE_PEAK else (y * (peak / top)).astype(np.float32)


def load(
    path: str | Path,
    *,
    sr: int | None = 22050,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    normalize: bool = False,
    allow_silent: bool = True,
) -> tuple[np.ndarray, int]:
    """Decode a file to float32 in [-1, 1].

    Parameters
    ----------
    sr : target sample rate in Hz; ``None`` keeps the file's rate.
    mono : mix channels to one (mean); otherwise return ``(n_samples, n_channels)``.
    offset, duration : seconds; only that part is decoded (the decoders seek).
    normalize : scale to peak 1.
    allow_silent : if False, all-silent audio (peak <= 1e-5) raises AudioError.

    Returns
    -------
    y : ``(n_samples,)`` (mono) or ``(n_samples, n_channels)``, float32.
    sr : the sample rate of ``y``.
    """
    path = Path(path)
    _check_file(path)
    if offset < 0 or (duration is not None and duration <= 0):
        raise AudioError(f"offset must be >= 0 and duration > 0, got offset={offset}, duration={duration}", path=path)
    try:
        y, native_sr = _decode_soundfile(path, offset, duration)
    except _FallBack as fb:
        y, native_sr = _decode_pyav(path, offset, duration, fb.reason)
    if y.shape[0] == 0:
        what = "nothing after the requested offset" if offset > 0 else "no audio samples decode (not audio, or damaged)"
        raise AudioError(what, path=path)
    if not np.all(np.isfinite(y)):
        raise AudioError("audio contains NaN or infinite samples", path=path)
    if mono:
        y = to_mono(y)
    if sr is not None and sr != native_sr:
        y = resample(y, orig_sr=native_sr, target_sr=sr)
        native_sr = sr
    if not allow_silent and float(np.max(np.abs(y))) <= SILENCE_PEAK:
        raise AudioError("all-silent audio (peak amplitude below -100 dBFS)", path=path)
    if normalize:
        y = normalize_peak(y)
    return np.ascontiguousarray(y, dtype=np.float32), int(native_sr)


class _FallBack(Exception):
    def __init__(self, reason):
        self.reason = reason


def _decode_soundfile(path: Path, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    try:
        with _quiet_native_stderr(True):  # libmpg123 talks while it looks for frames, whatever the file's name
            f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise _FallBack(err) from None
    with f:
        native_sr = f.samplerate
        _check_declared_size(f, path)
        start = int(round(offset * native_sr))
        want = -1 if duration is None else int(round(duration * native_sr))
        expected = max(f.frames - start, 0) if f.frames > 0 else 0
        if want >= 0:
            expected = min(expected, want)
        try:
            with _quiet_native_stderr(f.format == "MP3"):
                if start:
                    if f.seekable():
                        f.seek(min(start, f.frames))
                    else:
                        f.read(start, dtype="float32")
                y = _read_blocks(f, want)
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            raise AudioError(f"damaged or truncated audio: {_short(err)}", path=path) from None
    if expected and y.shape[0] < expected * (1 - TRUNCATION_TOLERANCE) - 1:
        raise AudioError(
            f"truncated audio: header promises {expected} frames, only {y.shape[0]} decode", path=path
        )
    return y, native_sr


#: Frames read at a time: the memory a read takes follows what decodes, not what a (damaged) header promises.
READ_BLOCK = 1 << 20


def _read_blocks(f: sf.SoundFile, want: int) -> np.ndarray:
    """``want`` frames (-1: all) as ``(n, channels)`` float32. libsndfile sizes a whole read by the header's frame
    count, so a header edited to promise 64 billion frames would ask for 240 GiB before reading a byte."""
    blocks, left = [], want
    while left != 0:
        n = READ_BLOCK if left < 0 else min(READ_BLOCK, left)
        if f.seekable() and f.frames - f.tell() <= 0:  # at (or, after a fuzzy seek, past) the declared end
            break
        block = f.read(frames=n, dtype="float32", always_2d=True)
        if block.shape[0]:
            blocks.append(block)
            left -= block.shape[0] if left > 0 else 0
        if block.shape[0] < n:
            break
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate(blocks) if blocks else np.zeros((0, f.channels), np.float32)


_STDERR = threading.Lock()


@contextmanager
def _quiet_native_stderr(quiet: bool) -> Iterator[None]:
    """With ``quiet``, the process's stderr (fd 2) goes to /dev/null for the block. libmpg123, inside libsndfile,
    writes there itself ("part2_3_length too large for available bit count", dozens of lines) when a read starts
    where the previous frames' bit reservoir is missing (a seek, which the shipped model's patch reading makes on
    every segment), although the samples it returns are right (checked against a whole-file decode). fd 2 is the
    whole process's, so blocks take turns (a lock) and are kept to the read itself."""
    if not quiet:
        yield
        return
    with _STDERR:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


_DECLARED_SIZE = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 8}


def _check_declared_size(f: sf.SoundFile, path: Path) -> None:
    """Uncompressed containers: libsndfile trims a cut-off data chunk silently, but logs the sizes."""
    if f.format not in ("WAV", "WAVEX", "AIFF", "AU", "RF64", "W64", "CAF"):
        return
    m = _DECLARED_SIZE.search(f.extra_info or "")
    if m and int(m[1]) not in _STREAMING_SIZES and int(m[1]) > int(m[2]):
        raise AudioError(f"truncated audio: header declares {m[1]} bytes of samples, file holds {m[2]}", path=path)


def _decode_pyav(path: Path, offset: float, duration: float | None, sf_err) -> tuple[np.ndarray, int]:
    import av

    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError("no audio stream in file", path=path)
            stream = container.streams.audio[0]
            native_sr = int(stream.rate or stream.codec_context.sample_rate)
            resampler = av.AudioResampler(format="fltp", rate=native_sr)
            if offset > 0 and stream.time_base:
                container.seek(int(offset / stream.time_base), stream=stream, backward=True)
            start = int(round(offset * native_sr))
            stop = None if duration is None else start + int(round(duration * native_sr))
            position = None
            for frame in container.decode(stream):
                if position is None:
                    # After a seek the first frame starts at or before the offset: its pts says where.
                    position = int(round(float(frame.pts * frame.time_base) * native_sr)) if frame.pts is not None else 0
                for out in resampler.resample(frame):
                    block = out.to_ndarray().T  # (samples, channels)
                    lo, hi = position, position + block.shape[0]
                    position = hi
                    a, b = max(lo, start), hi if stop is None else min(hi, stop)
                    if b > a:
                        chunks.append(block[a - lo : b - lo])
                if stop is not None and position >= stop:
                    break
    except AudioError:
        raise
    except Exception as err:
        raise _undecodable(path, sf_err, err) from None
    if not chunks:
        return np.zeros((0, 1), np.float32), native_sr
    return np.concatenate(chunks).astype(np.float32, copy=False), native_sr


def encode(path: str | Path, y: np.ndarray, *, sr: int, bitrate: int = 128_000) -> Path:
    """Write a signal as a lossy file through FFmpeg (PyAV), the codec chosen by the extension (``.mp3``: LAME,
    constant ``bitrate`` bit/s). ``y``: mono ``(n,)`` or ``(n, channels)`` float in [-1, 1]. For test material and
    the speed suite's MP3 copies of lossless clips."""
    import av

    path = Path(path)
    y = np.asarray(y, np.float32)
    frames = y[:, None] if y.ndim == 1 else y
    layout = {1: "mono", 2: "stereo"}.get(frames.shape[1])
    if layout is None:
        raise AudioError(f"encode takes 1 or 2 channels, got {frames.shape[1]}", path=path)
    codec = {".mp3": "libmp3lame", ".ogg": "libvorbis", ".m4a": "aac"}.get(path.suffix.lower())
    if codec is None:
        raise AudioError("encode writes .mp3, .ogg or .m4a", path=path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=sr, layout=layout)
        stream.bit_rate = bitrate
        block = 1152 * 8
        for start in range(0, len(frames), block):
            chunk = np.ascontiguousarray(frames[start:start + block].T)  # planar: (channels, n)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
