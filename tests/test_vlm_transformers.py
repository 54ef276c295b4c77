"""The transformers backend with tiny Qwen2.5-VL / Qwen2-VL checkpoints built here (no download)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("transformers")

from _helpers_vlm import tiny_model_dir
from conftest import make_texture

from qprobe.agent.parsing import parse_reply
from qprobe.backends import create_backend
from qprobe.backends.vlm.coords import Frame, to_model
from qprobe.errors import MissingWeightsError
from qprobe.types import Box, read_trajectories


@pytest.fixture(scope="session")
def tiny_qwen25vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir("qwen2_5_vl", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_qwen2vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir("qwen2_vl", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_qwen3vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir("qwen3_vl", tmp_path_factory)


def test_tiny_checkpoints_load_back_with_image_only_processors(tiny_qwen25vl: Path, tiny_qwen2vl: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from qprobe.backends.vlm.processor import (
        Qwen2_5_VLImageOnlyProcessor,
        Qwen2VLImageOnlyProcessor,
        load_processor,
    )

    for folder, cls, model_cls in (
        (tiny_qwen25vl, Qwen2_5_VLImageOnlyProcessor, "Qwen2_5_VLForConditionalGeneration"),
        (tiny_qwen2vl, Qwen2VLImageOnlyProcessor, "Qwen2VLForConditionalGeneration"),
    ):
        auto = AutoProcessor.from_pretrained(folder)
        assert type(auto) is cls  # not a bare tokenizer (transformers issue #48558)
        proc = load_processor(folder)
        assert type(proc) is cls and type(proc.image_processor) is Qwen2VLImageProcessorPil
        assert proc.tokenizer.convert_tokens_to_ids("<|image_pad|>") != proc.tokenizer.unk_token_id
        model = AutoModelForImageTextToText.from_pretrained(folder)
        assert type(model).__name__ == model_cls
        assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_chat_template_renders_images_and_tool_turns(tiny_qwen25vl: Path) -> None:
    from qprobe.backends.vlm.processor import load_processor

    proc = load_processor(tiny_qwen25vl)
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "sys"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "rate"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<tool_call>{}</tool_call>"}]},
        {"role": "user", "content": [{"type": "text", "text": "<tool_response>\n"}, {"type": "image"}, {"type": "text", "text": "</tool_response>"}]},
    ]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 2
    assert text.endswith("<|im_start|>assistant\n")
    imgs = [Image.new("RGB", (300, 200)), Image.new("RGB", (90, 60))]
    enc = proc(text=[text], images=imgs, return_tensors="pt")
    assert enc["image_grid_thw"].shape[0] == 2


@pytest.mark.parametrize("what", ["absent", "empty", "config_only", "missing_shard"])
def test_missing_or_incomplete_model_folder_is_a_clear_error(tmp_path: Path, tiny_qwen25vl: Path, what: str) -> None:
    folder = tmp_path / "model"
    if what == "empty":
        folder.mkdir()
    elif what == "config_only":
        folder.mkdir()
        shutil.copy(tiny_qwen25vl / "config.json", folder / "config.json")
    elif what == "missing_shard":
        shutil.copytree(tiny_qwen25vl, folder)
        index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(MissingWeightsError) as info:
        create_backend("transformers", model=str(folder))
    expected = {"absent": "does not exist", "empty": "no config.json", "config_only": "no weight files",
                "missing_shard": "model-00001-of-00002.safetensors"}[what]
    assert expected in str(info.value)


def test_backend_needs_a_model() -> None:
    from qprobe.errors import ConfigError

    with pytest.raises(ConfigError, match="--model"):
        create_backend("transformers")


def test_episode_forced_zoom_puts_the_full_resolution_crop_into_the_next_turn(tiny_qwen25vl: Path, tmp_path: Path) -> None:
    img = make_texture(720, 1280, seed=5)
    dump = tmp_path / "inputs"
    backend = create_backend("transformers", model=str(tiny_qwen25vl), max_new_tokens=12, max_errors=0, dump_inputs=dump)
    forced = Box(400, 300, 560, 420)
    a = backend.assess(img, forced_probes=[forced], seed=0)
    traj = a.trajectory
    assert traj is not None and traj.prompt_version.startswith("qprobe.probe/")
    assert traj.decoding["greedy"] is True and traj.decoding["family"] == "qwen2_5_vl"
    # a random model cannot answer: the failure is counted, never replaced by a score
    assert a.score is None and "no valid answer" in a.error and a.extra["parse_failures"] == 1
    eff = traj.probes[0]
    assert eff.contains(forced) and eff.width > forced.width  # context-aware enlargement
    turn = json.loads((dump / "episode00000" / "turn1.json").read_text())
    assert turn["images"] == ["turn1_image0.png", "turn1_image1.png"]
    crop = np.asarray(Image.open(dump / "episode00000" / "turn1_image1.png"))
    x1, y1, x2, y2 = eff.to_int()
    np.testing.assert_array_equal(crop, img[y1:y2, x1:x2])  # pixels of the original, not of the view
    # the forced zoom reads as the model's own call, in Qwen2.5-VL pixels of the resized overview
    forced_text = turn["messages"][2]["content"][0]["text"]
    view = Image.open(dump / "episode00000" / "turn1_image0.png").size
    frame = Frame("absolute", (1280, 720), backend.model_size(*view))
    assert parse_reply(forced_text).bbox == tuple(float(v) for v in to_model(forced, frame))
    assert turn["reply"] == traj.steps[-1].data["raw"]


def test_greedy_scores_repeat_and_batches_match_single_runs(tiny_qwen25vl: Path) -> None:
    imgs = [make_texture(300, 400, seed=s) for s in range(3)]
    backend = create_backend("transformers", model=str(tiny_qwen25vl), max_new_tokens=8, max_errors=0, batch_size=3)
    single = [backend.assess(i, forced_probes=[Box(10, 10, 120, 90)]) for i in imgs]
    batched = backend.assess_many(imgs, forced_probes=[Box(10, 10, 120, 90)])
    again = backend.assess_many(imgs, forced_probes=[Box(10, 10, 120, 90)])
    replies = lambda runs: [[s.data.get("raw") for s in a.trajectory.steps if s.kind == "error"] for a in runs]
    assert replies(batched) == replies(again)
    assert replies(batched) == replies(single)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_qwen2vl_and_qwen3vl_use_relative_coordinates(family: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    folder = request.getfixturevalue({"qwen2_vl": "tiny_qwen2vl", "qwen3_vl": "tiny_qwen3vl"}[family])
    img = make_texture(400, 800, seed=2)
    dump = tmp_path / "inputs"
    backend = create_backend("transformers", model=str(folder), max_new_tokens=6, max_errors=0, dump_inputs=dump)
    assert backend.convention == "relative1000"
    a = backend.assess(img, forced_probes=[Box(200, 100, 400, 300)])
    assert a.score is None and a.trajectory.decoding["family"] == family
    turn = json.loads((dump / "episode00000" / "turn1.json").read_text())
    assert parse_reply(turn["messages"][2]["content"][0]["text"]).bbox == (250, 250, 500, 750)
    assert "0 to 1000" in turn["messages"][0]["content"][0]["text"]


def test_expected_score_from_digit_logits(tiny_qwen25vl: Path) -> None:
    import torch

    from qprobe.backends.vlm.hf_engine import expected_score, score_digit_ids
    from qprobe.backends.vlm.processor import load_processor

    tok = load_processor(tiny_qwen25vl).tokenizer
    digits = score_digit_ids(tok)
    assert digits is not None
    text = '<answer>{"score": 3.5}</answer>'
    ids = tok.encode(text, add_special_tokens=False)
    k = next(i for i in range(len(ids)) if tok.decode(ids[: i + 1]).endswith('"score": 3'))
    logits = [torch.zeros(len(tok)) for _ in ids]
    logits[k][digits] = torch.log(torch.tensor([0.0, 0.0, 0.5, 0.5, 0.0]) + 1e-12)
    assert expected_score(tok, digits, ids, tok.decode(ids), logits) == pytest.approx(3.5, abs=1e-4)
    assert expected_score(tok, digits, ids[:3], tok.decode(ids[:3]), logits) is None


def test_cli_score_transformers_episode(tiny_qwen25vl: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qprobe.cli.main import app
    from qprobe.io import save_image

    img = make_texture(480, 640, seed=9)
    path = tmp_path / "photo.png"
    save_image(path, img)
    traj_file = tmp_path / "traj.jsonl"
    dump = tmp_path / "inputs"
    result = CliRunner().invoke(
        app,
        ["score", str(path), "--backend", "transformers", "--model", str(tiny_qwen25vl), "--json",
         "--probe", "100,100,228,196", "--trajectories", str(traj_file), "--dump-inputs", str(dump),
         "--max-pixels", "40000"],
    )
    assert result.exit_code == 1, result.output  # the random model never answers: counted as a failure
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["score"] is None and "no valid answer" in line["error"] and line["backend"] == "transformers"
    (traj,) = list(read_trajectories(traj_file))
    assert traj.decoding["max_pixels"] == 40000
    x1, y1, x2, y2 = traj.probes[0].to_int()
    crop = np.asarray(Image.open(dump / "episode00000" / "turn1_image1.png"))
    np.testing.assert_array_equal(crop, img[y1:y2, x1:x2])
