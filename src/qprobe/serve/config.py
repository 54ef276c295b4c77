"""Configuration of the HTTP service."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ServeConfig:
    """Where to listen, which backends to offer, and the service's limits."""

    host: str = field(default="127.0.0.1", metadata={"help": "Interface to bind (loopback by default)."})
    port: int = field(default=8000, metadata={"help": "TCP port."})
    token: str | None = field(
        default=None,
        metadata={"help": "Require 'Authorization: Bearer TOKEN' on /v1/* (also read from $QPROBE_TOKEN)."},
    )
    backend: str = field(default="classic", metadata={"help": "Default backend, created at start-up."})
    allow_backends: list[str] = field(
        default_factory=list,
        metadata={"help": "Further backends a client may choose per request (created on first use)."},
    )
    workers: int = field(default=2, metadata={"help": "Assessments running at the same time (threads)."})
    queue: int = field(
        default=64, metadata={"help": "Requests that may wait for a worker; beyond that the answer is 429."}
    )
    timeout_s: float = field(
        default=120.0, metadata={"help": "Per-request limit (waiting + scoring); beyond it the answer is 503."}
    )
    max_upload_mb: float = field(default=50.0, metadata={"help": "Largest request body; beyond it the answer is 413."})
    max_pixels: int | None = field(
        default=None, metadata={"help": "Largest image (width x height) accepted (default: the loader's 256 MP)."}
    )
    max_zooms_limit: int = field(default=16, metadata={"help": "Largest turn budget a client may ask for."})
    access_log: bool = field(default=True, metadata={"help": "Log one line per request."})

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.queue < 0:
            raise ValueError(f"queue must be >= 0, got {self.queue}")
        if self.timeout_s <= 0 or self.max_upload_mb <= 0:
            raise ValueError("timeout_s and max_upload_mb must be positive")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def backends(self) -> list[str]:
        """Every backend a request may name, the default first."""
        return [self.backend] + [b for b in self.allow_backends if b != self.backend]
