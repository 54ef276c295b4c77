"""The HTTP service (``qprobe serve``): FastAPI app factory, limits, auth.

``create_app(ServeConfig(...))`` builds the app; ``serve(config)`` runs it
with uvicorn. FastAPI is imported only by :mod:`qprobe.serve.app`, so this
package stays importable without the ``[serve]`` extra.
"""

from __future__ import annotations

from typing import Any

from qprobe.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def create_app(config: ServeConfig | None = None) -> Any:
    from qprobe.serve.app import create_app as _create

    return _create(config)


def serve(config: ServeConfig) -> None:
    from qprobe.serve.server import serve as _serve

    _serve(config)
