"""What the build makes from each photo: ids, kinds and per-item seeds.

Ids are stable and readable: ``<photo id>-clean``, ``<photo id>-dof<k>``,
``<photo id>-deg<kk>``. Every random draw of an item comes from a
``numpy`` generator seeded by ``(seed, sha256(photo id | recipe hash | item key))``,
so an item depends on nothing but those three — not on the worker, the
order of completion or which other items exist.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qprobe.io import list_images


@dataclass(frozen=True)
class ItemSpec:
    id: str
    kind: str  # "degraded" | "clean" | "dof"
    index: int


@dataclass(frozen=True)
class Photo:
    id: str
    path: Path
    rel: str  # path relative to the photo folder, '/'-separated


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "photo"


def list_photos(folder: str | Path) -> list[Photo]:
    """Image files under ``folder`` with unique, filesystem-safe ids (sorted, stable)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"photo folder not found: {root}")
    photos: list[Photo] = []
    used: set[str] = set()
    for path in list_images(root):
        rel = path.relative_to(root).as_posix()
        base = _safe(rel.rsplit(".", 1)[0].replace("/", "__"))
        pid = base
        if pid in used:  # e.g. a.jpg and a.png
            pid = _safe(f"{base}_{path.suffix.lstrip('.').lower()}")
        n = 2
        while pid in used:
            pid = f"{base}_{n}"
            n += 1
        used.add(pid)
        photos.append(Photo(pid, path, rel))
    return photos


def plan_items(photo_id: str, variants: int, clean: bool, dof_per_photo: int) -> list[ItemSpec]:
    items: list[ItemSpec] = []
    if clean:
        items.append(ItemSpec(f"{photo_id}-clean", "clean", 0))
    items += [ItemSpec(f"{photo_id}-dof{k}", "dof", k) for k in range(dof_per_photo)]
    items += [ItemSpec(f"{photo_id}-deg{k:02d}", "degraded", k) for k in range(variants)]
    return items


def item_rng(seed: int, photo_id: str, recipe_hash: str, key: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{photo_id}|{recipe_hash}|{key}".encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words]))


def auto_split(photo_id: str) -> str:
    """80/10/10 train/val/test by a hash of the source photo (no content leaks across splits)."""
    u = int.from_bytes(hashlib.sha256(photo_id.encode("utf-8")).digest()[:4], "little") / 2**32
    return "train" if u < 0.8 else ("val" if u < 0.9 else "test")
