"""Versioned prompts of the LLM prober (and of benchmark annotation).

The texts live as package data in ``qprobe/prompts/*_v1.txt`` (``string.Template``
placeholders ``$name``), so they can be read, diffed and versioned apart from
code. :data:`PROMPT_VERSION` is written into every trajectory; change it with
any edit of a text a model sees (a trained checkpoint is tied to its prompts).

The zoom tool is described by an OpenAI-style function schema
(:data:`ZOOM_TOOL`), embedded in the system prompt in the Hermes format that
Qwen-VL models know; servers with native tool calling get it in ``tools=``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from string import Template
from typing import Any

PROMPT_VERSION = "qprobe.probe/1"
"""Version of the probing prompts; recorded in every trajectory."""

ANNOTATE_PROMPT_VERSION = "qprobe.annotate/1"

ZOOM_TOOL_NAME = "zoom_in"

DEFECT_TYPES: tuple[str, ...] = (
    "blur",
    "motion_blur",
    "noise",
    "compression",
    "ringing",
    "banding",
    "pixelation",
    "haze",
    "smearing",
    "other",
)
"""Defect types the prober is asked to use (coarse families of the benchmark's degradations)."""

LOCATIONS: tuple[str, ...] = (
    "top-left",
    "top",
    "top-right",
    "left",
    "center",
    "right",
    "bottom-left",
    "bottom",
    "bottom-right",
)
"""Region words of a 3x3 grid, used by annotation and its consistency check."""

ZOOM_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": ZOOM_TOOL_NAME,
        "description": (
            "Zoom into a region of the image to see it at full resolution. "
            "The region is enlarged a little so that its surroundings stay visible."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "bbox_2d": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 4,
                    "maxItems": 4,
                    "description": "The region as [x1, y1, x2, y2] in the overview's coordinates.",
                },
            },
            "required": ["bbox_2d"],
        },
    },
}
"""The zoom tool as an OpenAI function-tool schema."""


@cache
def template(name: str) -> Template:
    """The packaged prompt ``qprobe/prompts/<name>.txt`` as a ``string.Template``."""
    text = resources.files("qprobe").joinpath(f"prompts/{name}.txt").read_text(encoding="utf-8")
    return Template(text)


def _box_text(bbox: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in bbox) + "]"


def system_prompt(coordinates: str, max_zooms: int) -> str:
    """The prober's system prompt; ``coordinates`` says what box numbers mean (see ``Frame.describe``)."""
    return template("probe_system_v1").substitute(
        tool_schema=json.dumps(ZOOM_TOOL, ensure_ascii=False),
        tool_name=ZOOM_TOOL_NAME,
        coordinates=coordinates,
        max_zooms=max_zooms,
        defect_types=", ".join(DEFECT_TYPES),
    ).strip()


def overview_text(width: int, height: int) -> str:
    """The first user turn's text, shown after the overview image."""
    return template("probe_overview_v1").substitute(width=width, height=height).strip()


def crop_text(bbox: Sequence[float], crop_size: tuple[int, int], zooms_left: int) -> tuple[str, str]:
    """Text before and after the crop image of a tool response: ``(prefix, suffix)``.

    The crop image sits right after the ``<tool_response>`` line.
    """
    text = template("probe_crop_v1").substitute(
        bbox=_box_text(bbox), crop_width=crop_size[0], crop_height=crop_size[1], zooms_left=zooms_left
    )
    head, _, tail = text.partition("\n")
    return head + "\n", tail.rstrip("\n")


def error_text(message: str, zooms_left: int) -> str:
    """The user turn that reports an unusable reply back to the model."""
    return template("probe_error_v1").substitute(message=message, zooms_left=zooms_left).strip()


def annotate_defect_text(width: int, height: int, bbox: Sequence[float], coordinates: str) -> str:
    return template("annotate_defect_v1").substitute(
        width=width,
        height=height,
        bbox=_box_text(bbox),
        coordinates=coordinates,
        defect_types=", ".join(DEFECT_TYPES),
        locations=", ".join(LOCATIONS),
    ).strip()


def annotate_image_text(width: int, height: int) -> str:
    return template("annotate_image_v1").substitute(width=width, height=height).strip()


def corpus_texts() -> list[str]:
    """Every prompt text, rendered with sample values (tokenizer training of tiny test models)."""
    coords = "Coordinates are absolute pixels of the first (overview) image, which is 644x364 pixels."
    head, tail = crop_text([10, 20, 300, 200], (435, 270), 3)
    return [
        system_prompt(coords, 4),
        overview_text(3840, 2160),
        head + tail,
        error_text("no <tool_call> or <answer> found", 2),
        annotate_defect_text(3840, 2160, [10, 20, 300, 200], coords),
        annotate_image_text(3840, 2160),
    ]
