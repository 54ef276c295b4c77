"""From the dense defect head's output to defect boxes (numpy only).

The head gives, per 16-px cell of a crop, class probabilities (index 0 =
clean) and a severity estimate. Cells whose defect probability exceeds the
threshold are grouped into 8-connected components; each component of at
least ``min_cells`` cells becomes a :class:`~qprobe.types.Defect` whose box
is the component's extent mapped back to original pixels, whose type is the
most probable defect class over the component and whose confidence is the
component's peak defect probability. A ``banding`` component is kept only
where the crop's native pixels show coarse quantization
(:mod:`~qprobe.backends.classic.quantization`). Detections from overlapping
crops are merged by :func:`merge_defects`.

The threshold that keeps false alarms out (0.99 on the shipped weights) also
keeps most of a damaged region out: the head is certain in the region's core
and only fairly sure up to its border, so a haze or blur region of 300 px
comes out as a 100-px box (IoU < 0.3 with the truth). With ``grow`` < 1, a
kept component's *box* extends over the cells connected to it whose defect
probability exceeds ``grow`` and whose most probable defect type is the
component's own (so it does not run into a neighbouring region of another
kind). Growth changes extents only, never which defects exist: a component is
judged (size, banding, and the caller's ``confirm``, e.g. the scan
agreement) before it grows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qprobe.backends.classic.quantization import confirms_banding
from qprobe.types import Box, Defect

Lattice = np.ndarray | Callable[[slice, slice], np.ndarray]
"""Lattice scores of a crop's cells: the whole grid, or a function of (rows, cols) computing them on demand."""


@dataclass(frozen=True)
class DetectorSettings:
    threshold: float = 0.5
    min_cells: int = 2
    merge_iou: float = 0.2
    grow: float = 1.0
    """A kept component's box extends over connected same-type cells above this probability (>= 1: no growth)."""


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def detect(
    probs: np.ndarray,
    severity: np.ndarray,
    classes: Sequence[str],
    crop_box: Box,
    settings: DetectorSettings = DetectorSettings(),
    lattice: Lattice | None = None,
    confirm: Callable[[Box], bool] | None = None,
) -> list[Defect]:
    """Defects in one crop.

    ``probs``: C x h x w class probabilities (C = len(classes), 0 = clean);
    ``severity``: h x w; ``crop_box``: where the h x w grid lies in the original;
    ``lattice``: the crop's quantization evidence (without it, banding is not checked);
    ``confirm``: a component whose box (before growth) it rejects is dropped.
    """
    c, h, w = probs.shape
    if c != len(classes):
        raise ValueError(f"{c} class maps for {len(classes)} classes")
    p_def = 1.0 - probs[0]
    mask = p_def > settings.threshold
    if not mask.any():
        return []
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    sx = crop_box.width / float(w)
    sy = crop_box.height / float(h)
    out = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        comp = labels[sl] == k
        if int(comp.sum()) < settings.min_cells:
            continue
        ys, xs = sl
        cls_scores = probs[1:, ys, xs][:, comp].mean(axis=1)
        kind = classes[1 + int(np.argmax(cls_scores))]
        if kind == "banding" and lattice is not None:
            scores = lattice[ys, xs] if isinstance(lattice, np.ndarray) else lattice(ys, xs)
            if not confirms_banding(scores[comp]):
                continue
        sev = float(np.clip(np.round(severity[ys, xs][comp].mean()), 1, 5))
        conf = float(p_def[ys, xs][comp].max())
        box = _cells_box(crop_box, sx, sy, ys, xs)
        if confirm is not None and not confirm(box):
            continue
        if settings.grow < 1.0:
            box = _cells_box(crop_box, sx, sy, *_grown(probs, p_def, labels == k, classes.index(kind), settings.grow))
        out.append(Defect(box, kind, severity=int(sev), confidence=conf))
    return out


def _cells_box(crop_box: Box, sx: float, sy: float, ys: slice, xs: slice) -> Box:
    """Where the grid cells ``ys`` x ``xs`` lie in the original."""
    return Box(crop_box.x1 + xs.start * sx, crop_box.y1 + ys.start * sy, crop_box.x1 + xs.stop * sx, crop_box.y1 + ys.stop * sy)


def _grown(probs: np.ndarray, p_def: np.ndarray, seed: np.ndarray, kind: int, grow: float) -> tuple[slice, slice]:
    """The cell extent of ``seed`` and the cells above ``grow`` of type ``kind`` connected to it."""
    same = (p_def > grow) & (np.argmax(probs[1:], axis=0) + 1 == kind)
    labels, _ = ndimage.label(same | seed, structure=np.ones((3, 3), dtype=bool))
    ids = np.unique(labels[seed])
    ys, xs = np.nonzero(np.isin(labels, ids[ids > 0]))
    return slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1)


def merge_defects(defects: Sequence[Defect], iou: float = 0.2) -> list[Defect]:
    """Merge detections that overlap (IoU > ``iou`` or one inside the other), keeping the most confident type."""
    pending = sorted(defects, key=lambda d: -d.confidence)
    merged: list[Defect] = []
    for d in pending:
        for i, m in enumerate(merged):
            inter = m.bbox.intersection(d.bbox)
            small = min(m.bbox.area, d.bbox.area)
            if m.bbox.iou(d.bbox) > iou or (small > 0 and inter / small > 0.6):
                merged[i] = Defect(m.bbox.hull(d.bbox), m.type, m.severity, m.confidence)
                break
        else:
            merged.append(d)
    return merged


def _gap(a: Box, b: Box) -> float:
    """Chebyshev distance between two boxes (0 where they touch or overlap)."""
    return max(0.0, max(a.x1, b.x1) - min(a.x2, b.x2), max(a.y1, b.y1) - min(a.y2, b.y2))


def join_fragments(defects: Sequence[Defect], gap: float = 1.0, fill: float = 0.3) -> list[Defect]:
    """One box per region of one defect type: same-type boxes close to each other become their union.

    Two boxes *as found* are neighbours when they have the same type and the
    gap between them is at most ``gap`` times the larger of their short
    sides; each group of boxes linked by neighbours is reported as its union,
    if the boxes cover at least ``fill`` of it (a sparse group, e.g. two
    boxes off each other's axis, stays as found). Neighbourhood is judged on
    the found boxes, never on a union, so a union cannot grow its own reach
    across the image. Damage the head sees piece by piece (grain on reeds,
    ringing along a row of edges, a blurred field cut by the crops) is then
    reported as the one region it is, not as a row of fragments. The union
    keeps its most confident box's type and confidence and the highest
    severity, and takes the place of its first box. ``gap`` < 0 leaves the
    boxes as they are.
    """
    out = list(defects)
    if gap < 0 or len(out) < 2:
        return out
    group = list(range(len(out)))

    def root(i: int) -> int:
        while group[i] != i:
            group[i] = group[group[i]]
            i = group[i]
        return i

    for i, a in enumerate(out):
        for j in range(i + 1, len(out)):
            b = out[j]
            side = max(min(a.bbox.width, a.bbox.height), min(b.bbox.width, b.bbox.height))
            if a.type == b.type and _gap(a.bbox, b.bbox) <= gap * side:
                group[root(j)] = root(i)
    members: dict[int, list[Defect]] = {}
    for i, d in enumerate(out):
        members.setdefault(root(i), []).append(d)
    joined: list[Defect] = []
    for ds in members.values():  # in the order of each group's first box
        union = functools.reduce(Box.hull, (d.bbox for d in ds))
        if len(ds) == 1 or sum(d.bbox.area for d in ds) < fill * union.area:
            joined.extend(ds)
            continue
        top = max(ds, key=lambda d: d.confidence)
        joined.append(Defect(union, top.type, max(d.severity for d in ds), top.confidence))
    return joined
