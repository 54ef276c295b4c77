"""``qprobe train ...``: the training commands, grouped under one sub-app.

Each module in ``TRAIN_MODULES`` defines ``register(train_app)``.
"""

from __future__ import annotations

import importlib

import typer

TRAIN_MODULES: tuple[str, ...] = ("train_classic", "train_stages")

train_app = typer.Typer(help="Train the classic scorer and the VLM prober (stages 1–3).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for name in TRAIN_MODULES:
        importlib.import_module(f"qprobe.cli.{name}").register(train_app)
    app.add_typer(train_app, name="train")
