"""``qprobe train stage1|flywheel|stage2|stage3``: recipes load, flags override, errors are actionable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers_train import make_toy_manifest
from typer.testing import CliRunner

from qprobe.cli.main import app
from qprobe.cli.train_stages import STAGES
from qprobe.config import load_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs" / "train").glob("*.yaml"))


def _config_class(recipe: Path) -> type:
    import importlib

    name = recipe.stem.split("_")[0]
    module, cls, _, _ = STAGES[name]
    return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_every_recipe_loads_into_its_config(recipe: Path) -> None:
    cfg = load_config(_config_class(recipe), recipe)
    if hasattr(cfg, "per_device_train_batch_size") and hasattr(cfg, "images_per_group"):
        per_process = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
        assert per_process % (cfg.num_generations * cfg.images_per_group) == 0, "whole ranking groups per GPU"
    if getattr(cfg, "deepspeed", None):
        assert (ROOT / cfg.deepspeed).is_file()


def test_help_lists_the_stages_and_their_fields() -> None:
    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for name in STAGES:
        assert name in result.output
    result = CliRunner().invoke(app, ["train", "stage3", "--help"])
    assert result.exit_code == 0 and "--max-zooms" in result.output and "--lora" in result.output


def test_flywheel_from_the_command_line(tmp_path: Path) -> None:
    manifest = make_toy_manifest(tmp_path / "toy", n=6, size=(160, 120))
    out = tmp_path / "fw"
    result = CliRunner().invoke(app, [
        "train", "flywheel", "-c", str(ROOT / "configs/train/flywheel_tiny.yaml"), "--manifest", str(manifest),
        "--out-dir", str(out), "--resolutions", "0.5", "--teacher-options", "{}",
    ])
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["episodes"] == 6 and stats["kept_by_scale"].keys() <= {"0.5"}
    resolved = (out / "config.resolved.yaml").read_text()
    assert "- 0.5" in resolved and "teacher: dummy" in resolved


def test_errors_are_actionable(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "stage1", "--model", str(tmp_path / "nope"), "--manifest", "x.jsonl"])
    assert result.exit_code == 2 and "model folder not found" in result.output
    result = runner.invoke(app, ["train", "flywheel", "--manifest", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "manifest not found" in result.output
    result = runner.invoke(app, ["train", "stage2", "-c", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output
