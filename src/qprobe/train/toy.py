"""A toy task that a tiny model can learn on CPU: score = brightness level.

It checks that the training code *learns*, not only that it runs: images
are textured fields whose mean brightness sets the label (MOS 1–5). The
recipe mirrors the real pipeline at toy scale:

1. a **format warm-up** (the Stage-2 SFT trainer) in which every training
   image is answered once with *each* score 1–5 — the model learns to write
   ``<answer>{"score": …}</answer>`` and a spread of scores, but nothing
   about quality (a pretrained instruct model starts here);
2. **Stage 1** rank-GRPO on the training images, with the Stage-1 prompt
   kind ``prompt`` (``score_only`` by default: one short scoring turn);
3. before/after: mean ranking reward of the first vs last steps and SRCC of
   the sampled-mean score on held-out images.

Used by ``benchmarks/learn_toy.py`` and the slow test tier.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qprobe.manifest import ManifestRow, write_manifest


def toy_pixels(level: float, size: tuple[int, int], seed: int) -> np.ndarray:
    """A textured RGB image whose mean brightness grows with ``level`` in [0, 1]."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tex = 14.0 * np.sin(xx / (4.0 + seed % 3) + seed) * np.cos(yy / 6.0)
    img = 25.0 + 200.0 * level + tex[..., None] + rng.normal(0, 4.0, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_toy_set(root: Path, n: int, seed: int, split: str, size: tuple[int, int] = (112, 84)) -> Path:
    """``n`` toy images with MOS = 1 + 4·level (level uniform in [0, 1]); returns the manifest."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        level = rng.random()
        name = f"{split}{i:04d}.png"
        Image.fromarray(toy_pixels(level, size, seed * 10_000 + i)).save(root / name)
        rows.append(ManifestRow(id=f"{split}{i:04d}", path=name, dataset="toy", split=split, width=size[0],
                                height=size[1], mos=round(1.0 + 4.0 * level, 4), mos_std=0.25,
                                extra={"kind": "clean"}))
    manifest = root / f"{split}.jsonl"
    write_manifest(manifest, rows)
    return manifest


def with_image(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` (string contents) with list contents and the image in front of the last user text."""
    out = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in messages]
    out[-1]["content"].insert(0, {"type": "image"})
    return out


def warmup_rows(manifest: Path, model_dir: Path, prompt: str, view_long_side: int,
                scores: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[dict[str, Any]]:
    """Format warm-up SFT rows: every image answered once with *each* of ``scores``.

    The answers carry no information about the image (each image gets the
    same set of scores), so the warm-up teaches the answer format and a
    spread of scores for GRPO to choose from, and nothing about quality.
    """
    from PIL import Image

    from qprobe.agent.actions import Answer
    from qprobe.agent.env import global_view
    from qprobe.agent.parsing import format_action
    from qprobe.backends.vlm.coords import Frame
    from qprobe.backends.vlm.processor import load_processor, resized_size
    from qprobe.io import load_rgb
    from qprobe.manifest import read_manifest, resolve_path
    from qprobe.train.stage1 import box_convention, stage1_prompt

    processor = load_processor(model_dir)
    make_prompt = stage1_prompt(prompt, str(model_dir))
    convention = box_convention(str(model_dir))
    rows = []
    for row in read_manifest(manifest):
        view, _ = global_view(load_rgb(resolve_path(row, manifest)), view_long_side)
        image = Image.fromarray(view)
        size = resized_size(processor, *image.size)
        frame = Frame(convention, (row.width, row.height), size)
        messages = with_image(make_prompt((row.width, row.height), size))
        for score in scores:
            answer = {"role": "assistant", "content": [{"type": "text", "text": format_action(Answer(float(score)), frame)}]}
            rows.append({"messages": [*messages, answer], "images": [image]})
    random.Random(0).shuffle(rows)
    return rows


def evaluate(model_dir: Path, manifest: Path, *, samples: int = 4, view_long_side: int = 112, seed: int = 0,
             max_new_tokens: int = 40, temperature: float = 0.5, prompt: str = "score_only") -> dict[str, float]:
    """SRCC (vs MOS) of the mean of ``samples`` sampled scores per image, and the parse rate."""
    import torch
    from PIL import Image
    from scipy.stats import spearmanr
    from transformers import AutoModelForImageTextToText

    from qprobe.agent.env import global_view
    from qprobe.backends.vlm.processor import load_processor, resized_size
    from qprobe.io import load_rgb
    from qprobe.manifest import read_manifest, resolve_path
    from qprobe.train.rewards._completion import final_score
    from qprobe.train.stage1 import stage1_prompt, vision_token_ids

    torch.manual_seed(seed)
    processor = load_processor(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir)).eval()
    make_prompt = stage1_prompt(prompt, str(model_dir))
    means, labels, parsed, total = [], [], 0, 0
    for row in read_manifest(manifest):
        view, _ = global_view(load_rgb(resolve_path(row, manifest)), view_long_side)
        image = Image.fromarray(view)
        messages = with_image(make_prompt((row.width, row.height), resized_size(processor, *image.size)))
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(images=[image], text=[text], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=True, temperature=temperature, max_new_tokens=max_new_tokens,
                                 num_return_sequences=samples, suppress_tokens=vision_token_ids(model))
        replies = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=False)
        scores = [s for s in (final_score(r) for r in replies) if s is not None]
        total += len(replies)
        parsed += len(scores)
        if scores:
            means.append(float(np.mean(scores)))
            labels.append(float(row.mos))  # type: ignore[arg-type]
    srcc = float(spearmanr(means, labels).statistic) if len(means) > 2 and np.std(means) > 0 else 0.0
    return {"srcc": round(srcc, 4), "parse_rate": round(parsed / max(1, total), 4), "images": float(len(labels))}


@dataclass
class ToyResult:
    before: dict[str, float]
    after: dict[str, float]
    reward_first: float
    reward_last: float
    steps: int
    seconds: dict[str, float]
    cpu_seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "reward_first": self.reward_first,
                "reward_last": self.reward_last, "steps": self.steps, "seconds": self.seconds,
                "cpu_seconds": self.cpu_seconds}


class _Clock:
    """Wall and CPU (process) seconds per phase: the machine may be shared, CPU time is what the task costs."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t, self._c = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        t, c = time.perf_counter(), time.process_time()
        self.wall[name], self.cpu[name] = round(t - self._t, 1), round(c - self._c, 1)
        self._t, self._c = t, c


def learn_toy(work: Path, *, train_images: int = 48, test_images: int = 48, warmup_steps: int = 150,
              rl_steps: int = 200, learning_rate: float = 5e-4, temperature: float = 0.7,
              eval_temperature: float = 0.7, num_generations: int = 8, images_per_group: int = 4,
              eval_samples: int = 8, beta: float = 0.0, scale_rewards: str = "none", prompt: str = "score_only",
              image_size: int = 112, seed: int = 0, window: int = 25) -> ToyResult:
    """Warm-up, then Stage 1; before/after held-out SRCC and first/last mean rank reward.

    ``temperature`` is the sampling temperature of the GRPO rollouts and
    ``eval_temperature`` that of the evaluation samples. ``scale_rewards``
    is TRL's advantage scaling: ``none`` (Dr. GRPO) keeps groups whose
    samples nearly tie from being blown up into noise. ``prompt`` is the Stage-1 prompt kind (see
    :class:`qprobe.train.stage1.Stage1Config`); ``image_size`` the long side
    of the toy images and of the global view.
    """
    from qprobe.testing.tiny_vlm import build_tiny_qwen25vl
    from qprobe.train.stage1 import Stage1Config, run_stage1
    from qprobe.train.stage2 import Stage2Config, train_sft

    clock = _Clock()
    size = (image_size, image_size * 3 // 4)
    base = build_tiny_qwen25vl(work / "tiny", seed=seed)
    train = make_toy_set(work / "data", train_images, seed + 1, "train", size)
    test = make_toy_set(work / "data", test_images, seed + 2, "test", size)
    rows = warmup_rows(train, base, prompt, image_size)
    warm = train_sft(Stage2Config(model=str(base), data="", out_dir=str(work / "warmup"), max_steps=warmup_steps,
                                  per_device_train_batch_size=8, learning_rate=2e-3, use_cpu=True, save_steps=10_000,
                                  logging_steps=10, view_long_side=image_size, seed=seed), rows)
    clock.lap("warmup")
    before = evaluate(warm.final_dir, test, samples=eval_samples, seed=seed, temperature=eval_temperature,
                      prompt=prompt, view_long_side=image_size)
    clock.lap("eval_before")
    rl = run_stage1(Stage1Config(model=str(warm.final_dir), manifest=str(train), out_dir=str(work / "stage1"),
                                 max_steps=rl_steps, per_device_train_batch_size=num_generations * images_per_group,
                                 num_generations=num_generations, images_per_group=images_per_group,
                                 max_completion_length=32 if prompt == "score_only" else 48,
                                 learning_rate=learning_rate, use_cpu=True, save_steps=10_000,
                                 view_long_side=image_size, seed=seed, temperature=temperature, beta=beta,
                                 scale_rewards=scale_rewards, prompt=prompt, num_train_epochs=100.0))
    clock.lap("stage1")
    after = evaluate(rl.final_dir, test, samples=eval_samples, seed=seed, temperature=eval_temperature,
                     prompt=prompt, view_long_side=image_size)
    clock.lap("eval_after")
    rewards = [h["rewards/rank_reward/mean"] for h in rl.log_history if "rewards/rank_reward/mean" in h]
    k = min(window, max(1, len(rewards) // 2))
    return ToyResult(before, after, round(float(np.mean(rewards[:k])), 4), round(float(np.mean(rewards[-k:])), 4),
                     rl.global_step, clock.wall, clock.cpu)
