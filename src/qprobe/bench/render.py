"""The per-photo work unit: load once, analyse once, render the missing items.

:func:`render_photo` runs in a worker process. It never raises for a bad
photo or a failing item: a photo that cannot be used comes back with a
``skipped`` reason, an item that fails with an entry in ``errors``; every
finished item has been written atomically before its record is returned.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qprobe.bench.config import BenchConfig
from qprobe.bench.degradations import DEGRADATIONS, create_degradation, list_degradations
from qprobe.bench.dof import apply_dof
from qprobe.bench.grain import estimate_noise_sigma
from qprobe.bench.inject import LocalResult, apply_local
from qprobe.bench.items import ItemSpec, Photo, auto_split, item_rng
from qprobe.bench.labels import LabelInput, create_annotator
from qprobe.bench.regions import Region, TextureMap, select_regions, texture_map
from qprobe.errors import ImageLoadError
from qprobe.io import load_rgb, save_image
from qprobe.manifest import DefectLabel, ManifestRow
from qprobe.types import Box

DATASET = "qprobe-bench"


@dataclass(frozen=True)
class PhotoTask:
    photo: Photo
    items: tuple[ItemSpec, ...]
    config: BenchConfig
    recipe_hash: str


class ItemSkipped(Exception):
    """An item this photo cannot give (e.g. no visible degradation): recorded with its reason, not an error."""


@dataclass
class PhotoResult:
    photo: Photo
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    skipped_items: list[tuple[str, str]] = field(default_factory=list)  # (item id, reason)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def resolve_degradations(patterns: list[str]) -> list[str]:
    """Degradation names matching any of the glob ``patterns`` (sorted, unique)."""
    names = sorted({n for p in patterns for n in list_degradations(p)})
    if not names:
        known = ", ".join(list_degradations())
        raise ValueError(f"no degradation matches {patterns!r}; known: {known}")
    return names


def dof_sigma(cfg: BenchConfig, width: int, height: int) -> float:
    """Largest depth-of-field blur sigma (pixels) for an image of this size."""
    return max(cfg.dof_min_sigma, cfg.dof_sigma_frac * max(width, height, 1))


def _box_list(box: Box) -> list[float]:
    return box.to_list(ndigits=None)


class _PhotoRenderer:
    def __init__(self, task: PhotoTask, image: np.ndarray) -> None:
        self.task = task
        self.cfg = task.config
        self.image = image
        self.height, self.width = image.shape[:2]
        self._tex: TextureMap | None = None
        self.names = resolve_degradations(self.cfg.degradations)
        self.families = {n: str(DEGRADATIONS.metadata(n).get("family", n)) for n in self.names}
        self.draw_hash = self.cfg.draw_hash()  # seeds every draw (the recipe less the visibility rule)
        rng = item_rng(self.cfg.seed, task.photo.id, self.draw_hash, "families")
        self.order = [self.names[i] for i in rng.permutation(len(self.names))]
        self.annotator = create_annotator(self.cfg.annotator)
        self.split = auto_split(task.photo.id) if self.cfg.split == "auto" else self.cfg.split

    @property
    def tex(self) -> TextureMap:
        if self._tex is None:
            self._tex = texture_map(self.image, self.cfg.analysis_side, self.cfg.texture_percentile)
        return self._tex

    def rng(self, key: str) -> np.random.Generator:
        return item_rng(self.cfg.seed, self.task.photo.id, self.draw_hash, key)

    # -- item kinds ---------------------------------------------------------
    def degraded(
        self, item: ItemSpec
    ) -> tuple[np.ndarray, list[DefectLabel], list[dict[str, Any]], dict[str, Any]]:
        cfg = self.cfg
        rng = self.rng(f"deg{item.index}")
        n = int(rng.integers(cfg.min_regions, cfg.max_regions + 1))
        regions = select_regions(
            self.tex, n, rng, cfg.min_area, cfg.max_area, cfg.max_aspect, cfg.min_coverage
        )
        if not regions:
            raise RuntimeError("no room for a degraded region in this image")
        out = self.image.copy()
        defects: list[DefectLabel] = []
        log: list[dict[str, Any]] = []
        boxes = [r.box for r in regions]  # every region's current box: a re-draw keeps clear of the others
        for i, region in enumerate(regions):
            name = self.order[(item.index * cfg.max_regions + i) % len(self.order)]
            severity = int(rng.choice(cfg.severities))
            sub_seed = int(rng.integers(0, 2**63 - 1))
            res, region, sub_seed, change, redraws = self._inject_visible(
                out, region, name, severity, sub_seed, f"deg{item.index}-r{i}", boxes, i
            )
            entry = {
                "name": name,
                "family": self.families[name],
                "severity": severity,
                "bbox": _box_list(region.box),
                "area_frac": round(region.area_frac, 6),
                "texture": round(region.texture, 4),
                "coverage": round(region.coverage, 4),
                "seed": sub_seed,
                "visible_change": round(change, 4),
                "redraws": redraws,
            }
            if res is None:  # invisible wherever it was drawn: not a defect, the image keeps those pixels
                log.append({**entry, "dropped": "invisible"})
                continue
            defects.append(DefectLabel(res.defect.bbox, name, severity))
            log.append({**entry, "params": res.params, "bbox": _box_list(res.defect.bbox), "feather_px": res.feather_px})
        if not defects:
            raise ItemSkipped(
                f"no degradation drawn here changed the image visibly (mean change < min_visible="
                f"{cfg.min_visible} grey levels): too little texture"
            )
        return out, defects, log, {}

    def _inject_visible(
        self,
        out: np.ndarray,
        region: Region,
        name: str,
        severity: int,
        seed: int,
        key: str,
        boxes: list[Box],
        index: int,
    ) -> tuple[LocalResult | None, Region, int, float, int]:
        """Inject ``name`` into ``region`` of ``out`` in place, re-drawing it while it is invisible.

        Visible: the mean absolute change over the box's RGB values is at
        least ``min_visible``. An invisible draw is undone (only the box is
        ever written) and re-drawn — a new region clear of the others, new
        parameters — from streams of its own (``key``), so the image's other
        draws do not move. Returns (result or ``None`` when it stayed
        invisible, the region, the seed, the change, the re-draws made).
        """
        cfg = self.cfg
        change, redraws = 0.0, 0
        for attempt in range(cfg.visible_tries + 1 if cfg.min_visible > 0 else 1):
            if attempt:
                rng = self.rng(f"{key}-redraw{attempt}")
                others = tuple(b for k, b in enumerate(boxes) if k != index)
                found = select_regions(
                    self.tex, 1, rng, cfg.min_area, cfg.max_area, cfg.max_aspect, cfg.min_coverage, exclude=others
                )
                if not found:
                    break
                region, seed, redraws = found[0], int(rng.integers(0, 2**63 - 1)), attempt
                boxes[index] = region.box
            x1, y1, x2, y2 = region.box.to_int()
            before = out[y1:y2, x1:x2].copy()
            res = apply_local(
                out, region.box, name, severity, seed,
                feather_frac=cfg.feather_frac, degradation=create_degradation(name), inplace=True,
            )
            change = float(np.abs(out[y1:y2, x1:x2].astype(np.int16) - before).mean())
            if change >= cfg.min_visible:
                return res, region, seed, change, redraws
            out[y1:y2, x1:x2] = before  # undo: nobody could see it
        return None, region, seed, change, redraws

    def dof(
        self, item: ItemSpec
    ) -> tuple[np.ndarray, list[DefectLabel], list[dict[str, Any]], dict[str, Any]]:
        cfg = self.cfg
        rng = self.rng(f"dof{item.index}")
        found = select_regions(
            self.tex,
            1,
            rng,
            cfg.dof_subject_min_area,
            cfg.dof_subject_max_area,
            cfg.max_aspect,
            cfg.min_coverage,
        )
        if not found:
            raise RuntimeError("no in-focus subject found")
        subject = found[0].box
        sigma = dof_sigma(cfg, self.width, self.height)
        grain = estimate_noise_sigma(self.image) if cfg.dof_grain else None
        res = apply_dof(self.image, subject, max_sigma=sigma, falloff=cfg.dof_falloff, grain=grain, rng=rng)
        log = [
            {
                "name": "synthetic_dof",
                "family": "depth_of_field",
                "severity": None,
                "params": {"max_sigma": round(sigma, 4), "falloff": cfg.dof_falloff}
                | ({} if grain is None else {"grain": [round(float(g), 4) for g in grain]}),
                "bbox": _box_list(subject),
                "focus_box": _box_list(res.focus_box),
                "negative": True,
            }
        ]
        return res.image, [], log, {"focus_box": _box_list(res.focus_box)}

    def clean(
        self, item: ItemSpec
    ) -> tuple[np.ndarray, list[DefectLabel], list[dict[str, Any]], dict[str, Any]]:
        return self.image, [], [], {}

    # -- one item -------------------------------------------------------------
    def render(self, item: ItemSpec) -> dict[str, Any]:
        cfg = self.cfg
        make = {"degraded": self.degraded, "dof": self.dof, "clean": self.clean}[item.kind]
        pixels, defects, log, extra = make(item)
        rel = f"images/{item.id}.{cfg.image_format}"
        save_image(Path(cfg.out) / rel, pixels, quality=cfg.jpeg_quality)
        label_in = LabelInput(
            width=self.width,
            height=self.height,
            kind=item.kind,
            defects=tuple((d.bbox, d.type, int(d.severity or 0)) for d in defects),
            path=rel,
            families=self.families,
        )
        mos, std = self.annotator.annotate(label_in)
        row = ManifestRow(
            id=item.id,
            path=rel,
            dataset=DATASET,
            split=self.split,
            width=self.width,
            height=self.height,
            mos=round(mos, 4),
            mos_std=round(std, 4),
            defects=defects,
            source_id=self.task.photo.id,
            dof=item.kind == "dof",
            extra={
                "kind": item.kind,
                "source_file": self.task.photo.rel,
                "annotator": cfg.annotator,
                **extra,
            },
        )
        return {
            "id": item.id,
            "photo_id": self.task.photo.id,
            "recipe": self.task.recipe_hash,
            "storage": cfg.storage(),
            "seed": cfg.seed,
            "row": row.to_dict(),
            "log": [{"id": item.id, "source_id": self.task.photo.id, "kind": item.kind, **e} for e in log],
        }


def render_photo(task: PhotoTask) -> PhotoResult:
    """Render ``task.items`` of one photo; never raises for bad input."""
    t0 = time.perf_counter()
    result = PhotoResult(task.photo)
    cfg = task.config
    try:
        image = load_rgb(task.photo.path, max_pixels=cfg.max_pixels)
    except ImageLoadError as exc:
        result.skipped = exc.reason
        return result
    except Exception as exc:  # an unexpected decoder failure must not stop the build
        result.skipped = f"cannot load: {type(exc).__name__}: {exc}"
        return result
    h, w = image.shape[:2]
    if min(h, w) < cfg.min_side:
        result.skipped = f"image is {w}x{h}, smaller than min_side={cfg.min_side} px"
        return result
    try:
        renderer = _PhotoRenderer(task, image)
    except Exception as exc:
        result.skipped = f"cannot prepare: {type(exc).__name__}: {exc}"
        return result
    for item in task.items:
        try:
            result.records.append(renderer.render(item))
        except ItemSkipped as exc:  # deterministic: a re-run would skip it again
            result.skipped_items.append((item.id, str(exc)))
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            result.errors.append(
                f"{item.id}: {type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
            )
    result.seconds = time.perf_counter() - t0
    return result
