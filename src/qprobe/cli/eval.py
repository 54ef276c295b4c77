"""``qprobe eval``: score a dataset with scorers side by side; ``eval split``; ``eval analyze``.

    qprobe eval --scorer niqe --scorer brisque --scorer piqe \\
        --dataset clive:../shared/data/clive --out runs/clive --workers 2
    qprobe eval split --dataset kadid10k:/data/kadid10k --out splits/kadid --seed 0
    qprobe eval analyze --scorer classic --dataset qprobe-bench:bench/ --out runs/bench-analyses
"""

from __future__ import annotations

from pathlib import Path

import typer

eval_app = typer.Typer(
    name="eval",
    help="Evaluate scorers on IQA datasets (metrics with CIs, baselines side by side, analyses).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _load_rows(dataset: str, split: str | None, splits: Path | None) -> list:
    from qprobe.eval.datasets import load_dataset, parse_dataset_spec

    name, path = parse_dataset_spec(dataset)
    return load_dataset(name, path, split=split, splits=splits)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


@eval_app.callback()
def eval_main(
    ctx: typer.Context,
    scorer: list[str] | None = typer.Option(
        None,
        "--scorer",
        "-s",
        help="Scorer name (baseline: niqe, brisque, piqe; or a backend). Repeat for side by side.",
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="NAME:PATH, e.g. clive:../shared/data/clive."
    ),
    split: str | None = typer.Option(None, "--split", help="Split name, or a split file (one id per line)."),
    splits: Path | None = typer.Option(
        None, "--splits", help="Folder of split files assigning each id a split."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output folder (predictions are resumed from here)."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Evaluate only the first N images."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples for the confidence intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of stochastic scorers."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Rescore images whose earlier attempt failed."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML recipe (fields of EvalConfig, e.g. configs/eval/clive_baselines.yaml); flags override it.",
    ),
) -> None:
    """Score DATASET with each SCORER; write predictions JSONL, summary.{md,csv,json} and scatter plots to OUT."""
    if ctx.invoked_subcommand is not None:
        return
    from qprobe.config import load_config
    from qprobe.errors import QProbeError
    from qprobe.eval.report import markdown_table
    from qprobe.eval.runner import EvalConfig, evaluate

    # flags given on the command line override the recipe; defaults do not
    source = ctx.get_parameter_source
    given = {k: v for k, v in ctx.params.items() if source(k) is not None and source(k).name != "DEFAULT"}
    overrides = {
        k: given[k] for k in ("split", "limit", "workers", "n_boot", "seed", "retry_failed") if k in given
    }
    if scorer:
        overrides["scorers"] = list(scorer)
    if dataset:
        overrides["dataset"] = dataset
    try:
        cfg = load_config(EvalConfig, config, overrides)
    except QProbeError as exc:
        _fail(str(exc))
        return
    if not cfg.scorers or not cfg.dataset or out is None:
        typer.echo(ctx.get_help())
        _fail("--scorer, --dataset and --out are required (scorers and dataset may come from --config)")
    try:
        rows = _load_rows(cfg.dataset, cfg.split, splits)
        result = evaluate(
            cfg.scorers,
            rows,
            out,
            workers=cfg.workers,
            limit=cfg.limit,
            n_boot=cfg.n_boot,
            confidence=cfg.confidence,
            seed=cfg.seed,
            retry_failed=cfg.retry_failed,
            progress=not no_progress,
            config=cfg,
        )
    except (QProbeError, ValueError) as exc:
        _fail(str(exc))
        return
    typer.echo(markdown_table({n: s.report for n, s in result.scorers.items()}))
    typer.echo(f"{len(result.rows)} images in {result.elapsed_s:.1f} s; report in {out}/summary.md")


@eval_app.command("split")
def split_cmd(
    dataset: str = typer.Option(..., "--dataset", "-d", help="NAME:PATH of the dataset to split."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the split files (<split>.txt)."),
    train: float = typer.Option(0.8, "--train", help="Fraction of images in train."),
    val: float = typer.Option(0.1, "--val", help="Fraction of images in val."),
    test: float = typer.Option(0.1, "--test", help="Fraction of images in test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the group shuffle."),
    dedupe_content: bool = typer.Option(
        False,
        "--dedupe-content",
        help="Also keep byte-identical image files in one split (reads every file).",
    ),
) -> None:
    """Write deterministic split files grouped by source image (no reference crosses splits)."""
    from qprobe.errors import QProbeError
    from qprobe.eval.datasets import parse_dataset_spec
    from qprobe.eval.datasets.splits import make_splits, write_splits

    try:
        rows = _load_rows(dataset, None, None)
        fractions = {k: v for k, v in (("train", train), ("val", val), ("test", test)) if v > 0}
        parts = make_splits(rows, fractions, seed=seed, dedupe_content=dedupe_content)
        name, _ = parse_dataset_spec(dataset)
        write_splits(
            out,
            parts,
            {
                "dataset": name,
                "seed": seed,
                "fractions": fractions,
                "grouped_by": "source_id" + (" + file content" if dedupe_content else ""),
            },
        )
    except (QProbeError, ValueError) as exc:
        _fail(str(exc))
        return
    for k, ids in parts.items():
        typer.echo(f"{k}: {len(ids)} images -> {out / (k + '.txt')}")


@eval_app.command("analyze")
def analyze_cmd(
    scorer: str = typer.Option(
        ..., "--scorer", "-s", help="A scorer that returns defects and probes (a backend)."
    ),
    dataset: str = typer.Option(..., "--dataset", "-d", help="NAME:PATH, usually qprobe-bench:DIR."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for analyses.json and analyses.md."),
    split: str | None = typer.Option(None, "--split", help="Split name or split file."),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N images."),
    n_probes: int = typer.Option(
        2, "--n-probes", help="Clean-region probes forced per clean image (crop bias)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for probe placement."),
) -> None:
    """Crop bias, depth-of-field false positives, localization, crop coverage and occlusion analyses."""
    from qprobe.errors import QProbeError
    from qprobe.eval.analyses import run_analyses, write_analyses
    from qprobe.eval.scorers import create_scorer

    try:
        rows = _load_rows(dataset, split, None)
        rows = rows[:limit] if limit is not None else rows
        result = run_analyses(create_scorer(scorer), rows, n_probes=n_probes, seed=seed)
        paths = write_analyses(result, out)
    except (QProbeError, ValueError) as exc:
        _fail(str(exc))
        return
    typer.echo(Path(paths["md"]).read_text(encoding="utf-8"))


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
