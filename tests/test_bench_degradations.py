"""Every local degradation family at every severity: local, measurable, monotone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qprobe.bench.degradations import SEVERITIES, create_degradation, list_degradations
from qprobe.bench.inject import box_mask, inject_local
from qprobe.errors import UnknownNameError
from qprobe.types import Box

from _helpers_bench import blockiness, hf_energy, local_contrast, mse, n_colours, residual_var
from conftest import make_texture

FAMILIES = list_degradations()
BOX = Box(48.0, 40.0, 168.0, 150.0)  # 120 x 110 px inside a 200 x 240 image


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_texture(200, 240, seed=3)


@pytest.fixture(scope="module")
def degraded(image: np.ndarray) -> dict[str, list[np.ndarray]]:
    return {name: [inject_local(image, BOX, name, s, seed=11)[0] for s in SEVERITIES] for name in FAMILIES}


def _core(a: np.ndarray, inset: int = 16) -> np.ndarray:
    """The box minus the feather band, where the full degradation applies."""
    x1, y1, x2, y2 = BOX.to_int()
    return a[y1 + inset : y2 - inset, x1 + inset : x2 - inset]


def test_at_least_ten_families_in_the_registry():
    assert len(FAMILIES) >= 10
    expected = {
        "gaussian_blur",
        "motion_blur",
        "gaussian_noise",
        "iso_noise",
        "jpeg",
        "ringing",
        "banding",
        "pixelate",
        "haze",
        "smear",
    }
    assert expected <= set(FAMILIES)
    assert list_degradations("*blur*") == ["gaussian_blur", "motion_blur"]
    assert list_degradations(family="noise") == ["gaussian_noise", "iso_noise"]


def test_unknown_name_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'gaussian_blur'"):
        create_degradation("gausian_blur")


def test_parameter_overrides_are_validated():
    blur = create_degradation("gaussian_blur", sigma=(0.5, 1, 2, 3, 4))
    assert blur.params(2) == {"sigma": 1.0}
    with pytest.raises(ValueError, match="one per severity"):
        create_degradation("gaussian_blur", sigma=(1, 2))
    with pytest.raises(ValueError, match="severity"):
        blur.params(6)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_outside_the_box_is_unchanged_and_inside_changes(image, degraded, name, severity):
    out = degraded[name][severity - 1]
    assert out.dtype == np.uint8 and out.shape == image.shape
    diff = np.abs(out.astype(np.int16) - image.astype(np.int16))
    x1, y1, x2, y2 = BOX.to_int()
    outside = np.ones(image.shape[:2], dtype=bool)
    outside[y1:y2, x1:x2] = False
    assert diff[outside].max(initial=0) <= 1  # <= 1/255 (in fact bit-identical)
    assert mse(_core(out), _core(image)) > 2.0  # a measurable change where it was injected


@pytest.mark.parametrize("name", FAMILIES)
def test_change_grows_with_severity(image, degraded, name):
    errors = [mse(_core(o), _core(image)) for o in degraded[name]]
    assert all(b > a for a, b in zip(errors, errors[1:])), errors


SIGNATURES = {
    # name: (measure(out, original) -> float, direction); the measure must move
    # strictly in ``direction`` from the original through severities 1..5.
    "gaussian_blur": (lambda o, r: hf_energy(o), -1),
    "motion_blur": (lambda o, r: hf_energy(o), -1),
    "smear": (lambda o, r: hf_energy(o), -1),
    "pixelate": (lambda o, r: hf_energy(o), -1),
    "gaussian_noise": (lambda o, r: residual_var(o, r), +1),
    "iso_noise": (lambda o, r: residual_var(o, r), +1),
    "ringing": (lambda o, r: hf_energy(o), +1),
    "haze": (lambda o, r: local_contrast(o), -1),
    "banding": (lambda o, r: -n_colours(o), +1),
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_family_signature_is_monotone(image, degraded, name):
    measure, direction = SIGNATURES[name]
    ref = _core(image)
    values = [measure(ref, ref)] + [measure(_core(o), ref) for o in degraded[name]]
    steps = [direction * (b - a) for a, b in zip(values, values[1:])]
    assert all(s > 0 for s in steps), values


def test_jpeg_blockiness_rises():
    # A grid-free natural-ish texture (make_texture has a 4-px pattern that looks "blocky").
    from scipy import ndimage

    rng = np.random.default_rng(0)
    field = ndimage.gaussian_filter(rng.normal(size=(200, 240, 3)), sigma=(2.5, 2.5, 0))
    img = np.clip(128 + field / field.std() * 40, 0, 255).astype(np.uint8)
    outs = [inject_local(img, BOX, "jpeg", s, seed=0)[0] for s in SEVERITIES]
    # The codec's 8x8 grid starts at the patch origin: the box minus its 8-px margin.
    x1, y1 = BOX.to_int()[:2]
    inset = 16
    ox, oy = (x1 - 8 - (x1 + inset)) % 8, (y1 - 8 - (y1 + inset)) % 8
    ref = blockiness(_core(img, inset), ox, oy)
    values = [blockiness(_core(o, inset), ox, oy) for o in outs]
    assert values[0] > ref * 1.2, (ref, values)
    assert values == sorted(values) and values[-1] > 2.0, (ref, values)


def test_iso_noise_is_colour_and_signal_dependent(image):
    flat = np.full((120, 240, 3), 40, np.uint8)
    flat[:, 120:] = 200
    out, _ = inject_local(flat, Box(0, 0, 240, 120), "iso_noise", 4, seed=0, feather_frac=0.01)
    res = out.astype(np.float64) - flat
    dark, bright = res[10:-10, 10:110], res[10:-10, 130:230]
    assert bright.var() > dark.var()  # shot noise grows with the signal
    chroma = res[..., 0] - res[..., 2]
    assert chroma.std() > 3.0  # not grey noise


def test_deterministic_for_a_seed_and_sensitive_to_it(image):
    a, _ = inject_local(image, BOX, "gaussian_noise", 3, seed=5)
    b, _ = inject_local(image, BOX, "gaussian_noise", 3, seed=5)
    c, _ = inject_local(image, BOX, "gaussian_noise", 3, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_defect_and_inplace_and_mask(image):
    work = image.copy()
    out, defect = inject_local(work, [10.4, 20.6, 60.2, 80.0], "haze", 2, seed=0, inplace=True)
    assert out is work
    assert defect.bbox == Box(10.0, 20.0, 61.0, 80.0) and defect.type == "haze" and defect.severity == 2
    mask = np.zeros(image.shape[:2], np.float32)
    mask[30:70, 100:150] = box_mask(40, 50, 6)
    out2, d2 = inject_local(image, mask, "gaussian_blur", 5, seed=0)
    assert d2.bbox.to_int() == (100, 30, 150, 70)
    changed = np.any(out2 != image, axis=2)
    assert changed[mask == 0].sum() == 0 and changed.sum() > 500


def test_box_clipped_to_the_image_and_bad_inputs(image):
    out, d = inject_local(image, [200, 150, 400, 400], "pixelate", 3, seed=0)
    assert d.bbox == Box(200.0, 150.0, 240.0, 200.0)
    with pytest.raises(ValueError, match="no pixels"):
        inject_local(image, [300, 300, 400, 400], "pixelate", 3, seed=0)
    with pytest.raises(ValueError, match="uint8"):
        inject_local(image.astype(np.float32), BOX, "pixelate", 3, seed=0)
    with pytest.raises(ValueError, match="empty"):
        inject_local(image, np.zeros(image.shape[:2], np.float32), "pixelate", 3, seed=0)


def test_feather_is_smooth_and_zero_at_the_border():
    m = box_mask(40, 60, 8)
    assert m[0].max() < 0.02 and m[:, 0].max() < 0.02 and m[20, 30] == 1.0
    assert np.all(np.diff(m[20, :30]) >= 0) and np.abs(np.diff(m[20])).max() < 0.25


def test_apply_local_reports_the_exact_parameters(image):
    from qprobe.bench.inject import apply_local

    res = apply_local(image, BOX, "motion_blur", 4, seed=3)
    assert res.params["length"] == 23.0 and 0.0 <= res.params["angle"] < 180.0
    assert res.feather_px == 13  # 12 % of the 110-px short side
    # the logged angle reproduces the image exactly
    deg = create_degradation("motion_blur")
    x1, y1, x2, y2 = BOX.to_int()
    m = deg.margin(4)
    patch = image[y1 - m : y2 + m, x1 - m : x2 + m].astype(np.float32)
    again = deg.apply(patch, 4, np.random.default_rng(0), angle=res.params["angle"])
    ref = apply_local(image, BOX, "motion_blur", 4, seed=3, feather_frac=1e-9).image
    inner = np.clip(np.rint(again[m + 1 : -m - 1, m + 1 : -m - 1]), 0, 255)
    assert np.abs(inner - ref[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]).max() <= 1


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(FAMILIES),
    severity=st.sampled_from(SEVERITIES),
    x1=st.integers(-20, 90),
    y1=st.integers(-20, 70),
    bw=st.integers(1, 120),
    bh=st.integers(1, 120),
    seed=st.integers(0, 2**31),
)
def test_property_nothing_outside_the_box_changes(name, severity, x1, y1, bw, bh, seed):
    img = make_texture(80, 100, seed=seed % 7)
    box = Box(float(x1), float(y1), float(x1 + bw), float(y1 + bh))
    clipped = box.clip(100, 80)
    if clipped.width < 1 or clipped.height < 1:
        return
    out, defect = inject_local(img, box, name, severity, seed=seed)
    bx1, by1, bx2, by2 = defect.bbox.to_int()
    assert 0 <= bx1 < bx2 <= 100 and 0 <= by1 < by2 <= 80
    outside = np.ones((80, 100), bool)
    outside[by1:by2, bx1:bx2] = False
    assert np.array_equal(out[outside], img[outside])
