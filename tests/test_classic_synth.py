"""Synthesized defect-head crops (train_classic/synth.py): labels, visibility, crop shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from qprobe.train_classic.synth import CropMaker, cell_change, clive_crops, photo_crops, window_labels  # noqa: E402
from qprobe.types import Box  # noqa: E402

from conftest import make_texture  # noqa: E402


def test_cell_change_is_the_mean_change_per_cell() -> None:
    before = np.zeros((64, 96, 3), np.uint8)
    after = before.copy()
    after[:32, :48] = 10  # top-left quarter changes by 10 grey levels in every channel
    ch = cell_change(before, after, (2, 3))
    # luma change 10 + half the mean colour change 10 = 15 where a cell lies inside the changed quarter
    assert ch[0, 0] == pytest.approx(15.0, abs=1e-3)
    assert ch[0, 1] == pytest.approx(7.5, abs=1e-3)  # half of the middle column's pixels changed
    assert ch[1].max() == 0 and ch[0, 2] == 0


def test_window_labels_core_feather_and_invisible_cells() -> None:
    grid, size = (10, 10), (100, 100)  # 10-px cells
    box = Box(20, 20, 80, 80)  # feather 0.12 * 60 = 7.2 px: core 27.2 .. 72.8
    visible = np.full(grid, 5.0, np.float32)
    visible[5, 5] = 0.5  # one core cell the degradation did not visibly change
    labels, sev = window_labels(grid, size, box, 3, 4, visible, 1.5, 0.12)
    assert labels[0, 0] == 0 and labels[9, 9] == 0  # outside: clean
    assert labels[2, 2] == -1  # centre 25: inside the box, on the feather: ignored
    assert labels[3, 3] == 3 and labels[6, 6] == 3 and sev[4, 4] == 4  # core
    assert labels[5, 5] == -1  # invisible change: ignored, not taught as damage
    assert labels[7, 7] == -1  # centre 75: on the feather
    clean, _ = window_labels(grid, size, None, 3, 4, None, 1.5, 0.12)
    assert not clean.any()


@pytest.fixture(scope="module")
def maker() -> CropMaker:
    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.bench.degradations import list_degradations

    net = ClassicNet(NetConfig(split=14, classes=["clean", *list_degradations()])).eval()
    return CropMaker(net, net.config.classes, visible_delta=1.5, max_side=256, feather_frac=0.12)


def test_photo_and_clive_crops(maker: CropMaker, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    Image.fromarray(make_texture(900, 1200, seed=3)).save(photo)
    small = tmp_path / "c.png"
    Image.fromarray(make_texture(300, 300, seed=4)).save(small)
    rng = np.random.default_rng(0)
    crops = photo_crops(maker, [photo], 12, rng, zoom_side=160, view_long_side=256)
    crops += clive_crops(maker, [small], 8, rng)
    assert len(crops) == 20
    kinds = {c.kind for c in crops}
    assert kinds <= {"degraded", "clean", "dof", "dof+degraded"} and "degraded" in kinds
    n_cls = len(maker.classes)
    for c in crops:
        h, w = c.labels.shape
        assert (h, w) == maker.net.defect_grid(c.stem.shape[2:])
        assert c.labels.min() >= -1 and c.labels.max() < n_cls
        assert c.negative == (not (c.labels > 0).any())
        if c.kind in ("clean", "dof"):
            assert c.negative and not (c.labels < 0).any()  # no defect: every cell is a clean example
    assert any(not c.negative for c in crops)  # some injected defects are visible
    again = photo_crops(maker, [photo], 12, np.random.default_rng(0), zoom_side=160, view_long_side=256)
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(again, crops[:12]))  # seeded


def test_cell_change_inside_a_box_equals_the_whole_comparison_for_a_local_change() -> None:
    from qprobe.bench.inject import apply_local

    rng = np.random.default_rng(4)
    before = rng.integers(0, 256, (150, 230, 3)).astype(np.uint8)
    box = Box(37.5, 20.2, 161.0, 111.7)
    after = apply_local(before, box, "gaussian_blur", 3, 0).image
    np.testing.assert_array_equal(cell_change(before, after, (10, 15), box), cell_change(before, after, (10, 15)))


def test_cell_change_block_sums_match_the_scatter_reference() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (101, 77, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (101, 77, 3), dtype=np.uint8)
    for grid in ((7, 5), (13, 9), (101, 77)):
        gh, gw = grid
        d = np.abs(0.299 * (b[..., 0].astype(np.float32) - a[..., 0]) + 0.587 * (b[..., 1].astype(np.float32) - a[..., 1])
                   + 0.114 * (b[..., 2].astype(np.float32) - a[..., 2]))
        d += 0.5 * np.abs(b.astype(np.float32) - a.astype(np.float32)).mean(axis=2)
        ys = np.minimum((np.arange(101) * gh) // 101, gh - 1)
        xs = np.minimum((np.arange(77) * gw) // 77, gw - 1)
        ref = np.zeros(grid)
        np.add.at(ref, (ys[:, None], xs[None, :]), d)
        ref /= np.bincount(ys, minlength=gh)[:, None] * np.bincount(xs, minlength=gw)[None, :]
        np.testing.assert_allclose(cell_change(a, b, grid), ref, rtol=1e-4, atol=1e-3)


def test_crop_maker_tap_equals_the_network_tap(maker: CropMaker) -> None:
    import torch

    from qprobe.backends.classic.runtime import to_batch

    win = make_texture(200, 240, seed=5)
    s = maker.sample(win, win, None, None, 0, "clean")
    with torch.no_grad():
        ref = maker.net.tap(to_batch(win))
    torch.testing.assert_close(s.stem.float(), ref, atol=2e-2, rtol=1e-2)  # fp16 storage


def test_dof_window_grain_pairs_with_the_grain_free_window() -> None:
    from qprobe.train_classic.synth import dof_window

    yy, xx = np.mgrid[0:200, 0:240].astype(np.float32)
    base = np.stack([60 + 0.3 * xx, 80 + 0.2 * yy, 100 + 0.1 * (xx + yy)], axis=-1)
    win = np.clip(np.rint(base + np.random.default_rng(5).normal(0, 2.0, base.shape)), 0, 255).astype(np.uint8)
    r1, r2, r3 = (np.random.default_rng(9) for _ in range(3))
    plain = dof_window(win, r1, 4.0, 0.5)
    grainy = dof_window(win, r2, 4.0, 0.5, np.array([2.0, 2.0, 2.0], np.float32))
    again = dof_window(win, r3, 4.0, 0.5, np.array([2.0, 2.0, 2.0], np.float32))
    assert r1.random() == r2.random()  # the grain does not advance the caller's stream: crops pair up
    assert np.array_equal(grainy, again)  # and it is seeded by the window's own draws
    diff = grainy.astype(np.int16) - plain
    changed = diff != 0
    assert changed.any() and abs(float(diff[changed].mean())) < 0.3  # noise put back, blur unchanged
    assert not changed.all()  # the in-focus part (or the subject) is left as it was


def test_photo_crops_with_grain_pair_up_with_the_grain_free_ones(maker: CropMaker, tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    Image.fromarray(make_texture(900, 1200, seed=3)).save(photo)
    plain = photo_crops(maker, [photo], 10, np.random.default_rng(2), zoom_side=160, view_long_side=256)
    grainy = photo_crops(maker, [photo], 10, np.random.default_rng(2), zoom_side=160, view_long_side=256, dof_grain=True)
    assert [c.kind for c in plain] == [c.kind for c in grainy]
    for a, b in zip(plain, grainy):
        assert np.array_equal(a.labels, b.labels)  # the same windows, defects and labels
        if not a.kind.startswith("dof"):
            assert bool((a.stem == b.stem).all())  # only depth-of-field windows change
    dof = [(a, b) for a, b in zip(plain, grainy) if a.kind.startswith("dof")]
    assert dof and any(bool((a.stem != b.stem).any()) for a, b in dof)
