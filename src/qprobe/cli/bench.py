"""``qprobe bench ...``: build the local-degradation benchmark and look at it.

``bench_app`` is a sub-app; other modules may attach commands to it (the LLM
helper's ``bench annotate``) from their own ``register(app)``.
"""

from __future__ import annotations

from pathlib import Path

import typer

bench_app = typer.Typer(
    help="Build the high-resolution local-degradation benchmark (Vista-style) and inspect it.",
    no_args_is_help=True,
)


@bench_app.command("build")
def build_cmd(
    photos: Path = typer.Option(..., "--photos", help="Folder of pristine photos (searched recursively)."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder; re-running resumes (finished images are kept)."
    ),
    variants: int | None = typer.Option(None, "--variants", help="Degraded variants per photo [default 5]."),
    seed: int | None = typer.Option(None, "--seed", help="Global seed [default 0]."),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes [default 1]."),
    config: Path | None = typer.Option(
        None, "--config", help="YAML recipe (fields of BenchConfig, e.g. configs/bench/default.yaml)."
    ),
    degradation: list[str] | None = typer.Option(
        None, "--degradation", "-d", help="Degradation name or glob to use (repeatable) [default: all]."
    ),
    image_format: str | None = typer.Option(
        None, "--format", help="png (lossless, default) or jpg (q95 4:4:4)."
    ),
    min_visible: float | None = typer.Option(
        None, "--min-visible",
        help="Least mean change (grey levels) a degradation must make to be labelled; invisible draws are "
        "re-drawn, then dropped [default 1.0; 0 keeps every draw].",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the summary."),
) -> None:
    """Turn pristine photos into localized degradations + clean and depth-of-field negatives."""
    from qprobe.bench.builder import build
    from qprobe.bench.config import BenchConfig
    from qprobe.config import load_config
    from qprobe.errors import QProbeError

    overrides = {
        "photos": str(photos),
        "out": str(out),
        "variants": variants,
        "seed": seed,
        "workers": workers,
        "degradations": degradation or None,
        "image_format": image_format,
        "min_visible": min_visible,
    }
    try:
        cfg = load_config(BenchConfig, config, overrides)
        summary = build(cfg, echo=(lambda line: None) if quiet else (lambda line: typer.echo(line, err=True)))
    except QProbeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    kinds = ", ".join(f"{k} {v}" for k, v in summary.by_kind.items()) or "none"
    typer.echo(f"benchmark written to {summary.out}")
    typer.echo(f"  images     {summary.out / 'images'}  ({summary.rows} total: {kinds})")
    typer.echo(
        f"             {summary.built} new, {summary.reused} reused, {summary.seconds:.1f} s, "
        f"{summary.images_per_s:.2f} images/s"
    )
    typer.echo(f"  manifest   {summary.manifest}")
    typer.echo(
        f"  log        {summary.out / 'degradations.jsonl'} (degradations), {summary.out / 'build.log'}"
    )
    typer.echo(f"  pairs      {summary.out / 'pairs.jsonl'} ({summary.pairs} ranking pairs)")
    typer.echo(f"  config     {summary.out / 'config.yaml'}")
    if summary.skipped:
        typer.echo(f"  skipped    {len(summary.skipped)} photo(s), see {summary.out / 'skipped.jsonl'}:")
        for name, reason in summary.skipped:
            typer.echo(f"             {name}: {reason}")
    if summary.skipped_items:
        typer.echo(f"  skipped    {len(summary.skipped_items)} image(s), see {summary.out / 'skipped.jsonl'}:")
        for name, reason in summary.skipped_items:
            typer.echo(f"             {name}: {reason}")
    if summary.errors:
        typer.echo(f"  errors     {len(summary.errors)} (re-run to retry):")
        for err in summary.errors:
            typer.echo(f"             {err}")
    typer.echo(
        f"look at it:  qprobe bench sheet --manifest {summary.manifest} --out {summary.out / 'sheet.png'}"
    )
    if summary.rows == 0:
        typer.echo("error: no image was built (see the reasons above)", err=True)
        raise typer.Exit(1)


@bench_app.command("sheet")
def sheet_cmd(
    manifest: Path = typer.Option(
        ..., "--manifest", help="A manifest.jsonl (e.g. from `qprobe bench build`)."
    ),
    out: Path = typer.Option(..., "--out", help="Where to write the contact sheet (.png or .jpg)."),
    cols: int = typer.Option(4, "--cols", help="Tiles per row."),
    thumb: int = typer.Option(480, "--thumb", help="Tile width in pixels."),
    max_items: int = typer.Option(48, "--max-items", help="Draw at most this many rows (manifest order)."),
) -> None:
    """Draw a contact sheet: thumbnails with defect boxes, types, severities and MOS."""
    from qprobe.bench.sheet import make_sheet
    from qprobe.errors import QProbeError

    try:
        path, n = make_sheet(manifest, out, cols=cols, thumb=thumb, max_items=max_items)
    except (QProbeError, OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"contact sheet of {n} image(s) written to {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
