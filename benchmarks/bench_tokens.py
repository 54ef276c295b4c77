"""Visual-token cost of probing vs. native resolution, with Qwen2.5-VL's real image processor.

    python benchmarks/bench_tokens.py [--width 3840 --height 2160] [--crop-max-pixels 200704]

Baseline (same run): one 3840x2160 image at native resolution through
Qwen2.5-VL's processor settings (patch 14, merge 2, min_pixels 3136,
max_pixels 12845056 — the checkpoint's preprocessor_config.json). Probing:
the agent's 672-px global view, then the global view plus 4 zooms cut by the
real environment (context-aware 1.5x enlargement, clamping) from the
full-resolution original, each capped by the LLM backends' crop budget.
Tokens are counted by transformers' ``Qwen2VLImageProcessorPil`` (the
numpy/PIL processor of Qwen2.5-VL; no download, no torchvision) and checked
against an actual preprocessing run for the global view. Probe boxes cover
0.2 %, 1 %, 2.5 % and 5 % of the image — the benchmark's defect-area range.
Exits with status 1 if probing costs more than 15 % of native.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

MIN_PIXELS = 3136
MAX_PIXELS = 12845056
LIMIT = 0.15


def probe_boxes(w: int, h: int) -> list[tuple[float, float, float, float]]:
    """Four 4:3 boxes of 0.2/1/2.5/5 % of the image area, one per quadrant."""
    out = []
    for frac, (cx, cy) in zip((0.002, 0.01, 0.025, 0.05), ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.7, 0.7))):
        bw = (frac * w * h * 4 / 3) ** 0.5
        bh = bw * 3 / 4
        out.append((cx * w - bw / 2, cy * h - bh / 2, cx * w + bw / 2, cy * h + bh / 2))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=3840)
    ap.add_argument("--height", type=int, default=2160)
    ap.add_argument("--view-long-side", type=int, default=672)
    ap.add_argument("--crop-max-pixels", type=int, default=None, help="Crop budget (default: the backends' default).")
    args = ap.parse_args()

    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from qprobe.agent.actions import Zoom
    from qprobe.agent.env import EnvConfig, ProbeEnv
    from qprobe.backends.vlm.backend import DEFAULT_CROP_MAX_PIXELS
    from qprobe.backends.vlm.messages import fit_pixels
    from qprobe.types import Box

    crop_budget = args.crop_max_pixels or DEFAULT_CROP_MAX_PIXELS
    proc = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=14, merge_size=2)

    def tokens(w: int, h: int) -> int:
        return proc.get_number_of_image_patches(h, w, {}) // (proc.merge_size**2)

    w, h = args.width, args.height
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    env = ProbeEnv(EnvConfig(view_long_side=args.view_long_side, max_zooms=4))
    obs = env.reset(image)
    view = obs.image
    native = tokens(w, h)
    glob = tokens(view.shape[1], view.shape[0])
    check = proc(images=[Image.fromarray(view)], return_tensors="np")
    counted = int(np.prod(check["image_grid_thw"][0])) // (proc.merge_size**2)
    assert counted == glob, (counted, glob)

    probes = []
    for box in probe_boxes(w, h):
        obs, _ = env.step(Zoom(Box(*box)))
        raw = obs.image
        sent = fit_pixels(Image.fromarray(raw), crop_budget)
        probes.append((obs.box, raw.shape[1], raw.shape[0], sent.size, tokens(*sent.size), tokens(raw.shape[1], raw.shape[0])))

    print(f"Qwen2.5-VL processor: patch 14, merge 2, min_pixels {MIN_PIXELS}, max_pixels {MAX_PIXELS}")
    print(f"native {w}x{h}:                     {native:6d} visual tokens (baseline)")
    print(f"global view {view.shape[1]}x{view.shape[0]}:                {glob:6d} tokens  ratio {glob / native:.3f}")
    for i, (box, cw, ch, size, tok, tok_raw) in enumerate(probes, 1):
        print(f"  probe {i}: crop {cw}x{ch} of the original -> sent {size[0]}x{size[1]}: {tok:5d} tokens "
              f"({tok_raw} without the crop budget)")
    total = glob + sum(p[4] for p in probes)
    total_raw = glob + sum(p[5] for p in probes)
    ratio = total / native
    print(f"global view + 4 probes (crop budget {crop_budget} px): {total:6d} tokens  ratio {ratio:.3f}")
    print(f"global view + 4 probes (no crop budget):        {total_raw:6d} tokens  ratio {total_raw / native:.3f}")
    ok = ratio <= LIMIT
    print(f"probing costs {100 * ratio:.1f} % of native resolution ({'<=' if ok else '>'} {100 * LIMIT:.0f} %)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
