"""ONNX Runtime execution of the classic network's three inference graphs.

The classic backend spends its time in three small graphs of one
:class:`~qprobe.backends.classic.model.ClassicNet`:

* ``crop``: a zoom crop (uint8) → the defect head's logits (the frozen tap
  and the head; run once per zoom);
* ``stem``: the global view (uint8) → the frozen stem's feature map;
* ``top``: a batch of stem-map crops → the ensemble's quality score;
* ``astem`` / ``atop``: the same two for the second quality backbone, when
  the network has one (``NetConfig.aux``);

and, for training (:mod:`qprobe.train_classic`), ``tap``: an image → the
frozen tap the defect head reads.

Exported once per weight set (TorchScript exporter, dynamic sizes) and run
by ONNX Runtime's CPU provider, they compute the same function as torch
eager (max |difference| ≈ 1e-5 on logits); on a 2-core AVX2 CPU the crop
graph runs ≈ 2x faster and a whole 4K assessment ≈ 1.3-1.4x
(``benchmarks/bench_score.py`` prints both engines). The exported
graphs are cached on disk (``$QPROBE_CACHE`` or ``~/.cache/qprobe``), keyed
by a hash of the network's weights and the torch / ONNX Runtime versions,
so only the first load of a weight file pays the export (≈ 2 s); a cache
that cannot be written only costs that time again. The first load also
writes the weight file's bundle (:mod:`qprobe.backends.classic.core`), so
later processes run these graphs without importing torch.

Light to import (torch, onnx and onnxruntime are imported where used);
needs ``onnxruntime`` and ``onnx`` (the ``classic`` extra). :func:`available`
says whether they are importable; ``auto`` falls back to torch otherwise.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from qprobe.backends.classic.model import ClassicNet

ENGINES = ("auto", "onnx", "torch")
OPSET = 17
GRAPHS = ("crop", "stem", "top")  # what the runtime runs
AUX_GRAPHS = ("astem", "atop")  # and, for a network with a second quality backbone, these
EXPORTABLE = (*GRAPHS, *AUX_GRAPHS, "tap")


def runtime_graphs(net: ClassicNet) -> tuple[str, ...]:
    """The graphs the runtime runs for ``net``."""
    return GRAPHS + (AUX_GRAPHS if getattr(net, "aux", None) is not None else ())


def available() -> bool:
    """Whether ONNX Runtime and the ONNX exporter's ``onnx`` package are importable."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def check_engine(name: str) -> None:
    """Raise a clear error for an unknown engine name, or ``onnx`` without ONNX Runtime."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose from {list(ENGINES)}")
    if name == "onnx" and not available():
        raise ValueError("engine 'onnx' needs onnxruntime and onnx: pip install 'qprobe[classic]' (or use --engine torch)")


def resolve_engine(name: str) -> str:
    """``auto`` → ``onnx`` when ONNX Runtime is importable, else ``torch``."""
    check_engine(name)
    if name == "auto":
        return "onnx" if available() else "torch"
    return name


def cache_dir() -> Path:
    root = os.environ.get("QPROBE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "qprobe")
    return Path(root) / "onnx"


def weights_key(net: ClassicNet) -> str:
    """A hash of everything the exported graphs depend on (weights, config, library versions)."""
    import onnxruntime
    import torch

    h = hashlib.sha256()
    h.update(json.dumps([torch.__version__, onnxruntime.__version__, OPSET, repr(net.config)]).encode())
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:32]


def export_graphs(net: ClassicNet, names: tuple[str, ...] = GRAPHS) -> dict[str, bytes]:
    """Graphs ``names`` of ``net`` (eval mode; batch norm fused or not) as ONNX bytes, dynamic in N, H, W."""
    import torch
    from torch import nn

    unknown = [n for n in names if n not in EXPORTABLE]
    if unknown:
        raise ValueError(f"unknown graph(s) {unknown}; choose from {list(EXPORTABLE)}")

    class Graph(nn.Module):
        def __init__(self, owner: nn.Module, fn: Any) -> None:
            super().__init__()
            self.net, self.fn = owner, fn

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fn(x)

    plain = copy.deepcopy(net).eval().to(memory_format=torch.contiguous_format)
    plain._channels_last = False  # type: ignore[attr-defined]
    image = torch.zeros(1, 3, 96, 128, dtype=torch.uint8)

    def spec(name: str) -> tuple[nn.Module, torch.Tensor]:
        if name == "crop":
            return Graph(plain, lambda x: plain.defect_logits(plain.tap(x))), image
        if name == "stem":
            return Graph(plain, plain.stem), image
        if name == "tap":
            return Graph(plain, plain.tap), image
        if name in AUX_GRAPHS:
            if plain.aux is None:
                raise ValueError(f"graph {name!r} needs a network with an aux backbone")
            if name == "astem":
                return Graph(plain, plain.aux.stem), image  # 96 x 128: multiples of 16, as the runtime feeds it
            with torch.no_grad():
                channels = int(plain.aux.stem(image[:, :, :32, :32]).shape[1])
            return Graph(plain, plain.aux.score_from_stem), torch.zeros(2, channels, 6, 8)
        with torch.no_grad():  # "top" reads stem maps: their channel count from one small stem pass
            channels = int(plain.stem(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)).shape[1])
        return Graph(plain, plain.score_from_stem), torch.zeros(2, channels, 6, 8)

    out: dict[str, bytes] = {}
    for name in names:
        module, example = spec(name)
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (example,),
                buf,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}},
                opset_version=OPSET,
                dynamo=False,
            )
        out[name] = buf.getvalue()
    return out


def cached_graphs(
    net: ClassicNet, directory: Path | None = None, refresh: bool = False, folder: Path | None = None
) -> dict[str, bytes]:
    """The graphs of ``net`` from the disk cache, exported (and cached when possible) on a miss.

    ``refresh``: export and overwrite even when cached (a cached file that failed to load).
    ``folder``: the cache folder of ``net`` when already known (``directory / weights_key(net)``).
    """
    folder = folder or (directory or cache_dir()) / weights_key(net)
    paths = {g: folder / f"{g}.onnx" for g in runtime_graphs(net)}
    if not refresh and all(p.is_file() for p in paths.values()):
        try:
            return {g: p.read_bytes() for g, p in paths.items()}
        except OSError:
            pass
    graphs = export_graphs(net, runtime_graphs(net))
    try:
        from qprobe._fs import atomic_write_bytes

        folder.mkdir(parents=True, exist_ok=True)
        for g, data in graphs.items():
            atomic_write_bytes(paths[g], data)
    except OSError:  # a read-only or full cache only costs the export next time
        pass
    return graphs


class OnnxEngine:
    """The classic network's inference graphs on ONNX Runtime (CPU).

    ``graphs``: which to build; the runtime's three come from the disk cache
    (``cache``), others (e.g. ``tap`` for training, whose network changes
    every run) are exported in memory.
    """

    def __init__(
        self,
        net: ClassicNet,
        threads: int = 0,
        directory: Path | None = None,
        graphs: tuple[str, ...] | None = None,
        cache: bool = True,
    ) -> None:
        graphs = runtime_graphs(net) if graphs is None else tuple(graphs)

        use_cache = cache and graphs == runtime_graphs(net)
        # where the graphs are cached (None: exported in memory only)
        self.folder = (directory or cache_dir()) / weights_key(net) if use_cache else None
        models = cached_graphs(net, folder=self.folder) if use_cache else export_graphs(net, tuple(graphs))
        self.graphs = graphs
        try:
            self._start(models, graphs, threads)
        except Exception:  # ORT raises its own types; a damaged cache file is re-exported once
            if not use_cache:
                raise
            models = cached_graphs(net, refresh=True, folder=self.folder)
            self._start(models, graphs, threads)

    @classmethod
    def from_models(cls, models: dict[str, bytes], threads: int = 0) -> OnnxEngine:
        """An engine on already exported graphs (a bundle: no torch, no network object)."""
        engine = cls.__new__(cls)
        engine.folder = None
        engine.graphs = tuple(models)
        engine._start(models, engine.graphs, threads)
        return engine

    def _start(self, models: dict[str, bytes], graphs: tuple[str, ...], threads: int) -> None:
        self.threads = max(0, int(threads))
        self._sessions = self._open(models, graphs, self.threads)
        # the crop graph once more on one thread, for callers that run several crops at once
        # (ClassicModel.defect_maps_async): the same kernels, the same numbers, no per-operator handoff
        self._single = self._open(models, ("crop",), 1)["crop"] if "crop" in graphs and self.threads != 1 else None

    @staticmethod
    def _open(models: dict[str, bytes], graphs: tuple[str, ...], threads: int) -> dict[str, Any]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = max(0, int(threads))
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # idle pool threads sleep instead of spinning: faster here (the scan's threads and Python share
        # the cores between runs) and polite on a shared CPU, like torch's passive OpenMP wait
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return {g: ort.InferenceSession(models[g], opts, providers=["CPUExecutionProvider"]) for g in graphs}

    def _run(self, graph: str, x: np.ndarray) -> np.ndarray:
        return self._sessions[graph].run(None, {"x": x})[0]

    @property
    def crop_workers(self) -> int:
        """How many crops :meth:`crop_logits` with ``single=True`` should run at once (0: no such session).

        The session's thread count when it was set, else the cores (ONNX Runtime's default).
        """
        if self._single is None:
            return 0
        return self.threads or os.cpu_count() or 1

    def crop_logits(self, x_uint8: np.ndarray, single: bool = False) -> np.ndarray:
        """N x 3 x H x W uint8 → N x (classes + 1) x h x w defect logits.

        ``single``: on the one-thread session, so that ``crop_workers`` threads can each run one crop
        at a time (ONNX Runtime sessions may be run from several threads at once).
        """
        x = np.ascontiguousarray(x_uint8, dtype=np.uint8)
        if single and self._single is not None:
            return self._single.run(None, {"x": x})[0]
        return self._run("crop", x)

    def tap(self, x_uint8: np.ndarray) -> np.ndarray:
        """N x 3 x H x W uint8 → the frozen tap (the defect head's input)."""
        return self._run("tap", np.ascontiguousarray(x_uint8, dtype=np.uint8))

    def stem(self, x_uint8: np.ndarray) -> np.ndarray:
        """N x 3 x H x W uint8 → the frozen stem's map."""
        return self._run("stem", np.ascontiguousarray(x_uint8, dtype=np.uint8))

    def scores(self, stem_crops: np.ndarray) -> np.ndarray:
        """N x C x h x w stem-map crops → N ensemble scores."""
        return self._run("top", np.ascontiguousarray(stem_crops, dtype=np.float32))

    def aux_stem(self, x_uint8: np.ndarray) -> np.ndarray:
        """N x 3 x H x W uint8 (multiples of 16) → the aux backbone's stem map."""
        return self._run("astem", np.ascontiguousarray(x_uint8, dtype=np.uint8))

    def aux_scores(self, stem_crops: np.ndarray) -> np.ndarray:
        """N x C x h x w aux stem-map crops → N aux scores."""
        return self._run("atop", np.ascontiguousarray(stem_crops, dtype=np.float32))
