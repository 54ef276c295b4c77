"""The benchmark build end to end: outputs, determinism, resume, bad inputs, workers, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qprobe.bench.builder import STATE, build
from qprobe.bench.config import BenchConfig
from qprobe.errors import ConfigError
from qprobe.io import load_rgb
from qprobe.manifest import read_manifest

from conftest import make_texture
from test_io import write_bad_inputs


def _photos(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(240, 320), (300, 260), (200, 360)]
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        img = make_texture(h, w, seed=10 + i)
        if i % 2:
            Image.fromarray(img).save(folder / f"p{i}.png")
        else:
            Image.fromarray(img).save(folder / f"p{i}.jpg", quality=97, subsampling=0)
    return folder


def _cfg(photos: Path, out: Path, **kw) -> BenchConfig:
    base = dict(photos=str(photos), out=str(out), variants=3, seed=0, workers=1)
    base.update(kw)
    return BenchConfig(**base)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return _photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def built(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "a"
    return build(_cfg(photos, out)), out


def test_outputs_and_schema(built, photos):
    summary, out = built
    assert summary.rows == 3 * 5 and summary.built == 15 and not summary.errors and not summary.skipped
    assert summary.by_kind == {"clean": 3, "degraded": 9, "dof": 3}
    for name in (
        "manifest.jsonl",
        "degradations.jsonl",
        "pairs.jsonl",
        "config.yaml",
        "build.log",
        "skipped.jsonl",
    ):
        assert (out / name).is_file(), name
    rows = read_manifest(out / "manifest.jsonl")
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    for r in rows:
        assert r.dataset == "qprobe-bench" and r.extra["kind"] in {"clean", "dof", "degraded"}
        img = load_rgb(out / r.path)
        assert img.shape == (r.height, r.width, 3)
        assert 1.0 <= r.mos <= 5.0 and r.mos_std > 0
        if r.extra["kind"] == "degraded":
            assert 1 <= len(r.defects) <= 3 and r.mos < 4.6 and not r.dof
            for d in r.defects:  # every box inside the image, area in the band
                b = d.bbox
                assert 0 <= b.x1 < b.x2 <= r.width and 0 <= b.y1 < b.y2 <= r.height
                assert 0.002 <= b.area / (r.width * r.height) <= 0.05
                assert 1 <= d.severity <= 5
        else:
            assert r.defects == [] and r.mos == 4.6 and r.dof == (r.extra["kind"] == "dof")
    log = [json.loads(line) for line in (out / "degradations.jsonl").read_text().splitlines()]
    n_defects = sum(len(r.defects) for r in rows)
    assert len([e for e in log if e["kind"] == "degraded"]) == n_defects
    assert len([e for e in log if e["kind"] == "dof"]) == 3
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 3 * 10  # C(5, 2) per photo
    assert all(0.0 <= p["p_a_better"] <= 1.0 for p in pairs)


def test_degraded_pixels_change_only_inside_boxes(built):
    _, out = built
    rows = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    for r in rows.values():
        if r.extra["kind"] != "degraded":
            continue
        clean = load_rgb(out / rows[f"{r.source_id}-clean"].path)
        img = load_rgb(out / r.path)
        inside = np.zeros(img.shape[:2], bool)
        for d in r.defects:
            x1, y1, x2, y2 = d.bbox.to_int()
            inside[y1:y2, x1:x2] = True
        diff = np.abs(img.astype(np.int16) - clean).max(axis=2)
        assert diff[~inside].max(initial=0) <= 1
        assert diff[inside].mean() > 0.5


def test_clean_copy_equals_source_and_dof_keeps_subject(built, photos):
    _, out = built
    rows = read_manifest(out / "manifest.jsonl")
    for r in rows:
        src = load_rgb(photos / r.extra["source_file"])
        img = load_rgb(out / r.path)
        if r.extra["kind"] == "clean":
            assert np.array_equal(img, src)
        if r.extra["kind"] == "dof":
            x1, y1, x2, y2 = (int(v) for v in r.extra["focus_box"])
            assert np.array_equal(img[y1:y2, x1:x2], src[y1:y2, x1:x2])
            assert not np.array_equal(img, src)


def test_same_seed_byte_identical_other_seed_differs(built, photos, tmp_path):
    _, out = built
    build(_cfg(photos, tmp_path / "b"))
    for name in ("manifest.jsonl", "degradations.jsonl", "pairs.jsonl"):
        assert (tmp_path / "b" / name).read_bytes() == (out / name).read_bytes(), name
    build(_cfg(photos, tmp_path / "c", seed=1, variants=1, dof_per_photo=0))
    a = [r for r in read_manifest(out / "manifest.jsonl") if r.id.endswith("deg00")]
    c = [r for r in read_manifest(tmp_path / "c" / "manifest.jsonl") if r.id.endswith("deg00")]
    assert [r.id for r in a] == [r.id for r in c]
    assert [r.to_dict() for r in a] != [r.to_dict() for r in c]


def test_resume_skips_finished_and_repairs(built, photos, tmp_path):
    _, ref = built
    out = tmp_path / "r"
    shutil.copytree(ref, out)
    # Simulate a killed run: one image lost, a torn journal line, a stale temp file.
    (out / "images" / "p1-deg01.png").unlink()
    with open(out / STATE, "ab") as fh:
        fh.write(b'{"id": "p2-deg0')
    (out / "images" / ".p0-deg00.png.abc.tmp").write_bytes(b"partial")
    (out / "manifest.jsonl").unlink()
    summary = build(_cfg(photos, out))
    assert summary.built == 1 and summary.reused == 14
    assert not list((out / "images").glob(".*.tmp"))
    assert (out / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()
    assert np.array_equal(
        load_rgb(out / "images" / "p1-deg01.png"), load_rgb(ref / "images" / "p1-deg01.png")
    )
    again = build(_cfg(photos, out))
    assert again.built == 0 and again.reused == 15
    more = build(_cfg(photos, out, variants=4))  # extending keeps the finished items
    assert more.built == 3 and more.rows == 18


def test_other_recipe_in_same_folder_is_refused(built, photos, tmp_path):
    _, ref = built
    out = tmp_path / "x"
    shutil.copytree(ref, out)
    with pytest.raises(ConfigError, match="another recipe, seed or image format"):
        build(_cfg(photos, out, max_area=0.03))
    with pytest.raises(ConfigError, match="another recipe, seed or image format"):
        build(_cfg(photos, out, seed=5))
    with pytest.raises(ConfigError, match="another recipe, seed or image format"):
        build(_cfg(photos, out, image_format="jpg"))


def test_bad_inputs_never_abort(tmp_path):
    folder = tmp_path / "bad"
    expected = write_bad_inputs(folder)
    summary = build(_cfg(folder, tmp_path / "o", variants=1))
    skipped = dict(summary.skipped)
    assert set(skipped) == {"truncated.jpg", "empty.jpg", "text.jpg", "one_pixel.png"}
    assert "empty" in skipped["empty.jpg"] and "not a recognised image" in skipped["text.jpg"]
    assert "truncated" in skipped["truncated.jpg"] or "corrupt" in skipped["truncated.jpg"]
    assert "1x1" in skipped["one_pixel.png"] and "min_side" in skipped["one_pixel.png"]
    assert not summary.errors
    rows = read_manifest(tmp_path / "o" / "manifest.jsonl")
    built_sources = {r.extra["source_file"] for r in rows}
    assert built_sources == {n for n, v in expected.items() if v == "ok"} - {"one_pixel.png"}
    rot = next(r for r in rows if r.id == "rotated-clean")
    assert (rot.width, rot.height) == (96, 128)  # EXIF orientation applied
    log = (tmp_path / "o" / "build.log").read_text()
    assert "skip text.jpg: not a recognised image" in log
    lines = (tmp_path / "o" / "skipped.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_empty_folder_and_bad_config(tmp_path):
    (tmp_path / "none").mkdir()
    summary = build(_cfg(tmp_path / "none", tmp_path / "o"))
    assert summary.rows == 0 and (tmp_path / "o" / "manifest.jsonl").read_text() == ""
    with pytest.raises(ConfigError, match="photo folder not found"):
        build(_cfg(tmp_path / "missing", tmp_path / "o2"))
    with pytest.raises(ConfigError, match="no degradation matches"):
        build(_cfg(tmp_path / "none", tmp_path / "o3", degradations=["nope*"]))
    with pytest.raises(ConfigError, match="severities"):
        build(_cfg(tmp_path / "none", tmp_path / "o4", severities=[0, 7]))


def test_workers_give_the_same_result(built, photos, tmp_path):
    _, ref = built
    summary = build(_cfg(photos, tmp_path / "w", workers=2))
    assert summary.built == 15
    assert (tmp_path / "w" / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()


def test_family_filter_and_jpg_output(photos, tmp_path):
    summary = build(_cfg(photos, tmp_path / "j", variants=2, degradations=["*noise*"], image_format="jpg"))
    rows = {r.id: r for r in read_manifest(tmp_path / "j" / "manifest.jsonl")}
    assert summary.rows == 12 and all(r.path.endswith(".jpg") for r in rows.values())
    assert {d.type for r in rows.values() for d in r.defects} <= {"gaussian_noise", "iso_noise"}
    with Image.open(tmp_path / "j" / rows["p0-clean"].path) as im:
        assert im.format == "JPEG"
    # the format changes storage, not content: same regions and labels as a PNG build
    png = {
        r.id: r
        for r in read_manifest(
            build(_cfg(photos, tmp_path / "p", variants=2, degradations=["*noise*"])).manifest
        )
    }
    assert [r.defects for r in png.values()] == [rows[i].defects for i in png]
    assert [r.mos for r in png.values()] == [rows[i].mos for i in png]
    # JPEG 4:4:4 codes each 8x8 block on its own: outside the box widened to the
    # block grid, a degraded file decodes bit-identical to the clean copy.
    for r in rows.values():
        if r.extra["kind"] != "degraded":
            continue
        clean = load_rgb(tmp_path / "j" / rows[f"{r.source_id}-clean"].path)
        img = load_rgb(tmp_path / "j" / r.path)
        inside = np.zeros(img.shape[:2], bool)
        for d in r.defects:
            x1, y1, x2, y2 = d.bbox.to_int()
            inside[y1 // 8 * 8 : -(-y2 // 8) * 8, x1 // 8 * 8 : -(-x2 // 8) * 8] = True
        assert np.array_equal(img[~inside], clean[~inside])


def test_cli_build_and_sheet(photos, tmp_path):
    from typer.testing import CliRunner

    from qprobe.cli.main import app

    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(
        app,
        [
            "bench",
            "build",
            "--photos",
            str(photos),
            "--out",
            str(out),
            "--variants",
            "1",
            "--seed",
            "3",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"benchmark written to {out}" in res.output and "manifest.jsonl" in res.output
    assert len(read_manifest(out / "manifest.jsonl")) == 9
    sheet = tmp_path / "sheet.png"
    res = runner.invoke(
        app,
        ["bench", "sheet", "--manifest", str(out / "manifest.jsonl"), "--out", str(sheet), "--thumb", "200"],
    )
    assert res.exit_code == 0, res.output
    with Image.open(sheet) as im:
        assert im.size[0] >= 4 * 200
    bad = runner.invoke(app, ["bench", "build", "--photos", str(tmp_path / "nope"), "--out", str(out / "z")])
    assert bad.exit_code == 2 and "photo folder not found" in bad.output
    ls = runner.invoke(app, ["ls", "degradations", "*blur*"])
    assert ls.output.split() == ["gaussian_blur", "motion_blur"]
    assert "proxy" in runner.invoke(app, ["ls", "annotators"]).output.split()
    only = tmp_path / "only"
    res = runner.invoke(
        app,
        [
            "bench",
            "build",
            "--photos",
            str(photos),
            "--out",
            str(only),
            "--variants",
            "1",
            "-d",
            "*blur*",
            "-d",
            "haze",
            "--format",
            "jpg",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = read_manifest(only / "manifest.jsonl")
    assert {d.type for r in rows for d in r.defects} <= {"gaussian_blur", "motion_blur", "haze"}
    assert all(r.path.endswith(".jpg") for r in rows)


def test_readme_demo_photos_are_usable():
    root = Path(__file__).resolve().parents[1] / "examples" / "photos"
    from qprobe.io import list_images

    photos = list_images(root)
    assert 1 <= len(photos) <= 2 and (root / "NOTICE.md").is_file()
    notice = (root / "NOTICE.md").read_text()
    for p in photos:
        assert p.name in notice
        img = load_rgb(p)
        assert 1600 <= max(img.shape[:2]) <= 2000


def test_shipped_recipe_matches_the_defaults():
    from qprobe.config import load_config

    path = Path(__file__).resolve().parents[1] / "configs" / "bench" / "default.yaml"
    assert load_config(BenchConfig, path) == BenchConfig()


def test_recipe_fingerprints_degradation_parameters():
    cfg = BenchConfig(degradations=["haze"])
    params = cfg.recipe()["degradation_params"]
    assert list(params) == ["haze"] and len(params["haze"]) == 5
    assert cfg.recipe_hash() != BenchConfig(degradations=["haze", "jpeg"]).recipe_hash()
    assert cfg.recipe_hash() == BenchConfig(degradations=["haze"], workers=4, variants=9).recipe_hash()


def _flat_and_textured(folder: Path) -> Path:
    """Two photos: a smooth gradient (nothing for blur to change) and a textured one."""
    folder.mkdir(parents=True, exist_ok=True)
    flat = np.broadcast_to(np.linspace(90, 110, 480, dtype=np.float32)[None, :, None], (320, 480, 3))
    Image.fromarray(flat.astype(np.uint8)).save(folder / "flat.png")
    Image.fromarray(make_texture(320, 480, seed=3)).save(folder / "tex.png")
    return folder


def test_invisible_draws_are_redrawn_or_dropped(tmp_path):
    photos = _flat_and_textured(tmp_path / "photos")
    kw = dict(variants=3, dof_per_photo=0, clean=False, degradations=["gaussian_blur"])
    summary = build(_cfg(photos, tmp_path / "v", **kw))
    log = [json.loads(line) for line in (tmp_path / "v" / "degradations.jsonl").read_text().splitlines()]
    # the gradient: every draw stayed invisible through its re-draws, so its images fail with a reason
    flat = [e for e in log if e["source_id"] == "flat"]
    assert not flat and not summary.errors and len(summary.skipped_items) == 3
    assert all(i.startswith("flat-deg") and "too little texture" in r for i, r in summary.skipped_items)
    skipped = [json.loads(line) for line in (tmp_path / "v" / "skipped.jsonl").read_text().splitlines()]
    assert sorted(e["item"] for e in skipped) == [i for i, _ in summary.skipped_items]
    kept = [e for e in log if "dropped" not in e]
    assert kept and all(e["visible_change"] >= 1.0 for e in kept)
    # every label changed the pixels of its box visibly
    src = load_rgb(photos / "tex.png").astype(np.int16)
    rows = read_manifest(tmp_path / "v" / "manifest.jsonl")
    assert len(rows) == 3 and all(r.source_id == "tex" for r in rows)
    for row in rows:
        img = load_rgb(tmp_path / "v" / row.path).astype(np.int16)
        for d in row.defects:
            x1, y1, x2, y2 = d.bbox.to_int()
            assert np.abs(img[y1:y2, x1:x2] - src[y1:y2, x1:x2]).mean() >= 1.0
    # without the rule the gradient's invisible blur is labelled as a defect
    summary0 = build(_cfg(photos, tmp_path / "all", min_visible=0.0, **kw))
    assert not summary0.errors and not summary0.skipped_items
    log0 = [json.loads(line) for line in (tmp_path / "all" / "degradations.jsonl").read_text().splitlines()]
    assert any(e["source_id"] == "flat" and e["visible_change"] < 1.0 for e in log0)


def test_visibility_rule_redraws_and_drops(tmp_path):
    """A draw that is invisible on its first region is moved to a visible one, or logged as dropped."""
    from qprobe.bench.items import Photo
    from qprobe.bench.render import PhotoTask, _PhotoRenderer
    from qprobe.bench.items import ItemSpec

    img = make_texture(320, 480, seed=5)
    img[:, :240] = 100  # a flat left half
    cfg = BenchConfig(degradations=["gaussian_blur"], max_regions=3, min_regions=3)
    task = PhotoTask(Photo("p", tmp_path / "p.png", "p.png"), (), cfg, cfg.recipe_hash())
    r = _PhotoRenderer(task, img)
    from qprobe.bench.regions import Region
    from qprobe.types import Box

    flat = Region(Box(20, 20, 120, 120), 0.06, 1.0, 1.0)
    out = img.copy()
    res, region, _, change, redraws = r._inject_visible(out, flat, "gaussian_blur", 5, 1, "k", [flat.box], 0)
    if res is None:
        assert change < 1.0 and np.array_equal(out, img)  # undone
    else:
        assert redraws >= 1 and region.box != flat.box and change >= 1.0
        x1, y1, x2, y2 = region.box.to_int()
        changed = np.argwhere(np.any(out != img, axis=2))
        assert changed.size and changed[:, 0].min() >= y1 and changed[:, 0].max() < y2
        assert changed[:, 1].min() >= x1 and changed[:, 1].max() < x2  # only the new box was written


def test_visibility_rule_moves_only_invisible_draws(built, photos, tmp_path):
    a, b = BenchConfig(), BenchConfig(min_visible=0.0)
    assert a.recipe_hash() != b.recipe_hash() and a.draw_hash() == b.draw_hash()
    assert b.recipe_hash() == b.draw_hash()  # without the rule: the recipe of builds made before it
    # on textured photos every draw is visible: the build equals the one without the rule, byte for byte
    build(_cfg(photos, tmp_path / "r0", min_visible=0.0))
    _, out = built
    for f in sorted((out / "images").iterdir()):
        assert f.read_bytes() == (tmp_path / "r0" / "images" / f.name).read_bytes()
    # a folder built without the rule is refused by a build with it, with the flag that resumes it
    with pytest.raises(ConfigError, match="--min-visible 0"):
        build(_cfg(photos, tmp_path / "r0"))
    with pytest.raises(ConfigError):
        BenchConfig(min_visible=-1.0).validate()


def test_dof_grain_changes_only_the_depth_of_field_pixels(built, photos, tmp_path):
    plain, grainy = BenchConfig(), BenchConfig(dof_grain=True)
    assert "dof_grain" not in plain.recipe()  # grain-free: the recipe of builds made before grain existed
    assert plain.recipe_hash() != grainy.recipe_hash() and plain.draw_hash() == grainy.draw_hash()
    _, out = built
    build(_cfg(photos, tmp_path / "g", dof_grain=True))
    rows = {r.id: r for r in read_manifest(out / "manifest.jsonl")}
    grain_rows = {r.id: r for r in read_manifest(tmp_path / "g" / "manifest.jsonl")}
    assert rows.keys() == grain_rows.keys()
    for rid, r in rows.items():
        a, b = load_rgb(out / r.path), load_rgb(tmp_path / "g" / grain_rows[rid].path)
        if r.extra["kind"] != "dof":
            assert np.array_equal(a, b), rid  # same draws: regions, degradations, labels
            assert r.defects == grain_rows[rid].defects
            continue
        assert r.extra["focus_box"] == grain_rows[rid].extra["focus_box"]  # the same in-focus subject
        x1, y1, x2, y2 = (int(v) for v in r.extra["focus_box"])
        assert np.array_equal(a[y1:y2, x1:x2], b[y1:y2, x1:x2])
        diff = b.astype(np.int16) - a
        assert np.abs(diff).max() > 0 and abs(float(diff.mean())) < 0.2  # noise put back, blur unchanged
    logs = [json.loads(line) for line in (tmp_path / "g" / "degradations.jsonl").read_text().splitlines()]
    grains = [rec["params"]["grain"] for rec in logs if rec["name"] == "synthetic_dof"]
    assert grains and all(len(g) == 3 and min(g) > 0 for g in grains)
