"""Fixtures for the classic backend tests: a small random-initialised weight file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


def make_random_weights(
    path: Path, classes: tuple[str, ...] = ("clean", "gaussian_blur", "gaussian_noise"), **net: object
) -> Path:
    """A complete, valid weight file with random heads (for plumbing tests, not for quality).

    ``net``: NetConfig overrides (e.g. ``aux="efficientnet_lite0"``, ``members=2``).
    """
    import torch

    from qprobe.backends.classic.model import ClassicNet, NetConfig
    from qprobe.backends.classic.scan import FEATURE_NAMES
    from qprobe.backends.classic.weights import ClassicWeights, save_weights

    torch.manual_seed(0)
    cfg = NetConfig(classes=list(classes), **net)  # type: ignore[arg-type]
    net = ClassicNet(cfg)
    d = 3 * len(FEATURE_NAMES) + 1
    rng = np.random.default_rng(0)
    w = ClassicWeights(
        net_config=dataclasses.asdict(cfg),
        state_dict=net.state_dict(),
        scan={"weights": rng.normal(0, 0.5, d).tolist(), "threshold": 0.6, "cell": 32, "radius": 3},
        detector={"threshold": 0.5, "min_cells": 2},
        fusion=[1.0],
        meta={"test": True},
    )
    save_weights(w, path)
    return path
