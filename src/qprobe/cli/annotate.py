"""``qprobe bench annotate``: describe each injected defect and image with a VLM, and check it.

Attached to ``qprobe.cli.bench.bench_app`` (listed after ``bench`` in COMMAND_MODULES).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    from qprobe.cli.bench import bench_app

    @bench_app.command("annotate")
    def annotate_cmd(
        manifest: Path = typer.Option(..., "--manifest", help="Benchmark manifest (JSONL) to annotate."),
        out: Path = typer.Option(..., "--out", help="Annotated manifest to write (a rerun resumes)."),
        backend: str = typer.Option("openai", "--backend", "-b", help="LLM backend: openai or transformers."),
        model: str = typer.Option(..., "--model", help="Checkpoint folder (transformers) or served model name (openai)."),
        base_url: Optional[str] = typer.Option(None, "--base-url", help="openai: endpoint, e.g. http://127.0.0.1:8000/v1."),
        max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Pixel budget per image."),
        batch_size: int = typer.Option(4, "--batch-size", help="Batch (transformers) or concurrent requests (openai)."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Annotate at most this many new rows."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary."),
    ) -> None:
        """Ask a VLM to describe every injected defect and each image; flag rows whose text disagrees."""
        from qprobe.backends import create_backend
        from qprobe.backends.vlm.backend import VLMBackend
        from qprobe.bench.annotate import annotate_manifest
        from qprobe.errors import QProbeError

        options = {"model": model, "base_url": base_url, "max_pixels": max_pixels, "batch_size": batch_size}
        try:
            scorer = create_backend(backend, **{k: v for k, v in options.items() if v is not None})
        except (QProbeError, TypeError) as exc:
            typer.echo(f"error: cannot create backend {backend!r}: {exc}", err=True)
            raise typer.Exit(2)
        if not isinstance(scorer, VLMBackend):
            typer.echo(f"error: {backend!r} is not an LLM backend; use openai or transformers", err=True)
            raise typer.Exit(2)
        try:
            s = annotate_manifest(
                manifest, out, scorer, limit=limit, echo=(lambda line: None) if quiet else (lambda l: typer.echo(l, err=True))
            )
        except QProbeError as exc:
            typer.echo(f"error: {exc} (finished rows are kept; rerun to resume)", err=True)
            raise typer.Exit(2)
        typer.echo(f"annotated manifest: {s.out}  ({s.annotated} new, {s.reused} reused, {s.rows} rows)")
        typer.echo(f"  flagged rows     {s.flagged}")
        typer.echo(f"  defects ok       {s.defects_ok}/{s.defects}")
        typer.echo(f"  raw annotations  {s.sidecar}")
        for err in s.errors:
            typer.echo(f"  error: {err}", err=True)
        if s.errors:
            raise typer.Exit(1)
