"""Fixtures shared by the product-surface tests (serve, batch, report)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from qprobe.io import save_image

from conftest import make_texture


def write_images(folder: Path, n: int, h: int = 240, w: int = 320, prefix: str = "img") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{prefix}{i:03d}.jpg"
        save_image(p, make_texture(h, w, seed=i))
        paths.append(p)
    return paths


def qprobe_cmd(*args: str) -> list[str]:
    """The ``qprobe`` command run with this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "qprobe", *args]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_pids(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def crashy_score_chunk(items: list[Any]) -> list[dict[str, Any]]:
    """A pool task that kills its worker process on ids containing 'crash'."""
    from qprobe.scale.worker import pool_score_chunk

    if any("crash" in it.id for it in items):
        os._exit(3)
    return pool_score_chunk(items)


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


def run_chromium(binary: str, user_data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"},
    )
