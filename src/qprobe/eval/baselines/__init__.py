"""No-reference IQA baselines computed in the same run as any backend (no download).

A baseline is a Backend-like scorer: ``assess(image, *, path=None, ...) ->
Assessment``. Its native value (lower is better for NIQE, BRISQUE and PIQE)
is kept in ``Assessment.extra["raw"]``; ``Assessment.score`` is a fixed,
strictly monotone map of it onto 1–5 (higher is better; see
:class:`~qprobe.eval.baselines.base.Baseline`), so rank metrics are those of
the raw value and nothing is fitted on evaluation data.

    create_baseline("niqe").assess("photo.jpg").extra["raw"]
"""

from __future__ import annotations

from typing import Any

from qprobe.registry import Registry

BASELINES: Registry[Any] = Registry(
    "baseline", lazy_modules=tuple(f"qprobe.eval.baselines.{m}" for m in ("niqe", "brisque", "piqe"))
)


def list_baselines(pattern: str = "*") -> list[str]:
    return BASELINES.list(pattern)


def create_baseline(name: str, **overrides: Any) -> Any:
    return BASELINES.create(name, **overrides)


__all__ = ["BASELINES", "create_baseline", "list_baselines"]
