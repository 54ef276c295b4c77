"""The probing agent: environment, actions, context-aware cropping, loop, replay.

Shared by every backend (classic, dummy, transformers, openai) and by the
training stages. LLM text parsing and prompts live in
``qprobe.agent.parsing`` and ``qprobe.agent.prompts``.
"""

from qprobe.agent.actions import Action, Answer, Invalid, Zoom
from qprobe.agent.cropping import CropConfig, context_box
from qprobe.agent.env import EnvConfig, Observation, ProbeEnv, Turn
from qprobe.agent.loop import Policy, run_episode

__all__ = [
    "Action",
    "Answer",
    "CropConfig",
    "EnvConfig",
    "Invalid",
    "Observation",
    "Policy",
    "ProbeEnv",
    "Turn",
    "Zoom",
    "context_box",
    "run_episode",
]
