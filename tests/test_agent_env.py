"""ProbeEnv and run_episode: global view, full-resolution zooms, error turns, budget."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from conftest import make_texture
from qprobe.agent.actions import Action, Answer, Invalid, Zoom
from qprobe.agent.cropping import CropConfig, context_box
from qprobe.agent.env import EnvConfig, ProbeEnv, Turn
from qprobe.agent.loop import run_episode
from qprobe.io import save_image
from qprobe.types import Box, Defect


class Scripted:
    """A policy that plays a fixed list of actions, then repeats the last."""

    def __init__(self, actions: list[Action]) -> None:
        self.actions = list(actions)
        self.seen: list[str] = []

    def act(self, history: Sequence[Turn]) -> Action:
        self.seen.append(history[-1].observation.kind)
        return self.actions.pop(0) if len(self.actions) > 1 else self.actions[0]


@pytest.fixture(scope="module")
def big() -> np.ndarray:
    return make_texture(1500, 2400, seed=3)


def test_global_view_size_and_scale(big: np.ndarray) -> None:
    env = ProbeEnv(EnvConfig(view_long_side=600))
    obs = env.reset(big)
    assert obs.kind == "global" and obs.image is not None
    assert max(obs.image.shape[:2]) == 600
    assert obs.scale == pytest.approx(600 / 2400)
    small = make_texture(100, 120)
    assert ProbeEnv(EnvConfig(view_long_side=600)).reset(small).image.shape == small.shape  # never upscaled


def test_zoom_is_pixel_identical_to_the_original(big: np.ndarray, tmp_path) -> None:
    path = tmp_path / "big.png"
    save_image(path, big)
    env = ProbeEnv(EnvConfig(view_long_side=512))
    env.reset(str(path))
    obs, done = env.step(Zoom(Box(1000.4, 700.2, 1300.9, 910.0)))
    assert not done and obs.kind == "crop"
    box = obs.box
    assert box is not None and all(float(v).is_integer() for v in box.to_list(None))
    x1, y1, x2, y2 = (int(v) for v in box.to_list(None))
    assert np.array_equal(obs.image, big[y1:y2, x1:x2])
    # full resolution: the crop has more pixels than the same region of the global view
    assert obs.image.shape[1] == x2 - x1 > (x2 - x1) * env.view_scale
    assert box == context_box(Box(1000.4, 700.2, 1300.9, 910.0), (2400, 1500), CropConfig(), env.view_scale)


def test_invalid_actions_become_error_turns(big: np.ndarray) -> None:
    env = ProbeEnv(EnvConfig(max_errors=3))
    env.reset(big)
    obs, done = env.step(Invalid("could not parse", raw="<tool_call>{oops"))
    assert obs.kind == "error" and "parse" in obs.message and not done
    obs, done = env.step(Zoom(Box(5000, 5000, 5100, 5100)))
    assert obs.kind == "error" and "overlap" in obs.message and not done
    obs, done = env.step(Answer(9.0))
    assert obs.kind == "error" and "outside" in obs.message and not done
    obs, done = env.step(Answer(float("nan")))
    assert done  # 4th error > max_errors
    assert env.answer is None
    assert env.trajectory.n_errors == 4
    assert env.trajectory.steps[1].data["raw"] == "<tool_call>{oops"


def test_zoom_budget(big: np.ndarray) -> None:
    env = ProbeEnv(EnvConfig(max_zooms=2))
    env.reset(big)
    for _ in range(2):
        obs, _ = env.step(Zoom(Box(0, 0, 300, 300)))
        assert obs.kind == "crop"
    obs, done = env.step(Zoom(Box(0, 0, 300, 300)))
    assert obs.kind == "error" and "budget" in obs.message and not done
    obs, done = env.step(Answer(3.0, (Defect(Box(1, 1, 50, 50), "noise", 2, 0.9),)))
    assert done and obs.kind == "answer"
    assert len(env.trajectory.probes) == 2


def test_step_after_done_raises(big: np.ndarray) -> None:
    env = ProbeEnv()
    env.reset(big)
    env.step(Answer(2.0))
    with pytest.raises(RuntimeError):
        env.step(Answer(2.0))


def test_run_episode_answer_and_history(big: np.ndarray) -> None:
    policy = Scripted([Zoom(Box(10, 10, 400, 400)), Invalid("bad"), Answer(4.25, reasons=("fine",))])
    a = run_episode(ProbeEnv(backend="t"), policy, big)
    assert a.ok and a.score == 4.25 and a.reasons == ["fine"]
    assert policy.seen == ["global", "crop", "error"]
    assert len(a.probes) == 1 and a.backend == "t" and a.image_size == (2400, 1500)
    kinds = [s.kind for s in a.trajectory.steps]
    assert kinds == ["observe", "zoom", "observe", "error", "answer"]


def test_run_episode_without_answer_gives_error_not_score(big: np.ndarray) -> None:
    a = run_episode(ProbeEnv(EnvConfig(max_zooms=1, max_errors=1)), Scripted([Invalid("never parses")]), big)
    assert a.score is None and a.error is not None and "never parses" in a.error


def test_forced_probes_come_first_and_extend_the_budget(big: np.ndarray) -> None:
    forced = [Box(0, 0, 200, 200), Box(2000, 1200, 2300, 1400)]
    policy = Scripted([Zoom(Box(1000, 700, 1200, 900)), Answer(3.0)])
    a = run_episode(ProbeEnv(EnvConfig(max_zooms=1)), policy, big, forced_probes=forced)
    assert a.ok and len(a.probes) == 3
    zooms = [s for s in a.trajectory.steps if s.kind == "zoom"]
    assert [z.data.get("forced", False) for z in zooms] == [True, True, False]
    assert zooms[0].box == forced[0]
