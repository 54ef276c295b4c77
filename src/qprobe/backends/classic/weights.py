"""The classic backend's weight file: format, default location, save and load.

One ``torch.save`` file holding plain data (loadable with
``weights_only=True``, so no code is unpickled)::

    {"format": "qprobe.classic/1",
     "net_config": {...},               # NetConfig fields (classes included)
     "state_dict": {name: fp16 tensor}, # ClassicNet
     "scan": {"hidden": [[...]], "weights": [...], "threshold": p, "cell": 32, "radius": 3},
     "detector": {"threshold": p, "min_cells": n},
     "fusion": [w0, w1, w2, w3],
     "meta": {...}}                     # how and on what it was trained

The shipped file is ``qprobe/weights/classic.pt`` (qprobe's own trained
weights; the ImageNet initialisation's notice is in ``weights/NOTICE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from qprobe.errors import MissingWeightsError

FORMAT = "qprobe.classic/1"
WEIGHTS_NAME = "classic.pt"


def default_weights_path() -> Path:
    """Where the shipped weights live inside the installed package."""
    return Path(str(resources.files("qprobe") / "weights" / WEIGHTS_NAME))


@dataclass
class ClassicWeights:
    net_config: dict[str, Any]
    state_dict: dict[str, Any]
    scan: dict[str, Any] = field(default_factory=dict)
    detector: dict[str, Any] = field(default_factory=dict)
    fusion: list[float] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "net_config": self.net_config,
            "state_dict": self.state_dict,
            "scan": self.scan,
            "detector": self.detector,
            "fusion": list(self.fusion),
            "meta": self.meta,
        }


def save_weights(weights: ClassicWeights, path: str | Path, half: bool = True) -> None:
    """Write ``weights`` atomically; floating tensors stored as fp16 when ``half``."""
    import io

    import torch

    from qprobe._fs import atomic_write_bytes

    data = weights.to_dict()
    sd = {}
    for k, v in weights.state_dict.items():
        t = v.detach().cpu()
        if half and t.is_floating_point():
            t = t.half()
        sd[k] = t.contiguous()
    data["state_dict"] = sd
    buf = io.BytesIO()
    torch.save(data, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_weights(path: str | Path | None = None) -> ClassicWeights:
    """Read a weight file (default: the shipped one) without network access."""
    import torch

    p = Path(path) if path is not None else default_weights_path()
    if p.is_dir():
        raise MissingWeightsError(f"classic weights: {p} is a folder; pass the weight file (e.g. {p / 'classic.pt'})")
    if not p.is_file():
        raise MissingWeightsError(
            f"classic weights not found at {p}; reinstall qprobe, pass weights=PATH, "
            "or train them with `qprobe train classic`"
        )
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file (some with a bare byte as message)
        raise MissingWeightsError(
            f"cannot read classic weights {p} ({type(exc).__name__}: {str(exc)[:200]}): not a complete weight "
            "file of `qprobe train classic` (truncated download or copy?)"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise MissingWeightsError(f"{p} is not a {FORMAT} weight file (format {got!r})")
    return ClassicWeights(
        net_config=dict(data["net_config"]),
        state_dict={k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()},
        scan=dict(data.get("scan") or {}),
        detector=dict(data.get("detector") or {}),
        fusion=[float(v) for v in data.get("fusion") or []],
        meta=dict(data.get("meta") or {}),
    )
