"""``BenchConfig``: every knob of the benchmark build, with help text.

Three layers (DESIGN §3.2): this dataclass is the schema, a YAML recipe in
``configs/bench/`` sets a study's values, and CLI flags override single
fields. :meth:`BenchConfig.recipe_hash` fingerprints the fields that change
image *content*; with the seed and the photo id it determines every output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from qprobe.errors import ConfigError
from qprobe.io import DEFAULT_MAX_PIXELS


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


# Fields that do not change what a given item looks like: the build may be
# resumed or extended with other values of these. (The file format changes
# how items are stored, not what they are; builder.py refuses to mix formats
# in one folder.)
NON_RECIPE_FIELDS = (
    "photos",
    "out",
    "workers",
    "variants",
    "clean",
    "dof_per_photo",
    "max_pixels",
    "image_format",
    "jpeg_quality",
)


@dataclass
class BenchConfig:
    photos: str = _f("", "Folder of pristine photos (searched recursively).")
    out: str = _f("", "Output folder (created; re-running resumes).")
    variants: int = _f(5, "Degraded variants per photo.")
    clean: bool = _f(True, "Also write one clean copy per photo (a hard negative, no defect).")
    dof_per_photo: int = _f(1, "Synthetic depth-of-field negatives per photo (no defect).")
    seed: int = _f(0, "Global seed; with the photo id and the recipe it fixes every output.")
    workers: int = _f(1, "Worker processes (one photo per task).")
    degradations: list[str] = _f(
        ["*"], "Glob patterns of degradation names to use (see `qprobe ls degradations`)."
    )
    severities: list[int] = _f([1, 2, 3, 4, 5], "Severities to draw from (1 = barely visible, 5 = severe).")
    min_regions: int = _f(1, "Fewest degraded regions per degraded image.")
    max_regions: int = _f(3, "Most degraded regions per degraded image.")
    min_area: float = _f(0.002, "Smallest region, as a fraction of the image area.")
    max_area: float = _f(0.05, "Largest region, as a fraction of the image area.")
    max_aspect: float = _f(1.8, "Largest region aspect ratio (long side / short side).")
    min_coverage: float = _f(0.5, "Fraction of a region that must lie on one texture-rich component.")
    feather_frac: float = _f(
        0.12, "Feather width of the region mask, as a fraction of the box's shorter side."
    )
    min_visible: float = _f(
        1.0,
        "Least mean absolute change (grey levels, over the box's RGB values) an injected degradation must "
        "make; one that changes less (e.g. blur over a flat gradient) is re-drawn in another region and "
        "dropped if it stays invisible: a label nobody can see is not a defect. 0 keeps every draw.",
    )
    visible_tries: int = _f(3, "Re-draws of an invisible degradation before it is dropped.")
    analysis_side: int = _f(1024, "Long side of the down-sampled grey copy used for region search.")
    texture_percentile: float = _f(60.0, "Texture-energy percentile above which cells count as texture-rich.")
    dof_sigma_frac: float = _f(0.0025, "Largest depth-of-field blur sigma, as a fraction of the long side.")
    dof_min_sigma: float = _f(1.5, "Lower bound of the largest depth-of-field blur sigma in pixels.")
    dof_falloff: float = _f(
        0.35, "Distance (fraction of the diagonal) over which DoF blur reaches its maximum."
    )
    dof_grain: bool = _f(
        False,
        "Put back the sensor grain the depth-of-field blur removes (the photo's own noise level, "
        "bench.grain): real defocus is smooth but not grain-free.",
    )
    dof_subject_min_area: float = _f(0.04, "Smallest in-focus subject, as a fraction of the image area.")
    dof_subject_max_area: float = _f(0.15, "Largest in-focus subject, as a fraction of the image area.")
    image_format: str = _f(
        "png",
        "Output format: png (lossless; default) or jpg (quality jpeg_quality, 4:4:4; ~4x smaller and "
        "cheaper to write; outside each box widened to the 8-px block grid it decodes identical to the "
        "clean copy).",
    )
    jpeg_quality: int = _f(95, "JPEG quality when image_format is jpg (>= 95 recommended).")
    min_side: int = _f(32, "Photos with a shorter side are skipped (too small to hold regions).")
    max_pixels: int = _f(
        DEFAULT_MAX_PIXELS, "Largest photo (pixels) that is loaded; larger ones are skipped."
    )
    annotator: str = _f("proxy", "Annotator producing MOS labels (registered in qprobe.bench.labels).")
    split: str = _f(
        "auto", "Split of all rows, or 'auto': 80/10/10 train/val/test by a hash of the source photo."
    )
    pair_min_gap: float = _f(0.0, "Only write ranking pairs whose MOS differ by at least this.")

    def validate(self) -> None:
        if self.variants < 0 or self.dof_per_photo < 0:
            raise ConfigError("variants and dof_per_photo must be >= 0")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not 1 <= self.min_regions <= self.max_regions:
            raise ConfigError(
                f"need 1 <= min_regions <= max_regions, got {self.min_regions}, {self.max_regions}"
            )
        if not 0.0 < self.min_area <= self.max_area < 1.0:
            raise ConfigError(f"need 0 < min_area <= max_area < 1, got {self.min_area}, {self.max_area}")
        bad = [s for s in self.severities if s not in (1, 2, 3, 4, 5)]
        if bad or not self.severities:
            raise ConfigError(f"severities must be a non-empty subset of 1..5, got {self.severities}")
        if self.image_format not in ("png", "jpg"):
            raise ConfigError(f"image_format must be 'png' or 'jpg', got {self.image_format!r}")
        if self.min_visible < 0 or self.visible_tries < 0:
            raise ConfigError(f"min_visible and visible_tries must be >= 0, got {self.min_visible}, {self.visible_tries}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    def recipe(self) -> dict[str, Any]:
        """What defines the content: the config (less paths, counts and parallelism), the
        per-severity parameters of the degradations in use and the annotator's settings."""
        from qprobe.bench.degradations import SEVERITIES, create_degradation, list_degradations
        from qprobe.bench.labels import create_annotator

        data = dataclasses.asdict(self)
        recipe = {k: v for k, v in data.items() if k not in NON_RECIPE_FIELDS and k != "seed"}
        if not self.min_visible:  # no visibility rule: the recipe of builds made before it existed
            recipe = {k: v for k, v in recipe.items() if k not in VISIBILITY_FIELDS}
        if not self.dof_grain:  # grain-free depth of field: the recipe of builds made before grain existed
            recipe.pop("dof_grain", None)
        names = sorted({n for p in self.degradations for n in list_degradations(p)})
        recipe["degradation_params"] = {
            n: [create_degradation(n).params(s) for s in SEVERITIES] for n in names
        }
        annotator = create_annotator(self.annotator)
        if dataclasses.is_dataclass(annotator):
            recipe["annotator_params"] = dataclasses.asdict(annotator)
        return recipe

    def storage(self) -> str:
        """How images are stored (``png`` or ``jpg:<quality>``); one per output folder."""
        return "png" if self.image_format == "png" else f"jpg:{self.jpeg_quality}"

    def recipe_hash(self) -> str:
        return _hash(self.recipe())

    def draw_hash(self) -> str:
        """What seeds the random draws: the recipe less the visibility rule.

        A degradation that passes the rule is drawn (region, type, severity,
        parameters) exactly as without it; only an invisible one is re-drawn,
        from streams of its own. A build with ``min_visible = 0`` and one with
        the rule therefore differ only where a label was invisible. Likewise
        ``dof_grain`` changes a depth-of-field image's pixels (its grain), never
        what is drawn: with or without it, every item has the same regions,
        degradations and in-focus subject.
        """
        return _hash({k: v for k, v in self.recipe().items() if k not in DRAW_NEUTRAL_FIELDS})


VISIBILITY_FIELDS = ("min_visible", "visible_tries")

DRAW_NEUTRAL_FIELDS = (*VISIBILITY_FIELDS, "dof_grain")
"""Recipe fields that change how items look but not what is drawn (:meth:`BenchConfig.draw_hash`)."""


def _hash(recipe: dict[str, Any]) -> str:
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
