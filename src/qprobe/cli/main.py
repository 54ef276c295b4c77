"""Entry point of the ``qprobe`` command.

Each module listed in ``COMMAND_MODULES`` defines ``register(app)`` and adds
its commands; a module imports heavy dependencies only inside its command
functions, so ``qprobe --help`` stays fast and torch-free.
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES: tuple[str, ...] = ("ls", "score", "bench", "annotate", "eval", "train", "batch", "serve")

app = typer.Typer(
    name="qprobe",
    help="High-resolution image quality assessment by context-aware agentic probing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from qprobe import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
    ),
) -> None:
    """High-resolution image quality assessment by context-aware agentic probing."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"qprobe.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
