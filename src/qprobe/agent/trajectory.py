"""Replaying trajectories: re-derive every view from the image path and boxes.

A trajectory stores images by path and crops by their *effective* integer
box, plus a content fingerprint of every view shown to the policy. Replay
re-loads the original, re-applies the context-aware cropping to each
requested box (checking it yields the recorded box), cuts the crops and
checks their fingerprints, so a trajectory on disk is a faithful record of
what the policy saw — the SFT data builder and RL debugging rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qprobe.agent.cropping import context_box, crop
from qprobe.agent.env import EnvConfig, fingerprint, global_view
from qprobe.io import ImageSource, load_rgb
from qprobe.types import Box, Trajectory


@dataclass
class ReplayedView:
    """One view of a replayed episode."""

    kind: str  # "global" or "crop"
    box: Box | None
    pixels: np.ndarray
    matches: bool  # fingerprint equals the recorded one


@dataclass
class ReplayResult:
    views: list[ReplayedView] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def replay(trajectory: Trajectory, image: ImageSource | None = None, check_global: bool = True) -> ReplayResult:
    """Re-derive every view of ``trajectory`` and check it against the record.

    ``image`` defaults to ``trajectory.image`` (a path). ``check_global``
    also compares the global view, whose resampling depends on the Pillow
    version; crops are plain slices of the original and must always match.
    """
    src = image if image is not None else trajectory.image
    if src is None or src == "":
        raise ValueError("trajectory has no image path; pass the image explicitly")
    original = load_rgb(src)
    result = ReplayResult()
    h, w = original.shape[:2]
    if (w, h) != tuple(trajectory.image_size):
        result.problems.append(f"image is {w}x{h}, trajectory says {trajectory.image_size}")
        return result
    env_cfg = EnvConfig.from_dict(dict(trajectory.meta.get("env", {})))
    view_scale = float(trajectory.meta.get("view_scale", 1.0))
    for i, step in enumerate(trajectory.steps):
        if step.kind != "observe":
            continue
        recorded = step.data.get("fingerprint")
        if step.data.get("view") == "global":
            view, scale = global_view(original, env_cfg.view_long_side)
            same = recorded is None or fingerprint(view) == recorded
            if abs(scale - view_scale) > 1e-9:
                result.problems.append(f"step {i}: view scale {scale} != recorded {view_scale}")
            if check_global and not same:
                result.problems.append(f"step {i}: global view differs from the recorded one")
            result.views.append(ReplayedView("global", None, view, same))
            continue
        if step.box is None:
            result.problems.append(f"step {i}: crop observation without a box")
            continue
        requested = step.data.get("requested")
        if requested is not None:
            again = context_box(Box.from_list(requested), (w, h), env_cfg.crop, view_scale)
            if again != step.box:
                result.problems.append(
                    f"step {i}: cropping {requested} gives {again.to_list(None)}, recorded {step.box.to_list(None)}"
                )
        pixels = crop(original, step.box)
        same = recorded is None or fingerprint(pixels) == recorded
        if not same:
            result.problems.append(f"step {i}: crop {step.box.to_list(None)} differs from the recorded one")
        result.views.append(ReplayedView("crop", step.box, pixels, same))
    return result
