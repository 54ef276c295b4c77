"""``qprobe ls KIND``: list what is registered (backends, degradations, datasets, ...)."""

from __future__ import annotations

import importlib

import typer

# kind -> (module, list function)
KINDS: dict[str, tuple[str, str]] = {}


def add_kind(kind: str, module: str, func: str) -> None:
    KINDS[kind] = (module, func)


add_kind("backends", "qprobe.backends", "list_backends")
add_kind("degradations", "qprobe.bench.degradations", "list_degradations")
add_kind("annotators", "qprobe.bench.labels", "list_annotators")
add_kind("datasets", "qprobe.eval.datasets", "list_datasets")
add_kind("metrics", "qprobe.eval.metrics", "list_metrics")
add_kind("baselines", "qprobe.eval.baselines", "list_baselines")
add_kind("rewards", "qprobe.train.rewards", "list_rewards")


def register(app: typer.Typer) -> None:
    @app.command("ls")
    def ls(
        kind: str = typer.Argument(..., help=f"What to list: one of {', '.join(KINDS)}."),
        pattern: str = typer.Argument("*", help="Glob pattern on names, e.g. '*blur*'."),
    ) -> None:
        """List registered components of one KIND, optionally filtered by a glob PATTERN."""
        if kind not in KINDS:
            typer.echo(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}", err=True)
            raise typer.Exit(2)
        module, func = KINDS[kind]
        try:
            lister = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            typer.echo(f"{kind}: not available ({exc})", err=True)
            raise typer.Exit(1)
        for name in lister(pattern):
            typer.echo(name)
