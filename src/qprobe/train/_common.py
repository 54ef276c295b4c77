"""What the three stages share: the common config fields, model/processor
loading, LoRA, checkpoints and the result record.

Heavy imports (torch, transformers, peft, trl) happen inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qprobe.errors import ConfigError

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
"""LoRA targets: the language model's attention and MLP projections (the vision tower's are named differently)."""


@dataclass
class CommonConfig:
    """Fields every stage has. Stage configs extend this dataclass."""

    model: str = field(default="", metadata={"help": "Local checkpoint folder of the policy (e.g. Qwen2.5-VL-7B-Instruct)."})
    out_dir: str = field(default="runs/train", metadata={"help": "Output folder: checkpoints, final model, logs, resolved config."})
    seed: int = field(default=0, metadata={"help": "Seed of data order, sampling and initialisation."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; -1 = run num_train_epochs."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs when max_steps is -1."})
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak learning rate."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name (constant, cosine, linear)."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Rows (GRPO: completions) per device per micro-step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-steps per optimizer step."})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 mixed precision (GPU)."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for activation memory."})
    deepspeed: str | None = field(default=None, metadata={"help": "DeepSpeed JSON config (e.g. configs/train/deepspeed/zero3.json)."})
    freeze_vision: bool = field(default=True, metadata={"help": "Keep the vision tower frozen (full fine-tune of the LLM + merger)."})
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS), metadata={"help": "Module names that get adapters."}
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "A checkpoint folder, or 'auto' for the latest checkpoint-* in out_dir (none: start fresh)."},
    )
    save_steps: int = field(default=200, metadata={"help": "Save a checkpoint every N steps."})
    save_total_limit: int = field(default=3, metadata={"help": "Keep at most N checkpoints."})
    logging_steps: int = field(default=1, metadata={"help": "Log every N steps."})
    report_to: str = field(default="none", metadata={"help": "Experiment tracker (none, tensorboard, wandb, trackio)."})
    view_long_side: int = field(default=672, metadata={"help": "Long side of the global view given to the processor."})
    min_pixels: int | None = field(default=None, metadata={"help": "Processor min_pixels override (None: checkpoint's)."})
    max_pixels: int | None = field(default=None, metadata={"help": "Processor max_pixels override (None: checkpoint's)."})
    use_cpu: bool = field(default=False, metadata={"help": "Force CPU even when a GPU is present (tests)."})

    def check_common(self) -> None:
        if not self.model:
            raise ConfigError("set 'model' to a local checkpoint folder (e.g. --model /models/Qwen2.5-VL-7B-Instruct)")
        if not Path(self.model).is_dir():
            raise ConfigError(f"model folder not found: {self.model}")
        if self.deepspeed and not Path(self.deepspeed).is_file():
            raise ConfigError(f"deepspeed config not found: {self.deepspeed}")


@dataclass
class StageResult:
    """What a stage run leaves behind."""

    out_dir: Path
    final_dir: Path
    global_step: int
    log_history: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "final_dir": str(self.final_dir),
            "global_step": self.global_step,
            "stats": self.stats,
        }


def trainer_args(cfg: CommonConfig) -> dict[str, Any]:
    """Keyword arguments shared by ``GRPOConfig`` and ``SFTConfig``."""
    return {
        "output_dir": str(Path(cfg.out_dir) / "checkpoints"),
        "seed": cfg.seed,
        "max_steps": cfg.max_steps,
        "num_train_epochs": cfg.num_train_epochs,
        "learning_rate": cfg.learning_rate,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "warmup_steps": cfg.warmup_steps,
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "bf16": cfg.bf16,
        "activation_checkpointing": cfg.gradient_checkpointing,
        "deepspeed": cfg.deepspeed,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "logging_steps": cfg.logging_steps,
        "report_to": cfg.report_to,
        "use_cpu": cfg.use_cpu,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def load_processor(cfg: CommonConfig) -> Any:
    """The checkpoint's image-only processor (works without torchvision), with pixel overrides."""
    from qprobe.backends.vlm.processor import load_processor as _load

    processor = _load(cfg.model, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    if not hasattr(processor, "image_processor"):
        raise ConfigError(f"{cfg.model}: expected a multimodal processor, got {type(processor).__name__}")
    processor.tokenizer.padding_side = "left"
    return processor


def load_policy(cfg: CommonConfig) -> Any:
    """The policy model, with the vision tower frozen if asked (LoRA wraps it later, in the trainer)."""
    import torch
    from transformers import AutoModelForImageTextToText

    dtype = torch.bfloat16 if cfg.bf16 else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=dtype)
    if cfg.freeze_vision and not cfg.lora:
        visual = _find_visual(model)
        if visual is not None:
            for p in visual.parameters():
                p.requires_grad_(False)
    return model


def _find_visual(model: Any) -> Any:
    for owner in (model, getattr(model, "model", None)):
        if owner is not None and hasattr(owner, "visual"):
            return owner.visual
    return None


def peft_config(cfg: CommonConfig) -> Any:
    """A LoRA config for the language model, or ``None`` without ``lora``."""
    if not cfg.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules),
        task_type="CAUSAL_LM",
    )


def resume_checkpoint(cfg: CommonConfig) -> str | None:
    """The checkpoint to resume from: an explicit folder, the latest one for 'auto', or None."""
    value = cfg.resume_from_checkpoint
    if value is None:
        return None
    if value == "auto":
        from transformers.trainer_utils import get_last_checkpoint

        ckpt_dir = Path(cfg.out_dir) / "checkpoints"
        return get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if not Path(value).is_dir():
        raise ConfigError(f"resume_from_checkpoint: folder not found: {value}")
    return value


def finish(trainer: Any, processor: Any, cfg: CommonConfig, stats: dict[str, Any] | None = None) -> StageResult:
    """Save the final model + processor and the training log next to the resolved config."""
    from qprobe._fs import atomic_write_json

    out = Path(cfg.out_dir)
    final = out / "final"
    trainer.save_model(str(final))
    processor.save_pretrained(str(final))
    history = list(trainer.state.log_history)
    result = StageResult(out, final, int(trainer.state.global_step), history, dict(stats or {}))
    atomic_write_json(out / "log_history.json", history)
    atomic_write_json(out / "result.json", result.to_dict())
    return result


def write_config(cfg: Any) -> None:
    from qprobe.config import write_resolved

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out / "config.resolved.yaml")
