"""Which scorer made a results file: resume only what the same scorer wrote.

``qprobe eval`` and ``qprobe batch`` both resume an interrupted run from
their JSONL output. Resuming with a different scorer under the same name
(new weights, other settings) would silently mix two scorers in one file,
so each output ``X.jsonl`` has an ``X.identity.json`` beside it (the
scorer's settings and, where cheap, a digest of its weights; never API
keys). When a run's identity differs from the recorded one, the old rows
are moved aside to ``X.stale-<time>.jsonl`` — kept, never reused — and
every image is scored again. Files from before identities were recorded
are reused with a warning.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from qprobe._fs import atomic_write_json


def scorer_identity(scorer: Any, **settings: Any) -> dict[str, Any] | None:
    """``scorer.identity()`` (plus the run's own ``settings``) as plain JSON data; ``None`` without one."""
    fn = getattr(scorer, "identity", None)
    if not callable(fn):
        return None
    ident = dict(fn())
    extra = {k: v for k, v in settings.items() if v is not None}
    if extra:
        ident["run"] = extra
    return json.loads(json.dumps(ident, sort_keys=True, default=str))


def identity_path(out: str | Path) -> Path:
    """``X.identity.json`` beside an output ``X.jsonl``."""
    p = Path(out)
    return p.with_name(p.stem + ".identity.json")


def check_identity(out: str | Path, ident: dict[str, Any] | None, stacklevel: int = 3) -> Path | None:
    """Keep ``out``'s rows only if ``ident`` made them (see the module docstring).

    Returns where stale rows were moved, or ``None``. Records ``ident`` beside ``out``.
    """
    if ident is None:
        return None
    out = Path(out)
    id_path = identity_path(out)
    has_rows = out.is_file() and out.stat().st_size > 0
    moved: Path | None = None
    if id_path.is_file():
        try:
            old = json.loads(id_path.read_text())
        except (OSError, ValueError):
            old = None
        if old != ident and has_rows:
            moved = out.with_name(f"{out.stem}.stale-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
            out.rename(moved)
            warnings.warn(
                f"{out} was made by another {ident.get('scorer', 'scorer')} (other weights or settings): "
                f"moved to {moved.name}, scoring every image again",
                stacklevel=stacklevel,
            )
    elif has_rows:
        warnings.warn(
            f"{out} has no record of the scorer that made it: reusing its rows as they are "
            "(delete the file to score again)",
            stacklevel=stacklevel,
        )
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(id_path, ident)
    return moved


__all__ = ["check_identity", "identity_path", "scorer_identity"]
