"""Proxy MOS labels and ranking pairs."""

from __future__ import annotations

import itertools

import pytest

from qprobe.bench.labels import LabelInput, ProxyAnnotator, create_annotator, list_annotators
from qprobe.bench.pairs import make_pairs, preference
from qprobe.errors import UnknownNameError
from qprobe.manifest import ManifestRow
from qprobe.types import Box

W, H = 4000, 3000


def _box(area_frac: float, cx: float = 2000, cy: float = 1500) -> Box:
    side = (area_frac * W * H) ** 0.5
    return Box(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _mos(defects) -> float:
    ann = create_annotator("proxy")
    return ann.annotate(LabelInput(W, H, "degraded", tuple(defects), families={"gaussian_blur": "blur"}))[0]


def test_registry():
    assert "proxy" in list_annotators()
    with pytest.raises(UnknownNameError):
        create_annotator("proxi")


def test_monotone_in_severity_and_area():
    areas = [0.002, 0.005, 0.01, 0.03, 0.05]
    table = [[_mos([(_box(a), "gaussian_blur", s)]) for a in areas] for s in range(1, 6)]
    for s, a in itertools.product(range(5), range(5)):
        v = table[s][a]
        assert 1.0 <= v < 4.6
        if s + 1 < 5:
            assert table[s + 1][a] < v  # more severe -> lower
        if a + 1 < 5:
            assert table[s][a + 1] < v  # larger -> lower


def test_more_defects_lower_and_clean_is_top():
    one = _mos([(_box(0.01), "gaussian_blur", 3)])
    two = _mos([(_box(0.01), "gaussian_blur", 3), (_box(0.01, 800, 700), "jpeg", 3)])
    assert two < one
    ann = ProxyAnnotator(clean_mos=4.5)
    assert ann.annotate(LabelInput(W, H, "clean")) == (4.5, 0.3)
    assert ann.annotate(LabelInput(W, H, "dof")) == (4.5, 0.3)
    worst = ann.annotate(LabelInput(W, H, "degraded", tuple((_box(0.05), "x", 5) for _ in range(3))))[0]
    assert 1.0 <= worst < 1.5


def test_preference_probability():
    assert preference(3.0, 3.0, 0.3, 0.3) == 0.5
    p = preference(4.0, 3.0, 0.3, 0.4)
    assert p == pytest.approx(0.97725, abs=1e-4)
    assert preference(3.0, 4.0, 0.3, 0.4) == pytest.approx(1 - p)


def test_pairs_within_source_only():
    def row(i, src, mos):
        return ManifestRow(
            id=i,
            path=f"{i}.png",
            dataset="d",
            split="test",
            width=10,
            height=10,
            mos=mos,
            mos_std=0.3,
            source_id=src,
        )

    rows = [
        row("a1", "a", 4.6),
        row("a2", "a", 3.0),
        row("a3", "a", 2.0),
        row("b1", "b", 4.0),
        row("b2", "b", 4.0),
    ]
    pairs = make_pairs(rows)
    assert [(p["a"], p["b"]) for p in pairs] == [("a1", "a2"), ("a1", "a3"), ("a2", "a3"), ("b1", "b2")]
    assert pairs[0]["p_a_better"] > 0.99 and pairs[-1]["p_a_better"] == 0.5
    assert len(make_pairs(rows, min_gap=0.5)) == 3
