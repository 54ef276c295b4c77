"""The classic (non-LLM) probing policy.

Per episode:

1. **Global view** — the quality regressor scores the downscaled whole image.
2. **Zoom proposals** — the native-resolution anomaly scan
   (:mod:`~qprobe.backends.classic.scan`) gives P(defect) per 32-px block;
   a planner (:mod:`~qprobe.backends.classic.proposals`; by default greedy
   coverage of the scan's evidence by ``zoom_side`` windows) turns it into
   zooms, up to the budget. When the evidence runs out, the remaining zooms
   go to the most texture-rich blocks (where local damage would show).
   Where the scan fires on more than ``max_scan_share`` of the image (a
   photo's own grain or compression everywhere), its logits are lowered
   until only that share stands out
   (:func:`~qprobe.backends.classic.scan.image_relative`): the zooms and
   the agreement then go to what differs from the rest of the photo.
   With ``confirmable_only`` (the default) a planned zoom is made only where
   its crop holds a scan block above the agreement threshold (step 4):
   anywhere else nothing the head finds could be kept, so the zoom cannot
   change the answer and the policy answers instead of spending it.
   The last ``extra_zooms`` of the budget are spent only where the scan is
   sure (a block at ``extra_zoom_prob`` or more in the crop) and, with
   ``extra_need_defect`` (the default), only once an earlier zoom has found
   a defect: a damaged photo with more confident evidence than the base
   budget covers gets looked at further; a photo whose base zooms found
   nothing, or without such evidence, costs no more.
3. **Each crop** (full resolution, context-enlarged by the environment) —
   the dense defect head finds defects in it (a crop longer than the
   network's input side goes through it as native-resolution tiles,
   :mod:`~qprobe.backends.classic.tiling`); each is judged against the
   scan (step 4) before its box grows over the region the head believes
   damaged (``DetectorSettings.grow``). The plan depends on the scan alone,
   so once it is made the head starts on every crop it will open, side by
   side on the model's crop workers
   (:meth:`~qprobe.backends.classic.runtime.ClassicModel.defect_maps_async`),
   while the episode walks through the zooms one at a time.
4. **Agreement and extent** — a defect the head finds is kept only where
   the scan, at the agreement threshold (the scan's own threshold unless
   :mod:`qprobe.train_classic.calibrate` set another), also flags a
   block inside the defect's box: two independent views (hand-made statistics against the
   surroundings, learned features in the crop) must agree, which removes
   most false alarms on high-contrast content. The kept defect's box then
   grows to the scan blobs it touches (the scan sees the whole region at
   native resolution, a crop may see only part of it), at most
   ``MAX_GROWTH`` times its area. A blur, motion blur, smear or haze defect
   is dropped where its surroundings hold no fine detail at all
   (:mod:`~qprobe.backends.classic.surround`): nothing there tells a
   region whose detail was lost from smooth, grain-free content.
5. **Answer** — the global score discounted by the perceptual damage of the
   found defects (:mod:`~qprobe.backends.classic.fusion`), merged defects
   and short reasons. Same-type boxes next to each other are then reported
   as one, their union (:func:`~qprobe.backends.classic.detector.join_fragments`):
   damage the head saw piece by piece is one region, one box. Each reported
   box keeps the head's own side wherever a made crop saw ``trim_margin``
   pixels past it (``_reported``): the scan's coarse blobs extend a box only
   into what no crop showed. Joining and trimming change no score.
"""

from __future__ import annotations

import functools
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from qprobe.agent.actions import Action, Answer, Zoom
from qprobe.agent.cropping import CropConfig, CropError, context_box, crop
from qprobe.agent.env import Observation, Turn
from qprobe.backends.classic.detector import DetectorSettings, join_fragments, merge_defects
from qprobe.backends.classic.fusion import fuse, keep_factor
from qprobe.backends.classic.proposals import Proposal, box_cells, plan_zooms
from qprobe.backends.classic.scan import ScanMap, block_features, relative_probability_map
from qprobe.backends.classic.surround import MIN_SURROUND_DETAIL, has_reference
from qprobe.types import Box, Defect


PLAN_SIZE = 8
"""Proposals planned per image; the environment's zoom budget decides how many are used."""

MAX_GROWTH = 6.0
"""A confirmed defect's box grows to the scan blobs it touches only up to this factor of its area."""

MAX_SCAN_SHARE = 0.1
"""Most of an image the scan may flag (a local defect stands out; see ``scan.image_relative``)."""

EXTRA_ZOOM_PROB = 0.95
"""Scan probability a block of an extra zoom's crop must reach (docs/classic-experiments.md, stop 31)."""

JOIN_GAP = 1.0
"""Same-type answer boxes this many box sides apart or closer are reported as one (``join_fragments``, stop 32)."""

JOIN_FILL = 0.3
"""Least share of their union a group of joined boxes must cover (else its boxes are reported as found)."""

TRIM_MARGIN = 32.0
"""A reported box keeps the head's own side where a made crop saw this many pixels past it (``_reported``)."""


class ClassicPolicy:
    """Scan-guided zooms, CNN scoring and detection, fused answer."""

    def __init__(
        self,
        model: Any,
        image: np.ndarray | None,
        max_zooms: int,
        planner: str = "windows",
        context_factor: float = 1.5,
        confirmable_only: bool = True,
        min_surround_detail: float = MIN_SURROUND_DETAIL,
        max_scan_share: float | None = MAX_SCAN_SHARE,
        extra_zooms: int = 0,
        extra_zoom_prob: float = EXTRA_ZOOM_PROB,
        extra_need_defect: bool = True,
        join_gap: float = JOIN_GAP,
        join_fill: float = JOIN_FILL,
        trim_margin: float | None = None,
    ) -> None:
        self.model = model  # a ClassicModel (torch-backed)
        self.planner = planner
        self.context_factor = context_factor
        self.confirmable_only = confirmable_only
        self.min_surround_detail = min_surround_detail
        self.max_scan_share = max_scan_share
        self.scan_share = 0.0  # share of the image's blocks the scan flagged before image_relative
        self.scan_shift = 0.0  # how far image_relative lowered the scan's logits (0: not at all)
        self.skipped = 0  # planned zooms not made: their crop could not confirm a defect
        self.plan: list[Proposal] = []
        self.scan: ScanMap | None = None
        self.prob: np.ndarray | None = None
        self._blobs: np.ndarray | None = None
        self.s_global: float | None = None
        self.crops = 0
        self.view_scale = 1.0
        self.defects: list[Defect] = []
        self.image_size = (0, 0)
        self.max_zooms = max_zooms  # the whole budget, extra zooms included
        self.extra_zooms = min(max(0, extra_zooms), max_zooms)
        self.base_zooms = max_zooms - self.extra_zooms  # made on the agreement rule alone; the rest are extra
        self.extra_zoom_prob = extra_zoom_prob
        self.extra_need_defect = extra_need_defect  # extra zooms only once a zoom has found a defect
        self.join_gap, self.join_fill = join_gap, join_fill  # reported same-type boxes join (join_fragments)
        # a reported box keeps the head's side where a crop saw past it (<= 0: the grown box as scored)
        self.trim_margin = TRIM_MARGIN if trim_margin is None else float(trim_margin)
        self.crop_boxes: list[Box] = []  # the crops made so far (original pixels), forced probes included
        self.extra_made = 0  # extra zooms made (the scan was sure in their crops)
        self._planned_zooms = 0  # plan entries taken so far (made or skipped)
        self._budgeted = False  # the plan was cut to the zooms the first decision could make
        self._seen = 0
        self._planning: Future[None] | None = None
        self._image = image
        self._maps: dict[tuple[Any, ...], Future[np.ndarray]] = {}  # crops whose head maps are on the way
        self._prefetched = False
        self._extras_prefetched = False  # the extra zooms' crops were started (they wait for a found defect)
        if image is not None:
            h, w = image.shape[:2]
            self.image_size = (w, h)
            # the scan runs while the environment makes the global view and the regressor scores it
            # (numpy, OpenCV and ONNX Runtime all release the GIL); the first zoom waits for the plan
            pool = ThreadPoolExecutor(1, thread_name_prefix="qprobe-scan")
            self._planning = pool.submit(self._plan_zooms, image)
            pool.shutdown(wait=False)

    def _planned(self) -> None:
        """Wait for the scan and the zoom plan (re-raising the scan's error, if any)."""
        if self._planning is not None:
            planning, self._planning = self._planning, None
            planning.result()

    def _plan_zooms(self, image: np.ndarray) -> None:
        m = self.model
        scan = block_features(image, cell=m.scan_cell)
        if m.scan_weights is None:  # no trained scan model: texture-guided zooms only
            prob = np.zeros(scan.shape, dtype=np.float32)
        else:
            # a photo whose scan fires nearly everywhere (its own grain, compression, texture): only the
            # blocks that stand out from the rest of it count as evidence, for the zooms and the agreement
            prob, self.scan_share, self.scan_shift = relative_probability_map(
                scan, m.scan_weights, m.scan_hidden, m.scan_threshold, m.scan_radius, self.max_scan_share
            )
        if m.scan_weights is not None:
            self.scan, self.prob = scan, prob
        n = max(self.max_zooms, PLAN_SIZE)
        self.plan = plan_zooms(
            self.planner, scan, prob, n, m.scan_threshold, m.zoom_side, m.max_zoom_side, self.context_factor
        )

    def sure_of(self, crop_box: Box) -> bool:
        """Whether ``crop_box`` holds a scan block at ``extra_zoom_prob`` or more (always without a scan)."""
        if self.scan is None or self.prob is None:
            return True
        sub = self.prob[self._cells(crop_box)]
        return bool(sub.size) and float(sub.max()) >= self.extra_zoom_prob

    def would_make(self, index: int, crop_box: Box) -> bool:
        """Whether the plan's ``index``-th zoom, opening ``crop_box``, is made (``confirmable_only`` rules).

        The live policy and a replay of a recorded episode both decide by it,
        after the detections of every earlier zoom were added (an extra zoom
        may wait for a found defect, :meth:`extras_open`).
        """
        if not self.can_confirm(crop_box):
            return False
        return index < self.base_zooms or (self.extras_open() and self.sure_of(crop_box))

    def extras_open(self) -> bool:
        """Whether extra zooms may be made now: always, or (``extra_need_defect``) once a zoom found a defect.

        The defects counted are those a crop found and the scan agreed with,
        before the answer's surround check: a photo where the base zooms
        found nothing gets no extra look (on a clean photo an extra zoom can
        only add a false box).
        """
        return not self.extra_need_defect or bool(self.defects)

    def can_confirm(self, crop_box: Box) -> bool:
        """Whether a defect found in ``crop_box`` (original pixels) could pass the scan agreement.

        A kept defect needs a scan block above the agreement threshold inside
        its box, and the head's boxes lie inside the crop: a crop without
        such a block can add nothing to the answer (its detections could only
        widen an agreed box of another crop that they overlap).
        """
        return self.agrees(crop_box)

    def _next_zoom(self, zooms_left: int) -> Zoom | None:
        """The next planned zoom worth making (see ``confirmable_only``), or ``None``.

        The rule only leaves zooms out, it never adds one: the plan is first cut
        to the zooms the policy would make without it, so a skipped zoom's
        budget is not spent further down the plan (and a recording of every
        planned zoom replays any agreement threshold exactly).
        """
        if zooms_left <= 0:
            return None
        if not self._budgeted:
            self.plan, self._budgeted = self.plan[:zooms_left], True
        if not self._prefetched:
            self._prefetched = True
            self._extras_prefetched = self.extras_open()  # else the extra crops wait for a found defect
            self._prefetch()
        elif not self._extras_prefetched and self.extras_open():  # a defect was just found: start the extra crops
            self._extras_prefetched = True
            self._prefetch()
        while self.plan:
            box = self.plan.pop(0).box
            index, self._planned_zooms = self._planned_zooms, self._planned_zooms + 1
            if self._worth_making(box, index):
                self.extra_made += int(index >= self.base_zooms)
                return Zoom(box)
            self.skipped += 1
        return None

    def _crop_box(self, box: Box) -> Box:
        """The crop the environment opens for a zoom on ``box`` (raises ``CropError`` as it does)."""
        return context_box(box, self.image_size, CropConfig(context_factor=self.context_factor), self.view_scale)

    def _worth_making(self, box: Box, index: int) -> bool:
        """Whether the plan's ``index``-th zoom is made (see ``confirmable_only``)."""
        if not self.confirmable_only:
            return True
        try:
            eff = self._crop_box(box)
        except CropError:  # let the environment report it
            return True
        return self.would_make(index, eff)

    def _prefetch(self) -> None:
        """Start the defect head on every crop the rest of the plan will open, on the model's crop workers.

        The plan is fixed once the scan is done (a zoom is chosen by the scan,
        never by what an earlier crop showed), so the crops can run side by
        side while the episode walks through them one at a time. A crop is
        matched to its zoom by identity (the same pixels of the same array, see
        ``_key``); any other crop is computed when it arrives. Extra zooms that
        wait for a found defect (:meth:`extras_open`) are not started yet: a
        second call, as soon as a zoom has found one, starts them behind the
        base crops still on their way (a crop already started is not started
        again).
        """
        start = getattr(self.model, "defect_maps_async", None)
        if start is None or self._image is None:
            return
        for k, prop in enumerate(self.plan, start=self._planned_zooms):
            if not self._worth_making(prop.box, k):
                continue
            try:
                pixels = crop(self._image, self._crop_box(prop.box))
            except CropError:
                continue
            if _key(pixels) in self._maps:  # already on its way
                continue
            fut = start(pixels)
            if fut is None:  # this model has no crop workers
                return
            self._maps[_key(pixels)] = fut

    def _take_maps(self, pixels: np.ndarray) -> np.ndarray | None:
        fut = self._maps.pop(_key(pixels), None)
        return None if fut is None else fut.result()

    def _drop_prefetched(self) -> None:
        for fut in self._maps.values():
            fut.cancel()
        self._maps.clear()

    @classmethod
    def from_record(
        cls,
        model: Any,
        scan: ScanMap | None,
        prob: np.ndarray | None,
        s_global: float | None,
        view_scale: float,
        image_size: tuple[int, int],
        base_zooms: int | None = None,
        extra_zoom_prob: float | None = None,
        extra_need_defect: bool | None = None,
        trim_margin: float | None = None,
    ) -> "ClassicPolicy":
        """A policy holding a recorded episode's scan and global score, to replay its answer.

        Add the crops' detections with :meth:`add_crop` and call
        :meth:`answer`: with the same model settings this gives the live
        episode's answer (the detector's calibration replays every
        operating point this way without running the network again).
        ``base_zooms``, ``extra_zoom_prob`` and ``extra_need_defect``: the
        live policy's (:meth:`would_make`, asked before each crop's
        detections are added, then tells which recorded zooms it made);
        ``base_zooms`` ``None``: every zoom is a base zoom;
        ``extra_need_defect`` ``None``: the default. ``trim_margin``: the
        live policy's (``None``: the default); pass each crop's box to
        :meth:`add_crop` for the reported boxes to be trimmed as live.
        """
        pol = cls(model, None, 0)
        pol.scan, pol.prob, pol.s_global = scan, prob, s_global
        pol.view_scale, pol.image_size = view_scale, image_size
        pol.base_zooms = sys.maxsize if base_zooms is None else base_zooms
        if extra_zoom_prob is not None:
            pol.extra_zoom_prob = extra_zoom_prob
        if extra_need_defect is not None:
            pol.extra_need_defect = extra_need_defect
        if trim_margin is not None:
            pol.trim_margin = float(trim_margin)
        return pol

    def add_crop(self, defects: Sequence[Defect], box: Box | None = None) -> None:
        """The detections of one crop made (``box``: the crop, original pixels; ``None``: not known)."""
        self.crops += 1
        self.defects.extend(defects)
        if box is not None:
            self.crop_boxes.append(box)

    def answer(self) -> Answer:
        return self._answer()

    def _agree_threshold(self) -> float:
        return float(getattr(self.model, "agree_threshold", self.model.scan_threshold))

    def agrees(self, box: Box) -> bool:
        """Whether a block of the scan inside ``box`` (original pixels) is above the agreement threshold.

        Always true without a scan model. The head's detections are judged by
        it before their boxes grow (``DetectorSettings.grow``) and again after
        merging.
        """
        if self.scan is None or self.prob is None:
            return True
        sub = self.prob[self._cells(box)]
        return bool(sub.size) and float(sub.max()) > self._agree_threshold()

    def _cells(self, box: Box) -> tuple[slice, slice]:
        """The scan blocks a box (original pixels) covers; at least one block."""
        assert self.scan is not None and self.prob is not None
        return box_cells(box, self.scan.cell, self.prob.shape)

    def _extent(self, d: Defect) -> Defect:
        """``d`` with its box grown to the above-threshold scan blobs inside or touching it."""
        if self.scan is None or self.prob is None:
            return d
        if self._blobs is None:
            self._blobs = ndimage.label(self.prob > self._agree_threshold(), structure=np.ones((3, 3), dtype=bool))[0]
        c = self.scan.cell
        box = d.bbox
        ids = np.unique(self._blobs[self._cells(box)])
        ids = ids[ids > 0]
        if not ids.size:
            return d
        ys, xs = np.nonzero(np.isin(self._blobs, ids))
        w, h = self.image_size
        grown = Box(
            float(min(box.x1, xs.min() * c)),
            float(min(box.y1, ys.min() * c)),
            float(min(w, max(box.x2, (xs.max() + 1) * c))),
            float(min(h, max(box.y2, (ys.max() + 1) * c))),
        )
        if grown.area > MAX_GROWTH * max(box.area, 1.0):
            return d
        return Defect(grown, d.type, d.severity, d.confidence)

    def _reported(self, d: Defect, agreed: Sequence[Defect], grown: Sequence[Defect]) -> Defect:
        """``d`` (merged from boxes grown over the scan's blobs) as the answer reports it.

        The scan's blobs (32-px blocks, smoothed by their neighbourhood
        features) extend a box into what its crop did not show, and overshoot
        small regions. On each side where a made crop saw at least
        ``trim_margin`` pixels past the head's own boxes inside ``d`` (along
        their whole extent) and the head kept no damage there, the head's
        finer judgement stands: that side of the report is the head's. The
        other sides keep the grown extent. Which defects exist, and the
        score, do not change.
        """
        if self.trim_margin <= 0 or not self.crop_boxes:
            return d
        b = d.bbox
        inside = [a.bbox for a, g in zip(agreed, grown) if b.intersection(g.bbox) >= 0.999 * g.bbox.area]
        if not inside:
            return d
        h = functools.reduce(Box.hull, inside)  # the head's own boxes inside d, as join_fragments unions boxes
        m = self.trim_margin

        def saw_past(c: Box) -> tuple[bool, bool, bool, bool]:
            """Whether crop ``c`` covers a strip ``m`` px wide beyond each side of ``h`` (left, top, right, bottom)."""
            spans_y, spans_x = c.y1 <= h.y1 and c.y2 >= h.y2, c.x1 <= h.x1 and c.x2 >= h.x2
            return (
                spans_y and c.x1 <= h.x1 - m and c.x2 >= h.x1,
                spans_x and c.y1 <= h.y1 - m and c.y2 >= h.y1,
                spans_y and c.x2 >= h.x2 + m and c.x1 <= h.x2,
                spans_x and c.y2 >= h.y2 + m and c.y1 <= h.y2,
            )

        left, top, right, bottom = (any(side) for side in zip(*(saw_past(c) for c in self.crop_boxes)))
        box = Box(
            max(b.x1, h.x1) if left else b.x1,
            max(b.y1, h.y1) if top else b.y1,
            min(b.x2, h.x2) if right else b.x2,
            min(b.y2, h.y2) if bottom else b.y2,
        )
        if box.x2 <= box.x1 or box.y2 <= box.y1:
            return d
        return Defect(box, d.type, d.severity, d.confidence)

    def _observe(self, obs: Observation) -> None:
        if obs.kind == "global" and obs.image is not None:
            h, w = obs.image.shape[:2]
            if self.image_size == (0, 0):
                self.image_size = (int(round(w / obs.scale)), int(round(h / obs.scale)))
            self.s_global = self.model.score(obs.image)
            self.view_scale = float(min(1.0, obs.scale))
        elif obs.kind == "crop" and obs.image is not None and obs.box is not None:
            self._planned()  # a crop's detections are judged against the scan (the global view is not)
            maps = self._take_maps(obs.image)
            if maps is None:
                self.add_crop(self.model.detect(obs.image, obs.box, confirm=self.agrees), obs.box)
            else:
                self.add_crop(self.model.detect(obs.image, obs.box, confirm=self.agrees, maps=maps), obs.box)

    def act(self, history: Sequence[Turn]) -> Action:
        # forced probes may have run before the first call: look at every new view
        for turn in history[self._seen :]:
            self._observe(turn.observation)
        self._seen = len(history)
        self._planned()
        obs = history[-1].observation
        zoom = self._next_zoom(obs.zooms_left)
        return zoom if zoom is not None else self._answer()

    def _answer(self) -> Answer:
        self._planned()
        self._drop_prefetched()
        s_global = float(self.s_global if self.s_global is not None else 3.0)
        merge_iou = self.model.detector.merge_iou
        agreed = [d for d in merge_defects(self.defects, merge_iou) if self.agrees(d.bbox)]
        grown = [self._extent(d) for d in agreed]
        defects = merge_defects(grown, merge_iou)
        referenced = [d for d in defects if has_reference(self.scan, d.type, d.bbox, self.min_surround_detail)]
        unreferenced, defects = len(defects) - len(referenced), referenced
        keep = keep_factor(defects, self.image_size)
        unseen = 1.0 - self.view_scale**2  # share of the original's pixels the global view did not see
        score = fuse(s_global, keep, self.model.fusion, unseen)
        # the damage is fused from the boxes as grown; the answer reports one box per region of one type, each
        # trimmed to the head's own side where a crop saw past it
        found, joined = len(defects), join_fragments(defects, self.join_gap, self.join_fill)
        defects = [self._reported(d, agreed, grown) for d in joined]
        trimmed = sum(r.bbox != d.bbox for r, d in zip(defects, joined))
        reasons = [f"global quality {s_global:.2f}"]
        if self.crops:
            reasons.append(f"{self.crops} zoom(s) at full resolution")
        for d in sorted(defects, key=lambda d: -d.confidence)[:3]:
            reasons.append(f"{d.type} (severity {d.severity}) at {d.bbox.to_list(0)}")
        if not defects:
            reasons.append("no local defect found")
        extra = {
            "classic": {
                "s_global": round(s_global, 4),
                "crops": self.crops,
                "extra_zooms": self.extra_made,  # zooms past the base budget (the scan was sure there)
                "skipped_zooms": self.skipped,
                "joined_boxes": found - len(defects),  # same-type boxes reported as one with a neighbour
                "trimmed_boxes": trimmed,  # reported boxes trimmed to the head's side where a crop saw past it
                "no_surround_detail": unreferenced,  # blur-type defects dropped: no detail around them
                "scan_share": round(self.scan_share, 4),  # share of blocks the scan flagged, before the shift
                "scan_shift": round(self.scan_shift, 4),  # logits lowered by this: the scan fired too widely
                "keep": round(keep, 4),
                "unseen": round(unseen, 4),
            }
        }
        return Answer(score, tuple(defects), tuple(reasons), extra=extra)


def _key(pixels: np.ndarray) -> tuple[Any, ...]:
    """Which memory a crop is: a view of the same array at the same place has the same key.

    The policy holds its image, so no other array can take its memory while a
    key is in use.
    """
    return (pixels.__array_interface__["data"][0], pixels.shape, pixels.strides, pixels.dtype.str)


__all__ = ["ClassicPolicy", "DetectorSettings", "Proposal"]
