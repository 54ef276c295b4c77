"""Fixtures of the training tests: a toy labelled manifest and a tiny Qwen2.5-VL.

The toy task: an image's quality label is its brightness level (MOS 1–5 from
dark to bright), with texture so the images are not flat; some images carry
one or two noisy boxes (recorded as defects), the rest are labelled clean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from qprobe.manifest import DefectLabel, ManifestRow, write_manifest
from qprobe.types import Box


def toy_image(level: float, size: tuple[int, int], seed: int) -> np.ndarray:
    """A textured image whose mean brightness grows with ``level`` in [0, 1]."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 30.0 + 190.0 * level
    tex = 12.0 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0)
    img = base + tex[..., None] + rng.normal(0, 3.0, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_toy_manifest(
    root: Path,
    n: int = 8,
    size: tuple[int, int] = (112, 84),
    seed: int = 0,
    split: str = "train",
    dataset: str = "toy",
    with_defects: bool = True,
    id_prefix: str = "toy",
) -> Path:
    """Write ``n`` toy images and their manifest under ``root``; returns the manifest path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        level = (i % 5) / 4.0 if n >= 5 else i / max(1, n - 1)
        img = toy_image(level, size, seed * 1000 + i)
        defects: list[DefectLabel] = []
        kind = "clean"
        if with_defects and i % 2 == 1:
            kind = "degraded"
            for _ in range(1 + (i % 4 == 3)):
                bw, bh = size[0] // 4, size[1] // 4
                x1 = int(rng.integers(0, size[0] - bw))
                y1 = int(rng.integers(0, size[1] - bh))
                img[y1 : y1 + bh, x1 : x1 + bw] = np.clip(
                    img[y1 : y1 + bh, x1 : x1 + bw].astype(np.float32) + rng.normal(0, 40, (bh, bw, 3)), 0, 255
                ).astype(np.uint8)
                defects.append(DefectLabel(Box(x1, y1, x1 + bw, y1 + bh), "noise", 3))
        name = f"{id_prefix}{i:03d}.png"
        Image.fromarray(img).save(root / "images" / name)
        rows.append(
            ManifestRow(
                id=f"{id_prefix}{i:03d}",
                path=f"images/{name}",
                dataset=dataset,
                split=split,
                width=size[0],
                height=size[1],
                mos=round(1.0 + 4.0 * level, 3),
                mos_std=0.3,
                defects=defects,
                extra={"kind": kind},
            )
        )
    path = root / "manifest.jsonl"
    write_manifest(path, rows)
    return path


class ScriptedGenerate:
    """Replace a model's sampling with scripted replies, one list per generate call.

    ``turns[c][i]`` is the reply of batch row ``i`` in generate call ``c``
    (the first call is the first turn of every rollout, the next ones the
    turns after tool results); calls beyond the script sample normally.
    Everything else — tool loop, rewards, advantages, loss, optimizer — runs
    for real. ``calls`` records each call's inputs (``input_ids``,
    ``pixel_values``, ``image_grid_thw``) for inspection.
    """

    def __init__(self, model, tokenizer, turns: list[list[str]]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.turns = turns
        self.calls: list[dict] = []
        self._generate = model.generate
        model.generate = self

    def __call__(self, input_ids=None, **kwargs):
        import torch

        call = len(self.calls)
        self.calls.append({"input_ids": input_ids.clone(), **{k: v for k, v in kwargs.items()
                                                            if k in ("pixel_values", "image_grid_thw")}})
        if call >= len(self.turns):
            return self._generate(input_ids=input_ids, **kwargs)
        eos = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        pad = self.tokenizer.pad_token_id
        replies = [self.tokenizer.encode(self.turns[call][i % len(self.turns[call])], add_special_tokens=False) + [eos]
                   for i in range(input_ids.shape[0])]
        width = max(len(r) for r in replies)
        tail = torch.tensor([r + [pad] * (width - len(r)) for r in replies], dtype=input_ids.dtype,
                            device=input_ids.device)
        return torch.cat([input_ids, tail], dim=1)
