"""Extra crops for the defect head: mined negatives, a random control, transformed photos (stops 30-31).

    python benchmarks/eval_head_mining.py --out runs/head_mining
        --variant mined|control|sharpened|rescaled|plain
        [--hard 0.9/4] [--dup 2] [--seed 0] [--threads 1] [--calibration-bench BENCH]
        [--pool-per-photo 300] [--pool-per-clive 2] [--transformed-per-photo 120]
        [--photos ../shared/data/photos/images] [--clive ../shared/data/clive]

Then evaluate each calibrated head as the README's rows are measured:
``python benchmarks/eval_classic_bench.py BENCH --weights OUT/mined_s0_cal.pt``.

Steps, each kept under ``--out`` for the next run:

1. the head's training crops exactly as ``qprobe train classic`` synthesizes
   them (``run._head_crops``, seed 0), on the shipped frozen tap;
2. (mined, control) a pool of negative crops only (clean and depth-of-field windows of the
   training photos, clean and defocused CLIVE training photos; another seed);
3. (mined, control) the shipped head on every pool crop: its largest component at several
   probabilities (``poolstats.json``);
4. a fresh head (``--seed``) trained on the crops plus ``--dup`` copies of the
   extra crops: ``mined`` takes the pool crops where the shipped head
   has a component of at least ``cells`` cells above ``p`` (``--hard
   p/cells``), ``control`` as many pool crops drawn at random, ``sharpened``
   crops of the training photos each sharpened as a whole (:func:`sharpen`;
   camera sharpening all over a photo is not a local defect), half of them
   with a local degradation on top (stop 30 used ``--dup 1``), ``rescaled``
   the same of the photos shrunk and enlarged as a whole (:func:`rescale`,
   stop 31), ``plain`` the same of the photos as they are (their control);
5. its operating point chosen on ``--calibration-bench`` by the calibrate
   stage's rule (``train_classic.calibrate``), written as ``VARIANT_sSEED_cal.pt``.

Cost on 2 cores: crops ≈ 7 min, pool ≈ 3 min, sharpened crops ≈ 2 min (both threads), training
≈ 16 min and calibration ≈ 2 min per head (one thread each; run the two
variants side by side).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROBS = (0.8, 0.9, 0.95, 0.98, 0.99)
"""The probabilities at which step 3 measures the shipped head's largest component on each pool crop."""


def largest_component(p_def: np.ndarray, p: float) -> int:
    """Cells in the largest 8-connected component of ``p_def > p`` (0 if none)."""
    from scipy import ndimage

    labels, n = ndimage.label(p_def > p, structure=np.ones((3, 3), dtype=bool))
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


def hard_indices(stats: Sequence[dict[str, Any]], p: float, cells: int) -> list[int]:
    """Pool crops where the head has a component of at least ``cells`` cells above ``p``."""
    return [i for i, s in enumerate(stats) if s["largest"][str(p)] >= cells]


def control_indices(n_pool: int, n: int, seed: int = 7) -> list[int]:
    """``n`` pool crops drawn at random (the control for ``hard_indices``)."""
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n_pool, n, replace=False))


def _cached(path: Path, make: Any) -> Any:
    if path.is_file():
        with path.open("rb") as f:
            return pickle.load(f)
    value = make()
    with path.open("wb") as f:
        pickle.dump(value, f, protocol=4)
    return value


def negative_pool(
    net: Any, photos: Sequence[Path], clive: str, per_photo: int, per_clive: int, seed: int
) -> list[Any]:
    """Clean and depth-of-field crops only, synthesized as the training crops are (step 2)."""
    from qprobe.train_classic import synth
    from qprobe.train_classic.clive import read_clive
    from qprobe.train_classic.detector import FEATHER_FRAC, DetectorTrainConfig

    d = DetectorTrainConfig()
    maker = synth.CropMaker(net, list(net.config.classes), d.visible_delta, d.max_crop_side, FEATHER_FRAC)
    rng = np.random.default_rng(seed)
    pool = synth.photo_crops(
        maker,
        photos,
        per_photo,
        rng,
        kind_p=(0.0, 0.5, 0.5, 0.0),
        recompress_share=d.recompress,
        zoom_side=d.zoom_side,
        view_long_side=d.view_long_side,
        log=print,
    )
    rows = read_clive(clive)
    # every clive_holdout_every-th photo is kept out, as _head_crops keeps it out of training
    train = [Path(r.path) for i, r in enumerate(rows) if i % d.clive_holdout_every != 0]
    return pool + synth.clive_crops(maker, train, per_clive, rng, kind_p=(0.0, 0.6, 0.4, 0.0), log=print)


def sharpen(rgb: np.ndarray, amount: float, radius: float) -> np.ndarray:
    """The benchmark's ``ringing`` (unsharp mask), gain ``amount`` and sigma ``radius``, everywhere."""
    from qprobe.bench.degradations.ringing import Ringing

    mask = Ringing(amount=(amount,) * 5, radius=(radius,) * 5)  # one setting for every severity
    out = mask.apply(rgb.astype(np.float32), 1, np.random.default_rng(0))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def rescale(rgb: np.ndarray, factor: float) -> np.ndarray:
    """The photo resized as a whole by ``factor`` (Pillow's Lanczos; area-like when shrinking)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def transformed_crops(
    net: Any, photos: Sequence[Path], folder: Path, per_photo: int, seed: int, variant: str
) -> list[Any]:
    """Training crops of the photos, each photo transformed as a whole first.

    ``sharpened``: each photo gets its own gain U(0.5, 1.5) and radius
    U(0.8, 2.0) px (the benchmark's ``ringing`` at severity 1 is gain 1.0,
    radius 1.5): a photo sharpened all over like a camera does is clean,
    only a region sharpened apart from the rest is a defect.
    ``rescaled``: each photo twice, shrunk by U(0.6, 0.85) (denser detail
    per pixel) and enlarged by U(1.2, 1.6) (a softer photo all over, as a
    soft lens or an upsampled file gives): the head sees textures at other
    scales, and that a photo soft everywhere is clean; ``per_photo`` crops
    are split between the two.
    ``plain``: the photos as they are (the control: as many more crops,
    drawn the same way, without a transform).
    Crops are drawn as the training crops are (half with a local
    degradation on top, none recompressed).
    """
    from qprobe.io import load_rgb, save_image
    from qprobe.train_classic import synth
    from qprobe.train_classic.detector import FEATHER_FRAC, DetectorTrainConfig

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for photo in photos:
        if variant == "sharpened":
            amount, radius = rng.uniform(0.5, 1.5), rng.uniform(0.8, 2.0)
            path = folder / f"{photo.stem}.png"
            save_image(path, sharpen(load_rgb(photo), amount, radius))
            paths.append(path)
        elif variant == "rescaled":
            rgb = load_rgb(photo)
            for tag, factor in (("down", rng.uniform(0.6, 0.85)), ("up", rng.uniform(1.2, 1.6))):
                path = folder / f"{photo.stem}-{tag}.png"
                save_image(path, rescale(rgb, factor))
                paths.append(path)
        elif variant == "plain":
            paths.append(photo)
        else:
            raise ValueError(f"unknown variant {variant!r}")
    d = DetectorTrainConfig()
    maker = synth.CropMaker(net, list(net.config.classes), d.visible_delta, d.max_crop_side, FEATHER_FRAC)
    return synth.photo_crops(
        maker,
        paths,
        per_photo * len(photos) // len(paths),
        rng,
        kind_p=(0.5, 0.3, 0.2, 0.0),
        recompress_share=0.0,
        zoom_side=d.zoom_side,
        view_long_side=d.view_long_side,
        log=print,
    )


def pool_stats(weights: Any, pool: Sequence[Any]) -> list[dict[str, Any]]:
    """The shipped head on every pool crop (step 3)."""
    import torch

    from qprobe.backends.classic.detector import softmax
    from qprobe.backends.classic.model import ClassicNet, NetConfig

    net = ClassicNet(NetConfig(**weights.net_config))
    net.load_state_dict({k: v.float() for k, v in weights.state_dict.items()}, strict=False)
    net.eval()
    n = len(net.config.classes)
    out = []
    with torch.no_grad():
        for s in pool:
            p_def = 1.0 - softmax(net.defect_logits(s.stem.float())[0].numpy()[:n], axis=0)[0]
            out.append({"kind": s.kind, "largest": {str(p): largest_component(p_def, p) for p in PROBS}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--variant", choices=["mined", "control", "sharpened", "rescaled", "plain"], required=True
    )
    ap.add_argument(
        "--hard",
        default="0.9/4",
        help="p/cells: a pool crop is hard where the shipped head has such a component",
    )
    ap.add_argument("--dup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pool-per-photo", type=int, default=300)
    ap.add_argument("--pool-per-clive", type=int, default=2)
    ap.add_argument("--pool-seed", type=int, default=1001)
    ap.add_argument("--transformed-per-photo", "--sharpened-per-photo", type=int, default=120)
    ap.add_argument("--transformed-seed", "--sharpened-seed", type=int, default=2024)
    ap.add_argument("--calibration-bench", type=Path, default=None)
    ap.add_argument("--photos", default="../shared/data/photos/images")
    ap.add_argument("--clive", default="../shared/data/clive")
    args = ap.parse_args()

    import torch
    from eval_head_adapt import fresh_head_network, head_state

    from qprobe.backends.classic.weights import load_weights, save_weights
    from qprobe.train_classic import detector as det
    from qprobe.train_classic.run import TrainClassicConfig, _head_crops

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    shipped = load_weights()
    photos = sorted(p for p in Path(args.photos).iterdir() if p.is_file())
    tap_net = fresh_head_network(shipped, 0, 0)  # the shipped frozen tap: the crops' cached input
    tcfg = TrainClassicConfig(photos=args.photos, clive=args.clive)
    samples, _ = _cached(args.out / "crops.pkl", lambda: _head_crops(tcfg, tap_net, photos, print)[:2])
    if args.variant in ("sharpened", "rescaled", "plain"):
        extra = _cached(
            args.out / f"{args.variant}.pkl",
            lambda: transformed_crops(
                tap_net,
                photos,
                args.out / args.variant,
                args.transformed_per_photo,
                args.transformed_seed,
                args.variant,
            ),
        )
        what = (
            f"{len(extra)} crops of {args.variant} photos ({sum(c.negative for c in extra)} without a defect)"
        )
    else:
        pool = _cached(
            args.out / "pool.pkl",
            lambda: negative_pool(
                tap_net, photos, args.clive, args.pool_per_photo, args.pool_per_clive, args.pool_seed
            ),
        )
        stats_file = args.out / "poolstats.json"
        if not stats_file.is_file():
            stats_file.write_text(json.dumps(pool_stats(shipped, pool)))
        stats = json.loads(stats_file.read_text())
        p, cells = args.hard.split("/")
        hard = hard_indices(stats, float(p), int(cells))
        idx = hard if args.variant == "mined" else control_indices(len(pool), len(hard))
        extra = [pool[i] for i in idx]
        kinds = [stats[i]["kind"] for i in idx]
        what = f"{len(idx)} extra negatives of {len(pool)} ({kinds.count('dof')} depth of field)"
    print(f"{args.variant}: {what} x {args.dup} on {len(samples)} training crops", flush=True)

    name = f"{args.variant}_s{args.seed}"  # one head per variant and seed
    path = args.out / f"{name}.pt"
    if not path.is_file():
        net = fresh_head_network(shipped, 0, args.seed)
        det.train_head(
            net,
            list(samples) + list(extra) * args.dup,
            det.DetectorTrainConfig(epochs=args.epochs, seed=args.seed),
            print,
        )
        state = head_state(shipped, net)
        meta = {
            **shipped.meta,
            "head_mining_experiment": {
                "variant": args.variant,
                "seed": args.seed,
                "hard": args.hard,
                "extra": len(extra),
                "dup": args.dup,
            },
        }
        save_weights(dataclasses.replace(shipped, state_dict=state, meta=meta), path)
    if args.calibration_bench is None:
        return
    from qprobe.backends.classic.backend import ClassicBackend
    from qprobe.eval.datasets import load_dataset
    from qprobe.train_classic import calibrate as cal

    backend = ClassicBackend(weights=str(path), threads=args.threads)
    result = cal.calibrate(
        backend.model,
        cal.record(backend, load_dataset("qprobe-bench", args.calibration_bench)),
        cal.CalibrationConfig(),
    )
    chosen, before = result["chosen"], result["before"]
    print(
        f"{args.variant}: calibrated {json.dumps(chosen)}; at the shipped point {json.dumps(before)}",
        flush=True,
    )
    point = chosen or {k: before[k] for k in ("threshold", "min_cells", "agree_threshold")}
    w = load_weights(path)
    w.detector = {
        **w.detector,
        **{k: point[k] for k in ("threshold", "min_cells", "agree_threshold")},
        "grow": float(result["grow"]["chosen"]),
    }
    save_weights(w, args.out / f"{name}_cal.pt")


if __name__ == "__main__":
    main()
