"""Proxy MOS labels (1–5, higher is better) and the pluggable annotator registry.

The default ``proxy`` annotator turns what the builder knows exactly — which
degradations, how severe, how large, where — into a MOS-like number:

.. math::

    d_i = w_f · c_s · (a_0 + (1 − a_0)·\\sqrt{\\min(A_i / A_{ref}, 1)}) · v_i

    \\text{MOS} = 1 + (\\text{clean\\_mos} − 1) · \\prod_i (1 − d_i)

with ``w_f`` the family weight (how objectionable a family is at equal
severity), ``c_s`` the severity curve (``severity_curve[s − 1]``), ``A_i``
the region's area fraction and ``A_ref`` the area at which the size effect
saturates, and ``v_i = 1 − centre_bias · r_i²`` a centre-bias visibility (``r_i``
the box centre's normalised distance from the image centre, in ``[0, 1]``).
Every factor is non-negative and non-decreasing in severity and area, and
each ``d_i < 1``, so MOS strictly falls with severity and area, stays in
``(1, clean_mos]``, and clean and depth-of-field images get ``clean_mos``.
``mos_std = base_std + per_defect_std · n_defects`` expresses that more
damage makes human opinions spread more.

Another annotator (human labels, a VLM judge) is one file with
``@ANNOTATORS.register("name")`` and the same ``annotate`` method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from qprobe.registry import Registry
from qprobe.types import SCORE_MAX, SCORE_MIN, Box


@dataclass(frozen=True)
class LabelInput:
    """What an annotator may look at for one benchmark image."""

    width: int
    height: int
    kind: str  # "degraded", "clean" or "dof"
    defects: tuple[tuple[Box, str, int], ...] = ()  # (box, degradation name, severity)
    path: str | None = None
    families: dict[str, str] = field(default_factory=dict)  # degradation name -> family


class Annotator(Protocol):
    def annotate(self, item: LabelInput) -> tuple[float, float]:
        """Return ``(mos, mos_std)`` on the 1–5 scale."""


ANNOTATORS: Registry[Any] = Registry("annotator")


def create_annotator(name: str, **kwargs: Any) -> Annotator:
    return ANNOTATORS.create(name, **kwargs)


def list_annotators(pattern: str = "*") -> list[str]:
    return ANNOTATORS.list(pattern)


DEFAULT_FAMILY_WEIGHTS: dict[str, float] = {
    "blur": 1.0,
    "noise": 0.9,
    "compression": 1.0,
    "sharpening": 0.8,
    "quantization": 0.8,
    "resampling": 1.0,
    "contrast": 0.75,
    "smearing": 0.85,
}


@ANNOTATORS.register("proxy", description="documented monotone proxy MOS from severity, area, position")
@dataclass
class ProxyAnnotator:
    clean_mos: float = 4.6
    """MOS of an undamaged image (clean copies and depth-of-field negatives)."""
    severity_curve: tuple[float, ...] = (0.15, 0.3, 0.45, 0.6, 0.75)
    """Damage of severities 1..5 at full size and weight (each < 1)."""
    area_floor: float = 0.55
    """Share of the damage a region of (almost) zero area still causes."""
    area_ref: float = 0.05
    """Area fraction at which the size effect saturates."""
    centre_bias: float = 0.25
    """How much less a region in a corner counts than one in the centre."""
    family_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAMILY_WEIGHTS))
    """Per-family weight; unknown families weigh 1."""
    base_std: float = 0.3
    per_defect_std: float = 0.1

    def damage(self, box: Box, family: str, severity: int, width: int, height: int) -> float:
        c = self.severity_curve[min(max(int(severity), 1), len(self.severity_curve)) - 1]
        area = max(box.area / float(width * height), 0.0)
        size = self.area_floor + (1.0 - self.area_floor) * math.sqrt(min(area / self.area_ref, 1.0))
        cx, cy = box.center
        r2 = ((cx / width - 0.5) ** 2 + (cy / height - 0.5) ** 2) / 0.5
        visibility = 1.0 - self.centre_bias * min(r2, 1.0)
        return min(self.family_weights.get(family, 1.0) * c * size * visibility, 0.99)

    def annotate(self, item: LabelInput) -> tuple[float, float]:
        keep = 1.0
        for box, name, severity in item.defects:
            family = item.families.get(name, name)
            keep *= 1.0 - self.damage(box, family, severity, item.width, item.height)
        mos = SCORE_MIN + (self.clean_mos - SCORE_MIN) * keep
        std = self.base_std + self.per_defect_std * len(item.defects)
        return float(min(max(mos, SCORE_MIN), SCORE_MAX)), float(std)
