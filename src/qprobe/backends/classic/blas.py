"""One BLAS thread for the classic backend's small matrix products.

The scan's probability model (:func:`~qprobe.backends.classic.scan.probability_map`)
multiplies a few thousand feature rows by a 22 x 16 matrix: 0.1 ms of work.
OpenBLAS (numpy's BLAS) splits even that over every core, and its worker
threads then busy-wait for the next call — about 0.1 s on a 2-core machine —
competing with the zoom crops that start right after the scan: measured on
a 4K photo, the first four or five crops ran 1.3-1.8x slower, and an
assessment took 0.286 s instead of 0.271 s (median of 15, interleaved).
Inside :func:`one_blas_thread` the products run on the calling thread alone
(results identical: each output element is reduced by one thread either way).

Uses ``threadpoolctl`` (the ``classic`` extra); without it the context does
nothing. The limit is process-wide while it lasts (BLAS has one thread
count), i.e. for the fraction of a millisecond the products take.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_LOCK = threading.Lock()
_CONTROLLER: Any = None


def _controller() -> Any | None:
    """A cached ``threadpoolctl.ThreadpoolController`` (``None`` when threadpoolctl is missing)."""
    global _CONTROLLER
    with _LOCK:
        if _CONTROLLER is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _CONTROLLER = False
            else:
                _CONTROLLER = ThreadpoolController()
        return _CONTROLLER or None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the enclosed BLAS calls on the calling thread only."""
    ctl = _controller()
    if ctl is None:
        yield
        return
    with ctl.limit(limits=1, user_api="blas"):
        yield
