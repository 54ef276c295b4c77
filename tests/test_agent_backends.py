"""Backend registry, the dummy backend and qprobe.assess."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import qprobe
from conftest import make_texture
from qprobe.backends import BACKENDS, create_backend, list_backends
from qprobe.backends.base import Backend
from qprobe.errors import UnknownNameError
from qprobe.types import Box


def test_registry_lists_and_suggests() -> None:
    assert "dummy" in list_backends()
    assert list_backends("dum*") == ["dummy"]
    with pytest.raises(UnknownNameError, match="did you mean 'dummy'"):
        create_backend("dumy")
    assert BACKENDS.metadata("dummy")["needs_torch"] is False


def test_dummy_is_deterministic_and_a_backend() -> None:
    b = create_backend("dummy")
    assert isinstance(b, Backend) and b.name == "dummy"
    img = make_texture(600, 800, seed=1)
    a1, a2 = b.assess(img), b.assess(img.copy())
    assert a1.ok and 1.0 <= a1.score <= 5.0
    assert a1.score == a2.score and a1.probes == a2.probes
    assert len(a1.probes) == 2


def test_dummy_ranks_blur_below_sharp() -> None:
    img = make_texture(600, 800, seed=2)
    blurred = np.asarray(Image.fromarray(img).resize((100, 75)).resize((800, 600), Image.Resampling.BILINEAR))
    b = create_backend("dummy")
    assert b.assess(blurred).score < b.assess(img).score


def test_accepts_pil_array_and_path(tmp_path) -> None:
    img = make_texture(300, 400)
    p = tmp_path / "x.png"
    Image.fromarray(img).save(p)
    b = create_backend("dummy")
    scores = {b.assess(img).score, b.assess(Image.fromarray(img)).score, b.assess(str(p)).score, b.assess(p).score}
    assert len(scores) == 1
    assert b.assess(p).path == str(p)


@pytest.mark.parametrize(
    "content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20]
)
def test_bad_files_give_error_assessment(tmp_path, content: bytes) -> None:
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    a = create_backend("dummy").assess(str(p))
    assert a.score is None and a.error and str(p) in a.error and not a.ok


def test_missing_file_and_bad_array() -> None:
    b = create_backend("dummy")
    assert "not found" in (b.assess("/no/such/file.png").error or "")
    assert b.assess(np.zeros((2, 2, 7), np.uint8)).error


def test_forced_probes_and_max_zooms() -> None:
    b = create_backend("dummy", zooms=3)
    img = make_texture(600, 800)
    a = b.assess(img, max_zooms=1)
    assert len(a.probes) == 1
    a = b.assess(img, forced_probes=[Box(0, 0, 100, 100)], max_zooms=0)
    assert len(a.probes) == 1 and a.probes[0].x1 == 0


def test_the_callers_budget_reaches_policies_that_take_it_and_spares_older_ones() -> None:
    from qprobe.backends.dummy import DummyBackend, DummyPolicy

    seen: list[int | None] = []

    class Told(DummyBackend):
        def make_policy(self, *, seed=None, image=None, max_zooms=None):  # type: ignore[no-untyped-def]
            seen.append(max_zooms)
            return DummyPolicy(self.zooms, self.grid, self.noise_ratio)

    class Older(DummyBackend):  # a subclass written before make_policy took max_zooms
        def make_policy(self, *, seed=None, image=None):  # type: ignore[no-untyped-def,override]
            return DummyPolicy(self.zooms, self.grid, self.noise_ratio)

    img = make_texture(300, 400)
    assert len(Told(zooms=3).assess(img, max_zooms=2).probes) == 2 and Told(zooms=3).assess(img).ok
    assert seen == [2, None]
    assert len(Older(zooms=3).assess(img, max_zooms=2).probes) == 2


def test_api_assess() -> None:
    a = qprobe.assess(make_texture(300, 400), backend="dummy")
    assert a.ok and a.backend == "dummy"
    d = a.to_dict()
    assert set(["path", "score", "defects", "probes", "backend", "version", "elapsed_s"]) <= set(d)
