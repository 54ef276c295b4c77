"""Ray Data execution: the same chunk scorer in a pool of Ray actors.

The driver builds a dataset of the pending items, ``map_batches`` runs a
:class:`_RayScorer` actor per worker (backend created once per actor), and
results stream back to the driver, which alone writes the output file. Image
paths must be readable from every Ray node (a shared or object-store-backed
filesystem); results travel as JSON strings so nested fields need no Arrow
schema.
"""

from __future__ import annotations

import json
from typing import Any

from qprobe.errors import QProbeError
from qprobe.scale.config import BatchConfig
from qprobe.scale.inputs import WorkItem, item_from_json, item_to_json
from qprobe.scale.local import Emit, scorer_kwargs


class _RayScorer:
    """A Ray Data callable class: one backend per actor."""

    def __init__(self, threads: int, kwargs: dict[str, Any]) -> None:
        from qprobe.scale.worker import ChunkScorer, limit_threads

        limit_threads(threads)
        self.scorer = ChunkScorer(**kwargs)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        items = [item_from_json(str(s)) for s in batch["item"]]
        rows = self.scorer.score_chunk(items)
        return {"row": [json.dumps(r, sort_keys=True, default=str, separators=(",", ":")) for r in rows]}


def _ensure_ray(cfg: BatchConfig) -> Any:
    try:
        import ray
    except ImportError:
        raise QProbeError("the Ray path needs Ray Data: pip install 'qprobe[scale]'") from None
    if not ray.is_initialized():
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(1, cfg.workers), include_dashboard=False, log_to_driver=False)
    return ray


def run_ray(items: list[WorkItem], cfg: BatchConfig, emit: Emit) -> None:
    """Score ``items`` on Ray Data and hand each finished batch's rows to ``emit``."""
    if not items:
        return
    _ensure_ray(cfg)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own
    ctx.print_on_execution_start = False
    n_blocks = max(1, min(len(items), (len(items) + cfg.chunk_size - 1) // cfg.chunk_size))
    ds = ray.data.from_items([{"item": item_to_json(it)} for it in items], override_num_blocks=n_blocks)
    scored = ds.map_batches(
        _RayScorer,
        fn_constructor_kwargs={"threads": cfg.threads_per_worker, "kwargs": scorer_kwargs(cfg)},
        batch_size=cfg.chunk_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=max(1, cfg.workers)),
        num_cpus=1,
    )
    for batch in scored.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        emit([json.loads(str(s)) for s in batch["row"]])
