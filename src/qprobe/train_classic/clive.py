"""CLIVE rows and the cached stem features used to fine-tune the regressor.

The frozen stem (the first ``split`` MobileNetV2 blocks) is run once per
image at native resolution; fine-tuning then crops the cached feature maps,
which is what makes a 5-fold cross-validation fit a CPU budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from qprobe.io import load_rgb
from qprobe.manifest import ManifestRow


def read_clive(root: str | Path) -> list[ManifestRow]:
    """CLIVE rows through the evaluation loader (same ids and 1-5 MOS as ``qprobe eval``)."""
    from qprobe.eval.datasets import load_dataset

    return load_dataset("clive", Path(root))


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 → 1 x 3 x H x W uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)


@torch.no_grad()
def cache_stems(
    net: torch.nn.Module,
    rows: list[ManifestRow],
    cache_dir: str | Path | None = None,
    chunk: int = 50,
    log: bool = True,
) -> list[torch.Tensor]:
    """``net.tap(image)`` per row (fp16, 1 x C x h x w), at native resolution.

    The tap (the first ``defect_tap`` blocks, stride 16) is the expensive,
    frozen part; :func:`stems_from_taps` continues to the regressor's stem.
    With ``cache_dir`` the maps are saved in chunks of ``chunk`` images and
    reused on the next run (the file names carry the tap's depth), so an
    interrupted training resumes where it stopped.
    """
    net.eval()
    split = int(getattr(getattr(net, "config", None), "defect_tap", 0))
    folder = Path(cache_dir) if cache_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    out: list[torch.Tensor] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        names = [Path(r.path).name for r in part]
        path = folder / f"taps_t{split}_{start:05d}.pt" if folder is not None else None
        if path is not None and path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("names") == names:
                out.extend(saved["stems"])
                continue
        stems = [net.tap(to_tensor(load_rgb(r.path))).half() for r in part]
        if path is not None:
            torch.save({"names": names, "stems": stems}, path)
        out.extend(stems)
        if log:
            print(f"  cached stems {start + len(part)}/{len(rows)}", flush=True)
    return out


@torch.no_grad()
def stems_from_taps(net: torch.nn.Module, taps: list[torch.Tensor]) -> list[torch.Tensor]:
    """Continue cached taps through the rest of the frozen stem (fp16)."""
    net.eval()
    return [net.stem_from_tap(t.float()).half() for t in taps]
