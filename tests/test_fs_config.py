import dataclasses
import json
import subprocess
import sys

import pytest

from qprobe._fs import JsonlAppender, atomic_write_text, read_jsonl_tolerant
from qprobe.config import load_config, write_resolved
from qprobe.errors import ConfigError


def test_jsonl_torn_line_is_dropped_and_repaired(tmp_path):
    p = tmp_path / "out.jsonl"
    with JsonlAppender(p) as w:
        w.write({"id": 1})
        w.write({"id": 2})
    with open(p, "ab") as fh:
        fh.write(b'{"id": 3, "sco')  # a writer killed mid-line
    assert [r["id"] for r in read_jsonl_tolerant(p)] == [1, 2]
    with JsonlAppender(p) as w:  # opening for append repairs first
        w.write({"id": 3})
    assert [r["id"] for r in read_jsonl_tolerant(p)] == [1, 2, 3]
    assert p.read_text().count("\n") == 3


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_text(tmp_path / "x.txt", "hello")
    assert (tmp_path / "x.txt").read_text() == "hello"
    assert [f.name for f in tmp_path.iterdir()] == ["x.txt"]


@dataclasses.dataclass
class _Cfg:
    seed: int = 0
    rate: float = 0.5
    name: str = "x"
    flag: bool = False
    sizes: list[int] = dataclasses.field(default_factory=lambda: [1, 2])
    out: str | None = None


def test_config_layers(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("seed: 3\nrate: 0.25\nsizes: [4, 5]\n")
    cfg = load_config(_Cfg, y, {"name": "cli", "flag": "true", "seed": None})
    assert cfg == _Cfg(seed=3, rate=0.25, name="cli", flag=True, sizes=[4, 5])
    write_resolved(cfg, tmp_path / "resolved.yaml")
    assert load_config(_Cfg, tmp_path / "resolved.yaml") == cfg
    with pytest.raises(ConfigError, match="unknown option"):
        load_config(_Cfg, None, {"sede": 1})
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(_Cfg, None, {"seed": 1.5})
    with pytest.raises(ConfigError, match="not found"):
        load_config(_Cfg, tmp_path / "missing.yaml")


def test_import_qprobe_is_light():
    code = (
        "import sys, qprobe, qprobe.cli.main; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'ray', 'fastapi', 'onnx', 'onnxruntime', 'cv2') if m in sys.modules]; "
        "print(json.dumps(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_cli_help_and_version():
    out = subprocess.run([sys.executable, "-m", "qprobe", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "qprobe" in out.stdout
    out = subprocess.run([sys.executable, "-m", "qprobe", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == "0.1.0"
