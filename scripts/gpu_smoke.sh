#!/usr/bin/env bash
# GPU smoke test: tiny-model runs on CUDA, each a few seconds, no download.
#
#   bash scripts/gpu_smoke.sh            # on a machine with an NVIDIA GPU
#   QPROBE_TEST_DEVICE=cpu bash scripts/gpu_smoke.sh   # the same checks on the CPU
#
# 1. the tiny Qwen2.5-VL probing episode through the transformers backend (bf16 and fp32,
#    single and batched, forced zoom pixel-checked) — tests/test_vlm_gpu.py;
# 2. the same episode through the CLI: `qprobe score --backend transformers --model DIR`.
# Training stages append their smoke runs below.
set -euo pipefail
cd "$(dirname "$0")/.."
export QPROBE_TEST_DEVICE="${QPROBE_TEST_DEVICE:-cuda}"
if [ "$QPROBE_TEST_DEVICE" != "cpu" ]; then
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'CUDA is not available: run on a GPU machine or set QPROBE_TEST_DEVICE=cpu')"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
fi

echo "== 1. tiny-model episode on $QPROBE_TEST_DEVICE (pytest -m gpu)"
python -m pytest -q -m gpu tests/test_vlm_gpu.py -p no:cacheprovider

echo "== 2. qprobe score --backend transformers (CLI)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python - "$work" <<'PY'
import sys
from pathlib import Path

import numpy as np

from qprobe.io import save_image
from qprobe.testing.tiny_vlm import build_tiny_qwen25vl

work = Path(sys.argv[1])
build_tiny_qwen25vl(work / "tiny")
rng = np.random.default_rng(0)
save_image(work / "photo.png", rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8))
PY
set +e
python -m qprobe score "$work/photo.png" --backend transformers --model "$work/tiny" --json \
  --probe 800,400,1000,560 --trajectories "$work/traj.jsonl" --dump-inputs "$work/inputs" > "$work/out.jsonl"
status=$?
set -e
# exit status 1 = the image was scored but the random model gave no valid answer (expected)
[ "$status" -le 1 ] || { echo "qprobe score failed with status $status"; exit 1; }
python - "$work" <<'PY'
import json, sys
from pathlib import Path

import numpy as np
from PIL import Image

from qprobe.types import read_trajectories

work = Path(sys.argv[1])
line = json.loads((work / "out.jsonl").read_text().splitlines()[-1])
(traj,) = list(read_trajectories(work / "traj.jsonl"))
x1, y1, x2, y2 = traj.probes[0].to_int()
img = np.asarray(Image.open(work / "photo.png").convert("RGB"))
crop = np.asarray(Image.open(work / "inputs" / "episode00000" / "turn1_image1.png"))
assert np.array_equal(crop, img[y1:y2, x1:x2]), "the crop sent to the model is not the original's pixels"
print(f"ok: {line['backend']} on {traj.decoding.get('dtype')}, probes {line['probes']}, error: {line.get('error')}")
PY
echo "== 3. training: stage 1, flywheel, stage 2, stage 3 on $QPROBE_TEST_DEVICE, 2 steps each (pytest -m gpu)"
python -m pytest -q -m gpu tests/test_train_stages.py -p no:cacheprovider
echo "== gpu_smoke: all checks passed"
