"""The HTML report: self-contained, crops from the full-resolution original, and checked in Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qprobe.io import load_rgb, save_image
from qprobe.report import write_image_reports, write_report
from qprobe.report.html import render_report
from qprobe.types import Assessment, Box, Defect, Step, Trajectory

from _helpers_product import chromium_binary, run_chromium
from conftest import make_texture

W, H = 2000, 1200


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("report-images")
    big = make_texture(H, W, seed=5)
    big[900:1100, 1500:1800] = 0  # a dark patch, so the crop's pixels are recognisable
    save_image(tmp_path / "big.png", big)
    save_image(tmp_path / "small.jpg", make_texture(300, 400, seed=6))
    return tmp_path


def _assessments(tmp_path: Path) -> list[Assessment]:
    traj = Trajectory(
        image=str(tmp_path / "big.png"), image_size=(W, H), backend="dummy",
        steps=[
            Step("observe", view_size=(896, 597)),
            Step("zoom", box=Box(1450, 775, 1850, 1075), text="<think>dark area</think><tool_call>...</tool_call>"),
            Step("observe", box=Box(1350, 700, 1950, 1150), view_size=(600, 450)),
            Step("answer", text='<answer>{"score": 2.1}</answer>'),
        ],
    )
    hurt = Assessment(
        score=2.1,
        defects=[Defect(Box(1500, 900, 1800, 1100), "contrast_loss", 4, 0.9), Defect(Box(100, 100, 300, 250), "noise", 2)],
        probes=[Box(1350, 700, 1950, 1150)],
        reasons=["crushed blacks bottom right", "<script>alert('x')</script>"],
        backend="dummy", path=str(tmp_path / "big.png"), image_size=(W, H), elapsed_s=1.2, trajectory=traj,
    )
    fine = Assessment(score=4.4, backend="dummy", path=str(tmp_path / "small.jpg"), image_size=(400, 300))
    failed = Assessment(score=None, backend="dummy", path=str(tmp_path / "gone.jpg"), error="ImageLoadError: file not found")
    return [fine, hurt, failed]


def _decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/jpeg;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def test_report_is_self_contained_and_crops_are_full_resolution(tmp_path, images_dir):
    items = _assessments(images_dir)
    out = write_report(items, tmp_path / "report.html")
    page = out.read_text()
    # No external resource: every src/href is a data URL or an in-page anchor.
    for attr in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("data:", "#")), attr
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert page.count('<section class="card"') == 3 and 'class="summary"' in page
    # Two defects on the image, one of them again inside the zoom crop that contains it; one probe.
    assert page.count('class="box defect"') == 3 and page.count('class="box probe"') == 1
    data = json.loads(re.search(r'id="qprobe-data">(.*?)</script>', page).group(1))
    assert [d["score"] for d in data] == [4.4, 2.1, None]
    # The zoom crop is cut from the full-resolution original (600x450 px shown at most 384 px wide).
    crops = re.findall(r'<figure class="crop probe"><div class="stage"><img src="([^"]+)" width="(\d+)" height="(\d+)"', page)
    assert len(crops) == 1
    url, w, h = crops[0]
    assert (int(w), int(h)) == (384, 288)
    crop = _decode(url)
    expect = np.asarray(Image.fromarray(load_rgb(images_dir / "big.png")[700:1150, 1350:1950]).resize((384, 288), Image.Resampling.LANCZOS))
    assert np.abs(crop.astype(int) - expect.astype(int)).mean() < 6
    # The defect outside every zoom gets its own close-up at native resolution (200x150 px).
    assert re.search(r'<figure class="crop defect"><div class="stage"><img src="[^"]+" width="200" height="150"', page)
    assert "image not available" in page and "file not found" in page
    view = _decode(re.search(r'<img class="view" alt="[^"]*big.png" src="([^"]+)"', page).group(1))
    assert view.shape == (614, 1024, 3)  # downscaled for the page


def test_single_and_per_image_reports(tmp_path, images_dir):
    items = _assessments(images_dir)
    page = render_report([items[1]])
    assert 'class="summary"' not in page and "qprobe report:" in page
    paths = write_image_reports(items, tmp_path / "each")
    assert [p.name for p in paths] == ["00000_small.html", "00001_big.html", "00002_gone.html"]
    assert all(p.stat().st_mode & 0o044 for p in paths)  # readable by a web server, not 0600
    with pytest.raises(ValueError, match="nothing to report"):
        write_report([], tmp_path / "x.html")


def test_max_cards_keeps_failures_and_worst_scores(tmp_path):
    items = [Assessment(score=s, backend="dummy", path=None) for s in (4.0, 1.5, 3.0, 2.0)]
    items.append(Assessment(score=None, backend="dummy", error="boom"))
    page = render_report(items, max_cards=3)
    assert re.findall(r'<section class="card" id="card-(\d+)"', page) == ["1", "3", "4"]
    assert "Detailed cards for 3 of 5" in page and page.count("<tr data-index=") == 5


MEASURE_JS = """
window.addEventListener('load', function () {
  var out = {cards: []};
  document.querySelectorAll('section.card').forEach(function (card) {
    var c = {id: card.id, boxes: [], crops: []};
    var img = card.querySelector('.stage.main img.view');
    if (img) {
      var r = img.getBoundingClientRect();
      c.view = {w: r.width, h: r.height, nw: img.naturalWidth, nh: img.naturalHeight, complete: img.complete};
      card.querySelectorAll('.stage.main .box').forEach(function (b) {
        var q = b.getBoundingClientRect();
        c.boxes.push({kind: b.classList.contains('probe') ? 'probe' : 'defect', x: q.left - r.left, y: q.top - r.top,
                      w: q.width, h: q.height, visible: getComputedStyle(b).display !== 'none'});
      });
    }
    card.querySelectorAll('figure.crop img').forEach(function (i) {
      var q = i.getBoundingClientRect();
      var marks = Array.prototype.map.call(i.parentNode.querySelectorAll('.box'), function (b) {
        var r = b.getBoundingClientRect(); return {x: r.left - q.left, y: r.top - q.top, w: r.width, h: r.height};
      });
      c.crops.push({w: q.width, h: q.height, nw: i.naturalWidth, nh: i.naturalHeight, complete: i.complete, marks: marks});
    });
    out.cards.push(c);
  });
  var th = document.querySelectorAll('table.summary thead th');
  function order() { return Array.prototype.map.call(document.querySelectorAll('table.summary tbody tr'), function (r) { return r.dataset.index; }); }
  function cards() { return Array.prototype.map.call(document.querySelectorAll('#cards section.card'), function (c) { return c.id; }); }
  th[2].click(); out.asc = order(); out.cardsAsc = cards();
  th[2].click(); out.desc = order();
  document.getElementById('show-defects').click();
  out.defectsHidden = Array.prototype.every.call(document.querySelectorAll('.box.defect'), function (b) { return getComputedStyle(b).display === 'none'; });
  var pre = document.createElement('pre'); pre.id = 'qprobe-measure'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


@pytest.fixture(scope="module")
def chromium():
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return binary


def test_report_in_headless_chromium(tmp_path, chromium, images_dir):
    items = _assessments(images_dir)
    report = write_report(items, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    res = run_chromium(chromium, tmp_path / "profile1", "--window-size=1400,1700", f"--screenshot={shot}",
                       report.as_uri())
    assert shot.exists(), res.stderr[-2000:]
    png = np.asarray(Image.open(shot).convert("RGB"))
    assert png.shape[:2] == (1700, 1400) and png.std() > 20
    red = (png[..., 0] > 180) & (png[..., 1] < 80) & (png[..., 2] < 60)  # defect boxes (#d7301f)
    blue = (png[..., 2] > 140) & (png[..., 0] < 60) & (png[..., 1] > 90) & (png[..., 1] < 150)  # probes (#1f78b4)
    assert red.sum() > 200 and blue.sum() > 200
    # Measure the laid-out page: a copy of the report with a script that writes sizes into the DOM.
    probe = tmp_path / "measure.html"
    probe.write_text(report.read_text().replace("</body>", f"<script>{MEASURE_JS}</script></body>"))
    res = run_chromium(chromium, tmp_path / "profile2", "--window-size=1400,1700", "--virtual-time-budget=5000",
                       "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="qprobe-measure">(.*?)</pre>', res.stdout)
    assert found, res.stderr[-2000:]
    m = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    cards = {c["id"]: c for c in m["cards"]}
    hurt = cards["card-1"]
    view = hurt["view"]
    assert view["complete"] and (view["nw"], view["nh"]) == (1024, 614) and view["w"] > 300
    sx, sy = view["w"] / W, view["h"] / H
    kinds = sorted(b["kind"] for b in hurt["boxes"])
    assert kinds == ["defect", "defect", "probe"] and all(b["visible"] for b in hurt["boxes"])
    expected = {("defect", 1500, 900, 300, 200), ("defect", 100, 100, 200, 150), ("probe", 1350, 700, 600, 450)}
    for b in hurt["boxes"]:
        match = [e for e in expected if e[0] == b["kind"] and abs(b["x"] - e[1] * sx) < 2 and abs(b["y"] - e[2] * sy) < 2
                 and abs(b["w"] - e[3] * sx) < 2 and abs(b["h"] - e[4] * sy) < 2]
        assert match, (b, sx, sy)
    assert [(c["nw"], c["nh"]) for c in hurt["crops"]] == [(384, 288), (200, 150)]
    assert all(c["complete"] and c["w"] > 50 and c["h"] > 50 for c in hurt["crops"])
    zoom = hurt["crops"][0]  # D1 drawn inside the zoom crop, in the crop's coordinates
    (mark,) = zoom["marks"]
    k = zoom["w"] / 600
    assert abs(mark["x"] - 150 * k) < 2 and abs(mark["y"] - 200 * k) < 2 and abs(mark["w"] - 300 * k) < 2
    assert "view" not in cards["card-2"]  # the missing image shows a note, not a broken picture
    # Sorting by score: ascending puts the lowest first and the failed image last; cards follow the table.
    assert m["asc"] == ["1", "0", "2"] and m["cardsAsc"] == ["card-1", "card-0", "card-2"]
    assert m["desc"] == ["0", "1", "2"]
    assert m["defectsHidden"]
