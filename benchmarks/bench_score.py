"""Speed and memory of `qprobe score` against decoding the same file, in one run.

    python benchmarks/bench_score.py [--backend classic] [--runs 5] [--threads 2] [--engine auto]
        [--image PHOTO.jpg ...] [--baseline-set KEY=VALUE ...] [--parts]

Prints, for a 3840x2160 JPEG: median decode time, median time to score and
localize (decode included), and their ratio (target: <= 1.0 s and <= 5x
decode), and the CPU time the process spends per assessment (all threads:
with 2 cores, a busy average near 2 means the time is work, well below 2
that cores wait); the same for a locally damaged copy of it (three regions: noise,
JPEG, blur), where the agent zooms differently; for the classic backend also the same with its torch engine
(``--compare-torch``, on by default) and with its zoom crops one after another, each on all
threads (``crop_workers=False``, as before stop 22; the answers must be identical),
interleaved in the same runs; for a 50 MP JPEG: the peak resident memory of a process that
scores it and of one that only decodes it (target: <= 1.5 GB), and the
time of each one's second run (one run each: indicative). The test
images are made from ../shared/data/photos when present (else synthesized).

``--baseline-set KEY=VALUE ...`` also times the same backend with those
settings on the 4K JPEG, interleaved in the same runs (e.g. ``extra_zooms=0``,
the zoom budget before stop 31), and prints how much longer the defaults take.

``--parts`` (classic) also times each part of the 4K assessment on its own —
decode, global view, global score, scan and zoom plan, the zoom crops, the
views' fingerprints — in wall and CPU seconds, beside the CPU-seconds an
assessment at 5x decode could spend with every core busy throughout.

``--image`` (repeatable) also times your own files, each against its own
decode in the same runs: the ratio depends on the file (a detailed photo
takes longer to decode than a smooth one, while the scorer's work depends
mostly on the pixel count and the zooms it makes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos" / "images"


def make_jpeg(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    src = PHOTOS / "plasma_Volna.jpg"
    if src.is_file():
        img = Image.open(src).convert("RGB").resize(size, Image.Resampling.LANCZOS)
    else:  # synthetic fallback: smooth gradients + texture
        rng = np.random.default_rng(seed)
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        arr = 120 + 60 * np.sin(xx / 97.0)[..., None] * np.cos(yy / 71.0)[..., None] + rng.normal(0, 12, (h, w, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    img.save(path, quality=92)
    return path


DAMAGE = (  # (degradation, severity, box x1, y1, x2, y2) on the 3840x2160 image
    ("gaussian_noise", 3, 600, 300, 1000, 700),
    ("jpeg", 4, 2200, 1200, 2700, 1600),
    ("gaussian_blur", 3, 1500, 900, 1900, 1300),
)


def make_damaged(src: Path, path: Path, seed: int = 0) -> Path:
    """A copy of the JPEG ``src`` with the ``DAMAGE`` regions degraded (registered degradations)."""
    from qprobe.bench.degradations import create_degradation

    arr = np.asarray(Image.open(src).convert("RGB"), dtype=np.float32).copy()
    rng = np.random.default_rng(seed)
    for name, severity, x1, y1, x2, y2 in DAMAGE:
        deg = create_degradation(name)
        arr[y1:y2, x1:x2] = deg.apply(arr[y1:y2, x1:x2], severity, rng, **deg.sample(severity, rng))
    Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def decode_and_score(
    scorer: object, path: Path, decode: list[float], score: list[float], cpu: list[float] | None = None
) -> object:
    """Time decoding ``path`` and scoring it (appended to ``decode`` / ``score``); the assessment.

    ``cpu``: also append the CPU seconds the whole process spent on the assessment (every thread).
    """
    from qprobe.io import load_rgb

    t = time.perf_counter()
    load_rgb(path)
    decode.append(time.perf_counter() - t)
    c = time.process_time()
    t = time.perf_counter()
    a = scorer.assess(str(path))  # type: ignore[attr-defined]
    score.append(time.perf_counter() - t)
    if cpu is not None:
        cpu.append(time.process_time() - c)
    assert a.ok, a.error
    return a


def time_own_images(scorer: object, paths: list[Path], runs: int) -> None:
    """Print median decode and score times and their ratio for each of ``paths`` (interleaved runs)."""
    from PIL import Image

    for p in paths:
        if not p.is_file():
            raise SystemExit(f"--image {p}: no such file")
        scorer.assess(str(p))  # type: ignore[attr-defined]  # warm-up at this size
    times: dict[Path, tuple[list[float], list[float]]] = {p: ([], []) for p in paths}
    last: dict[Path, object] = {}
    for _ in range(runs):
        for p in paths:
            last[p] = decode_and_score(scorer, p, *times[p])
    print(f"your files ({runs} runs each):")
    for p in paths:
        d, s = (statistics.median(v) for v in times[p])
        w, h = Image.open(p).size
        a = last[p]
        print(f"  {p.name} ({w}x{h}): decode {d:.3f} s, score {s:.3f} s, {s / d:.2f}x; "
              f"zooms {len(a.probes)}, defects {len(a.defects)}")  # type: ignore[attr-defined]


def _timed(fn: object, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds (all threads of the process) of ``fn()`` over ``runs`` calls."""
    wall, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()  # type: ignore[operator]
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def time_parts(scorer: object, path: Path, probes: list[object], runs: int, cpu_total: float, decode: float) -> None:
    """Print wall and CPU seconds of each part of a classic assessment of ``path``, each timed on its own.

    The parts: decode, global view, global score, scan and zoom plan, the
    assessment's zoom crops through the defect head (on the crop workers
    where the model has them), and the fingerprints the trajectory keeps of
    every view. Their CPU sum against the whole assessment's CPU, and the
    CPU-seconds a 5x-decode assessment could spend with every core busy
    throughout: what any schedule of this work can reach.
    """
    from qprobe.agent.cropping import crop
    from qprobe.agent.env import fingerprint, global_view
    from qprobe.io import load_rgb

    m = scorer.model  # type: ignore[attr-defined]
    img = load_rgb(path)
    view, _ = global_view(img, scorer.env_config.view_long_side)  # type: ignore[attr-defined]
    crops = [crop(img, b) for b in probes]
    policy = scorer.policy_for(m, None)  # type: ignore[attr-defined]

    def all_crops() -> None:
        futures = [m.defect_maps_async(c) for c in crops]
        for c, f in zip(crops, futures):
            if f is None:  # no crop workers (torch engine, one thread): one after another
                m.defect_maps(c)
            else:
                f.result()

    parts = [
        ("decode", lambda: load_rgb(path)),
        ("global view", lambda: global_view(img, scorer.env_config.view_long_side)),  # type: ignore[attr-defined]
        ("global score", lambda: m.score(view)),
        ("scan and zoom plan", lambda: policy._plan_zooms(img)),
        (f"{len(crops)} zoom crops", all_crops),
        ("view fingerprints", lambda: [fingerprint(v) for v in [view, *crops]]),
    ]
    print(f"  parts, each timed on its own (median of {runs}): wall / CPU seconds")
    cpu_sum = 0.0
    for name, fn in parts:
        w, c = _timed(fn, runs)
        cpu_sum += c
        print(f"    {name:<20} {w:.3f} / {c:.3f}")
    cores = os.cpu_count() or 1
    print(f"    sum of CPU {cpu_sum:.3f} s (the whole assessment: {cpu_total:.3f} s); at 5x decode an "
          f"assessment has {5 * decode:.3f} s, {5 * decode * cores:.3f} CPU-s with all {cores} cores busy throughout")


def backend_options(backend: str, threads: int, engine: str) -> dict[str, object]:
    if backend != "classic":
        return {}
    return {"engine": engine, **({"threads": threads} if threads else {})}


def child(mode: str, path: str, backend: str, threads: int, engine: str) -> None:
    """Run in a subprocess: decode only, or score; print peak RSS (MB), seconds and zooms as JSON.

    The peak is that of a first decode or assessment; the seconds those of a
    second one (decode included), after the first has warmed up the weights,
    the engine and the allocator.
    """
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    zooms = 0
    if mode == "decode":
        from qprobe.io import load_rgb

        load_rgb(path)
        peak = own_peak_mb()
        t = time.perf_counter()
        load_rgb(path)
        seconds = time.perf_counter() - t
    else:
        from qprobe.backends import create_backend

        scorer = create_backend(backend, **backend_options(backend, threads, engine))
        scorer.assess(path)
        peak = own_peak_mb()
        t = time.perf_counter()
        a = scorer.assess(path)
        seconds = time.perf_counter() - t
        assert a.ok, a.error
        zooms = len(a.probes)
    print(json.dumps({"peak_mb": peak, "seconds": seconds, "zooms": zooms}))


def own_peak_mb() -> float:
    """This process's peak resident memory (MB).

    Linux's ``ru_maxrss`` can carry the parent's peak across fork + exec, so
    the per-address-space high-water mark ``VmHWM`` is read where it exists.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def in_child(mode: str, path: Path, backend: str, threads: int, engine: str) -> dict[str, float]:
    """Peak memory (MB), seconds and zooms of decoding or scoring ``path`` in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), "--backend", backend, "--threads", str(threads),
         "--engine", engine],
        capture_output=True, text=True, check=True,
    )
    return {k: float(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="classic")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engine", default="auto", help="classic: network runtime (auto, onnx, torch)")
    ap.add_argument("--no-compare-torch", dest="compare_torch", action="store_false",
                    help="classic: do not also time the torch engine")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--image", action="append", default=[], type=Path, metavar="PATH",
                    help="also time this file (repeatable): decode, score, ratio")
    ap.add_argument("--baseline-set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="also time the backend with these settings (YAML values), interleaved")
    ap.add_argument("--parts", action="store_true",
                    help="classic: also time each part of the 4K assessment on its own (wall and CPU seconds)")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.backend, args.threads, args.engine)
        return

    from qprobe.backends import create_backend

    with tempfile.TemporaryDirectory() as tmp:
        uhd = make_jpeg(Path(tmp) / "uhd.jpg", (3840, 2160))
        scorer = create_backend(args.backend, **backend_options(args.backend, args.threads, args.engine))
        scorer.assess(str(uhd))  # warm-up: weights, allocator, graph export
        engine = getattr(getattr(scorer, "model", None), "engine", args.engine) if args.backend == "classic" else ""
        ref = None
        if args.backend == "classic" and args.compare_torch and engine != "torch":
            ref = create_backend(args.backend, **backend_options(args.backend, args.threads, "torch"))
            ref.assess(str(uhd))
        seq = None  # the same scorer with its zoom crops one after another (no crop workers)
        if args.backend == "classic" and engine == "onnx" and args.threads != 1:
            seq = create_backend(args.backend, crop_workers=False, **backend_options(args.backend, args.threads, engine))
            seq.assess(str(uhd))
        base = None  # the same backend with --baseline-set's settings
        if args.baseline_set:
            from eval_classic_bench import backend_settings  # this folder is on the path when run as a script

            opts = {**backend_options(args.backend, args.threads, args.engine), **backend_settings(None, args.baseline_set)}
            base = create_backend(args.backend, **opts)
            base.assess(str(uhd))
        damaged = make_damaged(uhd, Path(tmp) / "uhd_damaged.jpg")
        scorer.assess(str(damaged))
        decode, score, score_ref, decode_dmg, score_dmg, cpu, score_seq, score_base = [], [], [], [], [], [], [], []
        for _ in range(args.runs):  # interleaved, so load changes hit all alike
            a = decode_and_score(scorer, uhd, decode, score, cpu)
            a_dmg = decode_and_score(scorer, damaged, decode_dmg, score_dmg)
            if seq is not None:
                t = time.perf_counter()
                c = seq.assess(str(uhd))
                score_seq.append(time.perf_counter() - t)
                assert c.ok and c.score == a.score and c.defects == a.defects, "crop workers changed the answer"
            if base is not None:
                t = time.perf_counter()
                a_base = base.assess(str(uhd))
                score_base.append(time.perf_counter() - t)
                assert a_base.ok, a_base.error
            if ref is not None:
                t = time.perf_counter()
                b = ref.assess(str(uhd))
                score_ref.append(time.perf_counter() - t)
                assert b.ok, b.error
        d, s = statistics.median(decode), statistics.median(score)
        label = f"backend {args.backend}" + (f" ({engine} engine)" if engine else "")
        print(f"3840x2160 JPEG, {label}, {args.threads} thread(s), {args.runs} runs")
        print(f"  decode median      {d:.3f} s")
        print(f"  score median       {s:.3f} s   (target <= 1.0 s)")
        print(f"  score / decode     {s / d:.2f}x   (target <= 5x)")
        print(f"  zooms {len(a.probes)}, defects {len(a.defects)}")
        c = statistics.median(cpu)
        # CPU seconds per wall second: how busy the cores were (decode included, which runs on one)
        print(f"  CPU per assessment {c:.3f} s ({c / s:.2f} of {os.cpu_count()} cores busy on average)")
        dd, sd = statistics.median(decode_dmg), statistics.median(score_dmg)
        print(f"  damaged copy ({len(DAMAGE)} regions): decode {dd:.3f} s, score {sd:.3f} s, {sd / dd:.2f}x; "
              f"zooms {len(a_dmg.probes)}, defects {len(a_dmg.defects)}")
        if args.parts and args.backend == "classic":
            time_parts(scorer, uhd, list(a.probes), args.runs, c, d)
        if score_seq:
            q = statistics.median(score_seq)
            print(f"  crops one by one   {q:.3f} s   ({q / d:.2f}x decode; the crop workers are {q / s:.2f}x faster)")
        if score_base:
            q = statistics.median(score_base)
            print(f"  with {' '.join(args.baseline_set)}: {q:.3f} s   ({q / d:.2f}x decode; zooms {len(a_base.probes)}; "
                  f"the defaults take {s / q:.2f}x its time)")
        if score_ref:
            r = statistics.median(score_ref)
            print(f"  torch engine       {r:.3f} s   ({r / d:.2f}x decode; {engine} is {r / s:.2f}x faster)")
        if args.image:
            time_own_images(scorer, args.image, args.runs)
        if not args.skip_memory:
            big = make_jpeg(Path(tmp) / "50mp.jpg", (8660, 5774))
            dec = in_child("decode", big, args.backend, args.threads, args.engine)
            sco = in_child("score", big, args.backend, args.threads, args.engine)
            pd, ps = dec["peak_mb"], sco["peak_mb"]
            print(f"50 MP JPEG ({8660}x{5774}) peak RSS: decode only {pd:.0f} MB, score {ps:.0f} MB "
                  f"({ps / pd:.2f}x; target <= 1536 MB)")
            print(f"  second run in each process: decode {dec['seconds']:.2f} s, score {sco['seconds']:.2f} s "
                  f"({sco['seconds'] / dec['seconds']:.1f}x decode; {int(sco['zooms'])} zooms)")


if __name__ == "__main__":
    main()
