"""The out-of-tree degradation families of ``benchmarks/unseen_degradations.py``.

They register into the process-wide registry, so they are exercised in a
child process: this test session's registry (and every bench build in it)
keeps the package's own families only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from qprobe.bench.degradations import list_degradations

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

CHILD = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import unseen_degradations as u
from conftest import make_texture
from qprobe.bench.degradations import DEGRADATIONS, SEVERITIES, list_degradations
from qprobe.bench.inject import inject_local
from qprobe.types import Box
image = make_texture(200, 240, seed=3)
box = Box(48.0, 40.0, 168.0, 150.0)
x1, y1, x2, y2 = box.to_int()
out = {"names": list(u.UNSEEN), "package": [n for n in list_degradations() if not n.startswith("unseen_")], "families": {}}
for name in u.UNSEEN:
    changes, outside, repeat = [], 0.0, True
    for s in SEVERITIES:
        a = inject_local(image, box, name, s, seed=11)[0].astype(np.float64)
        b = inject_local(image, box, name, s, seed=11)[0]
        repeat &= bool(np.array_equal(a, b))
        diff = np.abs(a - image)
        changes.append(float(diff[y1 + 16 : y2 - 16, x1 + 16 : x2 - 16].mean()))
        inside = np.zeros(diff.shape[:2], bool); inside[y1:y2, x1:x2] = True
        outside = max(outside, float(diff[~inside].max()))
    out["families"][name] = {"changes": changes, "outside": outside, "repeat": repeat, "near": DEGRADATIONS.metadata(name)["near"]}
print(json.dumps(out))
"""


def test_unseen_families_are_local_visible_graded_and_stay_out_of_the_package() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(BENCHMARKS), str(Path(__file__).resolve().parent)],
        capture_output=True, text=True, check=True,
    )
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(res["names"]) == 6 and all(n.startswith("unseen_") for n in res["names"])
    assert res["package"] == list_degradations()  # the child's package families are this process's
    assert not any(n.startswith("unseen_") for n in list_degradations())  # nothing leaked here
    for name, fam in res["families"].items():
        assert fam["outside"] == 0.0, name  # pixels outside the box are never written
        assert fam["repeat"], name  # a seed fixes the output
        assert fam["changes"][0] > 0.2, (name, fam["changes"])  # even severity 1 changes the box
        assert fam["changes"][-1] > fam["changes"][0], (name, fam["changes"])  # and severity grades it
        assert fam["near"] == "" or fam["near"] in list_degradations(), name
