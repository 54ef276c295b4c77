"""Conversations of the LLM policy: built from live history and replayed from trajectories alike."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_texture

from qprobe.agent.env import EnvConfig, ProbeEnv
from qprobe.agent.loop import run_episode
from qprobe.agent.parsing import format_answer, format_zoom, parse_reply
from qprobe.agent.prompts import PROMPT_VERSION, ZOOM_TOOL, system_prompt
from qprobe.backends.vlm.batcher import MicroBatcher
from qprobe.backends.vlm.coords import smart_resize
from qprobe.backends.vlm.engine import Generation
from qprobe.backends.vlm.messages import (
    Conversation,
    build_conversation,
    conversation_from_trajectory,
    events_from_trajectory,
    fit_pixels,
)
from qprobe.backends.vlm.policy import VLMPolicy
from qprobe.types import Box


def scripted(replies: list[str], seen: list[Conversation]):
    def generate(conv: Conversation) -> Generation:
        seen.append(conv)
        return Generation(text=replies[len(seen) - 1])

    return generate


def _episode(replies: list[str], forced: list[Box] | None = None, max_zooms: int = 2):
    img = make_texture(600, 900, seed=3)
    seen: list[Conversation] = []
    policy = VLMPolicy(
                scripted(replies, seen),
        convention="absolute",
        model_size=lambda w, h: smart_resize(w, h, 28, 3136, 200704),
        original_size=(900, 600),
    )
    env = ProbeEnv(EnvConfig(view_long_side=448, max_zooms=max_zooms, max_errors=2), backend="test")
    result = run_episode(env, policy, img, forced_probes=forced)
    return img, env, policy, seen, result


REPLIES = [
    format_zoom([10, 10, 60, 50], "look at the corner"),
    "I am not sure.",  # unparsable → error turn
    format_zoom([100, 100, 150, 150]),
    format_zoom([0, 0, 30, 30]),  # beyond the budget → error turn
    format_answer(3.5, [([100, 100, 150, 150], "noise")], ["noisy"]),
]


def test_episode_turns_become_hermes_style_messages() -> None:
    img, _env, policy, seen, result = _episode(REPLIES)
    assert result.score == 3.5 and result.extra == {}
    assert [s.kind for s in result.trajectory.steps].count("error") == 2
    last = seen[-1]
    roles = [m["role"] for m in last.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert last.n_images == 3  # overview + 2 crops
    sys_text = last.messages[0]["content"][0]["text"]
    assert sys_text == system_prompt(policy.frame.describe(), 2)
    assert '"name": "zoom_in"' in sys_text and str(policy.frame.model[0]) in sys_text
    crop_msg = last.messages[3]["content"]
    assert [p["type"] for p in crop_msg] == ["text", "image", "text"]
    assert crop_msg[0]["text"].startswith("<tool_response>") and "</tool_response>" in crop_msg[2]["text"]
    assert last.messages[5]["content"][0]["text"].startswith("<tool_response>\nError: no <tool_call>")
    assert last.messages[4]["content"][0]["text"] == "I am not sure."
    # the crop shown is the full-resolution original, cut at the effective box
    x1, y1, x2, y2 = result.trajectory.probes[0].to_int()
    np.testing.assert_array_equal(np.asarray(last.images[1]), img[y1:y2, x1:x2])
    # no special token is ever pasted into a message
    texts = [p.get("text", "") for m in last.messages for p in m["content"]]
    assert not any("<|" in t for t in texts)


def test_replay_from_trajectory_equals_live_conversation() -> None:
    img, env, policy, _seen, result = _episode(REPLIES, forced=[Box(300, 200, 500, 360)])
    live = policy.conversation(env.history)  # includes the final answer turn
    replay = build_conversation(events_from_trajectory(result.trajectory, img), policy.frame, env.history[0].observation.zooms_left)
    assert replay.messages == live.messages
    assert len(replay.images) == len(live.images)
    for a, b in zip(replay.images, live.images):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # the forced zoom reads as the model's own call, in its coordinates
    forced_text = live.messages[2]["content"][0]["text"]
    parsed = parse_reply(forced_text)
    assert parsed.kind == "zoom" and parsed.well_formed
    whole = conversation_from_trajectory(result.trajectory, img, "absolute", policy._model_size)
    assert whole.messages == live.messages
    with pytest.raises(ValueError, match="recorded on"):
        events_from_trajectory(result.trajectory, img[:10])


def test_crop_budget_and_sizer() -> None:
    from PIL import Image

    big = Image.new("RGB", (3000, 2000))
    small = fit_pixels(big, 600_000)
    assert small.size[0] * small.size[1] <= 600_000 and abs(small.size[0] / small.size[1] - 1.5) < 0.01
    assert fit_pixels(big, None) is big


def test_micro_batcher_runs_waiting_episodes_together() -> None:
    import threading

    calls: list[int] = []

    def fn(reqs):
        calls.append(len(reqs))
        return [r * 10 for r in reqs]

    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=3, episodes=4)
    out: dict[int, list[int]] = {}

    def episode(k: int) -> None:
        try:
            out[k] = [batcher.submit(k), batcher.submit(k + 100)] if k < 2 else [batcher.submit(k)]
        finally:
            batcher.episode_done()

    threads = [threading.Thread(target=episode, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert out == {0: [0, 1000], 1: [10, 1010], 2: [20], 3: [30]}
    assert sum(calls) == 6 and max(calls) == 3


def test_micro_batcher_propagates_engine_errors() -> None:
    def fn(reqs):
        raise RuntimeError("boom")

    batcher: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=2, episodes=1)
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit(1)


def test_prompt_is_versioned_and_tool_schema_is_valid() -> None:
    assert PROMPT_VERSION.startswith("qprobe.probe/")
    params = ZOOM_TOOL["function"]["parameters"]
    assert params["required"] == ["bbox_2d"] and params["properties"]["bbox_2d"]["minItems"] == 4
