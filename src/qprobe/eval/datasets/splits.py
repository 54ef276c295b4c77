"""Split files: deterministic, grouped by source image, disjoint.

A split folder holds one text file per split (``train.txt``, ``val.txt``,
``test.txt``), one image id per line; lines starting with ``#`` are comments
(the header records dataset, seed, fractions and grouping). Splits are
grouped by ``source_id`` — every distorted version of a reference image lands
in the same split — so no reference content crosses splits. An id listed in
two files, or two splits that share a source or an image file, are refused.
With ``dedupe_content=True``, byte-identical image files (the same photo
shipped under two names) are also kept in one split.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from qprobe._fs import atomic_write_text
from qprobe.errors import ManifestError
from qprobe.manifest import ManifestRow

SPLIT_SUFFIX = ".txt"
UNASSIGNED = "unassigned"


def _group(row: ManifestRow) -> str:
    return row.source_id or row.id


def content_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def group_keys(rows: list[ManifestRow], dedupe_content: bool = False) -> dict[str, str]:
    """id -> group key: the source image, merged across byte-identical files when asked (union-find)."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for r in rows:
        find("s:" + _group(r))
        if dedupe_content:
            union("s:" + _group(r), "h:" + content_hash(r.path))
    return {r.id: find("s:" + _group(r))[2:] for r in rows}


def make_splits(
    rows: list[ManifestRow], fractions: dict[str, float], seed: int = 0, dedupe_content: bool = False
) -> dict[str, list[str]]:
    """Assign whole source groups to splits so that image counts follow ``fractions``.

    Deterministic for a given (set of rows, fractions, seed): groups are
    sorted by key, shuffled with ``numpy.random.default_rng(seed)`` and each
    goes to the split furthest below its target count. ``dedupe_content``
    also keeps byte-identical files together (it reads every file once).
    """
    if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"split fractions must be non-negative and sum to > 0, got {fractions}")
    total = float(sum(fractions.values()))
    keys_of = group_keys(rows, dedupe_content)
    groups: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        groups[keys_of[r.id]].append(r.id)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    names = list(fractions)
    target = {n: fractions[n] / total * len(rows) for n in names}
    out: dict[str, list[str]] = {n: [] for n in names}
    for k in order:
        ids = groups[keys[k]]
        best = max(
            names, key=lambda n: (target[n] - len(out[n])) / max(target[n], 1e-9) if target[n] > 0 else -1e9
        )
        out[best].extend(ids)
    return {n: sorted(v) for n, v in out.items()}


def write_splits(
    folder: str | Path, splits: dict[str, list[str]], header: dict[str, object] | None = None
) -> list[Path]:
    """Write one ``<split>.txt`` per split (atomically); refuses an id listed twice."""
    _check_ids_disjoint(splits, str(folder))
    folder = Path(folder)
    lines = [f"# {k}: {v}" for k, v in sorted((header or {}).items())]
    paths = []
    for name, ids in splits.items():
        p = folder / f"{name}{SPLIT_SUFFIX}"
        atomic_write_text(p, "\n".join([*lines, *ids]) + "\n")
        paths.append(p)
    return paths


def read_split_file(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"split file not found: {path}") from None
    ids = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    dup = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if dup:
        raise ManifestError(f"{path}: id(s) listed twice: {dup[:5]}")
    return ids


def read_splits(folder: str | Path) -> dict[str, list[str]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"split folder not found: {folder}")
    splits = {p.stem: read_split_file(p) for p in sorted(folder.glob(f"*{SPLIT_SUFFIX}"))}
    if not splits:
        raise ManifestError(f"{folder}: no split files (*{SPLIT_SUFFIX}) found")
    _check_ids_disjoint(splits, str(folder))
    return splits


def _check_ids_disjoint(splits: dict[str, list[str]], where: str) -> None:
    owner: dict[str, str] = {}
    for name, ids in splits.items():
        for i in ids:
            if i in owner and owner[i] != name:
                raise ManifestError(f"{where}: id {i!r} is listed in both {owner[i]!r} and {name!r}")
            owner[i] = name


def apply_split_dir(rows: list[ManifestRow], folder: Path) -> list[ManifestRow]:
    """Set each row's ``split`` from the split files; unlisted rows get ``"unassigned"``."""
    splits = read_splits(folder)
    owner = {i: name for name, ids in splits.items() for i in ids}
    known = {r.id for r in rows}
    unknown = [i for i in owner if i not in known]
    if unknown:
        raise ManifestError(
            f"{folder}: {len(unknown)} listed id(s) are not in the dataset (first: {unknown[:3]}); "
            "were these split files written for another dataset?"
        )
    for r in rows:
        r.split = owner.get(r.id, UNASSIGNED)
    return rows


def check_disjoint(rows: list[ManifestRow]) -> None:
    """Refuse an image file or a source (reference) image that appears in two splits."""
    for label, key in (("image file", lambda r: r.path), ("source image", _group)):
        owner: dict[str, str] = {}
        for r in rows:
            k = key(r)
            if k in owner and owner[k] != r.split:
                raise ManifestError(
                    f"{label} {k!r} appears in splits {owner[k]!r} and {r.split!r}: "
                    "splits must not share content (make split files grouped by source)"
                )
            owner[k] = r.split


def select_split(rows: list[ManifestRow], split: str) -> list[ManifestRow]:
    """Rows of a split given by name, or by the path of a split file."""
    if split.endswith(SPLIT_SUFFIX) or Path(split).is_file():
        ids = read_split_file(split)
        by_id = {r.id: r for r in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ManifestError(f"{split}: {len(missing)} id(s) not in the dataset (first: {missing[:3]})")
        name = Path(split).stem
        out = [by_id[i] for i in ids]
        for r in out:
            r.split = name
        return out
    out = [r for r in rows if r.split == split]
    if not out:
        have = sorted({r.split for r in rows})
        raise ManifestError(f"no rows in split {split!r}; available splits: {have} (or pass a split file)")
    return out
