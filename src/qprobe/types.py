"""Core value types: boxes, defects, trajectories and assessments.

All boxes are stored in **original-image pixels**, ``[x1, y1, x2, y2]`` with
``x2 > x1`` and ``y2 > y1`` (half-open: pixel columns ``x1 .. x2-1``).
Backends convert to and from their own conventions at their boundary.

Scores are on the 1–5 MOS scale, higher is better.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

SCHEMA_VERSION = "qprobe.trajectory/1"
"""Version tag written into every trajectory; bump on incompatible changes."""

SCORE_MIN = 1.0
SCORE_MAX = 5.0


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in original-image pixels."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        vals = (self.x1, self.y1, self.x2, self.y2)
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"box has a non-finite coordinate: {vals}")
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box corners are out of order: {vals}")

    # -- construction -----------------------------------------------------
    @classmethod
    def from_list(cls, values: Sequence[float]) -> "Box":
        if len(values) != 4:
            raise ValueError(f"a box needs 4 numbers [x1, y1, x2, y2], got {list(values)!r}")
        x1, y1, x2, y2 = (float(v) for v in values)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise ValueError(f"box has a non-finite coordinate: {list(values)!r}")
        return cls(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> "Box":
        return cls(float(x), float(y), float(x + w), float(y + h))

    def to_list(self, ndigits: int | None = 2) -> list[float]:
        vals = [self.x1, self.y1, self.x2, self.y2]
        if ndigits is None:
            return vals
        return [round(v, ndigits) for v in vals]

    def to_int(self) -> tuple[int, int, int, int]:
        """Integer pixel bounds covering the box (floor of start, ceil of end)."""
        return (
            int(math.floor(self.x1)),
            int(math.floor(self.y1)),
            int(math.ceil(self.x2)),
            int(math.ceil(self.y2)),
        )

    # -- geometry -----------------------------------------------------------
    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def intersection(self, other: "Box") -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return max(0.0, w) * max(0.0, h)

    def iou(self, other: "Box") -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def hull(self, other: Box) -> Box:
        """The smallest box holding both."""
        return Box(min(self.x1, other.x1), min(self.y1, other.y1), max(self.x2, other.x2), max(self.y2, other.y2))

    def contains(self, other: "Box") -> bool:
        return (
            self.x1 <= other.x1 and self.y1 <= other.y1 and self.x2 >= other.x2 and self.y2 >= other.y2
        )

    def clip(self, width: float, height: float) -> "Box":
        """Clamp into ``[0, width] x [0, height]``."""
        x1 = min(max(self.x1, 0.0), width)
        y1 = min(max(self.y1, 0.0), height)
        x2 = min(max(self.x2, 0.0), width)
        y2 = min(max(self.y2, 0.0), height)
        return Box(x1, y1, x2, y2)

    def scale(self, sx: float, sy: float | None = None) -> "Box":
        sy = sx if sy is None else sy
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)

    def expand(self, factor: float) -> "Box":
        """Scale width and height by ``factor`` about the centre (not clipped)."""
        cx, cy = self.center
        hw, hh = self.width * factor / 2.0, self.height * factor / 2.0
        return Box(cx - hw, cy - hh, cx + hw, cy + hh)

    def pad(self, margin: float) -> "Box":
        return Box(self.x1 - margin, self.y1 - margin, self.x2 + margin, self.y2 + margin)


@dataclass(frozen=True)
class Defect:
    """A localized defect: where, what, how bad, how sure."""

    bbox: Box
    type: str
    severity: int | None = None
    confidence: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bbox": self.bbox.to_list(), "type": self.type}
        out["severity"] = self.severity
        out["confidence"] = round(float(self.confidence), 4)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Defect":
        box = data.get("bbox", data.get("bbox_2d"))
        if box is None:
            raise ValueError(f"defect has no 'bbox': {data!r}")
        sev = data.get("severity")
        return cls(
            bbox=Box.from_list(box),
            type=str(data.get("type", "unknown")),
            severity=None if sev is None else int(sev),
            confidence=float(data.get("confidence", 1.0)),
        )


@dataclass
class Step:
    """One turn of a probing episode.

    ``kind`` is one of ``"observe"`` (the environment shows an image: the
    global view or a crop), ``"zoom"`` (the policy asks for a box),
    ``"answer"`` (the policy answers) or ``"error"`` (the policy's output did
    not parse or was invalid; the episode continues with an error turn).
    ``box`` is in original pixels; for an ``observe`` of a crop it is the
    *effective* crop box after context enlargement and clamping, so replaying
    the crop from the original image is exact.
    """

    kind: str
    box: Box | None = None
    text: str = ""
    view_size: tuple[int, int] | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.box is not None:
            out["box"] = self.box.to_list(ndigits=None)
        if self.text:
            out["text"] = self.text
        if self.view_size is not None:
            out["view_size"] = list(self.view_size)
        if self.data:
            out["data"] = self.data
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Step":
        box = data.get("box")
        vs = data.get("view_size")
        return cls(
            kind=str(data["kind"]),
            box=None if box is None else Box.from_list(box),
            text=str(data.get("text", "")),
            view_size=None if vs is None else (int(vs[0]), int(vs[1])),
            data=dict(data.get("data", {})),
        )


@dataclass
class Trajectory:
    """A replayable probing episode: images by path, crops by box."""

    image: str
    image_size: tuple[int, int]
    backend: str
    steps: list[Step] = field(default_factory=list)
    prompt_version: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    @property
    def probes(self) -> list[Box]:
        """Effective crop boxes shown to the policy, in order."""
        return [s.box for s in self.steps if s.kind == "observe" and s.box is not None]

    @property
    def n_errors(self) -> int:
        return sum(1 for s in self.steps if s.kind == "error")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "image": self.image,
            "image_size": list(self.image_size),
            "backend": self.backend,
            "prompt_version": self.prompt_version,
            "decoding": self.decoding,
            "seed": self.seed,
            "meta": self.meta,
            "steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Trajectory":
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"trajectory schema {version!r} is not supported (expected {SCHEMA_VERSION!r})"
            )
        w, h = data["image_size"]
        return cls(
            image=str(data["image"]),
            image_size=(int(w), int(h)),
            backend=str(data["backend"]),
            steps=[Step.from_dict(s) for s in data.get("steps", [])],
            prompt_version=data.get("prompt_version"),
            decoding=dict(data.get("decoding") or {}),
            seed=data.get("seed"),
            meta=dict(data.get("meta") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Trajectory":
        return cls.from_dict(json.loads(text))


def write_trajectories(path: str | Path, trajectories: Iterable[Trajectory]) -> None:
    """Write trajectories as JSONL (atomically)."""
    from qprobe._fs import atomic_write_text

    atomic_write_text(path, "".join(t.to_json() + "\n" for t in trajectories))


def read_trajectories(path: str | Path) -> Iterator[Trajectory]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield Trajectory.from_json(line)
                except (ValueError, KeyError) as exc:
                    raise ValueError(f"{path}:{lineno}: bad trajectory line: {exc}") from exc


@dataclass
class Assessment:
    """The result of scoring one image.

    ``score`` is ``None`` only when the backend failed to produce one; the
    failure is then named in ``error`` and counted by evaluation — never
    replaced by an invented number.
    """

    score: float | None
    defects: list[Defect] = field(default_factory=list)
    probes: list[Box] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    backend: str = ""
    path: str | None = None
    image_size: tuple[int, int] | None = None
    elapsed_s: float | None = None
    trajectory: Trajectory | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.score is not None and self.error is None

    def to_dict(self, include_trajectory: bool = False) -> dict[str, Any]:
        from qprobe import __version__

        out: dict[str, Any] = {
            "path": self.path,
            "score": None if self.score is None else round(float(self.score), 4),
            "defects": [d.to_dict() for d in self.defects],
            "probes": [p.to_list() for p in self.probes],
            "reasons": list(self.reasons),
            "backend": self.backend,
            "version": __version__,
            "elapsed_s": None if self.elapsed_s is None else round(self.elapsed_s, 4),
        }
        if self.image_size is not None:
            out["image_size"] = list(self.image_size)
        if self.error is not None:
            out["error"] = self.error
        if self.extra:
            out["extra"] = self.extra
        if include_trajectory and self.trajectory is not None:
            out["trajectory"] = self.trajectory.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Assessment":
        traj = data.get("trajectory")
        size = data.get("image_size")
        return cls(
            score=None if data.get("score") is None else float(data["score"]),
            defects=[Defect.from_dict(d) for d in data.get("defects", [])],
            probes=[Box.from_list(p) for p in data.get("probes", [])],
            reasons=list(data.get("reasons", [])),
            backend=str(data.get("backend", "")),
            path=data.get("path"),
            image_size=None if size is None else (int(size[0]), int(size[1])),
            elapsed_s=data.get("elapsed_s"),
            trajectory=None if traj is None else Trajectory.from_dict(traj),
            error=data.get("error"),
            extra=dict(data.get("extra") or {}),
        )


def clamp_score(score: float) -> float:
    """Clamp a score into the 1–5 MOS range."""
    return float(min(SCORE_MAX, max(SCORE_MIN, score)))
