"""Trajectories: JSONL round-trip and bit-exact replay from the image path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_texture
from qprobe.agent.trajectory import replay
from qprobe.backends import create_backend
from qprobe.io import save_image
from qprobe.types import Trajectory, read_trajectories, write_trajectories


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    path = tmp_path_factory.mktemp("traj") / "img.png"
    save_image(path, make_texture(900, 1300, seed=5))
    a = create_backend("dummy", zooms=3).assess(str(path))
    assert a.ok and a.trajectory is not None
    return path, a


def test_round_trip_jsonl(scored, tmp_path) -> None:
    _, a = scored
    out = tmp_path / "t.jsonl"
    write_trajectories(out, [a.trajectory, a.trajectory])
    back = list(read_trajectories(out))
    assert len(back) == 2
    assert back[0].to_dict() == a.trajectory.to_dict()
    assert json.loads(out.read_text().splitlines()[0])["schema_version"] == "qprobe.trajectory/1"
    assert back[0].probes == a.probes


def test_replay_rederives_every_crop(scored) -> None:
    path, a = scored
    traj = Trajectory.from_json(a.trajectory.to_json())
    result = replay(traj)
    assert result.ok, result.problems
    crops = [v for v in result.views if v.kind == "crop"]
    assert len(crops) == 3 and all(v.matches for v in result.views)
    original = np.asarray(__import__("PIL.Image").Image.open(path).convert("RGB"))
    for v in crops:
        x1, y1, x2, y2 = (int(c) for c in v.box.to_list(None))
        assert np.array_equal(v.pixels, original[y1:y2, x1:x2])


def test_replay_detects_a_changed_image(scored, tmp_path) -> None:
    _, a = scored
    other = tmp_path / "other.png"
    img = make_texture(900, 1300, seed=5)
    img[:, :, 0] = 255 - img[:, :, 0]
    save_image(other, img)
    result = replay(a.trajectory, image=str(other))
    assert not result.ok and any("differs" in p for p in result.problems)


def test_replay_detects_a_tampered_box(scored) -> None:
    _, a = scored
    data = a.trajectory.to_dict()
    for step in data["steps"]:
        if step["kind"] == "observe" and "box" in step:
            step["box"][0] += 1
            break
    result = replay(Trajectory.from_dict(data))
    assert not result.ok


def test_unknown_schema_version_rejected(scored) -> None:
    data = scored[1].trajectory.to_dict()
    data["schema_version"] = "qprobe.trajectory/999"
    with pytest.raises(ValueError, match="not supported"):
        Trajectory.from_dict(data)
