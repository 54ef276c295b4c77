"""CLIVE rows and the cached stem features used to fine-tune the regressor.

The frozen stem (the first ``split`` MobileNetV2 blocks) is run once per
image at native resolution; fine-tuning then crops the cached feature maps,
which is what makes a 5-fold cross-validation fit a CPU budget.
"""

from __future__ import annotations

from collections.abc import Callable
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
    flip: bool = False,
) -> list[torch.Tensor]:
    """``net.stem(image)`` per row (fp16, 1 x C x h x w), at native resolution.

    ``flip``: the stems of the horizontally mirrored images instead (cached
    as ``stems_s{split}_flip_*.pt``).

    With ``cache_dir`` the maps are saved in chunks of ``chunk`` images
    (``stems_s{split}_*.pt``) and reused on the next run, so an interrupted
    training resumes where it stopped. A chunk of cached *taps* (the first
    ``defect_tap`` blocks, ``taps_t{tap}_*.pt``) is continued through the
    remaining frozen blocks instead of re-decoding the images.
    """
    net.eval()
    cfg = getattr(net, "config", None)
    split, tap = int(getattr(cfg, "split", 0)), int(getattr(cfg, "defect_tap", 0))
    folder = Path(cache_dir) if cache_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    out: list[torch.Tensor] = []
    stem = _stem_runner(net)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        names = [Path(r.path).name for r in part]
        tag = "_flip" if flip else ""
        path = folder / f"stems_s{split}{tag}_{start:05d}.pt" if folder is not None else None
        taps_path = folder / f"taps_t{tap}{tag}_{start:05d}.pt" if folder is not None else None
        saved = _load_chunk(path, names)
        if saved is not None:
            out.extend(saved)
            continue
        taps = _load_chunk(taps_path, names)
        if taps is not None:
            stems = [net.stem_from_tap(t.float()).half() for t in taps]
        else:
            stems = [stem(to_tensor(_maybe_flip(load_rgb(r.path), flip))).half() for r in part]
        if path is not None:
            torch.save({"names": names, "stems": stems}, path)
        out.extend(stems)
        if log:
            print(f"  cached {'mirrored ' if flip else ''}stems {start + len(part)}/{len(rows)}", flush=True)
    return out


@torch.no_grad()
def cache_aux_stems(
    net: torch.nn.Module, rows: list[ManifestRow], cache_dir: str | Path | None = None, chunk: int = 50, log: bool = True
) -> list[torch.Tensor]:
    """The aux backbone's frozen stem map per row (fp16), on the image cut to a multiple of 16 px.

    As :func:`cache_stems` (chunks ``aux_{name}_*.pt`` reused on the next
    run); the runtime cuts the global view the same way before this stem.
    """
    from qprobe.backends.classic.efficientnet import fit_multiple

    aux = getattr(net, "aux", None)
    if aux is None:
        raise ValueError("the network has no aux backbone")
    name = str(getattr(net.config, "aux", "aux"))
    folder = Path(cache_dir) if cache_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    stem = _stem_runner(net, "astem")
    out: list[torch.Tensor] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        names = [Path(r.path).name for r in part]
        path = folder / f"aux_{name}_{start:05d}.pt" if folder is not None else None
        saved = _load_chunk(path, names)
        if saved is None:
            saved = [stem(to_tensor(fit_multiple(load_rgb(r.path)))).half() for r in part]
            if path is not None:
                torch.save({"names": names, "stems": saved}, path)
            if log:
                print(f"  cached {name} stems {start + len(part)}/{len(rows)}", flush=True)
        out.extend(saved)
    return out


def _stem_runner(net: torch.nn.Module, graph: str = "stem") -> Callable[[torch.Tensor], torch.Tensor]:
    """``net.stem`` (``graph="astem"``: the aux backbone's), on ONNX Runtime when installed (~1.5x faster)."""
    from qprobe.backends.classic import onnx_engine

    module = net.aux if graph == "astem" else net  # type: ignore[union-attr]
    if not (onnx_engine.available() and hasattr(net, "defect_logits")):
        return module.stem  # type: ignore[return-value,union-attr]
    engine: list[onnx_engine.OnnxEngine] = []

    def run(x: torch.Tensor) -> torch.Tensor:
        if not engine:
            engine.append(onnx_engine.OnnxEngine(net, torch.get_num_threads(), graphs=(graph,), cache=False))
        run_graph = engine[0].aux_stem if graph == "astem" else engine[0].stem
        return torch.from_numpy(run_graph(x.numpy()))

    return run


def _maybe_flip(rgb: np.ndarray, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1]) if flip else rgb


def _load_chunk(path: Path | None, names: list[str]) -> list[torch.Tensor] | None:
    if path is None or not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return list(saved["stems"]) if saved.get("names") == names else None
