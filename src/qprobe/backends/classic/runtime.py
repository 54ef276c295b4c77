"""The torch side of the classic backend: weights → a callable model.

Imported only when a classic backend is created (never by ``import qprobe``).
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from qprobe.backends.classic.efficientnet import fit_multiple
from qprobe.backends.classic.detector import DetectorSettings, Lattice, detect, softmax
from qprobe.backends.classic.fusion import DEFAULT_WEIGHTS
from qprobe.backends.classic.mobilenet import fuse_batchnorm
from qprobe.backends.classic.model import ClassicNet, NetConfig, five_crop_origins
from qprobe.backends.classic.quantization import lattice_cells
from qprobe.backends.classic.tiling import CELL, tiled_maps, tiles_needed
from qprobe.backends.classic.weights import ClassicWeights, load_weights
from qprobe.types import Box, Defect

MIN_SIDE = 32
TILE_MARGIN = 64
"""Pixels of context every stitched cell keeps in its tile (where the crop has them)."""
_FORKABLE: weakref.WeakSet[ClassicModel] = weakref.WeakSet()
"""Models whose crop workers a forked child must not inherit (see :func:`_after_fork`)."""


def to_batch(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 → 1 x 3 x H x W uint8 tensor (copies read-only views)."""
    arr = rgb if rgb.flags.writeable and rgb.flags.c_contiguous else np.array(rgb, copy=True, order="C")
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)


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


class ClassicModel:
    """Quality regressor + dense defect detector + scan model + fusion weights.

    ``engine``: ``onnx`` runs the network on ONNX Runtime from graphs
    exported at construction (changing ``net``'s weights afterwards then
    has no effect: use ``torch`` to experiment on a live network); ``torch``
    runs ``net`` itself; ``auto`` picks ``onnx`` when it can be built.
    """

    def __init__(
        self,
        weights: ClassicWeights,
        max_crop_side: int = 512,
        zoom_side: int = 320,
        threads: int = 0,
        score_crop: int = 320,
        engine: str = "auto",
        max_tiles: int = 64,
        crop_workers: bool = True,
    ) -> None:
        from qprobe.backends.classic import onnx_engine

        if threads > 0:
            torch.set_num_threads(threads)
        cfg = NetConfig(**weights.net_config)
        self.net = ClassicNet(cfg)
        missing, unexpected = self.net.load_state_dict(weights.state_dict, strict=False)
        if unexpected or [k for k in missing if not k.startswith("defect.")]:
            raise ValueError(f"weights do not match the network: missing {missing[:5]}, unexpected {unexpected[:5]}")
        self.net.eval()
        fuse_batchnorm(self.net.features)
        fuse_batchnorm(self.net.extra_tops)
        self.net.use_channels_last()
        self.classes = list(cfg.classes)
        self.has_detector = not missing and len(self.classes) > 1
        self.max_crop_side = max_crop_side
        # crops longer than max_crop_side: up to this many native-resolution tiles (<= 1: downscale them)
        self.max_tiles = int(max_tiles)
        self.score_crop = score_crop
        # the crop side in cells of the stem map (0: the whole map)
        self.score_cells = max(1, round(score_crop / self.net.stem_stride())) if score_crop > 0 else 0
        self.score_flip = bool(cfg.score_flip)
        self.zoom_side = zoom_side
        # a requested box, enlarged 1.5x for context, should still fit the network input
        self.max_zoom_side = max(zoom_side, int(max_crop_side / 1.5))
        scan = weights.scan
        self.scan_cell = int(scan.get("cell", 32))
        self.scan_radius = int(scan.get("radius", 3))
        self.scan_threshold = float(scan.get("threshold", 0.5))
        w = scan.get("weights")
        self.scan_weights = np.asarray(w, dtype=np.float32) if w is not None else None
        hidden = scan.get("hidden")
        self.scan_hidden = np.asarray(hidden, dtype=np.float32) if hidden is not None else None
        det = weights.detector
        self.detector = DetectorSettings(
            threshold=float(det.get("threshold", 0.5)),
            min_cells=int(det.get("min_cells", 2)),
            merge_iou=float(det.get("merge_iou", 0.2)),
            grow=float(det.get("grow", 1.0)),  # weights from before box growth: none
        )
        # a found defect is kept where the scan exceeds this inside its box (and grows to those blobs);
        # the scan's own threshold only ranks zooms. Weights without a calibrated value use the latter.
        self.agree_threshold = float(det.get("agree_threshold", self.scan_threshold))
        self.fusion = list(weights.fusion) if weights.fusion else list(DEFAULT_WEIGHTS)
        self.meta = weights.meta
        # "onnx": the three inference graphs run on ONNX Runtime (same function, ~1.4x faster end to end)
        self.engine = onnx_engine.resolve_engine(engine)
        self._onnx: onnx_engine.OnnxEngine | None = None
        self.crop_workers = bool(crop_workers)  # False: defect_maps_async declines (crops run one at a time)
        self._workers: ThreadPoolExecutor | None = None  # crop workers (defect_maps_async), made on first use
        self._lock = threading.Lock()
        _FORKABLE.add(self)
        if self.engine == "onnx":
            try:
                # ONNX Runtime ignores OMP_NUM_THREADS: follow torch's count, which honours it (and the
                # per-worker limit of `qprobe batch`), so N workers never start N full-width pools
                self._onnx = onnx_engine.OnnxEngine(self.net, threads if threads > 0 else torch.get_num_threads())
            except Exception as exc:  # export or runtime failure: "auto" still scores, with torch
                if engine == "onnx":
                    raise RuntimeError(f"the ONNX Runtime engine could not be built ({exc}); use --engine torch") from exc
                warnings.warn(f"ONNX Runtime engine unavailable ({exc}); scoring with torch", RuntimeWarning, stacklevel=2)
                self.engine = "torch"

    @classmethod
    def load(cls, path: str | Path | None = None, **kw: object) -> ClassicModel:
        return cls(load_weights(path), **kw)  # type: ignore[arg-type]

    @torch.inference_mode()
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
        if self.net.aux is None:
            return score
        # the second backbone's stem sees the view cut to a multiple of 16 px, as in its training
        aux = self._five_crop_score(self._aux_stem(self._batch(fit_multiple(view))), self._aux_scores)
        return float(self.net.combine(score, aux))

    def _batch(self, view: np.ndarray) -> torch.Tensor:
        """The view as a uint8 batch (with its mirror when the regressor was trained with flips)."""
        batch = to_batch(view)
        return torch.cat([batch, batch.flip(3)], dim=0) if self.score_flip else batch

    def _five_crop_score(self, stem: np.ndarray, scores_of: Any) -> float:
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

    def _aux_stem(self, batch: torch.Tensor) -> np.ndarray:
        """The aux backbone's frozen stem map of a uint8 batch."""
        if self._onnx is not None:
            return self._onnx.aux_stem(batch.numpy())
        assert self.net.aux is not None
        return self.net.aux.stem(batch).contiguous().numpy()

    def _aux_scores(self, crops: np.ndarray) -> np.ndarray:
        """The aux backbone's score of each stem-map crop."""
        if self._onnx is not None:
            return self._onnx.aux_scores(crops)
        assert self.net.aux is not None
        return self.net.aux.score_from_stem(torch.from_numpy(np.ascontiguousarray(crops))).numpy()

    def _stem(self, batch: torch.Tensor) -> np.ndarray:
        """The frozen stem's map of a uint8 batch (numpy, whichever engine runs it)."""
        if self._onnx is not None:
            return self._onnx.stem(batch.numpy())
        return self.net.stem(batch).contiguous().numpy()

    def _scores(self, crops: np.ndarray) -> np.ndarray:
        """The ensemble's score of each stem-map crop."""
        if self._onnx is not None:
            return self._onnx.scores(crops)
        x = torch.from_numpy(np.ascontiguousarray(crops)).contiguous(memory_format=torch.channels_last)
        return self.net.score_from_stem(x).numpy()

    @torch.inference_mode()
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

    @torch.inference_mode()
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
        x = to_batch(rgb)
        if self._onnx is not None:
            return self._onnx.crop_logits(x.numpy(), single=single)[0]
        return self.net.defect_logits(self.net.tap(x))[0].numpy()


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
