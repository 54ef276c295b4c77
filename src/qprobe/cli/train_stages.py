"""``qprobe train stage1|flywheel|stage2|stage3``: the VLM prober's training stages.

Each command reads a YAML recipe (``--config configs/train/*.yaml``) and lets
any field of the stage's config dataclass be overridden by a flag of the
same name (``--max-steps 2 --lora --model DIR``); ``--help`` lists them with
their help text. The resolved config is written into the output folder.
Heavy libraries load only when a command runs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Callable
from typing import Any

import typer

# command -> (module, config class, run function, one-line help)
STAGES: dict[str, tuple[str, str, str, str]] = {
    "stage1": ("qprobe.train.stage1", "Stage1Config", "run_stage1",
               "Stage 1: perception alignment, GRPO with the Thurstone ranking reward."),
    "flywheel": ("qprobe.train.flywheel", "FlywheelConfig", "run_flywheel",
                 "Data flywheel: teacher trajectories at mixed resolutions, filtered into an SFT set."),
    "stage2": ("qprobe.train.stage2", "Stage2Config", "run_stage2",
               "Stage 2: hybrid-resolution SFT on the flywheel's probing trajectories."),
    "stage3": ("qprobe.train.stage3", "Stage3Config", "run_stage3",
               "Stage 3: multi-turn GRPO with the zoom tool and decoupled R_acc/R_loc/R_format."),
}


def _option_type(annotation: Any) -> tuple[Any, bool]:
    """(typer-compatible type, is_json) of a dataclass field annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    origin = typing.get_origin(annotation)
    if origin is list:
        inner = typing.get_args(annotation)[0]
        return list[inner], False  # type: ignore[valid-type]
    if origin is dict or annotation is dict:
        return str, True
    if annotation in (int, float, str, bool):
        return annotation, False
    return str, False


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any, bool]]:
    hints = typing.get_type_hints(cls)
    return [(f, *_option_type(hints[f.name])) for f in dataclasses.fields(cls)]


def _make_command(name: str, module: str, cls_name: str, run_name: str) -> Callable[..., None]:
    import importlib

    cls = getattr(importlib.import_module(module), cls_name)
    fields = _fields(cls)

    def command(**kwargs: Any) -> None:
        from qprobe.config import load_config
        from qprobe.errors import QProbeError

        config_path = kwargs.pop("config")
        overrides: dict[str, Any] = {}
        for f, _, is_json in fields:
            value = kwargs.get(f.name)
            if value is None or (isinstance(value, list) and not value):
                continue
            overrides[f.name] = json.loads(value) if is_json else value
        try:
            cfg = load_config(cls, config_path, overrides)
            run = getattr(importlib.import_module(module), run_name)
            result = run(cfg)
        except (QProbeError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        summary = result if isinstance(result, dict) else result.to_dict()
        typer.echo(json.dumps(summary, indent=2, default=str))

    params = [
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                          default=typer.Option(None, "--config", "-c", help="YAML recipe (configs/train/*.yaml)."))
    ]
    for f, typ, is_json in fields:
        flag = "--" + f.name.replace("_", "-")
        help_text = str(f.metadata.get("help", "")) + (" (JSON object)" if is_json else "")
        decls = [f"{flag}/--no-{flag[2:]}"] if typ is bool else [flag]
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=typ | None,
                                        default=typer.Option(None, *decls, help=help_text, show_default=False)))
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = name
    return command


def register(train_app: typer.Typer) -> None:
    for name, (module, cls_name, run_name, help_text) in STAGES.items():
        train_app.command(name, help=help_text)(_make_command(name, module, cls_name, run_name))
