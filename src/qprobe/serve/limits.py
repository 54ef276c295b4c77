"""Request-body size limit (ASGI middleware) and bounded, timed assessment execution."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, TypeVar

from qprobe.serve.errors import ApiError, error_body

T = TypeVar("T")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodySizeLimit:
    """Answer 413 to any request whose body exceeds ``max_bytes``.

    A declared ``Content-Length`` above the limit is refused before a byte of
    the body is read; a body without one (chunked) is counted as it streams
    and refused as soon as it crosses the limit.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"request body is larger than the limit of {self.max_bytes / 1048576:.1f} MiB"

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(error_body(413, "upload_too_large", self._message())).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        seen = 0
        overflow = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal seen, overflow
            if overflow:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Stop feeding the app; whatever it answers to the cut body is replaced by a 413.
                    overflow = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if overflow:
                if not replaced:
                    replaced = True
                    await self._refuse(send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not overflow:
                raise
        if overflow and not replaced:
            await self._refuse(send)


class Limiter:
    """At most ``workers`` assessments run and ``queue`` more wait; the rest get 429.

    A slot is held until the work really finishes, even when the client was
    already answered 503 for a timeout, so the bound holds under overload.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qprobe-assess")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "running": self._running,
                "waiting": self._admitted - self._running,
                "workers": self.workers,
                "capacity": self.capacity,
            }

    def _admit(self) -> bool:
        with self._lock:
            if self._admitted >= self.capacity:
                return False
            self._admitted += 1
            return True

    def _release(self, _: object) -> None:
        with self._lock:
            self._admitted -= 1

    def _wrap(self, fn: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            with self._lock:
                self._running += 1
            try:
                return fn()
            finally:
                with self._lock:
                    self._running -= 1

        return run

    async def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        if not self._admit():
            raise ApiError(
                429, "busy",
                f"the server is at capacity ({self.capacity} requests running or waiting); retry shortly",
                headers={"Retry-After": "1"},
            )
        fut = self._executor.submit(self._wrap(fn))
        fut.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
        except asyncio.TimeoutError:
            fut.cancel()  # drops it if still waiting; a running assessment finishes and frees its slot
            raise ApiError(
                503, "timeout", f"the assessment did not finish within {timeout_s:g} s; retry later",
                headers={"Retry-After": "5"},
            ) from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
