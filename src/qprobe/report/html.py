"""Render assessments into one self-contained HTML file.

Each image gets a card: the picture (downscaled for the page, embedded as a
data URL) with its defect boxes (solid red) and probe boxes (dashed blue)
drawn as absolutely positioned elements in percent of the image, the zoom
crops cut from the **full-resolution original** (so a reader sees what the
prober saw), the score, reasons, defects and the trajectory. With more than
one image the page starts with a summary table; clicking a column header
sorts the table and the cards (missing scores always last).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Sequence

from qprobe._fs import atomic_write_text
from qprobe.io import DEFAULT_MAX_PIXELS, ImageSource
from qprobe.report.assets import CSS, JS
from qprobe.report.images import Original, crop_box, data_url, fit, load_original
from qprobe.types import SCORE_MAX, SCORE_MIN, Assessment, Box, Defect, Step

MAX_STEP_TEXT = 4000


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt_box(box: Box) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in box.to_list()) + "]"


def _score_color(score: float | None) -> str:
    if score is None:
        return "#888"
    t = (min(SCORE_MAX, max(SCORE_MIN, score)) - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)
    return f"hsl({t * 120:.0f}, 70%, 38%)"


def _badge(score: float | None) -> str:
    if score is None:
        return '<span class="badge none score">n/a</span>'
    return f'<span class="badge score" style="background:{_score_color(score)}">{score:.2f}</span>'


def _name(a: Assessment, index: int) -> str:
    return a.path if a.path else f"image {index + 1}"


def _overlay(box: Box, size: tuple[int, int], kind: str, label: str) -> str:
    w, h = size
    b = box.clip(w, h)
    style = (
        f"left:{100 * b.x1 / w:.4f}%;top:{100 * b.y1 / h:.4f}%;"
        f"width:{100 * b.width / w:.4f}%;height:{100 * b.height / h:.4f}%"
    )
    return (
        f'<div class="box {kind}" style="{style}" data-box="{_esc(_fmt_box(box))}">'
        f'<span class="label">{_esc(label)}</span></div>'
    )


def _stage(a: Assessment, original: Original, size: tuple[int, int], view_px: int) -> str:
    assert original.image is not None
    view = fit(original.image, view_px)
    parts = [f'<div class="stage main"><img class="view" alt="{_esc(_name(a, 0))}" src="{data_url(view)}">']
    for i, d in enumerate(a.defects, 1):
        sev = "" if d.severity is None else f" s{d.severity}"
        parts.append(_overlay(d.bbox, size, "defect", f"D{i} {d.type}{sev}"))
    for i, p in enumerate(a.probes, 1):
        parts.append(_overlay(p, size, "probe", f"zoom {i}"))
    parts.append("</div>")
    return "".join(parts)


def _crop_figure(
    original: Original, box: Box, kind: str, caption: str, crop_px: int, defects: Sequence[tuple[int, Defect]] = ()
) -> str:
    assert original.image is not None
    crop = crop_box(original.image, box)
    if crop is None:
        return ""
    shown = fit(crop, crop_px)
    cw, ch = crop.size
    x0, y0 = box.clip(*original.image.size).to_int()[:2]
    marks = []
    for i, d in defects:  # defects seen inside this crop, drawn in the crop's own coordinates
        b = d.bbox
        if b.intersection(Box(x0, y0, x0 + cw, y0 + ch)) > 0:
            local = Box(max(b.x1, x0) - x0, max(b.y1, y0) - y0, min(b.x2, x0 + cw) - x0, min(b.y2, y0 + ch) - y0)
            marks.append(_overlay(local, (cw, ch), "defect", f"D{i}"))
    scale = "" if shown.size == crop.size else f", shown at {shown.size[0] / cw:.0%}"
    return (
        f'<figure class="crop {kind}"><div class="stage"><img src="{data_url(shown, quality=90)}" '
        f'width="{shown.size[0]}" height="{shown.size[1]}" alt="{_esc(caption)}">{"".join(marks)}</div>'
        f"<figcaption>{_esc(caption)} {_fmt_box(box)}, {cw}\u00d7{ch} px at full resolution{scale}"
        "</figcaption></figure>"
    )


def _crops(a: Assessment, original: Original, crop_px: int) -> str:
    numbered = list(enumerate(a.defects, 1))
    figs = [
        _crop_figure(original, p, "probe", f"zoom {i}", crop_px, numbered) for i, p in enumerate(a.probes, 1)
    ]
    for i, d in enumerate(a.defects, 1):
        if not any(p.contains(d.bbox) for p in a.probes):  # not already visible in a zoom crop
            figs.append(_crop_figure(original, d.bbox, "defect", f"D{i} {d.type}", crop_px))
    figs = [f for f in figs if f]
    return f'<div class="crops">{"".join(figs)}</div>' if figs else ""


def _facts(a: Assessment) -> str:
    rows = [("backend", a.backend or "?")]
    if a.image_size:
        rows.append(("size", f"{a.image_size[0]}\u00d7{a.image_size[1]} px"))
    if a.elapsed_s is not None:
        rows.append(("time", f"{a.elapsed_s:.2f} s"))
    rows.append(("zooms", str(len(a.probes))))
    for k in ("mos", "dataset", "id"):
        if k in a.extra:
            rows.append((k, str(a.extra[k])))
    return '<dl class="facts">' + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows) + "</dl>"


def _defect_table(a: Assessment) -> str:
    if not a.defects:
        return '<p class="note">No defects reported.</p>'
    rows = "".join(
        f"<tr><td>D{i}</td><td>{_esc(d.type)}</td><td>{'' if d.severity is None else d.severity}</td>"
        f"<td>{d.confidence:.2f}</td><td>{_fmt_box(d.bbox)}</td></tr>"
        for i, d in enumerate(a.defects, 1)
    )
    return (
        '<table class="defects"><thead><tr><th></th><th>type</th><th>severity</th><th>confidence</th>'
        f"<th>box</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _step(step: Step) -> str:
    bits = [f'<span class="kind">{_esc(step.kind)}</span>']
    if step.box is not None:
        bits.append(f" {_fmt_box(step.box)}")
    if step.view_size is not None:
        bits.append(f" <span class='note'>view {step.view_size[0]}\u00d7{step.view_size[1]}</span>")
    text = step.text if len(step.text) <= MAX_STEP_TEXT else step.text[:MAX_STEP_TEXT] + " \u2026"
    body = f"<pre>{_esc(text)}</pre>" if text else ""
    return f"<li>{''.join(bits)}{body}</li>"


def _trajectory(a: Assessment) -> str:
    t = a.trajectory
    if t is None:
        return ""
    head = f"trajectory: {len(t.steps)} steps"
    if t.n_errors:
        head += f", {t.n_errors} error turn(s)"
    if t.prompt_version:
        head += f", prompt {t.prompt_version}"
    steps = "".join(_step(s) for s in t.steps)
    return f'<details class="trajectory"><summary>{_esc(head)}</summary><ol class="trajectory">{steps}</ol></details>'


def _card(index: int, a: Assessment, source: ImageSource | None, view_px: int, crop_px: int, max_pixels: int) -> str:
    original = load_original(source if source is not None else a.path, max_pixels)
    loaded = original.size
    size = a.image_size or loaded
    if original.image is not None and size is not None and loaded != size:
        note = f"the file is {loaded[0]}\u00d7{loaded[1]} px but was assessed at {size[0]}\u00d7{size[1]} px"
        original = Original(None, note + "; the image changed since it was scored")
    if original.image is not None and size is not None:
        figure = _stage(a, original, size, view_px) + _crops(a, original, crop_px)
    else:
        figure = f'<div class="missing">image not available: {_esc(original.problem)}</div>'
    error = f'<p class="error">error: {_esc(a.error)}</p>' if a.error else ""
    reasons = "".join(f"<li>{_esc(r)}</li>" for r in a.reasons)
    reasons_html = f"<ul class='reasons'>{reasons}</ul>" if reasons else ""
    return (
        f'<section class="card" id="card-{index}" data-score="{"" if a.score is None else a.score}">'
        f"<h2>{_badge(a.score)}<span>{_esc(_name(a, index))}</span></h2>{error}"
        f'<div class="card-body"><div>{figure}</div><div>{_facts(a)}{reasons_html}{_defect_table(a)}'
        f"{_trajectory(a)}</div></div></section>"
    )


def _summary_table(assessments: Sequence[Assessment], carded: set[int]) -> str:
    rows = []
    for i, a in enumerate(assessments):
        name = _esc(_name(a, i))
        link = f'<a href="#card-{i}">{name}</a>' if i in carded else name
        status = f'<span class="error">{_esc(a.error)}</span>' if a.error else "ok"
        score = "" if a.score is None else f"{a.score:.4f}"
        rows.append(
            f'<tr data-index="{i}"><td class="num" data-sort="{i}">{i + 1}</td>'
            f'<td data-sort="{name}">{link}</td>'
            f'<td class="num" data-sort="{score}">{_badge(a.score)}</td>'
            f'<td class="num" data-sort="{len(a.defects)}">{len(a.defects)}</td>'
            f'<td class="num" data-sort="{len(a.probes)}">{len(a.probes)}</td>'
            f'<td data-sort="{_esc(a.backend)}">{_esc(a.backend)}</td>'
            f'<td data-sort="{"" if not a.error else 1}">{status}</td></tr>'
        )
    return (
        '<div class="controls"><label>filter <input id="filter" type="search" placeholder="path, error, ..."></label>'
        '</div><table class="summary"><thead><tr><th class="num">#</th><th>image</th><th class="num">score</th>'
        '<th class="num">defects</th><th class="num">zooms</th><th>backend</th><th>status</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _choose_cards(assessments: Sequence[Assessment], max_cards: int) -> list[int]:
    """Indices that get a full card: all of them, or the failures then the lowest scores."""
    if len(assessments) <= max_cards:
        return list(range(len(assessments)))
    order = sorted(
        range(len(assessments)),
        key=lambda i: (assessments[i].score is not None, assessments[i].score or 0.0, i),
    )
    return sorted(order[:max_cards])


def _data_json(assessments: Sequence[Assessment]) -> str:
    text = json.dumps([a.to_dict() for a in assessments], separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report(
    assessments: Sequence[Assessment],
    *,
    images: Sequence[ImageSource | None] | None = None,
    title: str | None = None,
    view_px: int = 1024,
    crop_px: int = 384,
    max_cards: int = 200,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> str:
    """The report page as a string (see :func:`write_report`)."""
    if images is not None and len(images) != len(assessments):
        raise ValueError(f"got {len(images)} images for {len(assessments)} assessments")
    batch = len(assessments) > 1
    carded = _choose_cards(assessments, max_cards)
    scored = [a.score for a in assessments if a.score is not None]
    title = title or ("qprobe batch report" if batch else f"qprobe report: {_name(assessments[0], 0)}")
    meta = f"{len(assessments)} image(s), {len(scored)} scored, {len(assessments) - len(scored)} failed"
    if scored:
        meta += f", mean score {sum(scored) / len(scored):.2f}"
    note = ""
    if len(carded) < len(assessments):
        note = (
            f'<p class="note">Detailed cards for {len(carded)} of {len(assessments)} images '
            "(failures and lowest scores first); the table lists all.</p>"
        )
    cards = "".join(
        _card(i, assessments[i], None if images is None else images[i], view_px, crop_px, max_pixels)
        for i in carded
    )
    from qprobe import __version__

    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta name='generator' content='qprobe {__version__}'>"
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="top"><h1>{_esc(title)}</h1><div class="meta">{_esc(meta)}</div></header><main>'
        + (_summary_table(assessments, set(carded)) if batch else "")
        + '<div class="controls"><label><input type="checkbox" id="show-defects" checked> defects (red)</label>'
        '<label><input type="checkbox" id="show-probes" checked> zooms (dashed blue)</label></div>'
        + note
        + f'<div id="cards">{cards}</div></main>'
        f'<script type="application/json" id="qprobe-data">{_data_json(assessments)}</script>'
        f"<script>{JS}</script></body></html>\n"
    )


def write_report(
    assessments: Assessment | Sequence[Assessment],
    out_path: str | os.PathLike[str],
    *,
    images: Sequence[ImageSource | None] | None = None,
    title: str | None = None,
    view_px: int = 1024,
    crop_px: int = 384,
    max_cards: int = 200,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Path:
    """Write one self-contained HTML report of ``assessments`` to ``out_path``.

    Images are read from each assessment's ``path`` unless ``images`` gives a
    source (path, bytes, PIL image or array) per assessment. ``view_px`` is the
    long side of the page image, ``crop_px`` the largest side a zoom crop is
    shown at; a batch shows full cards for at most ``max_cards`` images
    (failures and lowest scores first). The file is written atomically.
    """
    items: list[Assessment] = [assessments] if isinstance(assessments, Assessment) else list(assessments)
    if not items:
        raise ValueError("nothing to report: no assessments given")
    page = render_report(
        items, images=images, title=title, view_px=view_px, crop_px=crop_px, max_cards=max_cards,
        max_pixels=max_pixels,
    )
    out = Path(out_path)
    atomic_write_text(out, page)
    _make_readable(out)
    return out


def _make_readable(path: Path) -> None:
    """Give the report the usual file mode (atomic writes create private 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_image_reports(
    assessments: Sequence[Assessment], out_dir: str | os.PathLike[str], **kwargs: Any
) -> list[Path]:
    """One report file per image in ``out_dir`` (``<index>_<file stem>.html``)."""
    folder = Path(out_dir)
    paths = []
    for i, a in enumerate(assessments):
        stem = Path(a.path).stem if a.path else "image"
        paths.append(write_report([a], folder / f"{i:05d}_{stem}.html", **kwargs))
    return paths
