"""The classic backend's ONNX Runtime engine computes what torch computes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from qprobe.backends.classic import onnx_engine
from qprobe.types import Box


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    from qprobe.backends.classic.runtime import ClassicModel

    cache = tmp_path_factory.mktemp("onnx-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("QPROBE_CACHE", str(cache))
    try:
        torch_model = ClassicModel.load(engine="torch", threads=2)
        onnx_model = ClassicModel.load(engine="onnx", threads=2)
    finally:
        mp.undo()
    return torch_model, onnx_model, cache


def test_engines_agree_on_maps_scores_and_defects(models, texture_image: np.ndarray) -> None:
    torch_model, onnx_model, _ = models
    assert (torch_model.engine, onnx_model.engine) == ("torch", "onnx")
    img = texture_image.copy()
    img[100:260, 200:400] = (img[100:260, 200:400] // 32) * 32  # a coarse-quantized patch
    for crop in (img, img[:333, :517], img[5:69, 7:91]):  # odd sizes, a small crop
        a, b = torch_model.defect_maps(crop), onnx_model.defect_maps(crop)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=2e-3, rtol=0)
    for view in (img, img[:200, :500], np.ascontiguousarray(img[:, ::-1])):
        assert abs(torch_model.score(view) - onnx_model.score(view)) < 1e-3
    box = Box(0, 0, img.shape[1], img.shape[0])
    da, db = torch_model.detect(img, box), onnx_model.detect(img, box)
    assert [(d.type, d.bbox) for d in da] == [(d.type, d.bbox) for d in db]


def test_crop_workers_compute_the_shared_sessions_numbers(models, texture_image: np.ndarray) -> None:
    """The one-thread crop session (run by several workers at once) gives the two-thread session's maps."""
    _, onnx_model, _ = models
    assert onnx_model._onnx.crop_workers == 2
    crops = [texture_image[:333, :517], texture_image[5:69, 7:91], np.ascontiguousarray(texture_image[:, ::-1])]
    x = np.ascontiguousarray(texture_image[None, :200, :300].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(onnx_model._onnx.crop_logits(x, single=True), onnx_model._onnx.crop_logits(x))
    big = np.tile(texture_image, (2, 2, 1))[:700, :900]  # longer than max_crop_side: native tiles
    crops.append(big)
    futures = [onnx_model.defect_maps_async(c) for c in crops]  # all in flight at once
    for c, fut in zip(crops, futures, strict=True):
        assert fut is not None
        np.testing.assert_array_equal(fut.result(), onnx_model.defect_maps(c))
    # the torch engine has no crop workers: the caller computes crops itself
    assert models[0].defect_maps_async(crops[0]) is None


def test_graphs_are_cached_per_weight_set(models, tmp_path, monkeypatch) -> None:
    torch_model, _, cache = models
    folders = [p for p in (cache / "onnx").iterdir() if p.is_dir()]
    graphs = sorted(f"{g}.onnx" for g in onnx_engine.runtime_graphs(torch_model.net))  # + astem, atop: shipped aux
    assert len(folders) == 1 and sorted(f.name for f in folders[0].iterdir()) == graphs
    assert folders[0].name == onnx_engine.weights_key(torch_model.net)
    # a cache hit does not export again
    monkeypatch.setattr(onnx_engine, "export_graphs", lambda *a: pytest.fail("exported despite the cache"))
    onnx_engine.OnnxEngine(torch_model.net, threads=1, directory=cache / "onnx")
    # other weights: another key
    import torch

    net = torch_model.net
    before = onnx_engine.weights_key(net)
    with torch.no_grad():
        net.quality.bias.add_(1.0)
    try:
        assert onnx_engine.weights_key(net) != before
    finally:
        with torch.no_grad():
            net.quality.bias.sub_(1.0)


def test_unwritable_cache_still_runs(models, tmp_path) -> None:
    torch_model, _, _ = models
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    engine = onnx_engine.OnnxEngine(torch_model.net, threads=1, directory=blocker / "onnx")
    x = np.zeros((1, 3, 64, 96), dtype=np.uint8)
    assert engine.crop_logits(x).shape[1] == len(torch_model.classes) + 1


def test_engine_names_and_fallback(monkeypatch) -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        onnx_engine.check_engine("tensorrt")
    assert onnx_engine.resolve_engine("auto") == "onnx"
    monkeypatch.setattr(onnx_engine, "available", lambda: False)
    assert onnx_engine.resolve_engine("auto") == "torch"
    with pytest.raises(ValueError, match="onnxruntime"):
        onnx_engine.check_engine("onnx")


def test_backend_engine_option(tmp_path) -> None:
    from qprobe.backends import create_backend

    b = create_backend("classic", engine="torch")
    assert "engine" not in b.identity()["settings"]  # both runtimes compute the same function
    with pytest.raises(ValueError, match="unknown engine"):
        create_backend("classic", engine="bogus")
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (128, 128, 128)).save(img)
    out = subprocess.run(
        [sys.executable, "-m", "qprobe", "score", str(img), "--engine", "bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "unknown engine" in out.stderr


def test_training_taps_and_stems_match_torch(models, texture_image: np.ndarray) -> None:
    """The training side's ONNX runs (crop synthesis taps, CLIVE stems) compute torch's function."""
    import torch

    from qprobe.train_classic.clive import _stem_runner, to_tensor
    from qprobe.train_classic.synth import CropMaker

    net = models[0].net
    maker = CropMaker(net, net.config.classes, 1.5, 512, 0.12)
    assert maker._onnx is not None
    fast = maker.tap(texture_image[:300, :420])
    maker._onnx = None
    slow = maker.tap(texture_image[:300, :420])
    assert fast.dtype == slow.dtype == torch.float16 and fast.shape == slow.shape
    assert float((fast.float() - slow.float()).abs().max()) <= 0.01 * float(slow.float().abs().max())
    x = to_tensor(texture_image[:256, :320])
    with torch.no_grad():
        ref = net.stem(x)
        got = _stem_runner(net)(x)
    assert float((got - ref).abs().max()) <= 1e-3 * float(ref.abs().max())
    with pytest.raises(ValueError, match="unknown graph"):
        onnx_engine.export_graphs(net, ("everything",))


def test_damaged_cache_file_is_exported_again(models) -> None:
    torch_model, _, cache = models
    folder = cache / "onnx" / onnx_engine.weights_key(torch_model.net)
    (folder / "crop.onnx").write_bytes(b"not an onnx graph")
    engine = onnx_engine.OnnxEngine(torch_model.net, threads=1, directory=cache / "onnx")
    assert engine.crop_logits(np.zeros((1, 3, 64, 64), dtype=np.uint8)).shape[1] == len(torch_model.classes) + 1
    assert (folder / "crop.onnx").read_bytes() != b"not an onnx graph"


def test_auto_falls_back_to_torch_when_the_engine_cannot_be_built(monkeypatch) -> None:
    from qprobe.backends.classic.runtime import ClassicModel

    def broken(*args, **kwargs):
        raise RuntimeError("exporter missing")

    monkeypatch.setattr(onnx_engine, "OnnxEngine", broken)
    with pytest.warns(RuntimeWarning, match="exporter missing"):
        model = ClassicModel.load(engine="auto")
    assert model.engine == "torch" and model.score(np.full((64, 64, 3), 128, np.uint8)) > 0
    with pytest.raises(RuntimeError, match="--engine torch"):
        ClassicModel.load(engine="onnx")


def test_onnx_threads_follow_the_process_limit(monkeypatch) -> None:
    """With threads=0 the ONNX pools take torch's thread count (which OMP_NUM_THREADS / batch workers set)."""
    import torch

    from qprobe.backends.classic.runtime import ClassicModel

    seen: list[int] = []
    real = onnx_engine.OnnxEngine

    def spy(net, threads=0, *args, **kwargs):
        seen.append(threads)
        return real(net, threads, *args, **kwargs)

    monkeypatch.setattr(onnx_engine, "OnnxEngine", spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ClassicModel.load(engine="onnx")
        ClassicModel.load(engine="onnx", threads=2)
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2]


def test_engines_agree_with_a_second_quality_backbone(tmp_path, monkeypatch, texture_image: np.ndarray) -> None:
    """The EfficientNet-Lite0 top is exported and run too; the score averages every top."""
    import torch
    from _helpers_classic import make_random_weights

    from qprobe.backends.classic.runtime import ClassicModel

    monkeypatch.setenv("QPROBE_CACHE", str(tmp_path / "cache"))
    path = make_random_weights(tmp_path / "aux.pt", members=2, aux="efficientnet_lite0")
    t, o = ClassicModel.load(path, engine="torch", threads=2), ClassicModel.load(path, engine="onnx", threads=2)
    assert t.net.n_tops == 3 and sorted(p.name for p in (tmp_path / "cache").rglob("*.onnx")) == [
        "astem.onnx", "atop.onnx", "crop.onnx", "stem.onnx", "top.onnx"]
    for view in (texture_image, texture_image[:203, :517], texture_image[7:99, 3:130]):
        assert abs(t.score(view) - o.score(view)) < 1e-3
    # each top counts once: the MobileNetV2 pair's mean and the aux score, weighted 2 : 1
    with torch.no_grad():
        t.net.aux.quality.bias.add_(3.0)  # the torch engine runs the live network
    view = texture_image[:256, :320]
    before = o.score(view)
    assert t.score(view) == pytest.approx(before + 1.0, abs=1e-3)


def test_defect_head_with_a_local_surround_exports_exactly(texture_image: np.ndarray) -> None:
    """``defect_surround`` (the head also sees each cell minus its k x k surround) runs the same on ONNX Runtime."""
    import torch

    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.backends.classic.mobilenet import fuse_batchnorm

    torch.manual_seed(0)
    net = ClassicNet(NetConfig(split=14, classes=["clean", "blur", "noise"], defect_surround=7)).eval()
    for p in net.defect.parameters():
        p.data.normal_(0, 0.2)
    assert net.defect[0].in_channels == 3 * 32
    fuse_batchnorm(net.features)
    eng = onnx_engine.OnnxEngine(net, threads=1, graphs=("crop",), cache=False)
    for crop in (texture_image[:333, :517], texture_image[5:69, 7:91], texture_image[:17, :23]):
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).unsqueeze(0)
        with torch.no_grad():
            ref = net.defect_logits(net.tap(x)).numpy()
        got = eng.crop_logits(x.numpy())
        assert got.shape == ref.shape
        assert float(np.abs(got - ref).max()) <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    # without it the head reads the tap and its deviation from the crop mean only
    other = ClassicNet(NetConfig(split=14, classes=["clean", "blur", "noise"])).eval()
    assert other.defect[0].in_channels == 2 * 32


def test_a_bundle_scores_without_torch_and_exactly_as_the_torch_built_model(tmp_path, monkeypatch) -> None:
    """After one load, a weight file scores from its bundle (cached graphs + settings): no torch, same answer."""
    import json
    import os

    from _helpers_classic import make_random_weights
    from conftest import make_texture

    from qprobe.backends.classic.core import ClassicCore, bundle_path, load_model
    from qprobe.backends.classic.runtime import ClassicModel
    from qprobe.io import save_image

    cache = tmp_path / "cache"
    monkeypatch.setenv("QPROBE_CACHE", str(cache))
    weights = make_random_weights(tmp_path / "w.pt", aux="efficientnet_lite0")
    first = load_model(weights, threads=2)
    assert type(first) is ClassicModel and bundle_path(weights).is_file()
    again = load_model(weights, threads=2)
    assert type(again) is ClassicCore and again.info == first.info
    img = make_texture(400, 640, seed=3)
    img[50:250, 100:300] = (img[50:250, 100:300] // 48) * 48
    box = Box(0, 0, 640, 400)
    assert again.score(img) == first.score(img)
    np.testing.assert_array_equal(again.defect_maps(img), first.defect_maps(img))
    assert again.detect(img, box) == first.detect(img, box)
    assert load_model(weights, engine="torch", threads=2).engine == "torch"  # torch asked for: no bundle

    # a fresh process: the whole episode runs without importing torch, with the same answer
    save_image(tmp_path / "img.png", img)
    from qprobe.backends import create_backend

    here = create_backend("classic", weights=str(weights), threads=2).assess(str(tmp_path / "img.png"))
    code = (
        "import json, sys; from qprobe.backends import create_backend; "
        f"a = create_backend('classic', weights={str(weights)!r}, threads=2).assess({str(tmp_path / 'img.png')!r}); "
        "print(json.dumps([a.score, [d.bbox.to_list() for d in a.defects], [p.to_list() for p in a.probes], "
        "'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "QPROBE_CACHE": str(cache)})
    score, defects, probes, torch_loaded = json.loads(out.stdout)
    assert not torch_loaded
    assert score == here.score and defects == [d.bbox.to_list() for d in here.defects]
    assert probes == [p.to_list() for p in here.probes]

    # a damaged bundle (a graph gone, or unreadable settings) falls back to the torch model, which rewrites it
    data = json.loads(bundle_path(weights).read_text())
    (cache / "onnx" / data["graphs_dir"] / "crop.onnx").unlink()
    assert type(load_model(weights, threads=2)) is ClassicModel
    assert type(load_model(weights, threads=2)) is ClassicCore
    bundle_path(weights).write_text("{not json")
    assert type(load_model(weights, threads=2)) is ClassicModel
    assert type(load_model(weights, threads=2)) is ClassicCore


def test_a_head_with_its_own_tap_block_is_the_frozen_tap_until_trained_and_exports_exactly(texture_image) -> None:
    """``defect_adapt``: the head's copies of the tap's last blocks; the quality stem keeps the frozen ones."""
    import copy

    import torch

    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.backends.classic.mobilenet import fuse_batchnorm

    torch.manual_seed(0)
    plain = ClassicNet(NetConfig(split=14, classes=["clean", "blur", "noise"])).eval()
    for p in plain.defect.parameters():
        p.data.normal_(0, 0.2)
    adapted = ClassicNet(NetConfig(split=14, classes=["clean", "blur", "noise"], defect_adapt=1)).eval()
    adapted.load_state_dict(plain.state_dict(), strict=False)
    assert adapted.frozen_tap == 6 and len(adapted.defect_adapt) == 1
    adapted.defect_adapt[0].load_state_dict(adapted.features[6].state_dict())
    x = torch.from_numpy(np.ascontiguousarray(texture_image[:200, :264])).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        assert adapted.tap(x).shape[1] == 32  # block 5's output: what the training crops cache
        same = adapted.defect_logits(adapted.tap(x))
        assert float((same - plain.defect_logits(plain.tap(x))).abs().max()) <= 1e-5
        stem = plain.stem(x)
        for p in adapted.defect_adapt.parameters():  # "trained": the head's block drifts from ImageNet
            p.data.add_(torch.randn_like(p) * 0.05)
        assert float((adapted.stem(x) - stem).abs().max()) == 0.0  # the stem never reads the head's copy
        moved = adapted.defect_logits(adapted.tap(x))
        assert float((moved - same).abs().max()) > 1e-3
    net = copy.deepcopy(adapted)
    fuse_batchnorm(net.features)
    fuse_batchnorm(net.defect_adapt)
    eng = onnx_engine.OnnxEngine(net, threads=1, graphs=("crop", "stem"), cache=False)
    for crop in (texture_image[:333, :517], texture_image[5:69, 7:91]):
        xc = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).unsqueeze(0)
        with torch.no_grad():
            ref = adapted.defect_logits(adapted.tap(xc)).numpy()
            ref_stem = plain.stem(xc).numpy()
        got = eng.crop_logits(xc.numpy())
        assert float(np.abs(got - ref).max()) <= 1e-4 * max(1.0, float(np.abs(ref).max()))
        got_stem = eng.stem(xc.numpy())
        assert float(np.abs(got_stem - ref_stem).max()) <= 1e-4 * max(1.0, float(np.abs(ref_stem).max()))
    with pytest.raises(ValueError, match="defect_adapt"):
        ClassicNet(NetConfig(classes=["clean"], defect_adapt=7))
