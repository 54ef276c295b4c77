import json

import pytest

from qprobe.errors import ManifestError
from qprobe.manifest import ManifestRow, read_manifest, validate_row, write_manifest, resolve_path


def _row(**kw):
    base = dict(id="a", path="img/a.png", dataset="bench", split="test", width=100, height=80, mos=3.2)
    base.update(kw)
    return base


def test_round_trip_keeps_extra(tmp_path):
    rows = [
        ManifestRow.from_dict(_row(defects=[{"bbox": [1, 2, 30, 40], "type": "noise", "severity": 3}], recipe="v1")),
        ManifestRow.from_dict(_row(id="b", mos=None, dof=True)),
    ]
    path = tmp_path / "m.jsonl"
    write_manifest(path, rows)
    again = read_manifest(path)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rows]
    assert again[0].extra == {"recipe": "v1"} and again[1].dof
    assert resolve_path(again[0], path) == tmp_path / "img" / "a.png"
    first = path.read_bytes()
    write_manifest(path, again)
    assert path.read_bytes() == first


@pytest.mark.parametrize(
    "bad, msg",
    [
        ({"id": "a"}, "missing required"),
        (_row(width=0), "positive integer"),
        (_row(mos=7.0), "outside the 1–5"),
        (_row(mos=float("nan")), "finite"),
        (_row(defects=[{"bbox": [0, 0, 500, 10]}]), "outside"),
        (_row(defects=[{"type": "x"}]), "needs a bbox"),
    ],
)
def test_validation_errors(bad, msg):
    with pytest.raises(ManifestError, match=msg):
        validate_row(bad)


def test_read_errors_name_the_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps(_row()) + "\n{oops\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:2"):
        read_manifest(p)
    p.write_text(json.dumps(_row()) + "\n" + json.dumps(_row()) + "\n")
    with pytest.raises(ManifestError, match="duplicate id"):
        read_manifest(p)
