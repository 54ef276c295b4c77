"""The shared shape of no-reference baselines: raw value -> 1–5 score -> Assessment."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from qprobe.errors import ImageLoadError
from qprobe.io import load_rgb
from qprobe.types import Assessment, Box


class Baseline(ABC):
    """A classical NR-IQA metric exposed as a scorer.

    Subclasses implement :meth:`raw` on an RGB ``uint8`` array. The 1–5
    score is ``1 + 4 / (1 + exp(sign * (raw - center) / width))`` with
    ``sign = +1`` for lower-is-better metrics: strictly monotone (rank
    metrics equal those of ``raw``, up to the sign), with ``center``/``width``
    fixed a priori from the metric's usual range, never fitted on
    evaluation data. Failures become ``Assessment(score=None, error=...)``.
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool] = False
    center: ClassVar[float]
    width: ClassVar[float]

    @abstractmethod
    def raw(self, rgb: np.ndarray) -> float:
        """The metric's native value for an ``H x W x 3`` uint8 image."""

    def identity(self) -> dict[str, Any]:
        """What the outputs depend on (for ``qprobe eval``'s result cache): name, version, parameters."""
        from qprobe import __version__
        from qprobe.config import plain_settings

        return {"scorer": self.name, "class": type(self).__qualname__, "qprobe": __version__, "settings": plain_settings(self)}

    def to_score(self, raw: float) -> float:
        sign = -1.0 if self.higher_is_better else 1.0
        z = max(-60.0, min(60.0, sign * (raw - self.center) / self.width))
        return 1.0 + 4.0 / (1.0 + math.exp(z))

    def assess(
        self,
        image: Any,
        *,
        path: str | None = None,
        forced_probes: list[Box] | None = None,
        max_zooms: int | None = None,
        seed: int | None = None,
    ) -> Assessment:
        """Score one image (a path, PIL image or uint8 array); global metrics ignore probes."""
        t0 = time.perf_counter()
        if path is None and (isinstance(image, str) or hasattr(image, "__fspath__")):
            path = str(image)
        try:
            rgb = load_rgb(image)
        except ImageLoadError as exc:
            return Assessment(score=None, backend=self.name, path=path, error=f"image: {exc}")
        size = (int(rgb.shape[1]), int(rgb.shape[0]))
        try:
            value = float(self.raw(rgb))
            if not math.isfinite(value):
                raise ValueError(f"{self.name} produced a non-finite value ({value})")
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            return Assessment(
                score=None,
                backend=self.name,
                path=path,
                image_size=size,
                elapsed_s=time.perf_counter() - t0,
                error=f"{self.name}: {exc}",
            )
        return Assessment(
            score=self.to_score(value),
            backend=self.name,
            path=path,
            image_size=size,
            elapsed_s=time.perf_counter() - t0,
            extra={"raw": value},
        )

    def assess_many(self, images: Iterable[Any], **kw: Any) -> list[Assessment]:
        return [self.assess(im, **kw) for im in images]
