"""The three training stages end to end on CPU with a tiny Qwen2.5-VL (no download).

Each stage runs 2 optimizer steps and must change the trainable parameters.
A random tiny model never writes a parseable answer or calls a tool, so the
GRPO tests script the sampled replies (:class:`ScriptedGenerate`); the
trainer, tool loop, rewards, advantages and optimizer all run for real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from _helpers_train import ScriptedGenerate, make_toy_manifest

from qprobe.config import load_config
from qprobe.train.advantages import decoupled_advantages

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "train"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qprobe.testing.tiny_vlm import build_tiny_qwen25vl

    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny") / "qwen25vl")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Originals are 4x the global view (448 vs 112 px): a zoom really adds pixels.
    return make_toy_manifest(tmp_path_factory.mktemp("toy"), n=8, size=(448, 336))


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _changed(model, before: dict[str, torch.Tensor]) -> list[str]:
    return [n for n, p in model.named_parameters() if n in before and not torch.equal(p.detach(), before[n])]


def _answer(score: float, boxes: list[list[int]] = ()) -> str:
    defects = ", ".join(json.dumps({"bbox_2d": b, "type": "noise"}) for b in boxes)
    return f'<think>checked</think>\n<answer>\n{{"score": {score}, "defects": [{defects}]}}\n</answer>'


def _zoom(box: list[int]) -> str:
    return f'<think>look closer</think>\n<tool_call>\n{json.dumps({"name": "zoom_in", "arguments": {"bbox_2d": box}})}\n</tool_call>'


def _common(model: Path, out: Path) -> dict:
    return {"model": str(model), "out_dir": str(out), "max_steps": 2, "learning_rate": 1e-3, "use_cpu": True,
            "save_steps": 1000, "view_long_side": 112}


def test_stage1_rank_grpo_two_steps_change_parameters(tiny_model: Path, toy: Path, tmp_path: Path) -> None:
    from qprobe.train._common import finish
    from qprobe.train.stage1 import Stage1Config, build_stage1_trainer

    cfg = load_config(Stage1Config, RECIPES / "stage1_tiny.yaml",
                      {"model": str(tiny_model), "out_dir": str(tmp_path / "s1"), "manifest": str(toy), "target": "prob"})
    trainer, processor = build_stage1_trainer(cfg)
    rows = trainer.train_dataset
    assert rows["group"][:4] == [rows["group"][0]] * 4  # groups kept whole, in order
    replies = [_answer(s) for s in (4.5, 2.0, 3.0, "oops", 1.5, 4.0, 2.5, 3.5)]
    ScriptedGenerate(trainer.model, processor.tokenizer, [replies, list(reversed(replies))])
    before = _snapshot(trainer.model)
    trainer.train()
    assert _changed(trainer.model, before)
    result = finish(trainer, processor, cfg)
    assert result.global_step == 2
    logs = [h for h in result.log_history if "rewards/rank_reward/mean" in h]
    assert len(logs) == 2 and all(h["rewards/rank_reward/std"] > 0 for h in logs)
    assert (result.final_dir / "model.safetensors").is_file()
    assert (tmp_path / "s1" / "config.resolved.yaml").is_file()


@pytest.fixture(scope="module")
def flywheel_dir(toy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qprobe.train.flywheel import FlywheelConfig, run_flywheel

    out = tmp_path_factory.mktemp("flywheel")
    run_flywheel(FlywheelConfig(manifest=str(toy), out_dir=str(out), teacher="dummy", resolutions=[1.0, 0.5],
                                tau=4.5, iou_min=0.0, max_zooms=1))
    return out


def test_flywheel_keeps_clean_crops_and_resumes(flywheel_dir: Path, toy: Path) -> None:
    from qprobe.train.flywheel import FlywheelConfig, run_flywheel

    stats = json.loads((flywheel_dir / "stats.json").read_text())
    assert stats["episodes"] == 8 and stats["kept"] >= 4
    assert stats["crops"].get("clean", 0) > 0  # clean images are probed on purpose
    assert set(stats["kept_by_scale"]) <= {"1.0", "0.5"}
    kept = [json.loads(line) for line in (flywheel_dir / "trajectories.jsonl").read_text().splitlines()]
    halves = [k for k in kept if k["scale"] == 0.5]
    assert all(k["size"] == [224, 168] and Path(k["image"]).is_file() for k in halves)
    # resume: nothing is redone, nothing is duplicated
    again = run_flywheel(FlywheelConfig(manifest=str(toy), out_dir=str(flywheel_dir), teacher="dummy",
                                        resolutions=[1.0, 0.5], tau=4.5, iou_min=0.0, max_zooms=1))
    assert again == stats


def test_stage2_sft_two_steps_change_parameters(tiny_model: Path, flywheel_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText
    from typer.testing import CliRunner

    from qprobe.cli.main import app
    from qprobe.train._common import load_processor
    from qprobe.train.stage2 import Stage2Config, sft_rows

    cfg = Stage2Config(**_common(tiny_model, tmp_path / "s2"), data=str(flywheel_dir), per_device_train_batch_size=2)
    rows = sft_rows(flywheel_dir, load_processor(cfg), "absolute")
    multi = [r for r in rows if len(r["images"]) >= 2]
    assert multi, "expected multi-image (global view + crop) rows"
    roles = [m["role"] for m in multi[0]["messages"]]
    assert roles[:3] == ["system", "user", "assistant"] and roles.count("assistant") >= 2
    run = CliRunner().invoke(app, ["train", "stage2", "-c", str(RECIPES / "stage2_tiny.yaml"), "--model",
                                   str(tiny_model), "--data", str(flywheel_dir), "--out-dir", str(tmp_path / "s2")])
    assert run.exit_code == 0, run.output
    result = json.loads((tmp_path / "s2" / "result.json").read_text())
    assert result["global_step"] == 2
    before = AutoModelForImageTextToText.from_pretrained(str(tiny_model))
    after = AutoModelForImageTextToText.from_pretrained(result["final_dir"])
    b, a = dict(before.named_parameters()), dict(after.named_parameters())
    lm = [n for n in a if "visual" not in n]
    assert any(not torch.equal(a[n], b[n]) for n in lm)
    assert all(torch.equal(a[n], b[n]) for n in a if ".visual." in n or n.startswith("model.visual"))  # frozen tower


def test_stage2_lora_resumes_from_checkpoint(tiny_model: Path, flywheel_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from qprobe.train.stage2 import Stage2Config, run_stage2

    common = {**_common(tiny_model, tmp_path / "lora"), "data": str(flywheel_dir), "per_device_train_batch_size": 2,
              "lora": True, "lora_r": 4, "lora_alpha": 8, "save_steps": 1}
    first = run_stage2(Stage2Config(**common))
    assert (tmp_path / "lora" / "checkpoints" / "checkpoint-2").is_dir()
    adapter = load_file(str(first.final_dir / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: trained
    resumed = run_stage2(Stage2Config(**{**common, "max_steps": 3, "resume_from_checkpoint": "auto"}))
    assert resumed.global_step == 3
    assert [h["step"] for h in resumed.log_history if "loss" in h] == [1, 2, 3]  # 1-2 restored, not redone


def test_stage3_forced_zoom_carries_full_resolution_crop(tiny_model: Path, toy: Path, tmp_path: Path) -> None:
    from qprobe.io import load_rgb
    from qprobe.train.stage3 import Stage3Config, build_stage3_trainer

    cfg = load_config(Stage3Config, RECIPES / "stage3_tiny.yaml",
                      {"model": str(tiny_model), "out_dir": str(tmp_path / "s3"), "manifest": str(toy), "max_images": 4})
    trainer, processor = build_stage3_trainer(cfg)
    # Step 1: every rollout zooms first (forced), then answers; step 2: mixed.
    script = ScriptedGenerate(trainer.model, processor.tokenizer, [
        [_zoom([0, 0, 40, 30]), _zoom([56, 42, 112, 84])],
        [_answer(3.0, [[0, 0, 28, 21]]), _answer(1.5, [])],
        [_zoom([10, 10, 60, 50]), _answer(2.0, [])],
        [_answer(4.0, [])],
    ])
    before = _snapshot(trainer.model)
    trainer.train()
    assert _changed(trainer.model, before)

    # In step 2, rollouts 0 and 2 zoomed into [10, 10, 60, 50] of the 112x84 view. Their crops were cut
    # from the full-resolution original (448x336)...
    zoomed = [env for env in trainer.environments if env.crops]
    assert len(zoomed) == 2
    second = script.calls[3]  # step 2, the turn after the tool results
    grids = second["image_grid_thw"].tolist()
    assert len(grids) == 2 * second["input_ids"].shape[0] == 4  # global view + crop per continuing rollout
    offsets = np.cumsum([0] + [int(np.prod(g)) for g in grids])
    from PIL import Image

    for k, env in enumerate(zoomed):
        box, pixels = env.crops[-1]
        x1, y1, x2, y2 = box.to_int()
        original = load_rgb(env.image_path)
        assert original.shape[:2] == (336, 448)
        assert np.array_equal(pixels, original[y1:y2, x1:x2])
        assert x2 - x1 >= 4 * 50  # the 50-px box of the view, at the original's 4x resolution
        # ...and went into the next turn: the model received exactly this crop as its next image.
        expected = processor.image_processor(images=[Image.fromarray(pixels)], return_tensors="pt")
        assert grids[2 * k + 1] == expected["image_grid_thw"][0].tolist()
        got = second["pixel_values"][offsets[2 * k + 1] : offsets[2 * k + 2]]
        assert torch.allclose(got, expected["pixel_values"], atol=1e-5)

    # Decoupled advantages: the trainer's equal the reference on its own rewards.
    logs = trainer._logs
    rewards = np.array([logs["rewards"][n] for n in ("acc_reward", "loc_reward", "fmt_reward")], dtype=float).T
    expect = decoupled_advantages(rewards, 2, weights=cfg.reward_weights)
    assert np.allclose(list(logs["advantages"]), expect, atol=1e-4)


@pytest.mark.gpu
def test_stages_on_cuda(tiny_model: Path, toy: Path, flywheel_dir: Path, tmp_path: Path) -> None:
    """The three stages, 2 steps each, on ``QPROBE_TEST_DEVICE`` (cuda by default; scripts/gpu_smoke.sh)."""
    device = os.environ.get("QPROBE_TEST_DEVICE", "cuda")
    if device != "cpu" and not torch.cuda.is_available():
        pytest.skip("no CUDA device (set QPROBE_TEST_DEVICE=cpu to run this on the CPU)")
    from qprobe.train.stage1 import Stage1Config, build_stage1_trainer
    from qprobe.train.stage2 import Stage2Config, run_stage2
    from qprobe.train.stage3 import Stage3Config, build_stage3_trainer

    gpu = {"use_cpu": device == "cpu", "bf16": device != "cpu"}
    cfg1 = Stage1Config(**dict(_common(tiny_model, tmp_path / "s1"), **gpu), manifest=str(toy),
                        per_device_train_batch_size=8, num_generations=2, images_per_group=4, max_completion_length=48)
    trainer, processor = build_stage1_trainer(cfg1)
    assert trainer.model.device.type == ("cpu" if device == "cpu" else "cuda")
    replies = [_answer(s) for s in (4.5, 2.0, 3.0, 1.5)]
    ScriptedGenerate(trainer.model, processor.tokenizer, [replies, replies[::-1]])
    before = _snapshot(trainer.model)
    trainer.train()
    assert _changed(trainer.model, before)

    result = run_stage2(Stage2Config(**dict(_common(tiny_model, tmp_path / "s2"), **gpu), data=str(flywheel_dir),
                                     per_device_train_batch_size=2))
    assert result.global_step == 2

    cfg3 = Stage3Config(**dict(_common(tiny_model, tmp_path / "s3"), **gpu), manifest=str(toy),
                        per_device_train_batch_size=4, num_generations=2, max_completion_length=400, max_zooms=2,
                        max_images=4)
    trainer, processor = build_stage3_trainer(cfg3)
    ScriptedGenerate(trainer.model, processor.tokenizer, [
        [_zoom([0, 0, 40, 30]), _answer(2.0, [])], [_answer(3.0, [[0, 0, 28, 21]])],
        [_zoom([10, 10, 60, 50]), _answer(4.0, [])], [_answer(1.5, [])],
    ])
    before = _snapshot(trainer.model)
    trainer.train()
    assert _changed(trainer.model, before)
    assert any(env.crops for env in trainer.environments)
