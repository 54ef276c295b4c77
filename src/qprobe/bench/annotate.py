"""VLM annotation of the benchmark: a description per injected defect and per image, checked.

For every manifest row a vision-language model (any LLM backend: a local
checkpoint with ``transformers`` or a served one with ``openai``) is asked

* for the image: its overall quality in words and a 1–5 rating (the global
  view only);
* for each injected defect: the global view plus the full-resolution,
  context-enlarged crop of the defect's box, and a type, a location word and
  a description.

A **consistency check** compares each defect answer with what the builder
injected: the type must belong to the injected degradation's family, the
description must name it (a family keyword), and the location must be a
3x3-grid cell the box touches. A row with any failed check — or an
unreadable reply — is flagged, so flywheel reasoning is seeded only from
texts that name the right type and region. The VLM rating is stored next to
the proxy MOS, never in place of it.

Results go to ``<out>.annotations.jsonl`` as they are made (one line per
row; a rerun resumes) and, at the end, into the output manifest under the
row key ``annotation``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe._fs import JsonlAppender, read_jsonl_tolerant
from qprobe.agent import prompts
from qprobe.agent.cropping import CropConfig, context_box
from qprobe.agent.env import global_view
from qprobe.agent.parsing import parse_answer_object
from qprobe.backends.vlm.backend import VLMBackend
from qprobe.backends.vlm.coords import Frame, to_model
from qprobe.backends.vlm.engine import Generation
from qprobe.backends.vlm.messages import Conversation, prepare_image
from qprobe.io import load_rgb
from qprobe.manifest import ManifestRow, read_manifest, resolve_path, write_manifest
from qprobe.types import Box

FAMILY_TYPES: dict[str, tuple[str, ...]] = {
    "blur": ("blur", "motion_blur"),
    "noise": ("noise",),
    "compression": ("compression",),
    "sharpening": ("ringing",),
    "quantization": ("banding",),
    "resampling": ("pixelation",),
    "contrast": ("haze",),
    "smearing": ("smearing",),
}
"""Benchmark degradation family → the prompt's defect types that name it correctly."""

KEYWORDS: dict[str, tuple[str, ...]] = {
    "blur": ("blur", "soft", "out of focus", "defocus", "unsharp"),
    "motion_blur": ("motion", "blur", "streak"),
    "noise": ("noise", "noisy", "grain", "speckle"),
    "compression": ("jpeg", "compression", "block", "artifact", "artefact"),
    "ringing": ("ringing", "halo", "oversharp", "over-sharp", "sharpen"),
    "banding": ("banding", "band", "posteriz", "quantiz", "contour"),
    "pixelation": ("pixel", "blocky", "jagged", "mosaic"),
    "haze": ("haze", "hazy", "washed", "contrast", "fog", "veil"),
    "smearing": ("smear", "waxy", "plastic", "smooth", "smudg", "painterly"),
    "other": (),
}
"""Words a description must contain (any one) to name a defect type."""


def expected_types(degradation: str) -> tuple[str, ...]:
    """The prompt types that correctly name a benchmark degradation (by its registered family)."""
    if degradation in KEYWORDS:
        return (degradation,)
    try:
        from qprobe.bench.degradations import DEGRADATIONS

        family = str(DEGRADATIONS.metadata(degradation).get("family", ""))
    except Exception:  # unknown name: only an exact type match can be right
        family = ""
    return FAMILY_TYPES.get(family, (degradation,))


def grid_cells(box: Box, width: int, height: int) -> set[str]:
    """The 3x3-grid location words whose cells ``box`` overlaps."""
    cells = set()
    for i in range(3):
        for j in range(3):
            cell = Box(j * width / 3, i * height / 3, (j + 1) * width / 3, (i + 1) * height / 3)
            if box.intersection(cell) > 0:
                cells.add(prompts.LOCATIONS[3 * i + j])
    return cells


def check_defect(answer: dict[str, Any] | None, problem: str, degradation: str, box: Box, size: tuple[int, int]) -> dict[str, Any]:
    """The recorded answer for one defect with its consistency flags."""
    if answer is None:
        return {"degradation": degradation, "ok": False, "flags": [f"unreadable reply: {problem}"]}
    vtype = str(answer.get("type", "")).strip().lower().replace(" ", "_")
    location = str(answer.get("location", "")).strip().lower()
    description = str(answer.get("description", "")).strip()
    want = expected_types(degradation)
    flags = []
    type_ok = vtype in want
    if not type_ok:
        flags.append(f"type {vtype!r} does not match {degradation!r} (expected {' or '.join(want)})")
    words = [k for t in want for k in KEYWORDS.get(t, (t.replace("_", " "),))]
    named = any(k in description.lower() for k in words)
    if not named:
        flags.append(f"the description does not name {degradation!r}")
    cells = grid_cells(box, *size)
    location_ok = location in cells
    if not location_ok:
        flags.append(f"location {location!r} is not where the defect is ({', '.join(sorted(cells))})")
    return {
        "degradation": degradation,
        "type": vtype,
        "location": location,
        "description": description,
        "type_ok": type_ok,
        "named_ok": named,
        "location_ok": location_ok,
        "ok": not flags,
        "flags": flags,
    }


@dataclass
class AnnotateSummary:
    rows: int = 0
    annotated: int = 0
    reused: int = 0
    flagged: int = 0
    defects: int = 0
    defects_ok: int = 0
    out: Path | None = None
    sidecar: Path | None = None
    errors: list[str] = field(default_factory=list)


def _image_conversation(view_img: Any, size: tuple[int, int]) -> Conversation:
    text = prompts.annotate_image_text(*size)
    return Conversation([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}], [view_img])


def _defect_conversation(view_img: Any, crop_img: Any, size: tuple[int, int], bbox: list[Any], frame: Frame) -> Conversation:
    text = prompts.annotate_defect_text(size[0], size[1], bbox, frame.describe())
    content = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": text}]
    return Conversation([{"role": "user", "content": content}], [view_img, crop_img])


class Annotator:
    """Builds the annotation requests of rows and checks the replies."""

    def __init__(self, backend: VLMBackend, manifest_path: Path) -> None:
        self.backend = backend
        self.manifest_path = manifest_path
        self.crop = CropConfig()

    def requests(self, row: ManifestRow) -> list[Conversation]:
        """One conversation for the image, then one per defect."""
        pixels = load_rgb(resolve_path(row, self.manifest_path))
        h, w = pixels.shape[:2]
        view, scale = global_view(pixels, self.backend.env_config.view_long_side)
        sizer = self.backend.sizer()
        view_img = prepare_image(view, sizer)
        frame = Frame(self.backend.convention, (w, h), self.backend.model_size(view.shape[1], view.shape[0]))
        convs = [_image_conversation(view_img, (w, h))]
        for d in row.defects:
            eff = context_box(d.bbox, (w, h), self.crop, scale)
            x1, y1, x2, y2 = eff.to_int()
            crop_img = prepare_image(pixels[y1:y2, x1:x2], sizer, self.backend.crop_max_pixels)
            convs.append(_defect_conversation(view_img, crop_img, (w, h), to_model(d.bbox, frame), frame))
        return convs

    def record(self, row: ManifestRow, replies: Sequence[Generation]) -> dict[str, Any]:
        size = (row.width, row.height)
        image_obj, problem = parse_answer_object(replies[0].text)
        image: dict[str, Any] = {"reply_ok": image_obj is not None}
        flags = []
        if image_obj is None:
            flags.append(f"image description unreadable: {problem}")
        else:
            image["description"] = str(image_obj.get("description", "")).strip()
            score = image_obj.get("score")
            image["score"] = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None
        defects = []
        for d, gen in zip(row.defects, replies[1:]):
            obj, why = parse_answer_object(gen.text)
            checked = check_defect(obj, why, d.type, d.bbox, size)
            defects.append(checked)
            flags.extend(f"{d.type}: {f}" for f in checked["flags"])
        engine = self.backend.engine
        return {
            "prompt_version": prompts.ANNOTATE_PROMPT_VERSION,
            "backend": self.backend.name,
            "decoding": engine.decoding(),
            "image": image,
            "defects": defects,
            "flagged": bool(flags),
            "flags": flags,
            "raw": [g.text for g in replies],
        }


def _generate_all(backend: VLMBackend, convs: list[Conversation]) -> list[Generation]:
    engine = backend.engine
    if engine.batched:
        out: list[Generation] = []
        for i in range(0, len(convs), backend.batch_size):
            out.extend(engine.generate(convs[i : i + backend.batch_size]))
        return out
    with ThreadPoolExecutor(max_workers=backend.batch_size) as pool:
        return list(pool.map(lambda c: engine.generate([c])[0], convs))


def annotate_manifest(
    manifest: str | Path,
    out: str | Path,
    backend: VLMBackend,
    *,
    limit: int | None = None,
    echo: Callable[[str], None] = lambda line: None,
) -> AnnotateSummary:
    """Annotate the rows of ``manifest`` with ``backend`` and write the manifest ``out``.

    Finished rows are appended to ``<out>.annotations.jsonl`` at once, so an
    interrupted run loses nothing and a rerun only does the rest.
    """
    manifest = Path(manifest)
    out = Path(out)
    rows = read_manifest(manifest)
    sidecar = out.with_name(out.name + ".annotations.jsonl")
    done = {
        r["id"]: r["annotation"]
        for r in read_jsonl_tolerant(sidecar, repair=True)
        if r.get("annotation", {}).get("prompt_version") == prompts.ANNOTATE_PROMPT_VERSION
    }
    summary = AnnotateSummary(rows=len(rows), out=out, sidecar=sidecar)
    todo = [r for r in rows if r.id not in done]
    summary.reused = len(rows) - len(todo)
    if limit is not None:
        todo = todo[: max(0, limit)]
    annotator = Annotator(backend, manifest)
    step = max(1, backend.batch_size)
    with JsonlAppender(sidecar) as appender:
        for i in range(0, len(todo), step):
            chunk = todo[i : i + step]
            convs: list[Conversation] = []
            spans = []
            for row in chunk:
                try:
                    reqs = annotator.requests(row)
                except Exception as exc:  # an unreadable image: recorded, the run goes on
                    summary.errors.append(f"{row.id}: {exc}")
                    spans.append(None)
                    continue
                spans.append((len(convs), len(reqs)))
                convs.extend(reqs)
            replies = _generate_all(backend, convs)
            for row, span in zip(chunk, spans):
                if span is None:
                    continue
                start, n = span
                ann = annotator.record(row, replies[start : start + n])
                appender.write({"id": row.id, "annotation": ann})
                done[row.id] = ann
                summary.annotated += 1
                echo(f"{row.id}: {'FLAGGED ' + '; '.join(ann['flags']) if ann['flagged'] else 'ok'}")
    for row in rows:
        ann = done.get(row.id)
        if ann is None:
            continue
        row.extra["annotation"] = ann
        summary.flagged += int(bool(ann["flagged"]))
        summary.defects += len(ann["defects"])
        summary.defects_ok += sum(1 for d in ann["defects"] if d.get("ok"))
    write_manifest(out, rows)
    return summary
