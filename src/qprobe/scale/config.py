"""Configuration of a batch run (``qprobe batch``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BatchConfig:
    """What to score, where to write it, and how to spread the work."""

    input: str = field(
        default="", metadata={"help": "A folder of images, a dataset manifest (.jsonl) or a list file (.txt)."}
    )
    out: str = field(default="results.jsonl", metadata={"help": "Output JSONL, appended to and resumed from."})
    backend: str = field(default="classic", metadata={"help": "Backend name (see `qprobe ls backends`)."})
    workers: int = field(
        default=2,
        metadata={"help": "Worker processes (local) or Ray actors; 0 scores in the driver process."},
    )
    chunk_size: int = field(
        default=4, metadata={"help": "Images per task sent to a worker (amortises inter-process overhead)."}
    )
    threads_per_worker: int = field(
        default=1, metadata={"help": "Math-library threads in each worker (OMP/MKL/torch)."}
    )
    max_zooms: int | None = field(default=None, metadata={"help": "Turn budget per image (backend default if unset)."})
    seed: int | None = field(default=None, metadata={"help": "Seed passed to the backend."})
    include_trajectory: bool = field(
        default=True, metadata={"help": "Write each image's full probing trajectory into its row."}
    )
    retry_failed: bool = field(
        default=False, metadata={"help": "On resume, drop earlier error rows and score those images again."}
    )
    max_pixels: int | None = field(
        default=None, metadata={"help": "Refuse images larger than this many pixels (default: the loader's 256 MP)."}
    )
    ray: bool = field(default=False, metadata={"help": "Run on Ray Data instead of local processes."})
    ray_address: str | None = field(
        default=None, metadata={"help": "Ray cluster address ('auto', 'ray://host:10001'); local Ray if unset."}
    )
    recursive: bool = field(default=True, metadata={"help": "Look for images in sub-folders of INPUT."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar on stderr."})

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")
        if self.max_zooms is not None and self.max_zooms < 0:
            raise ValueError(f"max_zooms must be >= 0, got {self.max_zooms}")
