"""Box conventions of multimodal LLMs, converted at the backend boundary.

qprobe keeps every box in **original-image pixels**. A model reads and
writes boxes in its own frame, always relative to the **global view** (the
first image of the conversation) — also while it looks at a crop:

* ``absolute`` (Qwen2.5-VL): pixels of the image *as the processor resized
  it* (``smart_resize`` to multiples of ``patch_size * merge_size``), so the
  frame depends on the processor's ``min_pixels``/``max_pixels``;
* ``relative1000`` (Qwen2-VL, Qwen3-VL): integers 0–1000 along each axis,
  independent of any resizing.

A :class:`Frame` holds the original size and the model-side size of the
global view; :func:`to_model` / :func:`from_model` convert one box.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from qprobe.types import Box

CONVENTIONS = ("absolute", "relative1000")


@dataclass(frozen=True)
class Frame:
    """The coordinate frame a model uses for one image.

    ``original`` is the original image's ``(width, height)``; ``model`` the
    ``(width, height)`` of the global view after the processor's resize (used
    by ``absolute``); ``convention`` one of :data:`CONVENTIONS`.
    """

    convention: str
    original: tuple[int, int]
    model: tuple[int, int]

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"unknown box convention {self.convention!r}; choose one of {CONVENTIONS}")
        if min(self.original) <= 0 or min(self.model) <= 0:
            raise ValueError(f"frame sizes must be positive, got {self.original} and {self.model}")

    @property
    def extent(self) -> tuple[float, float]:
        """The model-side width and height of the whole image."""
        if self.convention == "relative1000":
            return (1000.0, 1000.0)
        return (float(self.model[0]), float(self.model[1]))

    def describe(self) -> str:
        """One sentence for the prompt: what the numbers of a box mean."""
        if self.convention == "relative1000":
            return (
                "Coordinates are relative to the first (overview) image, as integers from 0 to 1000 "
                "along each axis: [x1, y1, x2, y2] with (0, 0) the top-left corner."
            )
        w, h = self.model
        return (
            f"Coordinates are absolute pixels of the first (overview) image, which is {w}x{h} pixels: "
            "[x1, y1, x2, y2] with (0, 0) the top-left corner."
        )


def to_model(box: Box, frame: Frame, ndigits: int = 0) -> list[float] | list[int]:
    """A box in original pixels → the model's numbers (integers when ``ndigits == 0``)."""
    ow, oh = frame.original
    ew, eh = frame.extent
    vals = [box.x1 * ew / ow, box.y1 * eh / oh, box.x2 * ew / ow, box.y2 * eh / oh]
    if ndigits == 0:
        return [int(round(v)) for v in vals]
    return [round(v, ndigits) for v in vals]


def from_model(values: Sequence[float], frame: Frame) -> Box:
    """The model's numbers → a box in original pixels, clipped to the image.

    Raises ``ValueError`` for a wrong count, non-finite numbers or a box that
    is empty after clipping; the policy turns that into an error turn.
    """
    if len(values) != 4:
        raise ValueError(f"a box needs 4 numbers [x1, y1, x2, y2], got {len(values)}")
    nums = [float(v) for v in values]
    if not all(math.isfinite(v) for v in nums):
        raise ValueError(f"box has a non-finite coordinate: {list(values)}")
    ow, oh = frame.original
    ew, eh = frame.extent
    box = Box.from_list([nums[0] * ow / ew, nums[1] * oh / eh, nums[2] * ow / ew, nums[3] * oh / eh])
    clipped = box.clip(ow, oh)
    if clipped.width <= 0 or clipped.height <= 0:
        raise ValueError(
            f"box {list(values)} is empty or outside the image "
            f"(the image spans [0, 0, {ew:g}, {eh:g}] in these coordinates)"
        )
    return clipped


def smart_resize(
    width: int, height: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """``(width, height)`` a Qwen-VL image processor resizes an image to.

    The same rule as transformers' ``smart_resize`` (sides multiples of
    ``factor``, area within ``[min_pixels, max_pixels]``, aspect kept), in
    plain Python so the ``openai`` backend can pre-resize images exactly as the
    server's processor would — and know the frame of ``absolute`` boxes —
    without transformers installed.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is above the limit of 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return int(w_bar), int(h_bar)
