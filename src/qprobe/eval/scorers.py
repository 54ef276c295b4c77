"""One factory for everything that scores images: baselines and backends.

``create_scorer("niqe")`` builds a baseline; any other name goes to
:func:`qprobe.backends.create_backend` (``"classic"``, ``"dummy"``, ...).
A scorer has ``name`` and ``assess(image, *, path=None, forced_probes=None,
max_zooms=None, seed=None) -> Assessment``.
"""

from __future__ import annotations

from typing import Any, Protocol

from qprobe.errors import UnknownNameError
from qprobe.types import Assessment, Box


class Scorer(Protocol):
    name: str

    def assess(
        self,
        image: Any,
        *,
        path: str | None = None,
        forced_probes: list[Box] | None = None,
        max_zooms: int | None = None,
        seed: int | None = None,
    ) -> Assessment: ...


def _backends() -> Any:
    try:
        from qprobe import backends
    except ImportError:
        return None
    return backends


def list_scorers(pattern: str = "*") -> list[str]:
    from qprobe.eval.baselines import list_baselines

    names = set(list_baselines(pattern))
    backends = _backends()
    if backends is not None:
        names.update(backends.list_backends(pattern))
    return sorted(names)


def create_scorer(name: str, **overrides: Any) -> Scorer:
    """A baseline (``niqe``, ``brisque``, ``piqe``) or a backend by name."""
    from qprobe.eval.baselines import BASELINES

    if name in BASELINES:
        return BASELINES.create(name, **overrides)
    backends = _backends()
    if backends is None:
        raise UnknownNameError(
            f"unknown scorer {name!r}: not a baseline ({', '.join(BASELINES.list())}) and "
            "qprobe.backends is not available"
        )
    try:
        return backends.create_backend(name, **overrides)
    except UnknownNameError:
        raise UnknownNameError(
            f"unknown scorer {name!r}; baselines: {', '.join(BASELINES.list())}; "
            f"backends: {', '.join(backends.list_backends())}"
        ) from None
