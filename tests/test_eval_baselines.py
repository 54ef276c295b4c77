"""NIQE / BRISQUE / PIQE against their reference implementations.

Golden values: scikit-video 1.1.11 ``skvideo.measure.niqe``, the ``brisque``
0.2.0 package and ``pypiqe`` 1.2 run on CLIVE images by
``scripts/verify_baselines.py`` (reference environment described there; on
20 CLIVE images max |diff| was NIQE 0.0013, BRISQUE 0.0057, PIQE 3e-12).
Stated tolerance: 0.01 absolute for NIQE and BRISQUE, 1e-6 for PIQE.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from qprobe.eval.baselines import BASELINES, create_baseline, list_baselines
from qprobe.eval.baselines.base import Baseline
from qprobe.eval.baselines.brisque import half_cubic, model, parse_libsvm_model
from qprobe.eval.baselines.niqe import pristine_model

REFERENCE = {
    "10.png": {"niqe": 12.892096, "brisque": 46.275655, "piqe": 20.026683},
    "1002.JPG": {"niqe": 13.446443, "brisque": 32.954378, "piqe": 45.984155},
    "1003.JPG": {"niqe": 31.762823, "brisque": 28.497592, "piqe": 12.249196},
    "1004.JPG": {"niqe": 12.056173, "brisque": 17.928327, "piqe": 39.326012},
}
TOLERANCE = {"niqe": 0.01, "brisque": 0.01, "piqe": 1e-5}


def test_registry() -> None:
    assert list_baselines() == ["brisque", "niqe", "piqe"]
    for name in list_baselines():
        assert BASELINES.metadata(name)["higher_is_better"] is False
        assert isinstance(create_baseline(name), Baseline)


@pytest.mark.parametrize("name", ["niqe", "brisque", "piqe"])
def test_matches_reference_on_clive(clive_dir: Path, name: str) -> None:
    scorer = create_baseline(name)
    for image, ref in REFERENCE.items():
        a = scorer.assess(clive_dir / "images" / image)
        assert a.ok, a.error
        assert a.extra["raw"] == pytest.approx(ref[name], abs=TOLERANCE[name]), image
        assert 1.0 <= a.score <= 5.0


def test_shipped_parameters() -> None:
    mu, cov = pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    svr, lo, hi = model()
    assert svr.sv.shape == (770, 36) and svr.gamma == 0.05 and np.all(hi > lo)


def test_libsvm_parser_and_rbf_prediction() -> None:
    text = "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho -1\nSV\n2 1:1 3:1\n-1 2:1\n"
    svr = parse_libsvm_model(text, 3)
    x = np.array([1.0, 0.0, 0.0])
    expected = 2 * np.exp(-0.5 * 1.0) - 1 * np.exp(-0.5 * 2.0) + 1
    assert svr.predict(x) == pytest.approx(expected)
    with pytest.raises(ValueError, match="rbf"):
        parse_libsvm_model(text.replace("rbf", "linear"), 3)


def test_half_cubic_matches_opencv_weights() -> None:
    img = np.arange(64, dtype=float).reshape(8, 8)
    out = half_cubic(img)
    assert out.shape == (4, 4)
    # linear ramps are reproduced exactly away from the border (cubic weights sum to 1, symmetric)
    assert out[1, 1] == pytest.approx(img[2:4, 2:4].mean())


def test_quality_ordering_on_degradation(clive_dir: Path) -> None:
    """All three rate a heavily blurred + noisy copy worse than the original."""
    from PIL import Image, ImageFilter

    im = Image.open(clive_dir / "images" / "1005.JPG").convert("RGB")
    bad = np.asarray(im.filter(ImageFilter.GaussianBlur(4))).astype(float)
    bad = np.clip(bad + np.random.default_rng(0).normal(0, 25, bad.shape), 0, 255).astype(np.uint8)
    for name in list_baselines():
        b = create_baseline(name)
        assert b.assess(np.asarray(im)).score > b.assess(bad).score, name


def test_failures_are_reported_not_raised(tmp_path: Path) -> None:
    flat = np.full((300, 300, 3), 128, np.uint8)
    tiny = np.zeros((100, 100, 3), np.uint8) + 50
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    niqe = create_baseline("niqe")
    a = niqe.assess(tiny)
    assert a.score is None and "NIQE needs" in a.error
    assert create_baseline("brisque").assess(flat).score is None
    b = niqe.assess(broken)
    assert b.score is None and b.error.startswith("image:") and b.path == str(broken)


def test_score_map_is_monotone() -> None:
    b = create_baseline("brisque")
    raws = np.linspace(-20, 150, 50)
    scores = [b.to_score(r) for r in raws]
    assert all(s1 > s2 for s1, s2 in itertools.pairwise(scores))
    assert all(1.0 <= s <= 5.0 for s in scores)
