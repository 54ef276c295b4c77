"""Stage 3 — decoupled post-RL: multi-turn GRPO with the zoom tool.

Each rollout is a probing episode run by TRL's tool loop: the policy sees the
global view, may call ``zoom_in(bbox_2d)`` — served by :class:`ZoomToolEnv`,
which steps a :class:`~qprobe.agent.env.ProbeEnv` holding the
**full-resolution original**, so the crop returned into the next turn has
real pixels the global view lacks — and ends with an answer. Rewards:

* ``acc``  — R_acc, |score − MOS| < tau (Q-Insight), or its smooth variant;
* ``loc``  — R_loc, Hungarian IoU matching of defect boxes (empty on clean = 1);
* ``fmt``  — R_format, the whole trajectory parses.

"Decoupled": each reward's advantage is normalised within the group of
``num_generations`` rollouts separately, then weighted and summed
(:mod:`qprobe.train.advantages`), via TRL's documented
``multi_objective_aggregation="normalize_then_sum"``.

Run: ``qprobe train stage3 --config configs/train/stage3_tiny.yaml``.
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
    write_config,
)
from qprobe.train.stage1 import GRPOOptions, check_rewards

AGGREGATIONS = ("normalize_then_sum", "sum_then_normalize")


@dataclass
class Stage3Config(GRPOOptions, CommonConfig):
    """Stage 3: multi-turn GRPO with the zoom tool and decoupled rewards."""

    manifest: str = field(default="", metadata={"help": "Benchmark manifest with mos and defect boxes."})
    split: str | None = field(default="train", metadata={"help": "Manifest split (None: all rows)."})
    max_images: int | None = field(default=None, metadata={"help": "Use at most this many images (seeded choice)."})
    rewards: list[str] = field(default_factory=lambda: ["acc", "loc", "fmt"], metadata={"help": "Reward names."})
    reward_weights: list[float] | None = field(
        default_factory=lambda: [1.0, 1.0, 0.5], metadata={"help": "One weight per reward."}
    )
    aggregation: str = field(
        default="normalize_then_sum",
        metadata={"help": "normalize_then_sum = decoupled advantages; sum_then_normalize = GRPO's default."},
    )
    acc_tau: float = field(default=0.35, metadata={"help": "R_acc threshold on the 1-5 scale."})
    acc_mode: str = field(default="hard", metadata={"help": "R_acc: 'hard' (0/1) or 'smooth' (Gaussian)."})
    max_zooms: int = field(default=4, metadata={"help": "Zoom budget per episode (tool calls per rollout)."})
    context_factor: float = field(default=1.5, metadata={"help": "Context-aware enlargement of each zoom box."})
    crop_max_pixels: int | None = field(default=None, metadata={"help": "Cap on each crop's pixels."})
    max_completion_length: int = field(default=1024, metadata={"help": "Token budget of all turns of a rollout."})
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak learning rate."})

    def check(self) -> None:
        self.check_common()
        if not Path(self.manifest).is_file():
            raise ConfigError(f"manifest not found: {self.manifest!r} (set --manifest)")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if self.max_zooms < 1:
            raise ConfigError("stage 3 trains the zoom tool: max_zooms must be >= 1")
        check_rewards(self.rewards, self.reward_weights)


class ZoomToolEnv:
    """The zoom tool of one rollout, for TRL's ``environment_factory``.

    ``reset`` receives the dataset row and opens the full-resolution original
    in a :class:`~qprobe.agent.env.ProbeEnv`; ``zoom_in`` converts the
    model's box to original pixels, steps the env (context-aware
    enlargement, clamping, budget) and returns the crop. Every public method
    is a tool for TRL, so helpers are private.
    """

    def __init__(self, max_zooms: int, context_factor: float = 1.5, crop_max_pixels: int | None = None) -> None:
        from qprobe.agent.cropping import CropConfig
        from qprobe.agent.env import EnvConfig, ProbeEnv

        self._env = ProbeEnv(EnvConfig(max_zooms=max_zooms, crop=CropConfig(context_factor=context_factor)))
        self._crop_max_pixels = crop_max_pixels
        self._frame: Any = None
        self.crops: list[tuple[Any, Any]] = []
        """``(effective box in original pixels, crop pixels)`` of every zoom served in this rollout."""

    @property
    def image_path(self) -> str:
        """The full-resolution original of the current rollout."""
        return self._env.trajectory.image

    def reset(self, **row: Any) -> None:
        from qprobe.backends.vlm.coords import Frame

        self._env.reset(row["path"], path=row["path"])
        w, h = int(row["width"]), int(row["height"])
        self._frame = Frame(str(row.get("box_convention") or "absolute"), (w, h),
                            (int(row["view_width"]), int(row["view_height"])))
        self.crops = []

    def zoom_in(self, bbox_2d: list[float]) -> list:
        """Zoom into a region of the image to see it at full resolution.

        Args:
            bbox_2d: The region as [x1, y1, x2, y2] in the overview's coordinates.

        Returns:
            The region, slightly enlarged to show its surroundings, cut from the full-resolution original.
        """
        from PIL import Image

        from qprobe.agent import prompts
        from qprobe.agent.actions import Zoom
        from qprobe.backends.vlm.coords import from_model, to_model
        from qprobe.backends.vlm.messages import fit_pixels

        if self._frame is None:
            raise RuntimeError("zoom_in before reset")
        box = from_model(bbox_2d, self._frame)  # ValueError -> TRL shows the model the error
        obs, _ = self._env.step(Zoom(box))
        if obs.kind != "crop" or obs.image is None or obs.box is None:
            raise ValueError(obs.message or "zoom refused")
        self.crops.append((obs.box, obs.image))
        crop = fit_pixels(Image.fromarray(obs.image), self._crop_max_pixels)
        _, tail = prompts.crop_text(to_model(obs.box, self._frame), (obs.image.shape[1], obs.image.shape[0]),
                                       obs.zooms_left)
        text = tail.split("</tool_response>")[0].strip()
        return [{"type": "image", "image": crop}, {"type": "text", "text": text}]


def _ensure_tool_parsing(processor: Any) -> None:
    """Teach the tokenizer to split ``<tool_call>`` JSON out of replies (Hermes format, as Qwen3's)."""
    from trl.chat_template_utils import qwen3_template

    tok = processor.tokenizer
    if getattr(tok, "response_template", None) is None and getattr(tok, "response_schema", None) is None:
        tok.response_template = qwen3_template


def build_dataset(cfg: Stage3Config, processor: Any) -> Any:
    from qprobe.train.data import ViewSpec, grpo_rows, processor_view_size, to_dataset
    from qprobe.train.stage1 import box_convention, probe_prompt, select_rows

    rows = select_rows(cfg.manifest, cfg.split, cfg.max_images, cfg.seed)
    data = grpo_rows(
        rows,
        cfg.manifest,
        probe_prompt(cfg.model, max_zooms=cfg.max_zooms),
        view=ViewSpec(cfg.view_long_side, Path(cfg.out_dir) / "views"),
        view_size=processor_view_size(processor),
        seed=cfg.seed,
        box_convention=box_convention(cfg.model),
    )
    return to_dataset(data)


def build_stage3_trainer(cfg: Stage3Config) -> tuple[Any, Any]:
    """The configured ``GRPOTrainer`` (and processor), ready to ``train()``."""
    cfg.check()  # before the heavy imports: a bad config fails in a second
    write_config(cfg)
    from trl import GRPOTrainer

    from qprobe.train.stage1 import grpo_config, reward_funcs

    processor = load_processor(cfg)
    _ensure_tool_parsing(processor)
    model = load_policy(cfg)
    dataset = build_dataset(cfg, processor)
    funcs = reward_funcs(cfg.rewards, {"acc": {"tau": cfg.acc_tau, "mode": cfg.acc_mode}})
    args = grpo_config(
        cfg, cfg, model, multi_objective_aggregation=cfg.aggregation, max_tool_calling_iterations=cfg.max_zooms
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config(cfg),
        environment_factory=lambda: ZoomToolEnv(cfg.max_zooms, cfg.context_factor, cfg.crop_max_pixels),
    )
    return trainer, processor


def run_stage3(cfg: Stage3Config) -> StageResult:
    """Train Stage 3 and save the final policy under ``out_dir/final``."""
    trainer, processor = build_stage3_trainer(cfg)
    trainer.train(resume_from_checkpoint=resume_checkpoint(cfg))
    return finish(trainer, processor, cfg, {"images": len(trainer.train_dataset)})
