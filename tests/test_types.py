import json

import pytest

from qprobe.types import Assessment, Box, Defect, Step, Trajectory, clamp_score


def test_box_geometry():
    a = Box(0, 0, 10, 10)
    b = Box(5, 5, 15, 15)
    assert a.area == 100 and a.intersection(b) == 25
    assert a.iou(b) == pytest.approx(25 / 175)
    assert a.iou(a) == 1.0 and a.iou(Box(20, 20, 30, 30)) == 0.0
    assert a.expand(1.5) == Box(-2.5, -2.5, 12.5, 12.5)
    assert Box(-5, -5, 20, 30).clip(10, 12) == Box(0, 0, 10, 12)
    assert Box.from_list([10, 10, 0, 0]) == a  # corners re-ordered
    assert a.scale(2.0, 0.5) == Box(0, 0, 20, 5)
    assert Box(0.5, 0.2, 9.1, 9.0).to_int() == (0, 0, 10, 9)


@pytest.mark.parametrize("bad", [[1, 2, 3], [0, 0, float("nan"), 1], ["a", 0, 1, 1]])
def test_box_rejects_bad_input(bad):
    with pytest.raises((ValueError, TypeError)):
        Box.from_list(bad)


def test_trajectory_round_trip():
    t = Trajectory(
        image="img.jpg",
        image_size=(4000, 3000),
        backend="dummy",
        steps=[
            Step("observe", view_size=(896, 672)),
            Step("zoom", box=Box(10, 20, 300, 400), text="<tool_call>...</tool_call>"),
            Step("observe", box=Box(0, 0, 450, 500), view_size=(448, 448)),
            Step("error", text="bad json"),
            Step("answer", text="ok", data={"score": 3.5}),
        ],
        prompt_version="v1",
        decoding={"temperature": 0.0},
        seed=3,
    )
    again = Trajectory.from_json(t.to_json())
    assert again == t
    assert again.probes == [Box(0, 0, 450, 500)]
    assert again.n_errors == 1
    with pytest.raises(ValueError, match="schema"):
        Trajectory.from_dict({**t.to_dict(), "schema_version": "other/9"})


def test_assessment_dict_round_trip():
    a = Assessment(
        score=3.21,
        defects=[Defect(Box(1, 2, 30, 40), "noise", 3, 0.9)],
        probes=[Box(0, 0, 50, 50)],
        reasons=["noise in the sky"],
        backend="dummy",
        path="x.jpg",
        elapsed_s=0.5,
    )
    d = a.to_dict()
    assert d["defects"][0]["bbox"] == [1, 2, 30, 40] and d["score"] == 3.21
    json.dumps(d)
    b = Assessment.from_dict(d)
    assert b.defects == a.defects and b.probes == a.probes and b.ok
    assert not Assessment(score=None, error="x").ok


def test_clamp_score():
    assert clamp_score(0.2) == 1.0 and clamp_score(7) == 5.0 and clamp_score(3.3) == 3.3
