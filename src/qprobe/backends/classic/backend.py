"""``classic``: the default CPU backend (no GPU, no download).

The same probe loop as the LLM backends, driven by
:class:`~qprobe.backends.classic.policy.ClassicPolicy`: a global view scored
by a fine-tuned MobileNetV2 regressor, zooms proposed by a native-resolution
anomaly scan, a dense defect detector on each full-resolution crop, and a
fused 1–5 score. Weights ship inside the package (``qprobe/weights``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from qprobe.agent.cropping import CropConfig
from qprobe.agent.env import EnvConfig
from qprobe.agent.loop import Policy
from qprobe.backends.base import ProbingBackend

if TYPE_CHECKING:
    from qprobe.backends.classic.policy import ClassicPolicy

_LOADING = threading.Lock()
"""Held while a backend loads its model: concurrent first assessments (the HTTP service's first
requests) wait for one model instead of each loading their own (8 threads: 8 models, 2.3 GB)."""


def passive_omp() -> None:
    """Let idle OpenMP threads sleep instead of spin (set before torch is first imported).

    On a busy or shared CPU, spinning torch threads make inference 10-40x
    slower; passive waiting costs nothing measurable on an idle machine.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass
class ClassicConfig:
    """Settings of the classic backend (all have working defaults)."""

    weights: str | None = field(default=None, metadata={"help": "Weight file; default: the shipped one."})
    max_zooms: int = field(
        default=8,
        metadata={
            "help": "Zoom budget per image (a crop costs only the frozen tap and the defect head); "
            "with zooms_per_mp, larger images get more."
        },
    )
    zooms_per_mp: float = field(
        default=0.5,
        metadata={
            "help": "Zooms per megapixel where that comes to more than max_zooms (up to zoom_cap): images over "
            "18 MP get more zooms, so the zooms cover a similar share of every image; 0: max_zooms for every size."
        },
    )
    zoom_cap: int = field(default=32, metadata={"help": "Most zooms zooms_per_mp gives an image."})
    extra_zooms: int = field(
        default=8,
        metadata={
            "help": "Zooms past the budget above, each made only where its crop holds a scan block at "
            "extra_zoom_prob or more: photos with more confident evidence than the budget covers get looked "
            "at further (held-out recall +0.036 pooled, stop 31); 0: none."
        },
    )
    extra_zoom_prob: float = field(
        default=0.95, metadata={"help": "Scan probability a block of an extra zoom's crop must reach."}
    )
    extra_need_defect: bool = field(
        default=True,
        metadata={
            "help": "Make extra zooms only once an earlier zoom found a defect: a photo whose base zooms found "
            "nothing gets no extra look (a clean 4K photo 1.1-1.4x faster, held-out recall -0.004 pooled, stop 34); "
            "false: wherever the scan is sure."
        },
    )
    view_long_side: int = field(default=512, metadata={"help": "Long side of the global view in pixels."})
    zoom_side: int = field(default=320, metadata={"help": "Smallest requested zoom box side, original pixels."})
    max_crop_side: int = field(
        default=512,
        metadata={"help": "The network's input side: longer crops go through it as tiles of this side (see max_tiles)."},
    )
    max_tiles: int = field(
        default=64,
        metadata={
            "help": "A crop longer than max_crop_side is cut into native-resolution tiles of that side, at most "
            "this many (more: downscaled to fit); <= 1: downscale every such crop to one pass."
        },
    )
    score_crop: int = field(
        default=320, metadata={"help": "Side of the five crops the global view is scored on (0: score it whole)."}
    )
    context_factor: float = field(default=1.5, metadata={"help": "Context enlargement of each zoom box."})
    confirmable_only: bool = field(
        default=True,
        metadata={
            "help": "Make a planned zoom only where its crop holds a scan block above the agreement threshold "
            "(elsewhere no found defect could be kept, so the zoom cannot change the answer); False: spend "
            "the whole budget, texture-rich windows once the scan's evidence runs out."
        },
    )
    min_surround_detail: float = field(
        default=1.0,
        metadata={
            "help": "Drop a blur, motion blur, smear or haze defect whose surroundings have less fine detail than "
            "this (mean |Laplacian| of luma, grey levels): grain-free smooth content, e.g. rendered depth of "
            "field, gives no reference to tell lost detail from; 0 keeps every one."
        },
    )
    max_scan_share: float = field(
        default=0.1,
        metadata={
            "help": "Most of an image the native-resolution scan may flag: where it fires on more (a photo's own "
            "grain, compression or texture everywhere), its logits are lowered until only this share of blocks "
            "stands out, and only those draw zooms and confirm defects; 1: the scan as trained."
        },
    )
    join_gap: float = field(
        default=1.0,
        metadata={
            "help": "Report same-type defect boxes linked by neighbours at most this many box sides apart (the "
            "larger short side of the two, as found) as one box, their union, where they fill at least join_fill "
            "of it: one damaged region, one box (the score is fused from the boxes before they join); < 0: every "
            "box as found."
        },
    )
    join_fill: float = field(
        default=0.3, metadata={"help": "Least share of their union a group of joined boxes must cover (see join_gap)."}
    )
    trim_margin: float = field(
        default=32.0,
        metadata={
            "help": "Report a box grown over the scan's blobs with the head's own side wherever a made crop saw "
            "at least this many pixels past the head's boxes (the head found no damage there): the coarse scan "
            "extends a box only into what no crop showed (the score is fused from the grown boxes); <= 0: the "
            "grown boxes."
        },
    )
    planner: str = field(
        default="windows",
        metadata={"help": "Zoom planner: 'windows' (greedy coverage of the scan's evidence) or 'blobs' (one per blob)."},
    )
    threads: int = field(default=0, metadata={"help": "CPU threads of the network (0: the library's default)."})
    crop_workers: bool = field(
        default=True,
        metadata={
            "help": "Run the planned zoom crops side by side, one per thread on one-thread ONNX Runtime sessions "
            "(the same numbers); False: one after another, each on all threads."
        },
    )
    engine: str = field(
        default="auto",
        metadata={
            "help": "Network runtime: 'onnx' (ONNX Runtime, ~2x faster), 'torch' (eager), "
            "'auto' (onnx when onnxruntime is installed)."
        },
    )


class ClassicBackend(ProbingBackend):
    """Scan-guided probing with a CNN regressor and defect detector (CPU)."""

    name = "classic"

    def __init__(self, **overrides: Any) -> None:
        from qprobe.config import from_dict

        from qprobe.backends.classic.onnx_engine import check_engine
        from qprobe.backends.classic.proposals import check_planner

        self.config = from_dict(ClassicConfig, overrides)
        cfg = self.config
        if min(cfg.max_zooms, cfg.zoom_cap, cfg.zooms_per_mp, cfg.min_surround_detail, cfg.extra_zooms) < 0:
            raise ValueError("max_zooms, zoom_cap, zooms_per_mp, extra_zooms and min_surround_detail must be >= 0")
        if not 0.0 <= cfg.join_fill <= 1.0:
            raise ValueError(f"join_fill must lie in [0, 1], got {cfg.join_fill}")
        if not 0.0 <= cfg.extra_zoom_prob <= 1.0:
            raise ValueError(f"extra_zoom_prob must lie in [0, 1], got {cfg.extra_zoom_prob}")
        if not 0.0 < cfg.max_scan_share <= 1.0:
            raise ValueError(f"max_scan_share must be in (0, 1], got {cfg.max_scan_share}")
        check_planner(cfg.planner)  # fail before any weights load
        check_engine(cfg.engine)
        super().__init__(
            EnvConfig(
                view_long_side=cfg.view_long_side,
                max_zooms=cfg.max_zooms + cfg.extra_zooms,
                crop=CropConfig(context_factor=cfg.context_factor),
            )
        )
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The loaded model (weights are read on first use, once however many threads ask)."""
        if self._model is None:
            with _LOADING:
                if self._model is None:
                    self._model = self._load_model()
        return self._model

    def prepare(self) -> None:
        """Load the weights and build the network's sessions now (see :meth:`Backend.prepare`)."""
        self.model  # noqa: B018 - the property loads

    def _load_model(self) -> Any:
        passive_omp()
        from qprobe.backends.classic.core import load_model

        cfg = self.config
        return load_model(  # from the weight file's cached bundle when it has one: no torch import
            cfg.weights,
            max_crop_side=cfg.max_crop_side,
            zoom_side=cfg.zoom_side,
            threads=cfg.threads,
            score_crop=cfg.score_crop,
            engine=cfg.engine,
            max_tiles=cfg.max_tiles,
            crop_workers=cfg.crop_workers,
        )

    def identity(self) -> dict[str, Any]:
        """The settings that change outputs and the SHA-256 of the weight file.

        Not ``threads`` or ``engine``: both runtimes compute the same function
        (logits agree to ~1e-5); nor ``crop_workers`` (the same numbers, a test).
        """
        from qprobe.backends.classic.weights import default_weights_path
        from qprobe._fs import file_sha256

        ident = super().identity()
        ident["settings"].pop("threads", None)
        ident["settings"].pop("engine", None)
        ident["settings"].pop("crop_workers", None)
        path = self.config.weights or default_weights_path()
        ident["weights_sha256"] = file_sha256(path) if os.path.isfile(path) else None
        return ident

    def zoom_budget(self, width: int, height: int) -> int:
        """``max_zooms``, or ``zooms_per_mp`` per megapixel (whole ones) up to ``zoom_cap`` if that is more.

        A fixed budget covers an ever smaller share of ever larger images (a
        4K photo is 8.3 MP, a 65 MP image has 7.8x its area). The default,
        half a zoom per megapixel up to 32, leaves every image under 18 MP at
        ``max_zooms`` and gives a 65 MP image 32 (docs/classic-experiments.md, stop 20: on 65 MP
        mosaics recall 0.20 -> 0.40, SRCC 0.25 -> 0.57; on the 4-20 MP
        held-out photos one defect more, nothing else changed). One zoom per
        megapixel (up to 16) was measured on 4-20 MP photos in stop 18:
        held-out recall +0.04, but more false boxes on grainy artwork.
        ``extra_zooms`` come on top, made only where the scan is sure
        (:meth:`~qprobe.backends.classic.policy.ClassicPolicy.would_make`).
        """
        cfg = self.config
        scaled = int(width * height / 1e6 * cfg.zooms_per_mp) if cfg.zooms_per_mp > 0 else 0
        return max(cfg.max_zooms, min(cfg.zoom_cap, scaled)) + cfg.extra_zooms

    def make_policy(
        self, *, seed: int | None = None, image: np.ndarray | None = None, max_zooms: int | None = None
    ) -> Policy:
        return self.policy_for(self.model, image, max_zooms=max_zooms)

    def policy_for(
        self,
        model: Any,
        image: np.ndarray | None,
        confirmable_only: bool | None = None,
        max_zooms: int | None = None,
    ) -> "ClassicPolicy":
        """A policy of this backend's settings driving ``model`` (a ClassicModel or a wrapper of one).

        ``confirmable_only`` overrides the setting (the calibration records every planned zoom).
        ``max_zooms``: the episode's budget, when the caller set one. Below this
        backend's own budget (:meth:`zoom_budget`) the environment cuts the
        episode short of it; above, the policy plans that many zooms, and
        the zooms added come before the extra ones (the last ``extra_zooms``
        of the plan are still made only where the scan is sure).
        """
        from qprobe.backends.classic.policy import ClassicPolicy

        cfg = self.config
        budget = (
            self.zoom_budget(image.shape[1], image.shape[0]) if image is not None else cfg.max_zooms + cfg.extra_zooms
        )
        if max_zooms is not None:
            budget = max(budget, int(max_zooms))
        return ClassicPolicy(
            model,
            image,
            budget,
            planner=cfg.planner,
            context_factor=cfg.context_factor,
            confirmable_only=cfg.confirmable_only if confirmable_only is None else confirmable_only,
            min_surround_detail=cfg.min_surround_detail,
            max_scan_share=cfg.max_scan_share,
            extra_zooms=cfg.extra_zooms,
            extra_zoom_prob=cfg.extra_zoom_prob,
            extra_need_defect=cfg.extra_need_defect,
            join_gap=cfg.join_gap,
            join_fill=cfg.join_fill,
            trim_margin=cfg.trim_margin,
        )
