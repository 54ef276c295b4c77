"""Stage 1 — perception alignment: GRPO with the Thurstone ranking reward.

The policy sees the global view of an image and answers with a score (no
zoom budget). For each image the trainer samples ``num_generations``
answers; the ranking reward (:mod:`qprobe.train.rewards.rank`) compares each
sample with the other images of its group (same dataset). Groups come from
the data builder and are kept whole in every generation batch by keeping
the dataset order (``shuffle_dataset=False``; the builder already shuffled).

Run: ``qprobe train stage1 --config configs/train/stage1_tiny.yaml``.
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
class GRPOOptions:
    """GRPO fields shared by Stage 1 and Stage 3."""

    num_generations: int = field(default=4, metadata={"help": "Samples per image (the GRPO group size G)."})
    max_completion_length: int = field(default=256, metadata={"help": "Token budget of a completion (all turns)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of rollouts."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling of rollouts."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient to the reference model (0: no reference)."})
    epsilon: float = field(default=0.2, metadata={"help": "PPO clip range."})
    num_iterations: int = field(default=1, metadata={"help": "Policy updates per generation batch (mu)."})
    loss_type: str = field(default="dapo", metadata={"help": "TRL loss aggregation (grpo, dapo, dr_grpo, bnpo)."})
    scale_rewards: str = field(
        default="group",
        metadata={"help": "Advantage scaling: 'group' (divide by the group's reward std, GRPO), 'batch', or 'none' "
                          "(mean-centred only, Dr. GRPO: near-tied groups are not blown up into noise)."},
    )
    rewards: list[str] = field(default_factory=lambda: ["rank"], metadata={"help": "Reward names (qprobe ls rewards)."})
    reward_weights: list[float] | None = field(default=None, metadata={"help": "One weight per reward (default: all 1)."})


@dataclass
class Stage1Config(GRPOOptions, CommonConfig):
    """Stage 1: rank-GRPO on labelled images."""

    manifest: str = field(default="", metadata={"help": "Dataset manifest (JSONL) with mos (and mos_std for target=prob)."})
    split: str | None = field(default="train", metadata={"help": "Manifest split to train on (None: all rows)."})
    max_images: int | None = field(default=None, metadata={"help": "Use at most this many images (seeded choice)."})
    images_per_group: int = field(default=4, metadata={"help": "Images compared with each other by the ranking reward."})
    target: str = field(default="order", metadata={"help": "Thurstone target: 'order' (MOS order) or 'prob' (MOS + std)."})
    rank_eps: float = field(default=1e-6, metadata={"help": "Epsilon inside the fidelity square roots."})
    prompt: str = field(
        default="probe",
        metadata={
            "help": "Prompt of the rollouts: 'probe' (the agent's system prompt with the zoom tool, zoom budget 0: "
            "the conversation Stage 2/3 and inference use) or 'score_only' (one short user turn asking for the "
            "score: the plain scoring task of the paper's Stage 1, and few enough tokens that a small model's "
            "visual tokens are not drowned)."
        },
    )
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak learning rate."})

    def check(self) -> None:
        self.check_common()
        if not Path(self.manifest).is_file():
            raise ConfigError(f"manifest not found: {self.manifest!r} (set --manifest)")
        if self.target not in ("order", "prob"):
            raise ConfigError(f"target must be 'order' or 'prob', got {self.target!r}")
        if self.prompt not in STAGE1_PROMPTS:
            raise ConfigError(f"prompt must be one of {STAGE1_PROMPTS}, got {self.prompt!r}")
        prompts_per_batch, rem = divmod(
            self.per_device_train_batch_size * self.gradient_accumulation_steps, self.num_generations
        )
        if rem or prompts_per_batch % self.images_per_group:
            raise ConfigError(
                "a generation batch must hold whole ranking groups: per_device_train_batch_size * "
                f"gradient_accumulation_steps ({self.per_device_train_batch_size * self.gradient_accumulation_steps}) "
                f"must be a multiple of num_generations * images_per_group "
                f"({self.num_generations} * {self.images_per_group})"
            )
        check_rewards(self.rewards, self.reward_weights)


def check_rewards(names: list[str], weights: list[float] | None) -> None:
    from qprobe.train.rewards import list_rewards

    known = list_rewards()
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ConfigError(f"unknown or no reward(s) {bad}; known rewards: {known}")
    if weights is not None and len(weights) != len(names):
        raise ConfigError(f"{len(names)} rewards but {len(weights)} reward_weights")


def vision_token_ids(model: Any) -> list[int]:
    """Vision placeholder tokens, suppressed in sampling (a sampled one breaks the rope index)."""
    cfg = model.config
    names = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    return sorted({int(getattr(cfg, n)) for n in names if getattr(cfg, n, None) is not None})


def grpo_config(cfg: CommonConfig, opts: GRPOOptions, model: Any, **extra: Any) -> Any:
    """A TRL ``GRPOConfig`` from a stage config."""
    from trl import GRPOConfig

    return GRPOConfig(
        **trainer_args(cfg),
        num_generations=opts.num_generations,
        max_completion_length=opts.max_completion_length,
        temperature=opts.temperature,
        top_p=opts.top_p,
        beta=opts.beta,
        epsilon=opts.epsilon,
        num_iterations=opts.num_iterations,
        loss_type=opts.loss_type,
        scale_rewards=opts.scale_rewards,
        reward_weights=opts.reward_weights,
        shuffle_dataset=False,
        remove_unused_columns=False,
        generation_kwargs={"suppress_tokens": vision_token_ids(model)},
        **extra,
    )


def probe_prompt(model_dir: str, max_zooms: int) -> Any:
    """``(original size, view size) -> [system, user]`` messages with the versioned probing prompts."""
    from qprobe.agent import prompts
    from qprobe.backends.vlm.coords import Frame
    from qprobe.backends.vlm.families import check_checkpoint

    convention = check_checkpoint(model_dir).box_convention

    def make(original: tuple[int, int], view: tuple[int, int]) -> list[dict[str, Any]]:
        frame = Frame(convention, original, view)
        return [
            {"role": "system", "content": prompts.system_prompt(frame.describe(), max_zooms)},
            {"role": "user", "content": prompts.overview_text(*original)},
        ]

    return make


STAGE1_PROMPTS = ("probe", "score_only")

SCORE_ONLY_TEXT = (
    "Rate the overall quality of this image from 1 (bad) to 5 (excellent). "
    'Reply with <answer>{"score": S}</answer> only.'
)
"""The user text of the ``score_only`` Stage-1 prompt (shown after the image)."""


def score_only_prompt() -> Any:
    """``(original size, view size) -> [user]``: the short scoring prompt (no system prompt, no tool)."""

    def make(original: tuple[int, int], view: tuple[int, int]) -> list[dict[str, Any]]:
        return [{"role": "user", "content": SCORE_ONLY_TEXT}]

    return make


def stage1_prompt(kind: str, model_dir: str) -> Any:
    """The prompt function of a Stage-1 ``prompt`` kind (see :class:`Stage1Config`)."""
    if kind == "probe":
        return probe_prompt(model_dir, max_zooms=0)
    if kind == "score_only":
        return score_only_prompt()
    raise ConfigError(f"prompt must be one of {STAGE1_PROMPTS}, got {kind!r}")


def box_convention(model_dir: str) -> str:
    from qprobe.backends.vlm.families import check_checkpoint

    return check_checkpoint(model_dir).box_convention


def select_rows(manifest: str, split: str | None, max_images: int | None, seed: int, need_mos: bool = True) -> list:
    """Manifest rows of ``split`` with a MOS, at most ``max_images`` (a seeded choice)."""
    import random

    from qprobe.manifest import read_manifest

    rows = [r for r in read_manifest(manifest) if split is None or r.split == split]
    if need_mos:
        rows = [r for r in rows if r.mos is not None]
    if not rows:
        raise ConfigError(f"{manifest}: no labelled rows in split {split!r}")
    if max_images is not None and len(rows) > max_images:
        rows = sorted(random.Random(seed).sample(rows, max_images), key=lambda r: r.id)
    return rows


def build_dataset(cfg: Stage1Config, processor: Any) -> Any:
    from qprobe.train.data import ViewSpec, grpo_rows, processor_view_size, to_dataset

    rows = select_rows(cfg.manifest, cfg.split, cfg.max_images, cfg.seed)
    data = grpo_rows(
        rows,
        cfg.manifest,
        stage1_prompt(cfg.prompt, cfg.model),
        view=ViewSpec(cfg.view_long_side, Path(cfg.out_dir) / "views"),
        view_size=processor_view_size(processor),
        images_per_group=cfg.images_per_group,
        seed=cfg.seed,
        box_convention=box_convention(cfg.model),
    )
    return to_dataset(data)


def reward_funcs(names: list[str], options: dict[str, dict[str, Any]]) -> list[Any]:
    from qprobe.train.rewards import create_reward

    return [create_reward(n, **options.get(n, {})) for n in names]


def build_stage1_trainer(cfg: Stage1Config) -> tuple[Any, Any]:
    """The configured ``GRPOTrainer`` (and processor), ready to ``train()``."""
    cfg.check()  # before the heavy imports: a bad config fails in a second
    write_config(cfg)
    from trl import GRPOTrainer

    processor = load_processor(cfg)
    model = load_policy(cfg)
    dataset = build_dataset(cfg, processor)
    funcs = reward_funcs(cfg.rewards, {"rank": {"target": cfg.target, "eps": cfg.rank_eps}})
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=grpo_config(cfg, cfg, model),
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config(cfg),
    )
    return trainer, processor


def run_stage1(cfg: Stage1Config) -> StageResult:
    """Train Stage 1 and save the final policy under ``out_dir/final``."""
    trainer, processor = build_stage1_trainer(cfg)
    trainer.train(resume_from_checkpoint=resume_checkpoint(cfg))
    return finish(trainer, processor, cfg, {"images": len(trainer.train_dataset)})
