"""``qprobe serve``: the HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import os
from typing import List, Optional

import typer

from qprobe.config import help_of


def _h(name: str) -> str:
    from qprobe.serve.config import ServeConfig

    return help_of(ServeConfig, name)


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help=_h("host")),
        port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help=_h("port")),
        token: Optional[str] = typer.Option(None, "--token", help=_h("token")),
        backend: str = typer.Option("classic", "--backend", "-b", help=_h("backend")),
        allow_backend: List[str] = typer.Option([], "--allow-backend", help=_h("allow_backends")),
        workers: int = typer.Option(2, "--workers", "-w", min=1, help=_h("workers")),
        queue: int = typer.Option(64, "--queue", min=0, help=_h("queue")),
        timeout: float = typer.Option(120.0, "--timeout", min=0.001, help=_h("timeout_s")),
        max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", min=0.001, help=_h("max_upload_mb")),
        max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help=_h("max_pixels")),
        access_log: bool = typer.Option(True, "--access-log/--no-access-log", help=_h("access_log")),
    ) -> None:
        """Serve POST /v1/assess (multipart upload -> Assessment JSON), GET /healthz and /docs."""
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            typer.echo("error: the server needs the [serve] extra: pip install 'qprobe[serve]'", err=True)
            raise typer.Exit(2)
        from qprobe.backends import BACKENDS
        from qprobe.errors import QProbeError
        from qprobe.serve import ServeConfig
        from qprobe.serve import serve as run

        try:
            for name in [backend, *allow_backend]:
                BACKENDS.entry(name)
            cfg = ServeConfig(
                host=host, port=port, token=token or os.environ.get("QPROBE_TOKEN") or None, backend=backend,
                allow_backends=list(allow_backend), workers=workers, queue=queue, timeout_s=timeout,
                max_upload_mb=max_upload_mb, max_pixels=max_pixels, access_log=access_log,
            )
        except (QProbeError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        run(cfg)
