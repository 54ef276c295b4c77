"""Dataset converters into the manifest schema (DESIGN §3.3), one module per dataset.

Each module registers a loader ``load(path, image_root=None) -> list[ManifestRow]``
in :data:`DATASETS` with its metadata (published score range, direction,
accepted layouts). ``path`` is the dataset root in its published layout, or
a CSV in the unified icbcbicc/IQA-Dataset layout::

    rows = load_dataset("koniq10k", "/data/koniq10k", split="test")
    rows = load_dataset("kadid10k", "/data/KADID-10k.csv")        # unified CSV
    rows = load_dataset("clive", "../shared/data/clive", split="splits/test.txt")

``split`` is a split name (the dataset's official one, or one assigned by
``splits=DIR`` of split files written by :func:`qprobe.eval.datasets.splits.write_splits`)
or the path of one split file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qprobe.manifest import ManifestRow
from qprobe.registry import Registry

Loader = Callable[..., list[ManifestRow]]

DATASETS: Registry[Loader] = Registry(
    "dataset",
    lazy_modules=tuple(
        f"qprobe.eval.datasets.{m}"
        for m in ("clive", "koniq", "spaq", "kadid", "pipal", "tid2013", "agiqa", "csiq", "uhdiqa", "bench")
    ),
)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.list(pattern)


def load_dataset(
    name: str,
    path: str | Path,
    split: str | None = None,
    splits: str | Path | None = None,
    image_root: str | Path | None = None,
) -> list[ManifestRow]:
    """Rows of dataset ``name`` read from ``path``, optionally restricted to one split.

    Ids must be unique; with ``splits`` (a folder of split files) every row
    gets the split its id is listed in, and an id or a source (reference
    image) listed in two splits is refused.
    """
    from qprobe.eval.datasets.splits import apply_split_dir, check_disjoint, select_split

    loader = DATASETS.get(name)
    rows = loader(Path(path), image_root=None if image_root is None else Path(image_root))
    _check_unique(name, rows)
    if splits is not None:
        rows = apply_split_dir(rows, Path(splits))
    check_disjoint(rows)
    if split is not None:
        rows = select_split(rows, split)
    return rows


def parse_dataset_spec(spec: str) -> tuple[str, str]:
    """Split a CLI spec ``NAME:PATH`` (the path may itself hold colons)."""
    name, sep, path = spec.partition(":")
    if not sep or not name or not path:
        known = ", ".join(list_datasets())
        raise ValueError(
            f"dataset spec {spec!r} must be NAME:PATH, e.g. clive:../shared/data/clive (names: {known})"
        )
    return name, path


def _check_unique(name: str, rows: list[ManifestRow]) -> None:
    from qprobe.errors import ManifestError

    seen: set[str] = set()
    dup: list[str] = []
    for r in rows:
        if r.id in seen:
            dup.append(r.id)
        seen.add(r.id)
    if dup:
        raise ManifestError(f"{name}: duplicate image id(s) {dup[:5]} in the labels")


__all__ = ["DATASETS", "list_datasets", "load_dataset", "parse_dataset_spec"]
