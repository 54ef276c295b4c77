"""Stage 2 — hybrid-resolution SFT on the flywheel's probing trajectories.

Every kept trajectory (:mod:`qprobe.train.flywheel`) is replayed into the
exact conversation the LLM backend builds at inference
(:mod:`qprobe.backends.vlm.messages`: system prompt with the zoom tool, the
global view, assistant tool calls, the full-resolution crops as tool
responses, the answer), with its images in order: multi-image, multi-turn
rows. The images are at the resolution the flywheel chose per episode, so
the model learns to probe at several scales. The loss covers the assistant
turns only (``assistant_only_loss``), end-of-turn token included.

Run: ``qprobe train stage2 --config configs/train/stage2_tiny.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe.errors import ConfigError
from qprobe.train._common import (
    CommonConfig,
    StageResult,
    finish,
    load_policy,
    load_processor,
    peft_config,
    resume_checkpoint,
    trainer_args,
    write_config,
)


@dataclass
class Stage2Config(CommonConfig):
    """Stage 2: SFT on flywheel trajectories."""

    data: str = field(default="", metadata={"help": "The flywheel's output folder (holds trajectories.jsonl)."})
    max_examples: int | None = field(default=None, metadata={"help": "Use at most this many trajectories."})
    assistant_only_loss: bool = field(default=True, metadata={"help": "Train on assistant turns only."})
    crop_max_pixels: int | None = field(default=None, metadata={"help": "Cap on each crop's pixels (the crop budget)."})
    max_length: int | None = field(default=None, metadata={"help": "Truncate rows to this many tokens (None: never)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Peak learning rate."})

    def check(self) -> None:
        self.check_common()
        if not (Path(self.data) / "trajectories.jsonl").is_file():
            raise ConfigError(f"{self.data!r} holds no trajectories.jsonl: run `qprobe train flywheel` first")


def sft_rows(data_dir: str | Path, processor: Any, convention: str, *, max_examples: int | None = None,
             crop_max_pixels: int | None = None) -> list[dict[str, Any]]:
    """``{"messages", "images"}`` rows replayed from the flywheel's kept trajectories."""
    from qprobe._fs import read_jsonl_tolerant
    from qprobe.backends.vlm.coords import Frame
    from qprobe.backends.vlm.messages import GlobalView, build_conversation, events_from_trajectory
    from qprobe.backends.vlm.processor import resized_size
    from qprobe.io import load_rgb
    from qprobe.types import Trajectory

    records = read_jsonl_tolerant(Path(data_dir) / "trajectories.jsonl")
    rows: list[dict[str, Any]] = []
    for rec in records[:max_examples]:
        if rec.get("trajectory") is None:
            continue
        traj = Trajectory.from_dict(rec["trajectory"])
        original = load_rgb(traj.image or rec["image"])
        events = events_from_trajectory(traj, original)
        view = next(ev.image for ev in events if isinstance(ev, GlobalView))
        frame = Frame(convention, traj.image_size, resized_size(processor, view.shape[1], view.shape[0]))
        budget = int(traj.meta.get("zoom_budget", 4))
        conv = build_conversation(events, frame, budget, crop_max_pixels=crop_max_pixels)
        rows.append({"messages": conv.messages, "images": conv.images, "id": rec["id"]})
    if not rows:
        raise ConfigError(f"{data_dir}: no usable trajectories (all rejected?); see its stats.json")
    return rows


def run_stage2(cfg: Stage2Config) -> StageResult:
    """Train Stage 2 and save the final policy under ``out_dir/final``."""
    cfg.check()  # before the heavy imports: a bad config fails in a second
    from qprobe.train.stage1 import box_convention

    processor = load_processor(cfg)
    rows = sft_rows(cfg.data, processor, box_convention(cfg.model), max_examples=cfg.max_examples,
                    crop_max_pixels=cfg.crop_max_pixels)
    return train_sft(cfg, [{k: v for k, v in r.items() if k != "id"} for r in rows], processor)


def train_sft(cfg: Stage2Config, rows: list[dict[str, Any]], processor: Any | None = None) -> StageResult:
    """SFT of ``cfg.model`` on ``{"messages", "images"}`` rows; the final policy goes to ``out_dir/final``.

    The trainer behind :func:`run_stage2`; also used for a format warm-up on
    rows built elsewhere (e.g. :mod:`qprobe.train.toy`). ``cfg.data`` is not read.
    """
    write_config(cfg)
    from trl import SFTConfig, SFTTrainer

    from qprobe.train.data import to_dataset
    from qprobe.train.templates import with_generation_markers

    processor = processor if processor is not None else load_processor(cfg)
    if cfg.assistant_only_loss:
        processor.chat_template = with_generation_markers(processor.chat_template)
    model = load_policy(cfg)
    dataset = to_dataset(rows)
    args = SFTConfig(
        **trainer_args(cfg),
        assistant_only_loss=cfg.assistant_only_loss,
        max_length=cfg.max_length,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config(cfg),
    )
    trainer.train(resume_from_checkpoint=resume_checkpoint(cfg))
    return finish(trainer, processor, cfg, {"examples": len(dataset)})
