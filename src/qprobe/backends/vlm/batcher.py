"""Micro-batching: episodes run in threads, their model calls run as batches.

Each episode of ``assess_many`` runs the ordinary agent loop in its own
thread; when its policy needs a reply it calls :meth:`MicroBatcher.submit`
and blocks. As soon as every live episode (up to ``max_batch``) is waiting,
one of them runs the engine on the whole batch and hands out the replies, so
a local model generates for many images per forward pass while the loop
stays the same code as for a single image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


class _Slot(Generic[Req, Res]):
    __slots__ = ("done", "error", "request", "result")

    def __init__(self, request: Req) -> None:
        self.request = request
        self.result: Res | None = None
        self.error: BaseException | None = None
        self.done = False


class MicroBatcher(Generic[Req, Res]):
    """Collects requests from ``episodes`` threads and runs ``fn`` on batches of them."""

    def __init__(self, fn: Callable[[Sequence[Req]], list[Res]], max_batch: int, episodes: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._fn = fn
        self.max_batch = max_batch
        self._remaining = episodes
        self._pending: list[_Slot[Req, Res]] = []
        self._running = False
        self._cond = threading.Condition()
        self.batch_sizes: list[int] = []

    def episode_done(self) -> None:
        """Call once when an episode ends (in a ``finally``), so nobody waits for it."""
        with self._cond:
            self._remaining -= 1
            self._cond.notify_all()

    def _ready(self) -> bool:
        want = max(1, min(self.max_batch, self._remaining))
        return not self._running and len(self._pending) >= want

    def submit(self, request: Req) -> Res:
        slot: _Slot[Req, Res] = _Slot(request)
        with self._cond:
            self._pending.append(slot)
            self._cond.notify_all()
            while not slot.done:
                if self._ready():
                    batch = self._pending[: self.max_batch]
                    del self._pending[: self.max_batch]
                    self._running = True
                    self._cond.release()
                    try:
                        self._run(batch)
                    finally:
                        self._cond.acquire()
                        self._running = False
                        self._cond.notify_all()
                else:
                    self._cond.wait()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _run(self, batch: list[_Slot[Req, Res]]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            results = self._fn([s.request for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"engine returned {len(results)} replies for {len(batch)} requests")
            for s, r in zip(batch, results):
                s.result = r
        except BaseException as exc:  # every waiting episode learns of the failure
            for s in batch:
                s.error = exc
        finally:
            for s in batch:
                s.done = True
