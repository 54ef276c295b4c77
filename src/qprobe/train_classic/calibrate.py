"""The detector's operating point, chosen on a validation benchmark (``--stage calibrate``).

The detector stage sets the defect head's threshold on crops of the
training benchmark, which the head was trained on: there it looks more
certain than on new photos, and the threshold it gets (0.99 on the shipped
weights) is stricter than needed. This stage picks the head's threshold, its
minimum size in cells and the scan-agreement threshold on a benchmark built
from photos outside training (and outside any test set):

1. the shipped pipeline runs once per image; each crop's raw defect maps,
   the scan and the global score are recorded;
2. every operating point of a grid is replayed offline from the record
   (detection, scan agreement, box extent, merging and fusion: exactly the
   live answer at that point, without the network);
3. rule: among the points whose false boxes per negative (clean or
   depth-of-field) image are shown to be at most ``max_fp`` — the one-sided
   95 % Poisson upper bound of the rate over all negative images, not just
   the observed rate — the highest defect recall at IoU >= 0.3; ties go to
   the higher SRCC with the proxy MOS, then to the stricter point. When no
   point qualifies, the weights keep their operating point.

The bound is what makes the rule safe on small benchmarks: with no false
box at all on ``n`` negative images the bound is ≈ 3 / n, so showing
``max_fp`` = 0.1 takes at least 30 negative images. On 16 (8 photos), the
most permissive point without a false box (threshold 0.7, 16 cells,
agreement 0.75; recall 0.29 → 0.40 there) gave 1.75 false boxes per clean
image on 8 other photos (README "Results").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from qprobe.backends.classic.policy import ClassicPolicy
from qprobe.backends.classic.quantization import lattice_cells
from qprobe.backends.classic.scan import ScanMap
from qprobe.manifest import ManifestRow
from qprobe.types import Box


@dataclass
class CalibrationConfig:
    thresholds: list[float] = field(
        default_factory=lambda: [0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5],
        metadata={"help": "Head thresholds tried (defect probability of a cell)."},
    )
    min_cells: list[int] = field(
        default_factory=lambda: [4, 8, 12, 16], metadata={"help": "Minimum defect sizes tried (cells)."}
    )
    agree: list[float] = field(
        default_factory=lambda: [0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5],
        metadata={"help": "Scan-agreement thresholds tried (the scan's own threshold is always tried too)."},
    )
    grow: list[float] = field(
        default_factory=lambda: [1.0, 0.95, 0.9, 0.8, 0.7],
        metadata={
            "help": "Box-growth thresholds tried at the chosen point (DetectorSettings.grow; 1: no growth), "
            "by the same rule; ties keep the higher."
        },
    )
    max_fp: float = field(
        default=0.1,
        metadata={"help": "Most false boxes per negative image: observed per clean and per DoF image, and its 95% bound."},
    )
    iou: float = field(default=0.3, metadata={"help": "IoU at which a found box matches a true defect."})


@dataclass
class Episode:
    """What one live episode saw: enough to replay its answer at any operating point."""

    kind: str
    mos: float | None
    truth: list[Box]
    crops: list[tuple[np.ndarray, Box]]
    scan: ScanMap | None
    prob: np.ndarray | None
    s_global: float | None
    view_scale: float
    image_size: tuple[int, int]
    base_zooms: int | None = None
    """The live policy's base zooms (the later ones were extra zooms); ``None``: every zoom a base one."""
    extra_zoom_prob: float | None = None
    """The scan probability the live policy's extra zooms needed."""
    extra_need_defect: bool | None = None
    """Whether the live policy's extra zooms waited for a found defect (``None``: recorded before stop 34)."""
    trim_margin: float | None = None
    """The live policy's ``trim_margin`` for reported boxes (``None``: recorded before stop 34, the default)."""


class _RecordingModel:
    """Delegates to a ClassicModel and keeps each crop's raw defect maps."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.crops: list[tuple[np.ndarray, Box]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def detect(
        self, rgb: np.ndarray, box: Box, confirm: Callable[[Box], bool] | None = None, maps: np.ndarray | None = None
    ) -> list[Any]:
        if not self._model.has_detector:
            return []
        if maps is None:
            maps = self._model.defect_maps(rgb)
        # the banding check's evidence rides along as a last channel, so a replay needs no pixels
        lattice = lattice_cells(rgb, (int(maps.shape[1]), int(maps.shape[2])))
        maps = np.concatenate([maps, lattice[None]], axis=0)
        self.crops.append((maps, box))
        return self._model.detections_from_maps(maps, box, confirm=confirm)


def record(backend: Any, rows: Sequence[ManifestRow], log: Any = None) -> list[Episode]:
    """Run ``backend`` (a ClassicBackend) on each row and record what replay needs."""
    from qprobe.agent.loop import run_episode
    from qprobe.io import load_rgb

    out = []
    for k, row in enumerate(rows):
        image = load_rgb(row.path)
        model = _RecordingModel(backend.model)
        # every planned zoom, whatever the agreement threshold: replay drops the ones a point would skip
        policy = backend.policy_for(model, image, confirmable_only=False)
        env = backend.make_env(backend.zoom_budget(image.shape[1], image.shape[0]))  # as assess() sizes it
        run_episode(env, policy, image, path=row.path)
        out.append(
            Episode(
                kind=str(row.extra.get("kind", "dof" if row.dof else "degraded")),
                mos=row.mos,
                truth=[d.bbox for d in row.defects],
                crops=model.crops,
                scan=policy.scan,
                prob=policy.prob,
                s_global=policy.s_global,
                view_scale=policy.view_scale,
                image_size=policy.image_size,
                base_zooms=policy.base_zooms,
                extra_zoom_prob=policy.extra_zoom_prob,
                extra_need_defect=policy.extra_need_defect,
                trim_margin=policy.trim_margin,
            )
        )
        if log is not None and (k + 1) % 10 == 0:
            log(f"  recorded {k + 1}/{len(rows)} episodes")
    return out


def replay_episode(
    model: Any, ep: Episode, confirmable_only: bool = True
) -> tuple[Any, list[tuple[np.ndarray, Box]]]:
    """``model``'s answer to one recorded episode at its current operating point, and the crops it made.

    With ``confirmable_only`` (the backend's default) a recorded crop in which no
    scan block passes the agreement threshold is left out, as the live policy
    would not have made that zoom, and so is an extra zoom (past the
    episode's ``base_zooms``) where the scan is not sure or, when the live
    policy's extra zooms waited for a found defect, before any crop found one
    (:meth:`~qprobe.backends.classic.policy.ClassicPolicy.would_make`, asked
    before each crop's detections are added, as the live episode did).
    """
    pol = ClassicPolicy.from_record(
        model,
        ep.scan,
        ep.prob,
        ep.s_global,
        ep.view_scale,
        ep.image_size,
        getattr(ep, "base_zooms", None),  # recordings made before stop 31 have neither
        getattr(ep, "extra_zoom_prob", None),
        getattr(ep, "extra_need_defect", None),  # recordings before stop 34: the policy's default
        getattr(ep, "trim_margin", None),
    )
    made = []
    for k, (maps, box) in enumerate(ep.crops):
        if confirmable_only and not pol.would_make(k, box):
            continue
        made.append((maps, box))
        pol.add_crop(model.detections_from_maps(maps, box, confirm=pol.agrees), box)
    return pol.answer(), made


def replay(
    model: Any, episodes: Sequence[Episode], iou: float = 0.3, confirmable_only: bool = True
) -> dict[str, float]:
    """Recall, false boxes per clean / DoF image and SRCC of ``model``'s current operating point.

    With ``confirmable_only`` (the backend's default), a recorded crop in which
    no scan block passes this point's agreement threshold is left out, as the
    live policy would not have made that zoom (the plan does not depend on the
    operating point, so the live crops are a subset of the recorded ones).
    """
    from qprobe.eval.metrics import srcc

    hits = n_truth = 0
    fp: dict[str, list[int]] = {"clean": [], "dof": []}  # false boxes per negative image
    scores, mos = [], []
    for ep in episodes:
        ans, _ = replay_episode(model, ep, confirmable_only)
        for t in ep.truth:
            n_truth += 1
            hits += any(d.bbox.iou(t) >= iou for d in ans.defects)
        if ep.kind in fp:
            fp[ep.kind].append(len(ans.defects))
        if ep.mos is not None:
            scores.append(ans.score)
            mos.append(ep.mos)
    negatives = fp["clean"] + fp["dof"]
    return {
        "recall": hits / n_truth if n_truth else 0.0,
        "fp_clean": float(np.mean(fp["clean"])) if fp["clean"] else 0.0,
        "fp_dof": float(np.mean(fp["dof"])) if fp["dof"] else 0.0,
        "fp_bound": fp_upper_bound(int(sum(negatives)), len(negatives)),
        "negatives": len(negatives),
        "srcc": _finite_or_none(srcc(np.asarray(scores), np.asarray(mos))) if len(scores) > 2 else None,
        "defects": n_truth,
    }


def fp_upper_bound(false_boxes: int, images: int, level: float = 0.95) -> float:
    """One-sided ``level`` upper bound of a Poisson rate of false boxes per image (exact, chi-square)."""
    from scipy.stats import chi2

    if images <= 0:
        return float("inf")
    return float(chi2.ppf(level, 2 * (false_boxes + 1)) / 2.0 / images)


def _finite_or_none(x: float) -> float | None:
    """A JSON-safe metric: ``None`` where it is undefined (e.g. SRCC of constant scores)."""
    return float(x) if np.isfinite(x) else None


def choose(results: Sequence[dict[str, Any]], max_fp: float, bound: bool = True) -> dict[str, Any] | None:
    """The rule of the module docstring over ``results``; ``None`` when no point qualifies.

    ``bound=False`` judges the observed rates only (what the bound guards against).
    """
    ok = [
        r
        for r in results
        if r["fp_clean"] <= max_fp and r["fp_dof"] <= max_fp and (not bound or r["fp_bound"] <= max_fp)
    ]
    if not ok:
        return None

    def key(r: dict[str, Any]) -> tuple[float, ...]:
        srcc = r["srcc"] if r["srcc"] is not None else -1.0
        return (
            round(r["recall"], 6), round(srcc, 6), r["threshold"], r["agree_threshold"], r["min_cells"], r.get("grow", 1.0)
        )

    return max(ok, key=key)


def calibrate(model: Any, episodes: Sequence[Episode], config: CalibrationConfig) -> dict[str, Any]:
    """Sweep the grid on recorded episodes; set and return the chosen operating point.

    ``model``'s ``detector`` and ``agree_threshold`` end at the chosen
    point (unchanged when none qualifies: ``chosen`` is then ``None``),
    chosen without box growth; the growth is then chosen at that point by
    the same rule (``grow``: the sweep and the chosen value, the model's own
    when none qualifies).
    Returns it with its metrics, the metrics of the point the model had
    before, the most permissive point the observed rates alone would allow
    (``unbounded``: what the bound guards against), and the whole sweep.
    """
    before_det, before_agree = model.detector, model.agree_threshold
    before = {**replay(model, episodes, config.iou), "threshold": before_det.threshold,
              "min_cells": before_det.min_cells, "agree_threshold": before_agree, "grow": before_det.grow}
    agree = sorted({*config.agree, round(float(model.scan_threshold), 4)})
    results = []
    for thr, cells, ag in itertools.product(config.thresholds, config.min_cells, agree):
        # the point is chosen without box growth (so re-calibrating calibrated weights changes nothing)
        model.detector = replace(before_det, threshold=thr, min_cells=cells, grow=1.0)
        model.agree_threshold = ag
        results.append({"threshold": thr, "min_cells": cells, "agree_threshold": ag, **replay(model, episodes, config.iou)})
    best = choose(results, config.max_fp)
    unbounded = choose(results, config.max_fp, bound=False)
    if best is None:
        model.detector, model.agree_threshold = before_det, before_agree
    else:
        model.detector = replace(before_det, threshold=best["threshold"], min_cells=best["min_cells"])
        model.agree_threshold = best["agree_threshold"]
    point = model.detector
    grows = []
    for g in sorted({*config.grow, point.grow}, reverse=True):
        model.detector = replace(point, grow=g)
        grows.append({"threshold": point.threshold, "min_cells": point.min_cells,
                      "agree_threshold": model.agree_threshold, "grow": g, **replay(model, episodes, config.iou)})
    best_grow = choose(grows, config.max_fp)
    model.detector = replace(point, grow=best_grow["grow"] if best_grow is not None else point.grow)
    return {
        "chosen": best,
        "before": before,
        "unbounded": unbounded,
        "points": len(results),
        "grow": {"chosen": model.detector.grow, "sweep": grows},
        "sweep": results,
    }


__all__ = ["CalibrationConfig", "Episode", "calibrate", "choose", "fp_upper_bound", "record", "replay", "replay_episode"]
