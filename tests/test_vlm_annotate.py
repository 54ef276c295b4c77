"""``qprobe bench annotate``: VLM descriptions of injected defects, with the consistency check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("httpx")

from _helpers_vlm import tiny_model_dir
from conftest import make_texture

from qprobe.bench.annotate import check_defect, expected_types, grid_cells
from qprobe.io import save_image
from qprobe.manifest import DefectLabel, ManifestRow, read_manifest, write_manifest
from qprobe.testing.openai_server import ChatServer, Reply, request_images
from qprobe.types import Box


@pytest.fixture(scope="session")
def tiny_qwen25vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir("qwen2_5_vl", tmp_path_factory)


def _manifest(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    rows = []
    for rid, (w, h), defects in (
        ("d0", (640, 480), [("gaussian_noise", (40, 30, 160, 120)), ("motion_blur", (480, 360, 600, 460))]),
        ("d1", (640, 480), [("jpeg", (280, 200, 360, 280))]),
        ("c0", (800, 400), []),
    ):
        save_image(root / "images" / f"{rid}.png", make_texture(h, w, seed=len(rows)))
        rows.append(
            ManifestRow(
                id=rid, path=f"images/{rid}.png", dataset="qprobe-bench", split="test", width=w, height=h, mos=3.0,
                defects=[DefectLabel(Box(*b), t, 3) for t, b in defects], extra={"kind": "degraded" if defects else "clean"},
            )
        )
    write_manifest(root / "manifest.jsonl", rows)
    return root / "manifest.jsonl"


def fake_vlm(request: dict) -> Reply:
    """Answers 'noise' for every defect, at the right 3x3 cell; garbage for wide images."""
    text = json.dumps(request["messages"])
    overview = request_images(request)[0]
    oh, ow = overview.shape[:2]
    if "overall perceptual quality" in text:
        if ow / oh > 1.9:
            return Reply(text="I cannot rate this.")
        return Reply(text='<answer>{"score": 3.1, "description": "Sharp overall with some noise."}</answer>')
    x1, y1, x2, y2 = (float(v) for v in re.search(r"region \[([^\]]+)\]", text).group(1).split(","))
    col = min(2, int((x1 + x2) / 2 / ow * 3))
    row = min(2, int((y1 + y2) / 2 / oh * 3))
    names = ["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]
    body = {"type": "noise", "location": names[3 * row + col], "description": "Fine grain noise over the texture."}
    return Reply(text=f"<answer>{json.dumps(body)}</answer>")


def test_annotate_with_openai_flags_wrong_descriptions_and_resumes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qprobe.cli.main import app

    manifest = _manifest(tmp_path / "bench")
    out = tmp_path / "annotated.jsonl"
    with ChatServer(fallback=fake_vlm) as srv:
        args = ["bench", "annotate", "--manifest", str(manifest), "--out", str(out), "--backend", "openai",
                "--model", "judge", "--base-url", srv.base_url, "--batch-size", "2"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert len(srv.requests) == 3 + 3  # one image request per row + one per defect
        again = CliRunner().invoke(app, args)
        assert again.exit_code == 0 and len(srv.requests) == 6  # resumed: nothing asked twice
        assert "0 new, 3 reused" in again.stdout
    rows = {r.id: r for r in read_manifest(out)}
    d0 = rows["d0"].extra["annotation"]
    assert d0["image"] == {"reply_ok": True, "description": "Sharp overall with some noise.", "score": 3.1}
    noise, blur = d0["defects"]
    assert noise["ok"] and noise["type_ok"] and noise["named_ok"] and noise["location_ok"]
    assert noise["location"] == "top-left"
    assert not blur["ok"] and not blur["type_ok"] and blur["location_ok"]
    assert d0["flagged"] and any("motion_blur" in f for f in d0["flags"])
    assert rows["d1"].extra["annotation"]["flagged"]  # jpeg described as noise
    c0 = rows["c0"].extra["annotation"]
    assert c0["flagged"] and "image description unreadable" in c0["flags"][0] and c0["defects"] == []
    assert rows["d0"].mos == 3.0  # the VLM rating never replaces the label
    assert "flagged rows     3" in result.stdout and "defects ok       1/3" in result.stdout


def test_consistency_rules() -> None:
    assert expected_types("gaussian_blur") == ("blur", "motion_blur")
    assert expected_types("banding") == ("banding",)
    assert expected_types("noise") == ("noise",)
    assert grid_cells(Box(0, 0, 10, 10), 300, 300) == {"top-left"}
    assert grid_cells(Box(90, 90, 110, 110), 300, 300) == {"top-left", "top", "left", "center"}
    ok = check_defect({"type": "Motion Blur", "location": "center", "description": "streaks from motion"},
                      "", "motion_blur", Box(140, 140, 160, 160), (300, 300))
    assert ok["ok"], ok
    bad = check_defect({"type": "blur", "location": "top", "description": "looks fine"},
                       "", "gaussian_blur", Box(140, 140, 160, 160), (300, 300))
    assert not bad["ok"] and not bad["named_ok"] and not bad["location_ok"] and bad["type_ok"]
    assert check_defect(None, "no <answer> found", "jpeg", Box(0, 0, 1, 1), (9, 9))["flags"] == [
        "unreadable reply: no <answer> found"
    ]


def test_annotate_with_tiny_transformers_model(tmp_path: Path, tiny_qwen25vl: Path) -> None:
    from qprobe.backends import create_backend
    from qprobe.bench.annotate import annotate_manifest

    manifest = _manifest(tmp_path / "bench")
    backend = create_backend("transformers", model=str(tiny_qwen25vl), max_new_tokens=8, batch_size=3)
    s = annotate_manifest(manifest, tmp_path / "out.jsonl", backend, limit=1)
    assert (s.annotated, s.rows, s.flagged) == (1, 3, 1)  # a random model's text is flagged, not trusted
    rows = read_manifest(tmp_path / "out.jsonl")
    ann = rows[0].extra["annotation"]
    assert ann["decoding"]["engine"] == "transformers" and len(ann["raw"]) == 3
    assert "annotation" not in rows[1].extra
