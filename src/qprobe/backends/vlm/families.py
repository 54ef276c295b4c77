"""Model families: what differs between Qwen2-VL, Qwen2.5-VL and Qwen3-VL.

A family is looked up from the checkpoint's ``config.json`` ``model_type``
(never from its folder name) and carries everything the backends need: the
box convention (:mod:`.coords`), the transformers classes and the vision
patch size. A new family is one more :func:`register_family` call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qprobe.errors import MissingWeightsError
from qprobe.registry import Registry


@dataclass(frozen=True)
class ModelFamily:
    name: str
    model_types: tuple[str, ...]
    box_convention: str
    model_class: str
    processor_base: str
    patch_size: int = 14
    merge_size: int = 2
    default_min_pixels: int = 56 * 56
    default_max_pixels: int = 28 * 28 * 1280

    @property
    def factor(self) -> int:
        """Resized sides are multiples of this many pixels."""
        return self.patch_size * self.merge_size


FAMILIES: Registry[ModelFamily] = Registry("model family")


def register_family(family: ModelFamily) -> ModelFamily:
    FAMILIES.add(family.name, family, box_convention=family.box_convention)
    return family


QWEN2_VL = register_family(
    ModelFamily(
        name="qwen2_vl",
        model_types=("qwen2_vl",),
        box_convention="relative1000",
        model_class="Qwen2VLForConditionalGeneration",
        processor_base="Qwen2VLProcessor",
    )
)
QWEN2_5_VL = register_family(
    ModelFamily(
        name="qwen2_5_vl",
        model_types=("qwen2_5_vl",),
        box_convention="absolute",
        model_class="Qwen2_5_VLForConditionalGeneration",
        processor_base="Qwen2_5_VLProcessor",
        default_min_pixels=3136,
        default_max_pixels=12845056,
    )
)
QWEN3_VL = register_family(
    ModelFamily(
        name="qwen3_vl",
        model_types=("qwen3_vl", "qwen3_vl_moe"),
        box_convention="relative1000",
        model_class="Qwen3VLForConditionalGeneration",
        processor_base="Qwen3VLProcessor",
        patch_size=16,
    )
)


def list_families(pattern: str = "*") -> list[str]:
    return FAMILIES.list(pattern)


def family_for_model_type(model_type: str) -> ModelFamily:
    for name in FAMILIES.list():
        fam = FAMILIES.get(name)
        if model_type in fam.model_types:
            return fam
    known = sorted(t for n in FAMILIES.list() for t in FAMILIES.get(n).model_types)
    raise MissingWeightsError(
        f"model_type {model_type!r} is not a supported multimodal family (supported: {', '.join(known)})"
    )


def read_model_config(model_dir: str | Path) -> dict:
    """``config.json`` of a local checkpoint, with errors that say what is missing."""
    root = Path(model_dir)
    if not root.exists():
        raise MissingWeightsError(
            f"model folder {root} does not exist; pass --model with the path of a local checkpoint "
            "(e.g. one downloaded with `huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct --local-dir DIR`)"
        )
    if not root.is_dir():
        raise MissingWeightsError(f"--model must be a checkpoint folder, got a file: {root}")
    cfg = root / "config.json"
    if not cfg.is_file():
        raise MissingWeightsError(f"{root} has no config.json: it is not a transformers checkpoint folder")
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MissingWeightsError(f"{cfg} is not valid JSON ({exc}); the download may be incomplete") from None
    return data


def check_checkpoint(model_dir: str | Path) -> ModelFamily:
    """Validate a local checkpoint folder and return its family.

    Checks config.json, the weight files (incl. every shard an index names),
    the tokenizer and the image-processor settings, so an incomplete download
    fails before minutes of model loading, with the missing file named.
    """
    root = Path(model_dir)
    data = read_model_config(root)
    family = family_for_model_type(str(data.get("model_type", "")))
    weights = sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin"))
    if not weights:
        raise MissingWeightsError(
            f"{root} has no weight files (*.safetensors or *.bin); the download is incomplete"
        )
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = root / index_name
        if index.is_file():
            shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
            missing = sorted(s for s in shards if not (root / s).is_file())
            if missing:
                raise MissingWeightsError(
                    f"{root} is missing weight shard(s) {missing} named in {index_name}; "
                    "the download is incomplete"
                )
    if not any((root / n).is_file() for n in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
        raise MissingWeightsError(f"{root} has no tokenizer files (tokenizer.json / vocab.json)")
    if not any((root / n).is_file() for n in ("preprocessor_config.json", "processor_config.json")):
        raise MissingWeightsError(
            f"{root} has no preprocessor_config.json or processor_config.json (image-processor settings)"
        )
    return family
