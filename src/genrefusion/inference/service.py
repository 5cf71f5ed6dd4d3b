"""The HTTP service: ``POST /predict``, ``GET /health``, ``GET /model`` and a web page at ``/``.

Uploads are streamed into a private temporary folder (removed after each request) and refused
past ``max_upload_mb``; at most ``concurrency`` predictions run at once and a request waits at most
``timeout_s`` for a slot and its answer; bad audio is a 415 naming the reason. The page lets a
person drop a song and see the genre bars and its log-mel spectrogram.
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


def spectrogram_png(path: str | Path, *, sr: int = 22050, seconds: float = 30.0) -> bytes:
    """The first ``seconds`` of a file as a magma log-mel spectrogram PNG (row 0 = highest band)."""
    from PIL import Image

    from genrefusion import audio
    from genrefusion.features.images import magma_lut, mel_image

    y, _ = audio.load(path, sr=sr, duration=seconds)
    rgb = magma_lut()[mel_image(y, sr=sr)]
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


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


def _predict(predictor: Predictor, path: Path, top_k: int, timeline: bool, spectrogram: bool) -> dict:
    result = predictor.predict_file(path).to_dict(top_k=top_k, timeline=timeline)
    if spectrogram:
        png = spectrogram_png(path, sr=predictor.sr, seconds=predictor.segment_s)
        result["spectrogram_png"] = base64.b64encode(png).decode("ascii")
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
