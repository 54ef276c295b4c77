"""The ``classic`` backend (default): CPU-only, weights shipped in the package.

Registration is light; torch is imported when the backend first scores.
"""

from __future__ import annotations

from typing import Any

from qprobe.backends import BACKENDS


@BACKENDS.register(
    "classic",
    needs_torch=True,
    deterministic=True,
    default=True,
    description="scan-guided zooms + MobileNetV2 regressor and defect detector (CPU)",
)
def create_classic(**overrides: Any) -> Any:
    from qprobe.backends.classic.backend import ClassicBackend

    return ClassicBackend(**overrides)
