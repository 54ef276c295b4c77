"""Fit the fusion weights on images scored by the full pipeline.

``alpha`` (see :mod:`~qprobe.backends.classic.fusion`) only acts on images
the global view did not see whole (``unseen`` > 0): benchmark builds of
high-resolution photos, whose proxy MOS is driven by local damage. It is
fitted on those, by correlation with the proxy MOS. CLIVE images (500 px,
``unseen`` = 0) keep the global score whatever ``alpha`` is; when some are
scored (``fusion_clive_images``) they are reported as a check, not fitted.
For the cross-validation weight files, the CLIVE images of the held-out fold
are left out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from qprobe.backends.classic.fusion import DEFAULT_WEIGHTS, fit_fusion, fuse
from qprobe.backends.classic.weights import ClassicWeights
from qprobe.manifest import ManifestRow


@dataclass
class FusionData:
    ids: list[str] = field(default_factory=list)
    s_global: list[float] = field(default_factory=list)
    keep: list[float] = field(default_factory=list)
    unseen: list[float] = field(default_factory=list)
    targets: list[float] = field(default_factory=list)
    source: list[str] = field(default_factory=list)

    def fit(self, exclude: Iterable[str] = ()) -> tuple[float, ...]:
        """Fit on the images ``alpha`` acts on (``unseen`` > 0), each weighing the same."""
        skip = set(exclude)
        idx = [i for i, x in enumerate(self.ids) if x not in skip and self.unseen[i] > 0.0]
        if not idx:
            return DEFAULT_WEIGHTS
        return fit_fusion(
            np.asarray([self.s_global[i] for i in idx]),
            np.asarray([self.keep[i] for i in idx]),
            np.asarray([self.targets[i] for i in idx]),
            unseen=np.asarray([self.unseen[i] for i in idx]),
        )

    def srcc(self, weights: tuple[float, ...], source: str) -> float:
        from qprobe.eval.metrics import srcc

        idx = [i for i, s in enumerate(self.source) if s == source]
        pred = np.asarray([fuse(self.s_global[i], self.keep[i], weights, self.unseen[i]) for i in idx])
        return float(srcc(pred, np.asarray([self.targets[i] for i in idx])))


def score_rows(weights: ClassicWeights, rows: list[ManifestRow], source: str, data: FusionData | None = None) -> FusionData:
    """Run the pipeline on ``rows`` and collect (fusion features, MOS)."""
    from qprobe.backends.classic.backend import ClassicBackend
    from qprobe.backends.classic.runtime import ClassicModel

    data = data or FusionData()
    backend = ClassicBackend()
    backend._model = ClassicModel(weights)
    for row in rows:
        a = backend.assess(row.path)
        if not a.ok:
            continue
        sub = a.extra["classic"]
        data.ids.append(row.id)
        data.s_global.append(float(sub["s_global"]))
        data.keep.append(float(sub["keep"]))
        data.unseen.append(float(sub["unseen"]))
        data.targets.append(float(row.mos))
        data.source.append(source)
    return data


def sample(rows: list[ManifestRow], n: int, seed: int) -> list[ManifestRow]:
    rng = np.random.default_rng(seed)
    return [rows[int(i)] for i in rng.permutation(len(rows))[: max(0, n)]]


def fit_on_rows(
    weights: ClassicWeights,
    bench_rows: list[ManifestRow],
    n_bench: int,
    clive_rows: list[ManifestRow] = (),  # type: ignore[assignment]
    n_clive: int = 0,
    seed: int = 0,
) -> tuple[FusionData, tuple[float, ...], dict[str, Any]]:
    t0 = time.time()
    data = score_rows(weights, sample(bench_rows, n_bench, seed), "bench")
    if clive_rows and n_clive:
        score_rows(weights, sample(list(clive_rows), n_clive, seed), "clive", data)
    w = data.fit()
    info: dict[str, Any] = {"images": len(data.ids), "seconds": round(time.time() - t0, 1)}
    for src in sorted(set(data.source)):
        info[f"train_srcc_{src}"] = round(data.srcc(w, src), 4)
    return data, w, info
