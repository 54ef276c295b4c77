"""``qprobe score IMAGE...``: score images, localize defects, write overlays/reports.

One line per image; with ``--json`` one JSON object per line::

    {"path": ..., "score": 3.42, "defects": [{"bbox": [x1, y1, x2, y2], "type": ...,
     "severity": 3, "confidence": 0.91}], "probes": [[x1, y1, x2, y2], ...],
     "backend": "classic", "version": "0.1.0", "elapsed_s": 0.83}

An unreadable file gives an error line for that file (``"score": null`` and
``"error"`` in JSON), the other files are still scored, and the exit status
is 1; so does an overlay or report that cannot be written. The backend loads
before the first image: a missing or unreadable weight file exits with 2 and
no image line. Boxes are in original-image pixels.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import typer

JSON_KEYS = ("path", "score", "defects", "probes", "backend", "version", "elapsed_s")


def json_line(assessment: Any) -> str:
    """The documented JSON object of one assessment (``error`` added on failure)."""
    full = assessment.to_dict()
    out = {k: full[k] for k in JSON_KEYS}
    if assessment.error is not None:
        out["error"] = assessment.error
    return json.dumps(out, ensure_ascii=False)


def text_line(assessment: Any) -> str:
    if assessment.error is not None:
        return f"{assessment.path}: ERROR {assessment.error}"
    defects = ", ".join(f"{d.type}@{[int(v) for v in d.bbox.to_list(0)]}" for d in assessment.defects)
    return (
        f"{assessment.path}\tscore {assessment.score:.3f}\tdefects {len(assessment.defects)}"
        f"{' (' + defects + ')' if defects else ''}\tprobes {len(assessment.probes)}\t{assessment.elapsed_s:.2f}s"
    )


def forced_probe_problems(assessment: Any) -> list[str]:
    """Why forced probes (``--probe``) were not made: the error turn after each forced zoom, if any."""
    steps = assessment.trajectory.steps if assessment.trajectory is not None else []
    out = []
    for prev, step in zip(steps, steps[1:]):
        if prev.kind == "zoom" and prev.data.get("forced") and step.kind == "error":
            out.append(step.text)
    return out


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; folders expanded to the images inside (sorted)."""
    from qprobe.io import list_images

    out: list[Path] = []
    for p in inputs:
        out.extend(list_images(p) if p.is_dir() else [p])
    return out


def overlay_path(template: Path, image: Path, many: bool, stem: str | None = None) -> Path:
    """Where the overlay of ``image`` goes: ``template`` itself, or one file per image (named by ``stem``)."""
    stem = image.stem if stem is None else stem
    if "{stem}" in str(template):
        return Path(str(template).replace("{stem}", stem))
    if not many:
        return template
    return template / f"{stem}.overlay.png"


def unique_stems(files: list[Path]) -> dict[Path, str]:
    """A name per file for its outputs: the file's stem, or where stems repeat (``a/IMG_1.jpg``,
    ``b/IMG_1.jpg``, ``IMG_1.png``) its path without the shared folders, joined with ``__``."""
    counts = Counter(f.stem for f in files)
    clashing = [f for f in files if counts[f.stem] > 1]
    if not clashing:
        return {f: f.stem for f in files}
    base = Path(os.path.commonpath([str(f.resolve().parent) for f in clashing]))
    out = {f: f.stem for f in files}
    for f in clashing:
        rel = f.resolve().relative_to(base)
        out[f] = "__".join([*rel.parent.parts, rel.stem]) + ("" if rel.suffix == "" else f"_{rel.suffix[1:]}")
    return out


def draw_overlay(assessment: Any, source: Path, out: Path, max_side: int = 2048) -> None:
    """The image with probes (thin cyan) and defects (red, labelled) drawn on it."""
    from PIL import ImageDraw

    from qprobe.io import load_image, save_image

    img = load_image(source)
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    draw = ImageDraw.Draw(img)
    lw = max(2, round(max(img.size) / 500))
    for box in assessment.probes:
        draw.rectangle([v * scale for v in box.to_list(None)], outline=(0, 200, 255), width=max(1, lw // 2))
    for d in assessment.defects:
        xy = [v * scale for v in d.bbox.to_list(None)]
        draw.rectangle(xy, outline=(255, 40, 40), width=lw)
        draw.text((xy[0] + lw + 1, xy[1] + lw + 1), f"{d.type} s{d.severity} {d.confidence:.2f}", fill=(255, 40, 40))
    if assessment.score is not None:
        draw.text((8, 8), f"{assessment.backend} {assessment.score:.2f}", fill=(255, 255, 0))
    save_image(out, img)


_FLAGS = {
    "weights": "--weights", "max_zooms": "--max-zooms", "planner": "--planner", "engine": "--engine", "confirmable_only": "--all-zooms",
    "max_scan_share": "--max-scan-share", "extra_zooms": "--extra-zooms", "join_gap": "--raw-boxes", "trim_margin": "--raw-boxes",
    "zooms_per_mp": "--zooms-per-mp", "model": "--model", "base_url": "--base-url", "max_pixels": "--max-pixels",
    "dump_inputs": "--dump-inputs", "expected_score": "--expected-score",
}
"""Backend settings ``qprobe score`` sets, by the flag that sets them."""


def _flag_not_taken(exc: Exception) -> str | None:
    """The flag whose setting a backend's constructor rejected ("unexpected keyword argument"), if any."""
    m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    return _FLAGS.get(m.group(1)) if m and isinstance(exc, TypeError) else None


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score(
        images: list[Path] = typer.Argument(..., help="Image files or folders of images."),
        backend: str = typer.Option("classic", "--backend", "-b", help="Scoring backend (see `qprobe ls backends`)."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
        overlay: Optional[str] = typer.Option(
            None, "--overlay", help="Write the image with probes and defects drawn (PNG): a file for one image; "
            "a folder for several, or when the path ends with / or is a folder; or a path containing {stem} "
            "(images with the same name get their folders in it)."
        ),
        report: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML report."),
        max_zooms: Optional[int] = typer.Option(
            None, "--max-zooms", min=0, help="Zoom budget per image (above the backend's own, classic plans that many zooms)."
        ),
        trajectories: Optional[Path] = typer.Option(
            None, "--trajectories", help="Append each episode's trajectory to this JSONL file."
        ),
        weights: Optional[Path] = typer.Option(None, "--weights", help="Weight file of the classic backend."),
        planner: Optional[str] = typer.Option(
            None, "--planner", help="classic: zoom planner, 'windows' (default: greedy evidence coverage) or 'blobs'."
        ),
        engine: Optional[str] = typer.Option(
            None, "--engine", help="classic: network runtime, 'auto' (default: onnx when installed), 'onnx' or 'torch'."
        ),
        zooms_per_mp: Optional[float] = typer.Option(
            None, "--zooms-per-mp", help="classic: zooms per megapixel where that exceeds --max-zooms (up to 32); default 0.5, 0: --max-zooms always."
        ),
        all_zooms: bool = typer.Option(
            False, "--all-zooms", help="classic: spend the whole budget, also where no found defect could be kept."
        ),
        extra_zooms: Optional[int] = typer.Option(
            None,
            "--extra-zooms",
            min=0,
            help="classic: zooms past the budget, made only where the scan is sure and once a zoom found a defect "
            "(default 8; 0: the faster stop-29 budget).",
        ),
        max_scan_share: Optional[float] = typer.Option(
            None,
            "--max-scan-share",
            help="classic: most of an image the scan may flag (default 0.1); where it fires on more, only the "
            "blocks that stand out most draw zooms and confirm defects; 1: the scan as trained.",
        ),
        raw_boxes: bool = typer.Option(
            False,
            "--raw-boxes",
            help="classic: report every defect box as the score used it (default: same-type boxes next to each "
            "other are reported as one, their union, trimmed to the head's own side where a zoom saw past it; the "
            "score is the same either way).",
        ),
        model: Optional[str] = typer.Option(
            None, "--model", help="LLM backends: checkpoint folder (transformers) or served model name (openai)."
        ),
        base_url: Optional[str] = typer.Option(None, "--base-url", help="openai: endpoint, e.g. http://127.0.0.1:8000/v1."),
        max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="LLM backends: pixel budget per image."),
        expected_score: bool = typer.Option(
            False, "--expected-score", help="transformers: score = expectation over the score digit's probabilities."
        ),
        dump_inputs: Optional[Path] = typer.Option(
            None, "--dump-inputs", help="LLM backends: save every model input (images + messages) under this folder."
        ),
        probes: list[str] = typer.Option(
            [], "--probe", help="Force a first zoom into x1,y1,x2,y2 (original pixels); repeatable."
        ),
    ) -> None:
        """Score IMAGES (1-5, higher is better) and localize their defects."""
        from qprobe.backends import create_backend
        from qprobe.errors import QProbeError
        from qprobe.types import Box

        files = expand_inputs(images)
        if not files:
            typer.echo("error: no images given (folders contained no image files)", err=True)
            raise typer.Exit(2)
        options: dict[str, Any] = {}
        if weights is not None:
            options["weights"] = str(weights)
        if planner is not None:
            options["planner"] = planner
        if engine is not None:
            options["engine"] = engine
        if all_zooms:
            options["confirmable_only"] = False
        if max_scan_share is not None:
            options["max_scan_share"] = max_scan_share
        if extra_zooms is not None:
            options["extra_zooms"] = extra_zooms
        if raw_boxes:
            options["join_gap"], options["trim_margin"] = -1.0, 0.0
        if zooms_per_mp is not None:  # the budget then depends on the image: --max-zooms becomes its floor
            options["zooms_per_mp"] = zooms_per_mp
            if max_zooms is not None:
                options["max_zooms"], max_zooms = max_zooms, None
        llm_options = {"model": model, "base_url": base_url, "max_pixels": max_pixels, "dump_inputs": dump_inputs}
        options.update({k: v for k, v in llm_options.items() if v is not None})
        if expected_score:
            options["expected_score"] = True
        try:
            forced = [Box.from_list([float(v) for v in p.split(",")]) for p in probes] or None
        except ValueError as exc:
            typer.echo(f"error: --probe takes x1,y1,x2,y2 in original pixels ({exc})", err=True)
            raise typer.Exit(2)
        try:
            scorer = create_backend(backend, **options)
        except (QProbeError, TypeError, ValueError, ImportError) as exc:
            flag = _flag_not_taken(exc)
            why = f"it does not take {flag}" if flag else str(exc)
            typer.echo(f"error: cannot create backend {backend!r}: {why}", err=True)
            raise typer.Exit(2)
        try:  # load now: a missing weight file stops the run before any image, and no image's time includes loading
            scorer.prepare()
        except QProbeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2)
        except (OSError, RuntimeError, ValueError, ImportError) as exc:
            typer.echo(f"error: cannot load backend {backend!r}: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(2)
        appender = None
        if trajectories is not None:
            from qprobe._fs import JsonlAppender

            try:  # before any image: a bad path costs no scoring
                appender = JsonlAppender(trajectories)
            except OSError as exc:
                typer.echo(f"error: cannot append trajectories to {trajectories}: {exc}", err=True)
                raise typer.Exit(2)
        results = []
        failed = 0
        stems = unique_stems(files) if overlay is not None else {}
        # one file per image in a folder: several images, or a path that names a folder ("out/", an existing one)
        overlay_dir = overlay is not None and (
            len(files) > 1 or overlay.endswith(("/", os.sep)) or Path(overlay).is_dir()
        )
        for f in files:
            try:
                a = scorer.assess(str(f), max_zooms=max_zooms, forced_probes=forced)
            except QProbeError as exc:  # e.g. missing weights: fatal for every image
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2)
            results.append(a)
            if a.error is not None:
                failed += 1
                typer.echo(f"error: {a.error}", err=True)
            for problem in forced_probe_problems(a):  # the answer stands; the user should know a probe was not made
                typer.echo(f"warning: {f}: --probe not made: {problem}", err=True)
            typer.echo(json_line(a) if as_json else text_line(a))
            sys.stdout.flush()
            if a.error is None and overlay is not None:
                target = overlay_path(Path(overlay), f, overlay_dir, stems.get(f))
                try:  # an unwritable overlay loses the overlay, not the other images' results
                    draw_overlay(a, f, target)
                except OSError as exc:
                    failed += 1
                    typer.echo(f"error: cannot write the overlay {target}: {exc}", err=True)
            if appender is not None and a.trajectory is not None:
                appender.write(a.trajectory.to_dict())
        if appender is not None:
            appender.close()
        if report is not None:
            from qprobe.report.html import write_report

            try:
                write_report(results, report)
            except OSError as exc:
                failed += 1
                typer.echo(f"error: cannot write the report {report}: {exc}", err=True)
            else:
                typer.echo(f"report: {report}", err=True)
        if failed:
            raise typer.Exit(1)
