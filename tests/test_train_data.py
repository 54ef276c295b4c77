"""Dataset builders of the training stages: groups, label columns, views (no model needed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from _helpers_train import make_toy_manifest

from qprobe.manifest import DefectLabel, ManifestRow, read_manifest
from qprobe.train.data import ViewSpec, assign_groups, grpo_rows, gt_boxes_of
from qprobe.train.flywheel import crop_kind, flywheel_stats, judge
from qprobe.types import Box


def _row(i: int, dataset: str = "a", **kw) -> ManifestRow:
    return ManifestRow(id=f"{dataset}{i}", path=f"{i}.png", dataset=dataset, split="train",
                       width=100, height=80, mos=1.0 + (i % 5), **kw)


def test_groups_are_whole_single_dataset_and_contiguous() -> None:
    rows = [_row(i, "a") for i in range(7)] + [_row(i, "b") for i in range(4)]
    ordered = assign_groups(rows, images_per_group=3, seed=1)
    sizes = Counter(g for g, _ in ordered)
    assert set(sizes.values()) == {3}  # a: 7 images -> 3 groups (last one filled), b: 4 -> 2 groups
    assert len(sizes) == 5
    for gid in sizes:
        members = [r for g, r in ordered if g == gid]
        assert len({r.dataset for r in members}) == 1
        assert len({r.id for r in members}) == 3  # no image twice within a group
    gids = [g for g, _ in ordered]
    assert all(gids[i] == gids[i - i % 3] for i in range(len(gids)))  # contiguous runs of 3
    assert {r.id for _, r in ordered} == {r.id for r in rows}
    assert assign_groups(rows, 3, seed=1) == ordered  # deterministic
    assert assign_groups(rows, 3, seed=2) != ordered


def test_groups_reject_small_datasets_and_missing_labels() -> None:
    with pytest.raises(ValueError, match="fewer than images_per_group"):
        assign_groups([_row(0), _row(1)], images_per_group=3)
    with pytest.raises(ValueError, match="no mos"):
        assign_groups([_row(0), ManifestRow("x", "x.png", "a", "train", 10, 10)], images_per_group=2)


def test_gt_boxes_distinguish_clean_from_unlabelled() -> None:
    assert gt_boxes_of(_row(0, defects=[DefectLabel(Box(1, 2, 30, 40), "noise", 2)])) == [[1.0, 2.0, 30.0, 40.0]]
    assert gt_boxes_of(_row(0, extra={"kind": "clean"})) == []
    assert gt_boxes_of(_row(0, dof=True)) == []
    assert gt_boxes_of(_row(0)) is None  # e.g. KonIQ: no localization labels


def test_grpo_rows_columns_and_cached_views(tmp_path: Path) -> None:
    manifest = make_toy_manifest(tmp_path / "toy", n=6, size=(224, 168))
    rows = read_manifest(manifest)
    prompt = lambda orig, view: [{"role": "user", "content": f"{orig} {view}"}]
    view_size = lambda w, h: (w // 28 * 28, h // 28 * 28)
    out = grpo_rows(rows, manifest, prompt, view=ViewSpec(112, tmp_path / "views"), view_size=view_size,
                    images_per_group=3, seed=0)
    assert len(out) == 6
    first = out[0]
    assert first["image"].size == (112, 84)  # the global view, not the original
    assert (first["width"], first["height"]) == (224, 168)
    assert (first["view_width"], first["view_height"]) == (112, 84)
    assert first["prompt"][0]["content"] == "(224, 168) (112, 84)"
    assert Path(first["path"]).is_file() and first["path"].endswith(".png")
    by_id = {r.id: r for r in rows}
    for rec in out:
        assert rec["mos"] == by_id[rec["image_id"]].mos
        assert rec["gt_boxes"] == gt_boxes_of(by_id[rec["image_id"]])
        assert rec["box_convention"] == "absolute"
    assert len(list((tmp_path / "views").rglob("*.png"))) == 6
    again = grpo_rows(rows, manifest, prompt, view=ViewSpec(112, tmp_path / "views"), view_size=view_size,
                      images_per_group=3, seed=0)
    assert [r["image_id"] for r in again] == [r["image_id"] for r in out]


def test_flywheel_filter_and_crop_mix() -> None:
    assert judge(3.1, [Box(0, 0, 10, 10)], [Box(0, 0, 10, 10)], 3.0, 0.5, 0.3) is None
    assert judge(3.6, [], [], 3.0, 0.5, 0.3).startswith("score")
    assert judge(3.1, [], [Box(0, 0, 10, 10)], 3.0, 0.5, 0.3).startswith("defects")
    assert judge(3.1, [Box(0, 0, 10, 10)], None, 3.0, 0.5, 0.3) is None  # unlabelled: score only
    gt = [Box(0, 0, 10, 10)]
    assert crop_kind(Box(5, 5, 20, 20), gt, dof=False) == "damaged"
    assert crop_kind(Box(50, 50, 60, 60), gt, dof=True) == "dof"
    assert crop_kind(Box(50, 50, 60, 60), [], dof=False) == "clean"
    stats = flywheel_stats(
        [{"scale": 1.0, "gt_boxes": [], "crops": ["clean"]}, {"scale": 0.5, "gt_boxes": [[0, 0, 1, 1]],
                                                               "crops": ["damaged", "clean"]}],
        [{"reason": "score: |1 - 3| >= 0.5"}],
    )
    assert stats["kept"] == 2 and stats["rejected_by"] == {"score": 1}
    assert stats["crop_mix"] == {"clean": round(2 / 3, 4), "damaged": round(1 / 3, 4)}
    assert stats["kept_by_scale"] == {"0.5": 1, "1.0": 1}
