"""The HTTP service: ``POST /predict``, ``GET /health``, ``GET /model`` and a web page at ``/``.

Uploads are streamed into a private temporary folder (removed after each request) and refused
past ``max_upload_mb``; at most ``concurrency`` predictions run at once and a request waits at most
``timeout_s`` for a slot and its answer; bad audio is a 415 naming the reason. The page lets a
person drop a song and see the genre bars, its timeline and a log-mel spectrogram with time and frequency axes.
"""

from __future__ import annotations

import asyncio
import base64
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from genrefusion.errors import GenreFusionError
from genrefusion.inference.predictor import Predictor, reuse_freed_memory

# fastapi is the optional extra [serve]; this module is imported only by `genrefusion serve`.
PAGE = Path(__file__).with_name("page.html")
CHUNK = 1 << 16


@dataclass
class ServiceConfig:
    max_upload_mb: float = 50.0
    timeout_s: float = 60.0
    concurrency: int = 2
    top_k: int = 5


#: the web page's spectrogram: up to this many seconds of the file, this many mel bands to sr/2, this many columns
SPECTROGRAM_SECONDS, SPECTROGRAM_SR, SPECTROGRAM_BANDS, SPECTROGRAM_COLUMNS = 300.0, 16000, 64, 800


def spectrogram(path: str | Path) -> dict:
    """A compact log-mel spectrogram of a file's first :data:`SPECTROGRAM_SECONDS`: ``{"png"`` (base64, magma, row 0
    the highest band), ``"seconds"`` it covers, ``"max_hz"``, ``"ticks_hz"``: ``[[hz, fraction of the height from the
    top]]`` for the page's frequency axis``}``."""
    from PIL import Image

    from genrefusion import audio
    from genrefusion.features import dsp
    from genrefusion.features.images import magma_lut

    y, sr = audio.load(path, sr=SPECTROGRAM_SR, duration=SPECTROGRAM_SECONDS)
    y = np.pad(y, (0, max(0, 2048 - y.size)))
    hop = max(256, int(np.ceil(y.size / SPECTROGRAM_COLUMNS)))
    mel = dsp.mel_power(y, sr=sr, n_fft=2048, hop_length=hop, n_mels=SPECTROGRAM_BANDS)
    db = dsp.power_to_db(mel, ref=float(mel.max()) or 1.0, top_db=80.0)
    index = np.clip((db + 80.0) / 80.0 * 255.0, 0, 255).astype(np.uint8)[::-1]
    buf = io.BytesIO()
    Image.fromarray(magma_lut()[index]).save(buf, format="PNG")
    top = float(dsp.hz_to_mel(sr / 2))
    ticks = [[hz, round(1.0 - float(dsp.hz_to_mel(hz)) / top, 4)] for hz in (0, 250, 500, 1000, 2000, 4000, 8000)
             if hz <= sr / 2]
    return {"png": base64.b64encode(buf.getvalue()).decode("ascii"), "seconds": round(y.size / sr, 2),
            "max_hz": sr / 2, "ticks_hz": ticks}


def create_app(predictor: Predictor, config: ServiceConfig | None = None):
    """The FastAPI application serving ``predictor``."""
    config = config or ServiceConfig()
    app = FastAPI(title="genrefusion", version=str(predictor.meta.get("versions", {}).get("genrefusion", "")))
    slots = asyncio.Semaphore(config.concurrency)
    limit = int(config.max_upload_mb * 1024 * 1024)

    @app.get("/health")
    def health():
        return {"status": "ok", "labels": predictor.labels, "backend": predictor.backend}

    @app.get("/model")
    def model():
        return predictor.card

    @app.get("/", response_class=HTMLResponse)
    def page():
        return PAGE.read_text(encoding="utf-8")

    @app.post("/predict")
    async def predict(request: Request, top_k: int | None = None, timeline: bool = False, spectrogram: bool = False):
        """Body: the audio file, raw (any content type) or as multipart form field ``file``."""
        top_k = min(config.top_k, len(predictor.labels)) if top_k is None else top_k
        if not 1 <= top_k <= len(predictor.labels):
            raise HTTPException(422, f"top_k must be between 1 and {len(predictor.labels)}")
        with tempfile.TemporaryDirectory(prefix="genrefusion-") as tmp:
            path, name = await _receive(request, Path(tmp), limit)
            try:
                await asyncio.wait_for(slots.acquire(), config.timeout_s)
            except asyncio.TimeoutError:
                raise HTTPException(503, "the service is busy; try again later") from None
            try:
                work = run_in_threadpool(_predict, predictor, path, top_k, timeline, spectrogram)
                result = await asyncio.wait_for(work, config.timeout_s)
            except asyncio.TimeoutError:
                raise HTTPException(504, f"prediction took longer than {config.timeout_s:g} s") from None
            except GenreFusionError as err:
                raise HTTPException(415, f"{name}: {err.reason}") from None  # not the private temp path
            finally:
                slots.release()
        result["path"] = name
        return JSONResponse(result)

    return app


def _predict(predictor: Predictor, path: Path, top_k: int, timeline: bool, with_spectrogram: bool) -> dict:
    result = predictor.predict_file(path).to_dict(top_k=top_k, timeline=timeline)
    if with_spectrogram:
        result["spectrogram"] = spectrogram(path)
    return result


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"upload larger than {limit / 1048576:g} MB")


async def _save(chunks, path: Path, limit: int) -> int:
    """Write an async stream of byte chunks to ``path``; 413 as soon as it passes ``limit``. Returns the size."""
    size = 0
    with open(path, "wb") as f:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            f.write(chunk)
    return size


async def _receive(request, folder: Path, limit: int) -> tuple[Path, str]:
    """Stream the upload to ``folder``; 413 past ``limit`` bytes, 400 when empty."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + CHUNK:  # multipart framing is small
        raise _too_large(limit)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _receive_form(request, folder, limit)
    name = Path(request.headers.get("x-filename") or "upload").name
    path = folder / ("upload" + Path(name).suffix.lower())
    if await _save(request.stream(), path, limit) == 0:
        raise HTTPException(400, "empty upload: send the audio file as the request body or as form field 'file'")
    return path, name


async def _receive_form(request, folder: Path, limit: int) -> tuple[Path, str]:
    form = await request.form(max_files=1, max_fields=4, max_part_size=limit)
    upload = form.get("file")
    if upload is None or not hasattr(upload, "read"):
        raise HTTPException(400, "multipart upload without a 'file' field")
    name = Path(upload.filename or "upload").name
    path = folder / ("upload" + Path(name).suffix.lower())

    async def chunks():
        while chunk := await upload.read(CHUNK):
            yield chunk

    try:
        size = await _save(chunks(), path, limit)
    finally:
        await form.close()
    if size == 0:
        raise HTTPException(400, f"{name}: empty file")
    return path, name


def serve(predictor: Predictor, *, host: str = "127.0.0.1", port: int = 8000,
          config: ServiceConfig | None = None) -> None:
    """Run the service with uvicorn until interrupted."""
    import torch
    import uvicorn
    from threadpoolctl import threadpool_limits

    # Parallelism comes from concurrent requests; threads inside one small model's prediction cost
    # more than they give (see inference.predictor.single_threaded).
    torch.set_num_threads(1)
    threadpool_limits(1)
    reuse_freed_memory()
    predictor.warm_up()

    uvicorn.run(create_app(predictor, config), host=host, port=port, log_level="info")
