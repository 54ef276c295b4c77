"""``qprobe batch INPUT --out results.jsonl``: score many images, resumably, locally or on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from qprobe.config import help_of


def _h(name: str) -> str:
    from qprobe.scale.config import BatchConfig

    return help_of(BatchConfig, name)


def write_batch_report(out: Path, report: Path, max_cards: int) -> Path:
    """Render the HTML report of every row of a batch output file."""
    from qprobe._fs import read_jsonl_tolerant
    from qprobe.report import write_report
    from qprobe.types import Assessment

    assessments = []
    for row in read_jsonl_tolerant(out):
        a = Assessment.from_dict(row)
        if "mos" in row:
            a.extra.setdefault("mos", row["mos"])
        a.extra.setdefault("id", row.get("id"))
        assessments.append(a)
    if not assessments:
        raise typer.BadParameter(f"{out} holds no results to report")
    return write_report(assessments, report, title=f"qprobe batch: {out.name}", max_cards=max_cards)


def register(app: typer.Typer) -> None:
    @app.command("batch")
    def batch(
        input: Path = typer.Argument(..., help=_h("input"), show_default=False),
        out: Path = typer.Option(Path("results.jsonl"), "--out", "-o", help=_h("out")),
        backend: str = typer.Option("classic", "--backend", "-b", help=_h("backend")),
        workers: int = typer.Option(2, "--workers", "-w", min=0, help=_h("workers")),
        ray: bool = typer.Option(False, "--ray", help=_h("ray")),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", help=_h("ray_address")),
        chunk_size: int = typer.Option(4, "--chunk-size", min=1, help=_h("chunk_size")),
        threads_per_worker: int = typer.Option(1, "--threads-per-worker", min=1, help=_h("threads_per_worker")),
        max_zooms: Optional[int] = typer.Option(None, "--max-zooms", min=0, help=_h("max_zooms")),
        seed: Optional[int] = typer.Option(None, "--seed", help=_h("seed")),
        trajectory: bool = typer.Option(True, "--trajectory/--no-trajectory", help=_h("include_trajectory")),
        retry_failed: bool = typer.Option(False, "--retry-failed", help=_h("retry_failed")),
        max_pixels: Optional[int] = typer.Option(None, "--max-pixels", min=1, help=_h("max_pixels")),
        report: Optional[Path] = typer.Option(
            None, "--report", help="Also write a self-contained HTML report of all rows of --out."
        ),
        report_cards: int = typer.Option(
            200, "--report-cards", min=1, help="Detailed cards in the report (failures and lowest scores first)."
        ),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML recipe of BatchConfig fields."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help=_h("progress")),
    ) -> None:
        """Score every image of a folder, manifest or list into a JSONL file.

        Re-running the same command resumes: images already in --out are skipped,
        so a run killed at any moment (even with SIGKILL) loses no finished
        result and writes each image exactly once. Unreadable files become error
        rows (status "failed") and never stop the batch.
        """
        from qprobe.config import load_config, write_resolved
        from qprobe.errors import QProbeError
        from qprobe.scale import BatchConfig, run_batch

        if ray_address and not ray:
            ray = True
        overrides = {
            "input": str(input), "out": str(out), "backend": backend, "workers": workers, "ray": ray,
            "ray_address": ray_address, "chunk_size": chunk_size, "threads_per_worker": threads_per_worker,
            "max_zooms": max_zooms, "seed": seed, "include_trajectory": trajectory,
            "retry_failed": retry_failed, "max_pixels": max_pixels, "progress": progress,
        }
        try:
            cfg = load_config(BatchConfig, config, overrides)
            write_resolved(cfg, Path(f"{cfg.out}.config.yaml"))
            summary = run_batch(cfg)
        except (QProbeError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        typer.echo(summary.line())
        if report is not None:
            path = write_batch_report(Path(cfg.out), report, report_cards)
            typer.echo(f"report: {path}")
