"""Run the service with uvicorn (one process; concurrency comes from the worker threads)."""

from __future__ import annotations

import logging

from qprobe.serve.config import ServeConfig


def serve(cfg: ServeConfig) -> None:
    import uvicorn

    from qprobe.serve.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if cfg.token is None and cfg.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("qprobe.serve").warning(
            "listening on %s without a token: anyone who can reach this port can use it (pass --token)", cfg.host
        )
    uvicorn.run(
        create_app(cfg),
        host=cfg.host,
        port=cfg.port,
        access_log=cfg.access_log,
        # uvicorn's own 503 guard sits well above ours, so clients normally get our JSON 429.
        limit_concurrency=2 * (cfg.workers + cfg.queue) + 32,
        timeout_keep_alive=5,
        log_level="info",
    )
