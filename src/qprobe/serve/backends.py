"""Backends of the service: each created once per process, on start-up or first use."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from typing import Any, ContextManager

from qprobe.serve.errors import ApiError


class BackendPool:
    """The allowed backends by name, created lazily and then reused by every request.

    A backend registered with ``thread_safe=False`` metadata is called by one
    thread at a time; others are shared by all worker threads.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self._backends: dict[str, Any] = {}
        self._guards: dict[str, ContextManager[Any]] = {}
        self._lock = threading.Lock()

    def loaded(self) -> list[str]:
        with self._lock:
            return sorted(self._backends)

    def check(self, name: str) -> None:
        """Raise the client error for a backend this server does not offer."""
        if name not in self.names:
            raise ApiError(
                400, "unknown_backend", f"backend {name!r} is not offered by this server (choose from {self.names})"
            )

    def get(self, name: str) -> tuple[Any, ContextManager[Any]]:
        """The backend and the guard to hold while calling it (created on first use)."""
        self.check(name)
        with self._lock:
            if name not in self._backends:
                from qprobe.backends import BACKENDS, create_backend

                self._backends[name] = create_backend(name)
                safe = BACKENDS.metadata(name).get("thread_safe", True)
                self._guards[name] = nullcontext() if safe else threading.Lock()
            return self._backends[name], self._guards[name]
