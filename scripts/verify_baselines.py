#!/usr/bin/env python
"""Compare qprobe's NIQE / BRISQUE / PIQE with their reference implementations.

References (run in a *separate* Python environment, because they need
OpenCV, scikit-image and libsvm, which qprobe does not):

* NIQE    — scikit-video 1.1.11 ``skvideo.measure.niqe``. It calls two APIs
            that no longer exist (``numpy.int``, ``scipy.misc.imresize``);
            the shims below restore them exactly as they were
            (``imresize(x, 0.5, interp='bicubic', mode='F')`` = Pillow
            bicubic resize of the float image), without patching skvideo.
* BRISQUE — the ``brisque`` package 0.2.0 (``BRISQUE().score``; libsvm + OpenCV).
            On numpy 2 its features are 1-element arrays that ``float()``
            refuses; a wrapper flattens them (values unchanged).
* PIQE    — ``pypiqe`` 1.2 (a port of MATLAB's ``piqe``). It would convert
            colour with ``cv2.COLOR_BGR2GRAY``; it is given MATLAB's
            ``rgb2gray`` (rounded BT.601 luma), which is what qprobe uses.

Set up the reference environment once::

    python -m venv /tmp/refenv
    /tmp/refenv/bin/pip install numpy scipy pillow opencv-python-headless scikit-image \
        libsvm-official requests brisque==0.2.0
    /tmp/refenv/bin/pip install --no-deps scikit-video==1.1.11 pypiqe==1.2

then::

    python scripts/verify_baselines.py --ref-python /tmp/refenv/bin/python \
        --images ../shared/data/clive/images --limit 40 --out verify_baselines.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REFERENCE_CODE = r"""
import json, sys
import numpy as np
import scipy, scipy.misc
from PIL import Image

np.int = int  # removed in numpy 1.24; skvideo.measure.niqe still calls np.int(patch_size)

def imresize(arr, size, interp="bicubic", mode=None):
    assert mode == "F" and interp == "bicubic" and isinstance(size, float)
    im = Image.fromarray(np.asarray(arr, dtype=np.float32), mode="F")
    new = tuple((np.array(im.size) * size).astype(int))
    return np.asarray(im.resize(new, resample=Image.BICUBIC), dtype=np.float32)

scipy.misc.imresize = imresize  # removed in scipy 1.3

import skvideo.measure
from brisque import BRISQUE
from pypiqe import piqe

# brisque 0.2.0 returns 1-element arrays as features, which numpy >= 2 refuses to
# turn into floats; flatten them (values unchanged) — the package itself is not modified.
_features = BRISQUE.calculate_brisque_features
BRISQUE.calculate_brisque_features = lambda self, *a, **k: np.array(
    [float(np.ravel(f)[0]) for f in _features(self, *a, **k)], dtype=object)
brisque = BRISQUE(url=False)
out = {}
for path in json.loads(sys.stdin.read()):
    rgb = np.asarray(Image.open(path).convert("RGB"))
    x = rgb.astype(np.float64)
    gray = x[..., 0] * 0.298936021293775 + x[..., 1] * 0.587043074451121 + x[..., 2] * 0.114020904255103
    rec = {}
    rec["niqe"] = float(skvideo.measure.niqe(gray)[0])
    rec["brisque"] = float(brisque.score(rgb))
    rec["piqe"] = float(piqe(np.round(gray).astype(np.uint8))[0])
    out[path] = rec
print(json.dumps(out))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-python", required=True, help="Python of the reference environment")
    ap.add_argument("--images", default="../shared/data/clive/images", help="folder of test images")
    ap.add_argument("--limit", type=int, default=40, help="number of images (sorted by name)")
    ap.add_argument("--out", default=None, help="write per-image values and the summary as JSON here")
    args = ap.parse_args()

    import numpy as np
    from scipy.stats import spearmanr

    from qprobe.eval.baselines import create_baseline
    from qprobe.io import list_images

    paths = [str(p.resolve()) for p in list_images(args.images)[: args.limit]]
    proc = subprocess.run(
        [args.ref_python, "-c", REFERENCE_CODE],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return 1
    ref = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = {n: create_baseline(n) for n in ("niqe", "brisque", "piqe")}
    rows = {}
    for p in paths:
        rows[p] = {n: {"ref": ref[p][n], "ours": b.assess(p).extra.get("raw")} for n, b in ours.items()}
    summary = {}
    for n in ours:
        r = np.array([rows[p][n]["ref"] for p in paths])
        o = np.array([rows[p][n]["ours"] for p in paths])
        d = np.abs(o - r)
        summary[n] = {
            "n": len(paths),
            "max_abs_diff": float(d.max()),
            "mean_abs_diff": float(d.mean()),
            "max_rel_diff": float((d / np.maximum(np.abs(r), 1e-9)).max()),
            "srcc_ours_vs_ref": float(spearmanr(o, r).statistic),
            "ref_range": [float(r.min()), float(r.max())],
        }
        print(
            f"{n:8s} n={len(paths)} max|diff|={d.max():.3g} mean|diff|={d.mean():.3g} "
            f"max rel={summary[n]['max_rel_diff']:.3g} SRCC(ours, ref)={summary[n]['srcc_ours_vs_ref']:.5f} "
            f"ref range {r.min():.2f}..{r.max():.2f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "images": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
