"""The tiny-model probing episode on CUDA (run with ``-m gpu``; ``scripts/gpu_smoke.sh`` runs it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from _helpers_vlm import tiny_model_dir
from conftest import make_texture

from qprobe.backends import create_backend
from qprobe.types import Box

DEVICE = os.environ.get("QPROBE_TEST_DEVICE", "cuda")

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="session")
def tiny_qwen25vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir("qwen2_5_vl", tmp_path_factory)


@pytest.fixture(autouse=True)
def _need_device() -> None:
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_tiny_episode_on_device(tiny_qwen25vl: Path, tmp_path: Path, dtype: str) -> None:
    img = make_texture(720, 1280, seed=5)
    dump = tmp_path / "inputs"
    backend = create_backend(
        "transformers", model=str(tiny_qwen25vl), device=DEVICE, dtype=dtype, max_errors=0, batch_size=3,
        dump_inputs=dump,
    )
    a = backend.assess(img, forced_probes=[Box(400, 300, 560, 420)])
    assert next(backend.engine.model.parameters()).device.type == DEVICE.split(":")[0]
    assert a.trajectory is not None and a.trajectory.decoding["dtype"] == dtype
    assert a.score is None and a.extra["parse_failures"] == 1  # a random model never answers
    from PIL import Image

    x1, y1, x2, y2 = a.trajectory.probes[0].to_int()
    crop = np.asarray(Image.open(dump / "episode00000" / "turn1_image1.png"))
    np.testing.assert_array_equal(crop, img[y1:y2, x1:x2])
    many = backend.assess_many([make_texture(300, 400, seed=s) for s in range(3)], forced_probes=[Box(10, 10, 120, 90)])
    again = backend.assess_many([make_texture(300, 400, seed=s) for s in range(3)], forced_probes=[Box(10, 10, 120, 90)])
    raw = lambda runs: [[s.data.get("raw") for s in r.trajectory.steps if s.kind == "error"] for r in runs]
    assert raw(many) == raw(again)  # greedy: repeatable on the GPU too
