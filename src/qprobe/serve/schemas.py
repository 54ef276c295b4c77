"""Response models: they document the API in the OpenAPI schema."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, Field


class DefectOut(BaseModel):
    bbox: list[float] = Field(description="[x1, y1, x2, y2] in original-image pixels")
    type: str
    severity: Optional[int] = None
    confidence: float = 1.0


class AssessmentOut(BaseModel):
    score: Optional[float] = Field(description="1–5, higher is better; null when the backend failed")
    defects: list[DefectOut] = []
    probes: list[list[float]] = Field(default=[], description="zoom boxes in original pixels, in order")
    reasons: list[str] = []
    backend: str
    version: str
    elapsed_s: Optional[float] = None
    image_size: Optional[list[int]] = Field(default=None, description="[width, height] after EXIF rotation")
    path: Optional[str] = Field(default=None, description="'upload://<client file name>'")
    error: Optional[str] = None
    extra: dict[str, Any] = {}
    trajectory: Optional[dict[str, Any]] = Field(default=None, description="with include_trajectory=true")


class ErrorDetail(BaseModel):
    status: int
    code: str = Field(description="stable machine-readable code, e.g. upload_too_large, busy, timeout")
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: str
    version: str
    default_backend: str
    backends: list[str]
    loaded: list[str]
    running: int
    waiting: int
    workers: int
    capacity: int
    auth: bool
