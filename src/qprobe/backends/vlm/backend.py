"""What the ``transformers`` and ``openai`` backends share: the probe loop around an engine.

:class:`VLMBackend` is a :class:`~qprobe.backends.base.ProbingBackend`
whose policy is a :class:`~.policy.VLMPolicy`. Subclasses supply the engine
(lazily built, so creating a backend is cheap) and the coordinate frame.
``assess_many`` runs episodes in threads: a batched engine (a local model)
gets their turns as micro-batches (:mod:`.batcher`), an unbatched one (an
HTTP endpoint) gets up to ``batch_size`` concurrent requests.
"""

from __future__ import annotations

import itertools
import json
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qprobe.agent.cropping import CropConfig
from qprobe.agent.env import EnvConfig
from qprobe.agent.prompts import PROMPT_VERSION
from qprobe.backends.base import ProbingBackend
from qprobe.backends.vlm.batcher import MicroBatcher
from qprobe.backends.vlm.engine import ChatEngine, Generation
from qprobe.backends.vlm.messages import Conversation, Sizer
from qprobe.backends.vlm.policy import VLMPolicy
from qprobe.io import ImageSource
from qprobe.types import Assessment, Box

DEFAULT_CROP_MAX_PIXELS = 448 * 448
"""Crop budget: a zoom larger than this is downscaled (256 Qwen-VL visual tokens at most).

With the 672-px global view (336 tokens for 16:9) four probes cost at most
1360 tokens, about 13 % of a 3840x2160 image at native resolution (10549
tokens); ``benchmarks/bench_tokens.py`` measures it.
"""


class VLMBackend(ProbingBackend):
    """A probing backend driven by a multimodal LLM through a :class:`ChatEngine`."""

    def __init__(
        self,
        *,
        view_long_side: int = 672,
        max_zooms: int = 4,
        max_errors: int = 2,
        context_factor: float = 1.5,
        crop_max_pixels: int | None = DEFAULT_CROP_MAX_PIXELS,
        expected_score: bool = False,
        batch_size: int = 4,
        dump_inputs: str | Path | None = None,
    ) -> None:
        super().__init__(
            EnvConfig(
                view_long_side=view_long_side,
                max_zooms=max_zooms,
                max_errors=max_errors,
                crop=CropConfig(context_factor=context_factor),
            )
        )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if crop_max_pixels is not None and crop_max_pixels < 28 * 28:
            raise ValueError(f"crop_max_pixels must be >= 784, got {crop_max_pixels}")
        self.crop_max_pixels = crop_max_pixels
        self.expected_score = expected_score
        self.batch_size = batch_size
        self.dump_inputs = None if dump_inputs is None else Path(dump_inputs)
        self._engine: ChatEngine | None = None
        self._engine_lock = threading.Lock()
        self._local = threading.local()
        self._episodes = itertools.count()

    # -- to implement -----------------------------------------------------------
    @abstractmethod
    def _create_engine(self) -> ChatEngine:
        """Build the engine (load the model, open the HTTP client)."""

    @property
    @abstractmethod
    def convention(self) -> str:
        """Box convention of the model (see :mod:`.coords`)."""

    @abstractmethod
    def model_size(self, width: int, height: int) -> tuple[int, int]:
        """Size at which the model sees a global view of ``width x height``."""

    def sizer(self) -> Sizer | None:
        """Resize applied to every image before it is sent (``None``: the engine's processor does it)."""
        return None

    # -- engine -------------------------------------------------------------------
    @property
    def engine(self) -> ChatEngine:
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def prepare(self) -> None:
        """Load the model or open the client now (see :meth:`Backend.prepare`)."""
        self.engine  # noqa: B018 - the property builds it

    def _generate_one(self, conv: Conversation) -> Generation:
        return self.engine.generate([conv])[0]

    # -- policy -------------------------------------------------------------------
    def make_policy(self, *, seed: int | None = None, image: Any = None, max_zooms: int | None = None) -> VLMPolicy:
        """The episode's LLM policy; of ``image`` (the original) only its size is used: the model sees observations.

        ``max_zooms`` is not needed: the model learns its budget from the observations.
        """
        generate: Callable[[Conversation], Generation] = getattr(self._local, "generate", None) or self._generate_one
        return VLMPolicy(
            generate,
            convention=self.convention,
            model_size=self.model_size,
            sizer=self.sizer(),
            crop_max_pixels=self.crop_max_pixels,
            expected_score=self.expected_score,
            original_size=None if image is None else (int(image.shape[1]), int(image.shape[0])),
            on_turn=self._dumper() if self.dump_inputs is not None else None,
        )

    def _dumper(self) -> Callable[[int, Conversation, Generation], None]:
        assert self.dump_inputs is not None
        episode = f"episode{next(self._episodes):05d}"
        folder = self.dump_inputs / episode

        def dump(turn: int, conv: Conversation, gen: Generation) -> None:
            folder.mkdir(parents=True, exist_ok=True)
            names = []
            for j, img in enumerate(conv.images):
                name = f"turn{turn}_image{j}.png"
                img.save(folder / name)
                names.append(name)
            record = {"messages": conv.messages, "images": names, "reply": gen.text}
            (folder / f"turn{turn}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")

        return dump

    # -- scoring ------------------------------------------------------------------
    def assess(
        self,
        image: ImageSource,
        *,
        path: str | None = None,
        forced_probes: list[Box] | None = None,
        max_zooms: int | None = None,
        seed: int | None = None,
    ) -> Assessment:
        result = super().assess(image, path=path, forced_probes=forced_probes, max_zooms=max_zooms, seed=seed)
        traj = result.trajectory
        if traj is not None:
            traj.prompt_version = PROMPT_VERSION
            if self._engine is not None:
                traj.decoding = self._engine.decoding()
            result.extra["parse_failures"] = traj.n_errors
        return result

    def assess_many(self, images: Iterable[ImageSource], **kw: Any) -> list[Assessment]:
        items: Sequence[ImageSource] = list(images)
        if len(items) <= 1 or self.batch_size == 1:
            return [self.assess(img, **kw) for img in items]
        engine = self.engine
        batcher: MicroBatcher[Conversation, Generation] | None = None
        if engine.batched:
            batcher = MicroBatcher(engine.generate, self.batch_size, len(items))

        def one(img: ImageSource) -> Assessment:
            self._local.generate = batcher.submit if batcher is not None else None
            try:
                return self.assess(img, **kw)
            finally:
                self._local.generate = None
                if batcher is not None:
                    batcher.episode_done()

        with ThreadPoolExecutor(max_workers=self.batch_size, thread_name_prefix=f"qprobe-{self.name}") as pool:
            return list(pool.map(one, items))
