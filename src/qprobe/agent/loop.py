"""Run one probing episode: a policy acts in a :class:`ProbeEnv` until it answers.

A policy is any object with ``act(history) -> Action``; ``history`` is the
list of :class:`~qprobe.agent.env.Turn` so far, the last one holding the
observation to act on. Non-LLM policies (``classic``, ``dummy``) and LLM
policies (``transformers``, ``openai``) are driven by the same loop.
"""

from __future__ import annotations

import time
from typing import Protocol, Sequence

from qprobe.agent.actions import Action, Zoom
from qprobe.agent.env import ProbeEnv, Turn
from qprobe.io import ImageSource
from qprobe.types import Assessment, Box


class Policy(Protocol):
    """Chooses the next action from the episode so far."""

    def act(self, history: Sequence[Turn]) -> Action: ...


def run_episode(
    env: ProbeEnv,
    policy: Policy,
    image: ImageSource,
    *,
    path: str | None = None,
    forced_probes: Sequence[Box] | None = None,
    seed: int | None = None,
) -> Assessment:
    """Reset ``env`` on ``image``, zoom into ``forced_probes`` first, then let ``policy`` act.

    Forced probes come on top of the zoom budget, so the policy keeps its own
    zooms (the crop-bias analysis compares scores with and without them).
    Returns an :class:`Assessment` with the full trajectory; if the policy
    never gives a valid answer within the turn limit, ``score`` is ``None``
    and ``error`` says why. Image loading errors propagate
    (:class:`~qprobe.errors.ImageLoadError`): backends turn them into
    per-image error assessments.
    """
    t0 = time.perf_counter()
    forced = list(forced_probes or [])
    env.reset(image, path=path, seed=seed, extra_zooms=len(forced))
    done = False
    for box in forced:
        _, done = env.step(Zoom(box), forced=True)
        if done:
            break
    while not done:
        action = policy.act(env.history)
        _, done = env.step(action)
    traj = env.trajectory
    answer = env.answer
    elapsed = time.perf_counter() - t0
    base = dict(
        probes=traj.probes,
        backend=env.backend,
        path=traj.image or path,
        image_size=traj.image_size,
        elapsed_s=elapsed,
        trajectory=traj,
    )
    if answer is None:
        last = [s.text for s in traj.steps if s.kind == "error"]
        reason = last[-1] if last else "no answer"
        return Assessment(
            score=None,
            error=f"no valid answer within {len(env.history) - 1} turns (last problem: {reason})",
            **base,  # type: ignore[arg-type]
        )
    return Assessment(
        score=float(answer.score),
        defects=list(answer.defects),
        reasons=list(answer.reasons),
        extra=dict(answer.extra),
        **base,  # type: ignore[arg-type]
    )
