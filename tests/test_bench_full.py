"""Slow tier: the whole shared photo set x 5 variants, checked image by image."""

from __future__ import annotations

import numpy as np
import pytest

from qprobe.bench.builder import build
from qprobe.bench.config import BenchConfig
from qprobe.io import list_images, load_rgb
from qprobe.manifest import read_manifest


@pytest.mark.slow
def test_full_shared_photo_set(photos_dir, tmp_path):
    photos = list_images(photos_dir)
    assert len(photos) == 14
    out = tmp_path / "full"
    summary = build(BenchConfig(photos=str(photos_dir), out=str(out), variants=5, workers=2))
    assert not summary.errors and not summary.skipped
    assert summary.rows == 14 * 7 and summary.by_kind == {"clean": 14, "degraded": 70, "dof": 14}
    rows = read_manifest(out / "manifest.jsonl")
    by_id = {r.id: r for r in rows}
    used = set()
    for r in rows:
        if r.extra["kind"] != "degraded":
            continue
        clean = load_rgb(out / by_id[f"{r.source_id}-clean"].path)
        img = load_rgb(out / r.path)
        inside = np.zeros(img.shape[:2], bool)
        for d in r.defects:
            used.add(d.type)
            x1, y1, x2, y2 = d.bbox.to_int()
            assert 0 <= x1 < x2 <= r.width and 0 <= y1 < y2 <= r.height
            assert 0.002 <= d.bbox.area / (r.width * r.height) <= 0.05
            # only visible damage is labelled (min_visible = 1 grey level, mean over the box's RGB values)
            assert np.abs(img[y1:y2, x1:x2].astype(np.int16) - clean[y1:y2, x1:x2]).mean() >= 1.0
            inside[y1:y2, x1:x2] = True
        diff = np.abs(img.astype(np.int16) - clean).max(axis=2)
        assert diff[~inside].max(initial=0) <= 1
    assert len(used) >= 10  # every family appears somewhere in the full build
    again = build(BenchConfig(photos=str(photos_dir), out=str(out), variants=5, workers=2))
    assert again.built == 0 and again.reused == 98
