"""The classic model at inference, without torch: settings, the global score, the defect head's crops.

:class:`ClassicCore` is everything the probing policy calls (``score``,
``detect``, ``defect_maps``, the operating point) on top of an
:class:`~qprobe.backends.classic.onnx_engine.OnnxEngine`. The torch model
(:class:`qprobe.backends.classic.runtime.ClassicModel`) is a subclass that
builds the network from a weight file, exports its graphs and can also run
them in torch eager.

Importing torch costs a fresh process ≈ 1.3 s and ≈ 220 MB, and the default
(ONNX Runtime) path needs it only to read a weight file and export its
graphs. So the first load of a weight file also writes a *bundle* to the
ONNX cache: the exported graphs' folder plus ``model.json`` with what the
runtime needs (:class:`NetInfo`, scan, detector, fusion, meta), keyed by the
weight file's SHA-256 and the library versions. :func:`load_model` scores
from a bundle without importing torch, and falls back to the torch model
(which rewrites the bundle) when there is none or it cannot be read. Both
run the same graph files, so their numbers are the same (a test).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from qprobe.backends.classic.detector import DetectorSettings, Lattice, detect, softmax
from qprobe.backends.classic.fusion import DEFAULT_WEIGHTS
from qprobe.backends.classic.quantization import lattice_cells
from qprobe.backends.classic.tiling import CELL, tiled_maps, tiles_needed
from qprobe.types import Box, Defect

MIN_SIDE = 32
TILE_MARGIN = 64
"""Pixels of context every stitched cell keeps in its tile (where the crop has them)."""
MULTIPLE = 16
"""The aux (EfficientNet-Lite0) stem sees the view cut to a multiple of this many pixels."""
BUNDLE_FORMAT = 1
_FORKABLE: weakref.WeakSet[ClassicCore] = weakref.WeakSet()
"""Models whose crop workers a forked child must not inherit (see :func:`_after_fork`)."""


def fit_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the long side is at most ``max_side``; upscale tiny images to ``MIN_SIDE``."""
    h, w = rgb.shape[:2]
    scale = 1.0
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
    if min(h, w) * scale < MIN_SIDE:
        scale = MIN_SIDE / min(h, w)
    if scale == 1.0:
        return rgb
    size = (max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))


def fit_multiple(rgb: np.ndarray, multiple: int = MULTIPLE) -> np.ndarray:
    """The centred crop of an H x W (x C) array to multiples of ``multiple`` (at least one multiple)."""
    h, w = rgb.shape[:2]
    nh, nw = max(multiple, h - h % multiple), max(multiple, w - w % multiple)
    if (nh, nw) == (h, w) or nh > h or nw > w:
        return rgb
    y, x = (h - nh) // 2, (w - nw) // 2
    return rgb[y : y + nh, x : x + nw]


def five_crop_origins(h: int, w: int, size: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Crop side (clamped to the map) and the origins of the four corner crops and the centre one."""
    ch, cw = min(size, h), min(size, w)
    ys = [0, 0, h - ch, h - ch, (h - ch) // 2]
    xs = [0, w - cw, 0, w - cw, (w - cw) // 2]
    return ch, cw, list(zip(ys, xs))


def uint8_batch(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 → 1 x 3 x H x W uint8 (a view where it can be; the engine makes it contiguous)."""
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)[None]


def default_threads() -> int:
    """The network's thread count when none is set: torch's when torch is loaded (it honours
    ``OMP_NUM_THREADS`` and ``qprobe batch``'s per-worker limit), else ``OMP_NUM_THREADS``, else the
    cores this process may run on."""
    if "torch" in sys.modules:
        return int(sys.modules["torch"].get_num_threads())
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        pass
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class NetInfo:
    """What inference needs to know of the network besides its graphs."""

    classes: tuple[str, ...]
    has_detector: bool
    stem_stride: int
    score_flip: bool
    n_members: int
    has_aux: bool

    @property
    def n_tops(self) -> int:
        return self.n_members + int(self.has_aux)

    def combine(self, mobile: float, aux: float) -> float:
        """The score from the MobileNetV2 ensemble's mean and the aux backbone's (each top counts once)."""
        return (mobile * self.n_members + aux) / self.n_tops

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetInfo:
        return cls(
            classes=tuple(str(c) for c in data["classes"]),
            has_detector=bool(data["has_detector"]),
            stem_stride=int(data["stem_stride"]),
            score_flip=bool(data["score_flip"]),
            n_members=int(data["n_members"]),
            has_aux=bool(data["has_aux"]),
        )


class ClassicCore:
    """Quality regressor + dense defect detector + scan model + fusion weights, on ONNX Runtime.

    ``info``: the network's :class:`NetInfo`; ``scan``, ``detector``,
    ``fusion``, ``meta``: those of the weight file. The engine is attached
    by :meth:`from_bundle` or by the torch subclass.
    """

    def __init__(
        self,
        info: NetInfo,
        scan: dict[str, Any],
        detector: dict[str, Any],
        fusion: list[float],
        meta: dict[str, Any],
        max_crop_side: int = 512,
        zoom_side: int = 320,
        score_crop: int = 320,
        max_tiles: int = 64,
        crop_workers: bool = True,
    ) -> None:
        from qprobe.backends.classic import onnx_engine

        self.info = info
        self.classes = list(info.classes)
        self.has_detector = info.has_detector
        self.max_crop_side = max_crop_side
        # crops longer than max_crop_side: up to this many native-resolution tiles (<= 1: downscale them)
        self.max_tiles = int(max_tiles)
        self.score_crop = score_crop
        # the crop side in cells of the stem map (0: the whole map)
        self.score_cells = max(1, round(score_crop / info.stem_stride)) if score_crop > 0 else 0
        self.score_flip = info.score_flip
        self.zoom_side = zoom_side
        # a requested box, enlarged 1.5x for context, should still fit the network input
        self.max_zoom_side = max(zoom_side, int(max_crop_side / 1.5))
        self.scan_cell = int(scan.get("cell", 32))
        self.scan_radius = int(scan.get("radius", 3))
        self.scan_threshold = float(scan.get("threshold", 0.5))
        w = scan.get("weights")
        self.scan_weights = np.asarray(w, dtype=np.float32) if w is not None else None
        hidden = scan.get("hidden")
        self.scan_hidden = np.asarray(hidden, dtype=np.float32) if hidden is not None else None
        self.detector = DetectorSettings(
            threshold=float(detector.get("threshold", 0.5)),
            min_cells=int(detector.get("min_cells", 2)),
            merge_iou=float(detector.get("merge_iou", 0.2)),
            grow=float(detector.get("grow", 1.0)),  # weights from before box growth: none
        )
        # a found defect is kept where the scan exceeds this inside its box (and grows to those blobs);
        # the scan's own threshold only ranks zooms. Weights without a calibrated value use the latter.
        self.agree_threshold = float(detector.get("agree_threshold", self.scan_threshold))
        self.fusion = list(fusion) if fusion else list(DEFAULT_WEIGHTS)
        self.meta = meta
        self.engine = "onnx"
        self._onnx: onnx_engine.OnnxEngine | None = None
        self.crop_workers = bool(crop_workers)  # False: defect_maps_async declines (crops run one at a time)
        self._workers: ThreadPoolExecutor | None = None  # crop workers (defect_maps_async), made on first use
        self._lock = threading.Lock()
        _FORKABLE.add(self)

    @classmethod
    def from_bundle(cls, bundle: Bundle, threads: int = 0, **kw: Any) -> ClassicCore:
        """The model of a weight file's bundle (no torch); ``kw``: the inference settings."""
        from qprobe.backends.classic import onnx_engine

        needed = onnx_engine.GRAPHS + (onnx_engine.AUX_GRAPHS if bundle.info.has_aux else ())
        if any(g not in bundle.graphs for g in needed):
            raise ValueError(f"the bundle lacks graphs {[g for g in needed if g not in bundle.graphs]}")
        model = cls(bundle.info, bundle.scan, bundle.detector, bundle.fusion, bundle.meta, **kw)
        model._onnx = onnx_engine.OnnxEngine.from_models(bundle.graphs, threads if threads > 0 else default_threads())
        return model

    # -- the global score -------------------------------------------------------
    def score(self, rgb: np.ndarray) -> float:
        """Quality of the global view: the mean over five ``score_crop`` crops (corners, centre).

        The regressor is fine-tuned on random crops of that size, and its
        cross-validation reports this five-crop mean (DESIGN §2.3); a view
        no larger than one crop is scored whole. A regressor trained with
        flips (``score_flip``) also scores each crop's mirror, as its
        cross-validation did.
        """
        view = fit_side(rgb, self.max_crop_side)
        # the stem runs once on the whole view and the crops are cut from its map, exactly as the
        # regressor was trained and cross-validated on cached stem maps (cropping pixels instead
        # would give every crop zero-padded borders that training never saw)
        score = self._five_crop_score(self._stem(self._batch(view)), self._scores)
        if not self.info.has_aux:
            return score
        # the second backbone's stem sees the view cut to a multiple of 16 px, as in its training
        aux = self._five_crop_score(self._aux_stem(self._batch(fit_multiple(view))), self._aux_scores)
        return float(self.info.combine(score, aux))

    def _batch(self, view: np.ndarray) -> np.ndarray:
        """The view as a uint8 batch (with its mirror when the regressor was trained with flips)."""
        batch = uint8_batch(view)
        return np.concatenate([batch, batch[:, :, :, ::-1]], axis=0) if self.score_flip else batch

    def _five_crop_score(self, stem: np.ndarray, scores_of: Callable[[np.ndarray], np.ndarray]) -> float:
        """Mean score of the five ``score_cells`` crops (corners, centre) of every map in ``stem``."""
        h, w = int(stem.shape[2]), int(stem.shape[3])
        size = self.score_cells or max(h, w)
        ch, cw, origins = five_crop_origins(h, w, size)
        # a map as tall (or wide) as a crop repeats corners: score each distinct crop once
        unique = sorted(set(origins))
        weights = np.repeat(np.asarray([origins.count(o) for o in unique], dtype=np.float64), len(stem))
        crops = np.concatenate([stem[:, :, y : y + ch, x : x + cw] for y, x in unique], axis=0)
        scores = scores_of(crops).astype(np.float64)
        return float((scores * weights).sum() / weights.sum())

    def _engine(self) -> Any:
        if self._onnx is None:
            raise RuntimeError("this classic model has no ONNX Runtime engine")
        return self._onnx

    def _stem(self, batch: np.ndarray) -> np.ndarray:
        """The frozen stem's map of a uint8 batch."""
        return self._engine().stem(batch)

    def _scores(self, crops: np.ndarray) -> np.ndarray:
        """The ensemble's score of each stem-map crop."""
        return self._engine().scores(crops)

    def _aux_stem(self, batch: np.ndarray) -> np.ndarray:
        """The aux backbone's frozen stem map of a uint8 batch."""
        return self._engine().aux_stem(batch)

    def _aux_scores(self, crops: np.ndarray) -> np.ndarray:
        """The aux backbone's score of each stem-map crop."""
        return self._engine().aux_scores(crops)

    # -- the defect head on zoom crops ---------------------------------------------
    def detect(
        self,
        rgb: np.ndarray,
        box: Box,
        confirm: Callable[[Box], bool] | None = None,
        maps: np.ndarray | None = None,
    ) -> list[Defect]:
        """Defects in one full-resolution crop (``box``: where it lies in the original).

        Only the frozen tap (the first ``defect_tap`` blocks) and the small
        defect head run on a crop: the quality trunk runs once, on the
        global view. ``confirm``: see :func:`~qprobe.backends.classic.detector.detect`.
        ``maps``: the crop's ``defect_maps``, when already computed (``defect_maps_async``).
        """
        if not self.has_detector:
            return []
        if maps is None:
            maps = self.defect_maps(rgb)
        grid = (int(maps.shape[1]), int(maps.shape[2]))
        return self.detections_from_maps(maps, box, lambda rows, cols: lattice_cells(rgb, grid, rows, cols), confirm)

    def detections_from_maps(
        self, maps: np.ndarray, box: Box, lattice: Lattice | None = None, confirm: Callable[[Box], bool] | None = None
    ) -> list[Defect]:
        """Defects from one crop's ``defect_maps`` at the current ``detector`` settings.

        ``lattice``: the crop's quantization evidence for banding
        (:func:`~qprobe.backends.classic.quantization.lattice_cells`); maps
        recorded with it as an extra last channel carry their own.
        """
        n = len(self.classes)
        probs = softmax(maps[:n], axis=0)
        sev = 1.0 + 4.0 / (1.0 + np.exp(-maps[n]))
        if lattice is None and maps.shape[0] > n + 1:
            lattice = maps[n + 1]
        return detect(probs, sev, self.classes, box, self.detector, lattice, confirm)

    def defect_maps_async(self, rgb: np.ndarray) -> Future[np.ndarray] | None:
        """Start :meth:`defect_maps` of a crop on the crop workers; ``None`` where there are none.

        The ONNX engine's workers each run one crop on a one-thread session
        (the same numbers as the shared session: a test), as many at once as
        the engine has threads. On two cores eight 4K zoom crops take ≈ 93 ms
        this way against ≈ 110 ms one after another on two threads each: a
        small network on a 480-px crop splits poorly over threads (every
        operator hands off between them), two crops side by side do not.
        The torch engine has no workers (its thread pool is process-wide), nor
        has a model made with ``crop_workers=False`` or one thread.
        """
        if not self.crop_workers or self._onnx is None or not self.has_detector or self._onnx.crop_workers < 2:
            return None
        with self._lock:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(self._onnx.crop_workers, thread_name_prefix="qprobe-crop")
        return self._workers.submit(self.defect_maps, rgb, True)

    def defect_maps(self, rgb: np.ndarray, single: bool = False) -> np.ndarray:
        """The defect head's raw output on one crop: (n_classes + 1) x h x w (logits, then severity).

        A crop no longer than ``max_crop_side`` is one pass. A longer one is
        cut into native-resolution tiles of that side and their maps are
        stitched (:mod:`~qprobe.backends.classic.tiling`): the head sees
        every part of it at the scale it was trained on. Only beyond
        ``max_tiles`` tiles is the crop downscaled, by the least factor that
        brings it within them (``max_tiles`` <= 1: always downscaled to one pass).
        """
        h, w = rgb.shape[:2]
        pass_ = partial(self._pass, single=single)
        if max(h, w) <= self.max_crop_side or self.max_tiles <= 1:
            return pass_(fit_side(rgb, self.max_crop_side))
        side = self.max_crop_side // CELL * CELL
        margin = TILE_MARGIN
        scaled = rgb
        long_side = max(h, w)
        while tiles_needed(*scaled.shape[:2], side, margin) > self.max_tiles:
            long_side = int(long_side / 1.05)
            scaled = fit_side(rgb, long_side)
        return tiled_maps(scaled, pass_, side, margin)

    def _pass(self, rgb: np.ndarray, single: bool = False) -> np.ndarray:
        """One pass of the frozen tap and the defect head over a whole crop (no resizing).

        ``single``: on the ONNX engine's one-thread session (a crop worker).
        """
        return self._engine().crop_logits(uint8_batch(rgb), single=single)[0]


# -- bundles: a weight file's graphs and settings, readable without torch -------------------------
@dataclass
class Bundle:
    info: NetInfo
    scan: dict[str, Any]
    detector: dict[str, Any]
    fusion: list[float]
    meta: dict[str, Any]
    graphs: dict[str, bytes]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def bundle_path(weights: Path, directory: Path | None = None) -> Path:
    """Where the bundle of a weight file is described: keyed by its SHA-256 and the library versions."""
    from qprobe._fs import file_sha256
    from qprobe.backends.classic.onnx_engine import OPSET, cache_dir

    versions = json.dumps([BUNDLE_FORMAT, OPSET, _version("torch"), _version("onnxruntime")])
    key = hashlib.sha256((file_sha256(weights) + versions).encode()).hexdigest()[:32]
    return (directory or cache_dir()) / f"bundle-{key}.json"


def read_bundle(path: Path) -> Bundle | None:
    """The bundle described at ``path`` (:func:`bundle_path`), or ``None`` when any part of it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != BUNDLE_FORMAT:
            return None
        folder = path.parent / str(data["graphs_dir"])
        graphs = {str(g): (folder / f"{g}.onnx").read_bytes() for g in data["graphs"]}
        return Bundle(
            NetInfo.from_dict(data["info"]),
            dict(data["scan"]),
            dict(data["detector"]),
            [float(v) for v in data["fusion"]],
            dict(data["meta"]),
            graphs,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_bundle(
    path: Path,
    model: ClassicCore,
    graphs_dir: Path,
    graphs: tuple[str, ...],
    scan: dict[str, Any],
    detector: dict[str, Any],
) -> None:
    """Describe ``model``'s cached graphs (``graphs`` in ``graphs_dir``) and settings at ``path``.

    Best effort, as the graph cache itself: a cache that cannot be written
    only costs the torch import next time. The bundle names the graphs'
    folder relative to its own, so both must be in the same cache.
    """
    from qprobe._fs import atomic_write_text

    try:
        if path.parent.resolve() != graphs_dir.parent.resolve():
            return
        if not all((graphs_dir / f"{g}.onnx").is_file() for g in graphs):
            return  # the graph cache could not be written: nothing to point at
        data = {
            "format": BUNDLE_FORMAT,
            "graphs_dir": graphs_dir.name,
            "graphs": list(graphs),
            "info": asdict(model.info),
            "scan": _plain(scan),
            "detector": _plain(detector),
            "fusion": list(model.fusion),
            "meta": _plain(model.meta),
        }
        atomic_write_text(path, json.dumps(data))
    except (OSError, TypeError, ValueError):
        pass


def _plain(value: Any) -> Any:
    """JSON-ready copy (arrays and tensors as lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def load_model(path: str | Path | None = None, *, engine: str = "auto", threads: int = 0, **kw: Any) -> ClassicCore:
    """The classic model of a weight file (default: the shipped one), from its bundle when it has one.

    ``engine`` ``auto`` / ``onnx`` use a bundle when one exists (no torch);
    otherwise, and for ``torch``, the torch model loads the file (exporting
    and caching the graphs, and writing the bundle for next time).
    """
    from qprobe.backends.classic import onnx_engine
    from qprobe.backends.classic.weights import default_weights_path

    weights = Path(path) if path is not None else default_weights_path()
    target: Path | None = None  # where this weight file's bundle is described (hashed once per load)
    if onnx_engine.resolve_engine(engine) == "onnx" and weights.is_file():
        try:
            target = bundle_path(weights)
        except OSError:  # unreadable: the torch loader says why
            target = None
        bundle = read_bundle(target) if target is not None else None
        if bundle is not None:
            try:
                return ClassicCore.from_bundle(bundle, threads=threads, **kw)
            except Exception:  # noqa: BLE001 - a damaged bundle: the torch model rebuilds it
                pass
    from qprobe.backends.classic.runtime import ClassicModel

    return ClassicModel.load(weights, engine=engine, threads=threads, bundle=target, **kw)


def _after_fork() -> None:
    """In a forked child: forget the parent's crop workers (their threads did not come along).

    A pool whose threads died in the fork would queue every crop and never run
    it; the child makes its own on first use, with a fresh lock (the parent's
    may have been held by another thread at the fork).
    """
    for model in list(_FORKABLE):
        model._workers = None
        model._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


__all__ = ["Bundle", "ClassicCore", "NetInfo", "fit_multiple", "fit_side", "five_crop_origins", "load_model"]
