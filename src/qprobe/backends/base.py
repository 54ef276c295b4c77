"""The backend interface: something that turns an image into an :class:`Assessment`.

:class:`Backend` is the contract every scorer follows (``classic``, ``dummy``,
``transformers``, ``openai``); :class:`ProbingBackend` implements
``assess`` with the shared agent loop, so a concrete backend only supplies
its policy (``make_policy``) and, optionally, its environment settings.

A backend never raises for a bad image or a malformed model output: it
returns ``Assessment(score=None, error="...")`` and the caller counts it.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from abc import ABC, abstractmethod
from typing import Any, Iterable

import numpy as np

from qprobe.agent.env import EnvConfig, ProbeEnv
from qprobe.agent.loop import Policy, run_episode
from qprobe.errors import ImageLoadError
from qprobe.io import ImageSource, load_rgb
from qprobe.types import Assessment, Box


def _path_of(image: ImageSource, path: str | None) -> str | None:
    if path is not None:
        return str(path)
    if isinstance(image, str):
        return image
    if hasattr(image, "__fspath__"):
        return str(image)
    return None


class Backend(ABC):
    """Scores images: ``assess`` one, ``assess_many`` several."""

    name: str = ""

    @abstractmethod
    def assess(
        self,
        image: ImageSource,
        *,
        path: str | None = None,
        forced_probes: list[Box] | None = None,
        max_zooms: int | None = None,
        seed: int | None = None,
    ) -> Assessment:
        """Score one image (a path, PIL image or uint8 array); boxes in original pixels."""

    def prepare(self) -> None:
        """Load what scoring needs (weights, sessions, clients) now instead of inside the first assessment.

        Then the first image's ``elapsed_s`` times its assessment alone, and a
        missing weight file is reported before any image is read. Loading is
        lazy without it; the default loads nothing.
        """

    def assess_many(self, images: Iterable[ImageSource], **kw: Any) -> list[Assessment]:
        """Score several images (a loop by default; batched backends override)."""
        return [self.assess(image, **kw) for image in images]

    def failed(self, image: ImageSource, path: str | None, message: str, t0: float) -> Assessment:
        """The assessment of an image that could not be scored."""
        return Assessment(
            score=None,
            backend=self.name,
            path=_path_of(image, path),
            elapsed_s=time.perf_counter() - t0,
            error=message,
        )

    def identity(self) -> dict[str, Any]:
        """What this scorer's outputs depend on, for result caches (``qprobe eval`` resumes).

        The name, the class and the settings (:func:`qprobe.config.plain_settings`:
        ``self.config`` or the plain public attributes, never API keys); a
        backend with a weight file adds its digest. Two scorers with
        different identities never share cached predictions.
        """
        from qprobe import __version__
        from qprobe.config import plain_settings

        return {
            "scorer": self.name,
            "class": type(self).__qualname__,
            "qprobe": __version__,
            "settings": plain_settings(self),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ProbingBackend(Backend):
    """A backend that drives the shared probe loop with its own policy."""

    def __init__(self, env_config: EnvConfig | None = None) -> None:
        self.env_config = env_config or EnvConfig()

    @abstractmethod
    def make_policy(
        self, *, seed: int | None = None, image: np.ndarray | None = None, max_zooms: int | None = None
    ) -> Policy:
        """A fresh policy for one episode.

        ``image`` is the full-resolution original (uint8 H x W x 3). Only
        non-LLM policies that pre-scan the whole image (``classic``'s
        native-resolution anomaly scan) use it; LLM policies must ignore it
        and see the image only through the environment's observations.
        ``max_zooms``: the episode's zoom budget when the caller set one
        (``assess(max_zooms=...)``); a policy that plans its zooms ahead
        plans at least that many. The environment enforces the budget either way.
        """

    def _policy(self, seed: int | None, pixels: np.ndarray, max_zooms: int | None) -> Policy:
        """``make_policy``, telling it the caller's budget where it takes one (older subclasses do not)."""
        if max_zooms is not None and "max_zooms" in inspect.signature(self.make_policy).parameters:
            return self.make_policy(seed=seed, image=pixels, max_zooms=max_zooms)
        return self.make_policy(seed=seed, image=pixels)

    def zoom_budget(self, width: int, height: int) -> int | None:
        """This backend's zoom budget for an image of this size (``None``: the environment's default)."""
        return None

    def make_env(self, max_zooms: int | None = None) -> ProbeEnv:
        cfg = self.env_config
        if max_zooms is not None and max_zooms != cfg.max_zooms:
            cfg = dataclasses.replace(cfg, max_zooms=int(max_zooms))
        return ProbeEnv(cfg, backend=self.name)

    def assess(
        self,
        image: ImageSource,
        *,
        path: str | None = None,
        forced_probes: list[Box] | None = None,
        max_zooms: int | None = None,
        seed: int | None = None,
    ) -> Assessment:
        t0 = time.perf_counter()
        src_path = _path_of(image, path)
        try:
            pixels = load_rgb(image)
        except ImageLoadError as exc:
            return self.failed(image, path, str(exc), t0)
        except (TypeError, ValueError) as exc:
            return self.failed(image, path, f"cannot use this input as an image: {exc}", t0)
        except MemoryError:  # one huge image must not end a batch: the next one may fit
            return self.failed(image, path, "not enough memory to decode this image", t0)
        try:
            budget = max_zooms if max_zooms is not None else self.zoom_budget(pixels.shape[1], pixels.shape[0])
            env = self.make_env(budget)
            result = run_episode(
                env,
                self._policy(seed, pixels, max_zooms),
                pixels,
                path=src_path,
                forced_probes=forced_probes,
                seed=seed,
            )
        except (ValueError, RuntimeError, ArithmeticError) as exc:
            return self.failed(image, path, f"{self.name} failed on this image: {type(exc).__name__}: {exc}", t0)
        except MemoryError:
            h, w = pixels.shape[:2]
            return self.failed(image, path, f"{self.name} ran out of memory on this {w}x{h} image", t0)
        result.elapsed_s = time.perf_counter() - t0
        return result
