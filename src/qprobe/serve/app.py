"""The FastAPI application: ``POST /v1/assess``, ``GET /healthz``, OpenAPI docs at ``/docs``.

The service scores only the bytes a client uploads; it has no parameter that
names a file, URL or folder, so it never reads server-side paths on a
client's behalf. Backends are created once per process (the default one at
start-up) and shared by the worker threads.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Optional

from fastapi import Depends, FastAPI, File, Form, UploadFile
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from qprobe import __version__
from qprobe.errors import ImageLoadError
from qprobe.serve.auth import BearerAuth
from qprobe.serve.backends import BackendPool
from qprobe.serve.config import ServeConfig
from qprobe.serve.errors import ApiError, install_handlers
from qprobe.serve.limits import BodySizeLimit, Limiter
from qprobe.serve.schemas import AssessmentOut, ErrorOut, HealthOut

log = logging.getLogger("qprobe.serve")

_ERRORS = {
    400: {"model": ErrorOut, "description": "backend not offered"},
    401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
    413: {"model": ErrorOut, "description": "upload or image too large"},
    422: {"model": ErrorOut, "description": "not a readable image, or invalid options"},
    429: {"model": ErrorOut, "description": "at capacity; retry after Retry-After seconds"},
    503: {"model": ErrorOut, "description": "timed out; retry later"},
}


def _upload_name(filename: str | None) -> str:
    """A display label for an upload: never a path that could resolve on this machine."""
    base = os.path.basename((filename or "").replace("\\", "/")).strip() or "image"
    return "upload://" + base[:200]


def _decode(data: bytes, name: str, max_pixels: int | None) -> Any:
    from qprobe.io import DEFAULT_MAX_PIXELS, image_info, load_rgb

    max_pixels = max_pixels or DEFAULT_MAX_PIXELS
    if not data:
        raise ApiError(422, "bad_image", f"{name}: the upload is empty")
    try:
        info = image_info(data, max_pixels=None)
        if info.pixels > max_pixels:
            raise ApiError(
                413, "image_too_large",
                f"{name}: image is {info.width}x{info.height} = {info.pixels / 1e6:.1f} MP, above this "
                f"server's limit of {max_pixels / 1e6:.1f} MP",
            )
        return load_rgb(data, max_pixels=max_pixels)
    except ImageLoadError as exc:
        raise ApiError(422, "bad_image", f"{name}: {exc.reason}") from None


def create_app(config: ServeConfig | None = None) -> FastAPI:
    cfg = config or ServeConfig()
    pool = BackendPool(cfg.backends)
    limiter = Limiter(cfg.workers, cfg.queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        t0 = time.perf_counter()
        pool.get(cfg.backend)  # fail at start-up, not on the first request
        log.info("backend %r ready in %.1f s", cfg.backend, time.perf_counter() - t0)
        yield
        limiter.shutdown()

    app = FastAPI(
        title="qprobe",
        version=__version__,
        description="High-resolution image quality assessment by context-aware agentic probing. "
        "Upload an image to `/v1/assess`; the answer is a score on 1–5 (higher is better), "
        "the defects found with their boxes, the zoom boxes and the reasons.",
        lifespan=lifespan,
    )
    install_handlers(app)
    # Middleware added last runs first: authentication, then the body size limit.
    app.add_middleware(BodySizeLimit, max_bytes=cfg.max_upload_bytes)
    if cfg.token is not None:
        app.add_middleware(BearerAuth, token=cfg.token)
    # Documents the scheme in OpenAPI ("Authorize" in /docs); BearerAuth enforces it before the body is read.
    bearer = HTTPBearer(auto_error=False, description="required when the server was started with --token")

    @app.get("/healthz", response_model=HealthOut, tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness and load: no authentication needed."""
        return {
            "status": "ok", "version": __version__, "default_backend": cfg.backend, "backends": pool.names,
            "loaded": pool.loaded(), "auth": cfg.token is not None, **limiter.stats(),
        }

    @app.post(
        "/v1/assess",
        response_model=None,
        responses={200: {"model": AssessmentOut, "description": "the assessment"}, **_ERRORS},
        dependencies=[Depends(bearer)] if cfg.token is not None else [],
        tags=["assess"],
    )
    async def assess(
        image: UploadFile = File(..., description="the image file (JPEG, PNG, TIFF, WebP, ...)"),
        backend: Optional[str] = Form(None, description=f"one of {cfg.backends}; default {cfg.backend!r}"),
        max_zooms: Optional[int] = Form(None, ge=0, le=cfg.max_zooms_limit, description="turn budget"),
        seed: Optional[int] = Form(None, description="seed passed to the backend"),
        include_trajectory: bool = Form(False, description="add the full probing trajectory"),
    ) -> JSONResponse:
        """Score one uploaded image."""
        name = _upload_name(image.filename)
        data = await image.read()
        chosen = backend or cfg.backend
        pool.check(chosen)
        kwargs: dict[str, Any] = {}
        if max_zooms is not None:
            kwargs["max_zooms"] = max_zooms
        if seed is not None:
            kwargs["seed"] = seed

        def work() -> dict[str, Any]:
            pixels = _decode(data, name, cfg.max_pixels)
            scorer, guard = pool.get(chosen)
            with guard:
                result = scorer.assess(pixels, path=name, **kwargs)
            result.path = name
            return result.to_dict(include_trajectory=include_trajectory)

        return JSONResponse(await limiter.run(work, cfg.timeout_s))

    return app
