"""The openai backend against a local in-process chat-completions server (127.0.0.1, no network)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("httpx")

from conftest import make_texture

from qprobe.backends import create_backend
from qprobe.testing.openai_server import ChatServer, Reply, request_images
from qprobe.types import Box, read_trajectories

ZOOM = '<think>the wall may be noisy</think>\n<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [60, 60, 180, 150]}}\n</tool_call>'
ANSWER = '<answer>{"score": 3.25, "defects": [{"bbox_2d": [300, 240, 420, 330], "type": "noise"}], "reasons": ["noisy wall"]}</answer>'
FORCED = Box(444, 362.667, 556, 437.333)  # 1.5x context → 168 x 112 px, multiples of 28: sent unresized


def _backend(srv: ChatServer, **kw):
    opts = dict(model="qwen2.5-vl", base_url=srv.base_url, timeout_s=0.5, max_retries=3, backoff_s=0.01, max_errors=1)
    opts.update(kw)
    return create_backend("openai", **opts)


def test_episode_with_timeout_500_and_malformed_replies() -> None:
    img = make_texture(840, 1120, seed=4)
    script = [
        Reply(delay_s=1.5),  # times out → retried
        Reply(status=500, body=b'{"error": {"message": "overloaded"}}'),  # → retried
        Reply(body=b"<html>502 bad gateway</html>"),  # malformed body → retried
        Reply(text=ZOOM),
        Reply(text="The image looks fine to me."),  # malformed model output → error turn, counted
        Reply(text=ANSWER),
    ]
    with ChatServer(script) as srv:
        a = _backend(srv).assess(img, forced_probes=[FORCED])
        requests = list(srv.requests)
    assert a.error is None, a.error
    assert a.score == 3.25 and a.extra["parse_failures"] == 1
    # the overview is 672x504 (multiples of 28): Qwen2.5-VL pixels = original x 0.6
    steps = a.trajectory.steps
    zoom = next(s for s in steps if s.kind == "zoom" and not s.data.get("forced"))
    assert zoom.box == Box(100, 100, 300, 250)
    assert a.defects[0].bbox == Box(500, 400, 700, 550) and a.defects[0].type == "noise"
    assert a.reasons == ["noisy wall"]
    assert len(requests) == 6
    first = requests[3]
    assert first["model"] == "qwen2.5-vl" and first["temperature"] == 0
    urls = [p["image_url"]["url"] for m in first["messages"] if isinstance(m["content"], list)
            for p in m["content"] if p["type"] == "image_url"]
    assert len(urls) == 2 and all(u.startswith("data:image/png;base64,") for u in urls)
    overview, crop = request_images(first)
    assert overview.shape[:2] == (504, 672)
    eff = a.trajectory.probes[0]
    x1, y1, x2, y2 = eff.to_int()
    assert (x2 - x1, y2 - y1) == (168, 112)
    np.testing.assert_array_equal(crop, img[y1:y2, x1:x2])  # full-resolution original pixels
    # the forced zoom was sent as the model's own call, in its coordinates
    assistant = [m["content"] for m in first["messages"] if m["role"] == "assistant"]
    assert '"bbox_2d": [266, 218, 334, 262]' in assistant[0]
    # later turns carry the model's own zoom, the error notice and three images
    last = requests[5]
    assert len(request_images(last)) == 3
    assert any("Error: no <tool_call>" in json.dumps(m["content"]) for m in last["messages"] if m["role"] == "user")
    assert a.trajectory.decoding["engine"] == "openai"


def test_server_failures_end_in_an_error_assessment_not_a_crash() -> None:
    img = make_texture(200, 300, seed=1)
    with ChatServer([Reply(status=503)] * 3) as srv:
        a = _backend(srv, max_retries=2).assess(img)
    assert a.score is None and "giving up after 3 attempts" in a.error and "HTTP 503" in a.error


def test_client_errors_are_not_retried() -> None:
    img = make_texture(200, 300, seed=1)
    with ChatServer([Reply(text=ANSWER)], api_key="secret") as srv:
        a = _backend(srv, api_key="wrong").assess(img)
        assert srv.requests == []
    assert a.score is None and "HTTP 401" in a.error
    with ChatServer([Reply(text=ANSWER)], api_key="secret") as srv:
        a = _backend(srv, api_key="secret").assess(img)
    assert a.score == 3.25


def test_native_tool_calls_and_relative_convention() -> None:
    img = make_texture(400, 800, seed=2)
    call = {"id": "c1", "type": "function", "function": {"name": "zoom_in", "arguments": '{"bbox_2d": [250, 250, 500, 750]}'}}
    with ChatServer([Reply(text=None, tool_calls=[call]), Reply(text='<answer>{"score": 4}</answer>')]) as srv:
        a = _backend(srv, family="qwen2_vl", native_tools=True).assess(img)
        assert srv.requests[0]["tools"][0]["function"]["name"] == "zoom_in"
    zoom = next(s for s in a.trajectory.steps if s.kind == "zoom")
    assert zoom.box == Box(200, 100, 400, 300)
    assert a.score == 4.0


def test_concurrency_is_bounded_by_batch_size() -> None:
    live = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(request: dict) -> Reply:
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        time.sleep(0.15)
        with lock:
            live["now"] -= 1
        return Reply(text='<answer>{"score": 2.5}</answer>')

    imgs = [make_texture(120, 160, seed=s) for s in range(5)]
    with ChatServer(fallback=slow) as srv:
        results = _backend(srv, batch_size=2).assess_many(imgs)
    assert [r.score for r in results] == [2.5] * 5
    assert 1 <= live["max"] <= 2


def test_cli_score_openai_episode(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from qprobe.cli.main import app
    from qprobe.io import save_image

    img = make_texture(840, 1120, seed=4)
    path = tmp_path / "photo.png"
    save_image(path, img)
    traj_file = tmp_path / "traj.jsonl"
    with ChatServer([Reply(status=500), Reply(text=ZOOM), Reply(text=ANSWER)]) as srv:
        result = CliRunner().invoke(
            app,
            ["score", str(path), "--backend", "openai", "--model", "qwen2.5-vl", "--base-url", srv.base_url,
             "--json", "--probe", "444,362.667,556,437.333", "--trajectories", str(traj_file)],
        )
        requests = list(srv.requests)
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["score"] == 3.25 and line["backend"] == "openai"
    assert line["defects"][0]["bbox"] == [500, 400, 700, 550]
    (traj,) = list(read_trajectories(traj_file))
    x1, y1, x2, y2 = traj.probes[0].to_int()
    np.testing.assert_array_equal(request_images(requests[1])[1], img[y1:y2, x1:x2])


def test_backend_options_are_validated() -> None:
    from qprobe.errors import ConfigError

    with pytest.raises(ConfigError, match="--model"):
        create_backend("openai")
    with pytest.raises(ConfigError, match="transformers backend"):
        create_backend("openai", model="m", expected_score=True)
    with pytest.raises(ConfigError, match="box_convention"):
        create_backend("openai", model="m", box_convention="pixels")
