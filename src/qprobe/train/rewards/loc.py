"""Localization reward R_loc for Stage 3: IoU matching of defect boxes.

Predicted boxes are matched one-to-one to ground-truth boxes so as to
maximise the total IoU (Hungarian assignment), and::

    R_loc = sum of matched IoUs / max(#ground truth, #predicted)

With no more predictions than ground-truth boxes this is DESIGN's "mean over
ground-truth boxes of the best IoU with a predicted box" (each predicted box
used once); extra predictions lower the reward, so spraying boxes does not
pay. A clean image (no ground-truth box) answered with no defect gets 1, any
predicted box on it gets 0; a completion without a valid answer gets 0.

Predicted boxes are in the model's frame (pixels of the processor-resized
global view for Qwen2.5-VL, 0–1000 for Qwen2-VL/Qwen3-VL: the row's
``box_convention``) and are converted to original pixels with
:func:`qprobe.backends.vlm.coords.from_model` — the same conversion the
backends use at inference. A predicted box that is empty or outside the image
counts as a prediction that matches nothing. Ground truth is in original
pixels (the manifest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qprobe.agent.parsing import ParsedReply
from qprobe.backends.vlm.coords import Frame, from_model
from qprobe.train.rewards import REWARDS
from qprobe.train.rewards._completion import final_answer
from qprobe.types import Box


def match_iou(pred: Sequence[Box], gt: Sequence[Box]) -> float:
    """R_loc of predicted boxes against ground truth (both in the same pixels).

    >>> match_iou([], [])
    1.0
    >>> match_iou([Box(0, 0, 10, 10)], [])
    0.0
    >>> match_iou([Box(0, 0, 10, 10)], [Box(0, 0, 10, 10), Box(50, 50, 60, 60)])
    0.5
    """
    if not gt:
        return 1.0 if not pred else 0.0
    if not pred:
        return 0.0
    from scipy.optimize import linear_sum_assignment

    iou = np.array([[p.iou(g) for g in gt] for p in pred], dtype=np.float64)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return float(iou[rows, cols].sum()) / max(len(gt), len(pred))


def _frame(k: int, width: Any, height: Any, view_width: Any, view_height: Any, box_convention: Any) -> Frame | None:
    if width is None or height is None:
        return None
    w, h = int(width[k]), int(height[k])
    vw = int(view_width[k]) if view_width is not None else w
    vh = int(view_height[k]) if view_height is not None else h
    convention = str(box_convention[k]) if box_convention is not None else "absolute"
    return Frame(convention, (w, h), (vw, vh))


def predicted_boxes(answer: ParsedReply, frame: Frame | None) -> list[Box]:
    """The answer's defect boxes in original pixels (an unusable box becomes an empty one)."""
    out = []
    for d in answer.defects:
        try:
            out.append(Box.from_list(d.bbox) if frame is None else from_model(d.bbox, frame))
        except ValueError:
            out.append(Box(0.0, 0.0, 0.0, 0.0))
    return out


@REWARDS.register(
    "loc",
    stage=3,
    options=(),
    help="R_loc: Hungarian IoU matching of predicted vs ground-truth defect boxes; empty on clean = 1.",
)
def loc_reward(
    completions: Sequence[Any],
    *,
    gt_boxes: Sequence[Sequence[Sequence[float]] | None],
    width: Sequence[int] | None = None,
    height: Sequence[int] | None = None,
    view_width: Sequence[int] | None = None,
    view_height: Sequence[int] | None = None,
    box_convention: Sequence[str] | None = None,
    **_: Any,
) -> list[float | None]:
    """TRL reward; ``gt_boxes=None`` for a row means "not labelled for localization" (``None``).

    >>> ans = '<answer>{"score": 2.0, "defects": [{"bbox_2d": [0, 0, 50, 50], "type": "noise"}]}</answer>'
    >>> loc_reward([ans, '<answer>{"score": 4.0, "defects": []}</answer>', ans],
    ...            gt_boxes=[[[0, 0, 100, 100]], [], None],
    ...            width=[200] * 3, height=[200] * 3, view_width=[100] * 3, view_height=[100] * 3)
    [1.0, 1.0, None]
    """
    out: list[float | None] = []
    for k, completion in enumerate(completions):
        gt_raw = gt_boxes[k]
        if gt_raw is None:
            out.append(None)
            continue
        answer = final_answer(completion)
        if answer is None:
            out.append(0.0)
            continue
        frame = _frame(k, width, height, view_width, view_height, box_convention)
        pred = predicted_boxes(answer, frame)
        gt = [Box.from_list(b) for b in gt_raw]
        out.append(match_iou(pred, gt))
    return out
