"""``qprobe train classic``: train the classic backend's weights on ../shared/data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer


def register(train_app: typer.Typer) -> None:
    @train_app.command("classic")
    def train_classic(
        out: Optional[Path] = typer.Option(
            None, "--out", help="Output folder, default runs/classic (a re-run reuses its cached CLIVE stems and benchmark build)."
        ),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML recipe (fields of TrainClassicConfig)."),
        clive: Optional[Path] = typer.Option(None, "--clive", help="CLIVE folder (labels.csv + images/)."),
        photos: Optional[Path] = typer.Option(None, "--photos", help="Pristine photos for the training benchmark."),
        folds: Optional[int] = typer.Option(None, "--folds", help="CLIVE cross-validation folds (0: skip)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Regressor fine-tuning epochs."),
        split: Optional[int] = typer.Option(None, "--split", help="Frozen stem = the first N MobileNetV2 blocks (7..18)."),
        members: Optional[int] = typer.Option(
            None, "--members", help="MobileNetV2 regressor tops on the stem (the aux backbone is one more)."
        ),
        aux: Optional[str] = typer.Option(
            None, "--aux", help="Second quality backbone: efficientnet_lite0 (default) or '' for none."
        ),
        max_clive: Optional[int] = typer.Option(None, "--max-clive", help="Use only N CLIVE images (smoke tests)."),
        max_photos: Optional[int] = typer.Option(None, "--max-photos", help="Use only N training photos."),
        variants: Optional[int] = typer.Option(None, "--variants", help="Degraded variants per training photo."),
        head_crops: Optional[int] = typer.Option(
            None, "--head-crops", help="Synthesized defect-head crops per training photo (and per CLIVE photo, a 125th of it)."
        ),
        head_surround: Optional[int] = typer.Option(
            None, "--head-surround", help="Defect head also sees each cell minus its k x k surround (odd k; 0: off, default)."
        ),
        head_adapt: Optional[int] = typer.Option(
            None, "--head-adapt",
            help="Fine-tune the defect head's own copies of the tap's last k blocks with it (0: frozen tap, default).",
        ),
        bench_min_visible: Optional[float] = typer.Option(
            None, "--bench-min-visible",
            help="The training benchmark's min_visible (0, default: as the shipped weights; 1: only visible labels).",
        ),
        fusion_images: Optional[int] = typer.Option(None, "--fusion-images", help="Images for the fusion fit."),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
        parallel: Optional[bool] = typer.Option(
            None,
            "--parallel/--sequential",
            help="Regressor and detector stages at once (default; half the threads each) or one after the other.",
        ),
        imagenet: Optional[Path] = typer.Option(None, "--imagenet", help="torchvision mobilenet_v2 ImageNet state dict."),
        calibration_bench: Optional[Path] = typer.Option(
            None,
            "--calibration-bench",
            help="Benchmark of photos outside training on which the calibrate stage picks the detector's operating point.",
        ),
        detector_from: Optional[Path] = typer.Option(
            None, "--detector-from", help="Assemble with the detector (head, scan, operating point) of this weight file."
        ),
        install: bool = typer.Option(False, "--install", help="Copy the result over the shipped package weights."),
        stage: Optional[list[str]] = typer.Option(
            None, "--stage", help="Run only these stages (repeatable): regressor, detector, assemble, calibrate."
        ),
    ) -> None:
        """Fine-tune the quality regressor on CLIVE (with k-fold CV) and train the defect detector."""
        from qprobe.backends.classic.backend import passive_omp

        passive_omp()
        from qprobe.config import load_config
        from qprobe.errors import QProbeError
        from qprobe.train_classic.run import TrainClassicConfig, run

        top: dict[str, Any] = {
            "out": None if out is None else str(out),  # unset: the --config file's out, else runs/classic
            "clive": None if clive is None else str(clive),
            "photos": None if photos is None else str(photos),
            "folds": folds,
            "split": split,
            "aux": aux,
            "max_clive": max_clive,
            "max_photos": max_photos,
            "fusion_images": fusion_images,
            "threads": threads,
            "parallel": parallel,
            "imagenet": None if imagenet is None else str(imagenet),
            "calibration_bench": None if calibration_bench is None else str(calibration_bench),
            "detector_from": None if detector_from is None else str(detector_from),
            "install": install or None,
            "stages": stage or None,
        }
        try:
            cfg = load_config(TrainClassicConfig, config, top)
            if epochs is not None:
                cfg.regressor.epochs = epochs
            if members is not None:
                cfg.regressor.members = members
            if variants is not None:
                cfg.detector.variants = variants
            if head_surround is not None:
                cfg.detector.surround = head_surround
            if head_adapt is not None:
                cfg.detector.adapt = head_adapt
            if bench_min_visible is not None:
                cfg.detector.bench_min_visible = bench_min_visible
            if head_crops is not None:
                cfg.detector.crops_per_photo = head_crops
                cfg.detector.crops_per_clive_image = max(1, round(head_crops / 125))
            run(cfg, log=lambda line: typer.echo(line))
        except (QProbeError, FileNotFoundError, ValueError, RuntimeError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1)
