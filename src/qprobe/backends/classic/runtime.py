"""The torch side of the classic backend: a weight file → the network → a callable model.

:class:`ClassicModel` is :class:`~qprobe.backends.classic.core.ClassicCore`
(everything the policy calls) built from a weight file: it loads the
network, exports its graphs to ONNX Runtime (cached on disk), and runs them
in torch eager instead with ``engine="torch"``. Scoring from a cached
bundle does not import this module (:func:`~qprobe.backends.classic.core.load_model`).

Imported only when a classic backend is created (never by ``import qprobe``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from qprobe.backends.classic.core import (  # noqa: F401 - re-exported: the names' old home
    MIN_SIDE,
    TILE_MARGIN,
    ClassicCore,
    NetInfo,
    fit_multiple,
    fit_side,
    write_bundle,
)
from qprobe.backends.classic.mobilenet import fuse_batchnorm
from qprobe.backends.classic.model import ClassicNet, NetConfig
from qprobe.backends.classic.weights import ClassicWeights, load_weights
from qprobe.types import Box, Defect


def to_batch(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 → 1 x 3 x H x W uint8 tensor (copies read-only views)."""
    arr = rgb if rgb.flags.writeable and rgb.flags.c_contiguous else np.array(rgb, copy=True, order="C")
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)


class ClassicModel(ClassicCore):
    """Quality regressor + dense defect detector + scan model + fusion weights, from a weight file.

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
        fuse_batchnorm(self.net.defect_adapt)
        self.net.use_channels_last()
        info = NetInfo(
            classes=tuple(cfg.classes),
            has_detector=not missing and len(cfg.classes) > 1,
            stem_stride=self.net.stem_stride(),
            score_flip=bool(cfg.score_flip),
            n_members=self.net.n_members,
            has_aux=self.net.aux is not None,
        )
        super().__init__(
            info,
            weights.scan,
            weights.detector,
            weights.fusion,
            weights.meta,
            max_crop_side=max_crop_side,
            zoom_side=zoom_side,
            score_crop=score_crop,
            max_tiles=max_tiles,
            crop_workers=crop_workers,
        )
        # "onnx": the inference graphs run on ONNX Runtime (same function, ~1.4x faster end to end)
        self.engine = onnx_engine.resolve_engine(engine)
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
    def load(cls, path: str | Path | None = None, bundle: Path | None = None, **kw: object) -> ClassicModel:
        """The model of a weight file (default: the shipped one).

        ``bundle``: where to describe its cached graphs for torch-free loading next time
        (:func:`~qprobe.backends.classic.core.bundle_path`, :func:`~qprobe.backends.classic.core.load_model`).
        """
        weights = load_weights(path)
        model = cls(weights, **kw)  # type: ignore[arg-type]
        if bundle is not None and model._onnx is not None and model._onnx.folder is not None:
            write_bundle(bundle, model, model._onnx.folder, model._onnx.graphs, weights.scan, weights.detector)
        return model

    # -- torch eager where there is no ONNX Runtime engine --------------------------------
    @torch.inference_mode()
    def score(self, rgb: np.ndarray) -> float:
        return super().score(rgb)

    @torch.inference_mode()
    def detect(self, rgb: np.ndarray, box: Box, confirm=None, maps: np.ndarray | None = None) -> list[Defect]:  # noqa: ANN001
        return super().detect(rgb, box, confirm, maps)

    @torch.inference_mode()
    def defect_maps(self, rgb: np.ndarray, single: bool = False) -> np.ndarray:
        return super().defect_maps(rgb, single)

    def _stem(self, batch: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return super()._stem(batch)
        return self.net.stem(torch.from_numpy(np.ascontiguousarray(batch))).contiguous().numpy()

    def _scores(self, crops: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return super()._scores(crops)
        x = torch.from_numpy(np.ascontiguousarray(crops)).contiguous(memory_format=torch.channels_last)
        return self.net.score_from_stem(x).numpy()

    def _aux_stem(self, batch: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return super()._aux_stem(batch)
        assert self.net.aux is not None
        return self.net.aux.stem(torch.from_numpy(np.ascontiguousarray(batch))).contiguous().numpy()

    def _aux_scores(self, crops: np.ndarray) -> np.ndarray:
        if self._onnx is not None:
            return super()._aux_scores(crops)
        assert self.net.aux is not None
        return self.net.aux.score_from_stem(torch.from_numpy(np.ascontiguousarray(crops))).numpy()

    def _pass(self, rgb: np.ndarray, single: bool = False) -> np.ndarray:
        if self._onnx is not None:
            return super()._pass(rgb, single)
        return self.net.defect_logits(self.net.tap(to_batch(rgb)))[0].numpy()


__all__ = ["ClassicModel", "fit_side", "to_batch"]
