"""Does the defect head gain from depth-of-field training crops that keep their grain? A paired comparison (stop 28).

    python benchmarks/eval_head_grain.py BENCH_DIR ... --out runs/head_grain [--seed 0] [--epochs 8]
        [--threads 1] [--cuts 0.9] [--photos ../shared/data/photos/images] [--clive ../shared/data/clive]

Synthesizes the head's training crops twice, as ``qprobe train classic`` does
(seed 0), once as shipped and once with ``DetectorTrainConfig.dof_grain``
(depth-of-field windows keep their photo's sensor grain, ``bench.grain``);
the two sets pair up one to one — the same windows, defects and labels, only
the depth-of-field pixels differ. Trains a fresh frozen-tap head on each
(same seed), writes each as a weight file with the shipped regressor, scan,
fusion and calibrated operating point (``--out``/plain.pt, grain.pt), and
replays every benchmark with each (``replay_type_cuts.episodes``: recorded
once per weight file and benchmark, kept under ``--out``/cache): recall,
false boxes per clean / DoF image and SRCC at the shipped point, then with a
second pass for the four detail-loss types at each of ``--cuts``. Build the
benchmarks twice (default and ``dof_grain: true``) to see both kinds of
negatives.

Cost on 2 cores: crops ≈ 8 min and training ≈ 11 min per head (one thread
each; run two copies side by side with ``--only plain`` / ``--only grain``),
≈ 50 s per benchmark and head to record.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_head_adapt import fresh_head_network, head_state  # noqa: E402
from replay_type_cuts import episodes, replay_row, two_pass  # noqa: E402

DETAIL_LOSS = ["haze", "gaussian_blur", "motion_blur", "smear"]


def train(variant: str, out: Path, seed: int, epochs: int, photos: str, clive: str) -> Path:
    """Train one head on crops synthesized with (``grain``) or without (``plain``) depth-of-field grain."""
    from qprobe.backends.classic.weights import load_weights, save_weights
    from qprobe.train_classic import detector as det
    from qprobe.train_classic.run import TrainClassicConfig, _head_crops

    path = out / f"{variant}.pt"
    if path.is_file():
        return path
    shipped = load_weights()
    net = fresh_head_network(shipped, 0, seed)
    tcfg = TrainClassicConfig(photos=photos, clive=clive)
    tcfg.detector.dof_grain = variant == "grain"
    files = sorted(p for p in Path(photos).iterdir() if p.is_file())
    samples, _, _ = _head_crops(tcfg, net, files, print)
    det.train_head(net, samples, det.DetectorTrainConfig(epochs=epochs, seed=seed), print)
    state = head_state(shipped, net)
    meta = {**shipped.meta, "head_grain_experiment": {"variant": variant, "seed": seed}}
    save_weights(dataclasses.replace(shipped, state_dict=state, meta=meta), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", type=Path, nargs="*")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["plain", "grain"], default=None, help="train / replay one head only")
    ap.add_argument("--cuts", default="0.9")
    ap.add_argument("--photos", default="../shared/data/photos/images")
    ap.add_argument("--clive", default="../shared/data/clive")
    args = ap.parse_args()

    import torch

    from qprobe.backends import create_backend

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in [args.only] if args.only else ["plain", "grain"]:
        weights = train(variant, args.out, args.seed, args.epochs, args.photos, args.clive)
        if not args.bench:
            continue
        backend = create_backend("classic", weights=str(weights))
        model = backend.model
        # one cache folder per head and benchmark folder (a default and a grainy build share names)
        recorded = {
            f"{b.parent.name}/{b.name}": episodes(backend, b, args.out / "cache" / variant / b.parent.name)
            for b in args.bench
        }
        shipped = model.detections_from_maps
        base = replay_row(model, recorded, f"{variant} head, shipped point", None, 30)
        for cut in (float(c) for c in args.cuts.split(",") if c):
            model.detections_from_maps = two_pass(model, DETAIL_LOSS, cut, 8)
            replay_row(model, recorded, f"{variant} head, + four at {cut}/8", base, 30)
            model.detections_from_maps = shipped


if __name__ == "__main__":
    main()
