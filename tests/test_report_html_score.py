"""Every bad input of the foundation issue through `qprobe score`, with its HTML report."""

from __future__ import annotations

import json
import re
import subprocess

from _helpers_product import qprobe_cmd, write_images
from test_io import write_bad_inputs


def test_score_cli_on_bad_inputs_with_report(tmp_path):
    expected = write_bad_inputs(tmp_path / "in")
    write_images(tmp_path / "in", 1, h=200, w=300)
    report = tmp_path / "report.html"
    res = subprocess.run(
        qprobe_cmd("score", str(tmp_path / "in"), "--backend", "dummy", "--json", "--report", str(report)),
        capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 1, res.stderr  # some files failed: non-zero, but every file has its line
    lines = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line) for line in res.stdout.splitlines()}
    assert set(lines) == set(expected) | {"img000.jpg"}
    for name, outcome in expected.items():
        if outcome == "error":
            assert lines[name]["score"] is None and name in lines[name]["error"]
        else:
            assert 1.0 <= lines[name]["score"] <= 5.0 and "error" not in lines[name]
    page = report.read_text()
    assert page.count('<section class="card"') == len(lines)
    assert len(re.findall(r'<img class="view"', page)) == len(lines) - 3  # failed files show a note instead
    assert page.count("image not available") == 3
