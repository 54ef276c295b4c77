"""Training datasets built from manifests (DESIGN §3.3).

GRPO rows (Stage 1 and Stage 3) carry the conversational ``prompt`` TRL
expects, the ``image`` the model sees (the global view, cached as PNG), and
the label columns the rewards read:

=============  ==============================================================
``image_id``   the manifest id; completions with the same id are samples of one image
``group``      explicit comparison group of the ranking reward (same dataset)
``dataset``    the manifest's dataset; rank pairs never cross datasets
``mos``        label on the 1–5 scale; ``mos_std`` its std (or ``None``)
``gt_boxes``   defect boxes in original pixels; ``[]`` on a labelled clean
               (or depth-of-field) image, ``None`` when not labelled for localization
``path``       the full-resolution original (Stage 3 crops are cut from it)
``width`` …    original size and ``view_width``/``view_height``, the size of the
               image the model sees after its processor's resize, and
               ``box_convention`` (``absolute`` or ``relative1000``): the model's box frame
=============  ==============================================================

Groups are laid out contiguously, so a trainer that keeps the dataset order
(``shuffle_dataset=False``) sees whole groups in every generation batch.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qprobe.manifest import ManifestRow, resolve_path

ViewSizeFn = Callable[[int, int], tuple[int, int]]
"""``(width, height) of the image given to the processor -> (width, height) the model sees``."""

PromptFn = Callable[[tuple[int, int], tuple[int, int]], list[dict[str, Any]]]
"""``(original size, model view size) -> conversational prompt`` (system + user text)."""

LABELLED_KINDS = ("clean", "dof", "degraded")


def identity_view_size(width: int, height: int) -> tuple[int, int]:
    return width, height


def processor_view_size(processor: Any) -> ViewSizeFn:
    """The model-side size of an image under ``processor``'s resize (Qwen's ``smart_resize``)."""
    from qprobe.backends.vlm.processor import resized_size

    return lambda width, height: resized_size(processor, width, height)


def gt_boxes_of(row: ManifestRow) -> list[list[float]] | None:
    """Ground-truth defect boxes, ``[]`` for a labelled clean image, ``None`` when unlabelled.

    A row is labelled for localization when it has defects, is a
    depth-of-field image, or carries a benchmark ``kind``.
    """
    if row.defects:
        return [d.bbox.to_list(ndigits=None) for d in row.defects]
    if row.dof or row.extra.get("kind") in LABELLED_KINDS:
        return []
    return None


def assign_groups(rows: Sequence[ManifestRow], images_per_group: int, seed: int = 0) -> list[tuple[str, ManifestRow]]:
    """Order rows into ranking groups of exactly ``images_per_group`` images of one dataset.

    Each dataset is shuffled (seeded) and cut into groups; a last incomplete
    group is filled with other images of the same dataset (a duplicate
    image in a different group is harmless: groups are compared separately).
    Datasets with fewer images than a group are rejected, since ranking
    pairs never cross datasets. Returns ``(group id, row)`` pairs with each
    group's rows contiguous and the group order shuffled.
    """
    if images_per_group < 2:
        raise ValueError(f"a ranking group needs at least 2 images, got images_per_group={images_per_group}")
    rng = random.Random(seed)
    by_dataset: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in rows:
        if row.mos is None:
            raise ValueError(f"row {row.id!r} has no mos: ranking needs a label for every image")
        by_dataset[row.dataset].append(row)
    groups: list[tuple[str, list[ManifestRow]]] = []
    for name in sorted(by_dataset):
        items = sorted(by_dataset[name], key=lambda r: r.id)
        if len(items) < images_per_group:
            raise ValueError(
                f"dataset {name!r} has {len(items)} image(s), fewer than images_per_group={images_per_group}"
            )
        rng.shuffle(items)
        chunks = [items[i : i + images_per_group] for i in range(0, len(items), images_per_group)]
        last = chunks[-1]
        if len(last) < images_per_group:
            ids = {r.id for r in last}
            fill = [r for r in items if r.id not in ids]
            last.extend(rng.sample(fill, images_per_group - len(last)))
        groups.extend((f"{name}/{i}", chunk) for i, chunk in enumerate(chunks))
    rng.shuffle(groups)
    return [(gid, row) for gid, chunk in groups for row in chunk]


@dataclass(frozen=True)
class ViewSpec:
    """How the global view shown to the model is made."""

    long_side: int = 672
    cache_dir: Path | None = None


def _view_path(cache_dir: Path, row: ManifestRow, long_side: int) -> Path:
    digest = hashlib.sha1(f"{row.dataset}/{row.id}".encode()).hexdigest()[:16]
    return cache_dir / f"{long_side}" / f"{digest}.png"


def global_view_image(original: Path, row: ManifestRow, spec: ViewSpec) -> tuple[Any, int, int]:
    """The global view (PIL image) of ``original``, cached under ``spec.cache_dir``; and the original size."""
    from PIL import Image

    from qprobe.agent.env import global_view
    from qprobe.io import load_rgb

    if spec.cache_dir is not None:
        cached = _view_path(spec.cache_dir, row, spec.long_side)
        if cached.exists():
            with Image.open(cached) as im:
                return im.convert("RGB"), row.width, row.height
    arr = load_rgb(original)
    h, w = arr.shape[:2]
    view, _ = global_view(arr, spec.long_side)
    image = Image.fromarray(view)
    if spec.cache_dir is not None:
        import io

        from qprobe._fs import atomic_write_bytes

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        atomic_write_bytes(_view_path(spec.cache_dir, row, spec.long_side), buf.getvalue())
    return image, w, h


def grpo_rows(
    rows: Sequence[ManifestRow],
    manifest_path: str | Path,
    prompt: PromptFn,
    *,
    view: ViewSpec = ViewSpec(),
    view_size: ViewSizeFn = identity_view_size,
    images_per_group: int | None = None,
    seed: int = 0,
    box_convention: str = "absolute",
) -> list[dict[str, Any]]:
    """GRPO rows (see the module docstring) for ``rows``, in group order when grouping.

    ``prompt`` makes each row's conversational prompt (system + user text)
    from the original and model-side sizes; TRL puts the ``image`` in front
    of the user text.
    """
    ordered = (
        assign_groups(rows, images_per_group, seed)
        if images_per_group is not None
        else [(row.id, row) for row in rows]
    )
    out: list[dict[str, Any]] = []
    for gid, row in ordered:
        original = resolve_path(row, manifest_path)
        image, w, h = global_view_image(original, row, view)
        vw, vh = view_size(image.width, image.height)
        out.append(
            {
                "prompt": prompt((w, h), (vw, vh)),
                "image": image,
                "image_id": row.id,
                "group": gid,
                "dataset": row.dataset,
                "mos": row.mos,
                "mos_std": row.mos_std,
                "gt_boxes": gt_boxes_of(row),
                "path": str(original),
                "width": w,
                "height": h,
                "view_width": vw,
                "view_height": vh,
                "box_convention": box_convention,
            }
        )
    return out


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` of GRPO/SFT rows (images stored as the Image feature)."""
    import datasets

    return datasets.Dataset.from_list(rows)
