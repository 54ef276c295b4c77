"""Fit the fusion weights on benchmark images scored by the full pipeline."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from qprobe.backends.classic.fusion import fit_fusion, fusion_features
from qprobe.backends.classic.weights import ClassicWeights
from qprobe.manifest import ManifestRow


def fit_on_rows(
    weights: ClassicWeights, rows: list[ManifestRow], n_images: int, seed: int = 0
) -> tuple[tuple[float, ...], dict[str, Any]]:
    """Score ``n_images`` rows (all kinds) with the pipeline, then least-squares fit to their MOS."""
    from qprobe.backends.classic.backend import ClassicBackend
    from qprobe.backends.classic.runtime import ClassicModel

    rng = np.random.default_rng(seed)
    pick = [rows[int(i)] for i in rng.permutation(len(rows))[: max(1, n_images)]]
    backend = ClassicBackend()
    backend._model = ClassicModel(weights)
    feats, targets = [], []
    t0 = time.time()
    for row in pick:
        a = backend.assess(row.path)
        if not a.ok or a.trajectory is None:
            continue
        policy_state = a.extra.get("classic", {})
        s_global = float(policy_state["s_global"])
        crops = [float(v) for v in policy_state["crop_scores"]]
        b = float(policy_state["burden"])
        feats.append(fusion_features(s_global, crops, b))
        targets.append(float(row.mos))
    w = fit_fusion(np.stack(feats), np.asarray(targets))
    pred = np.stack(feats) @ np.asarray(w)
    from qprobe.eval.metrics import srcc

    return w, {"images": len(feats), "train_srcc": round(float(srcc(pred, np.asarray(targets))), 4), "seconds": round(time.time() - t0, 1)}
