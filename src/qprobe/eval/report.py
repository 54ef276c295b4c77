"""Summary files of an evaluation run: Markdown, CSV, JSON and scatter plots.

``summary.json`` holds everything needed to trust a number later: metrics
with CIs and failure counts per scorer, the per-group breakdown, package
versions, the resolved config and the git revision of the code.
"""

from __future__ import annotations

import csv
import io
import platform
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qprobe._fs import atomic_write_bytes, atomic_write_json, atomic_write_text
from qprobe.eval.metrics import MetricReport

TABLE_METRICS = ("srcc", "krcc", "plcc", "plcc_fit", "rmse_fit")
VERSION_PACKAGES = ("numpy", "scipy", "pillow", "matplotlib", "torch", "transformers")


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    from qprobe import __version__

    out: dict[str, str | None] = {"qprobe": __version__, "python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_revision(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository holding qprobe."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=False
        )
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        st = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return {
            "commit": sha.stdout.strip(),
            "dirty": bool(st.stdout.strip()) if st.returncode == 0 else None,
        }
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _fmt(rep: MetricReport, name: str) -> str:
    mv = rep.values.get(name)
    if mv is None or mv.value is None:
        return "–"
    if mv.ci_low is None:
        return f"{mv.value:.3f}"
    return f"{mv.value:.3f} [{mv.ci_low:.3f}, {mv.ci_high:.3f}]"


def markdown_table(reports: dict[str, MetricReport], metrics: tuple[str, ...] = TABLE_METRICS) -> str:
    head = "| scorer | n | failed | " + " | ".join(m.upper() for m in metrics) + " |"
    sep = "|" + "---|" * (3 + len(metrics))
    lines = [head, sep]
    for name, rep in reports.items():
        lines.append(
            f"| {name} | {rep.n_ok} | {rep.n_failed} | " + " | ".join(_fmt(rep, m) for m in metrics) + " |"
        )
    return "\n".join(lines)


def write_report(result: Any, out_dir: str | Path, config: Any) -> dict[str, Path]:
    """Write summary.{md,csv,json}, config.yaml and scatter plots; return their paths."""
    from qprobe.config import write_resolved

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = {n: s.report for n, s in result.scorers.items()}
    rows = result.rows
    datasets = sorted({r.dataset for r in rows})
    conf = next(iter(reports.values())).confidence if reports else 0.95
    paths: dict[str, Path] = {}

    write_resolved(config, out / "config.yaml")
    paths["config"] = out / "config.yaml"

    md = [
        f"# Evaluation: {', '.join(datasets)} ({len(rows)} images)",
        "",
        (
            f"Metrics over successful predictions; [{conf:.0%} bootstrap CI]. PLCC_FIT/RMSE_FIT after the "
            "4-parameter logistic fit. Failed predictions are counted, never substituted."
        ),
        "",
        markdown_table(reports),
    ]
    for n, s in result.scorers.items():
        if s.breakdown:
            md += [
                "",
                f"## Breakdown by degradation / group: {n}",
                "",
                "| group | n | failed | SRCC | PLCC | mean score | mean MOS |",
                "|---|---|---|---|---|---|---|",
            ]
            for g, rep in s.breakdown.items():
                ms, mm = rep.extra.get("mean_score"), rep.extra.get("mean_mos")
                md.append(
                    f"| {g} | {rep.n_ok} | {rep.n_failed} | {_fmt(rep, 'srcc')} | {_fmt(rep, 'plcc')} | "
                    f"{'–' if ms is None else f'{ms:.3f}'} | {'–' if mm is None else f'{mm:.3f}'} |"
                )
    errors = {n: _error_kinds(s.records) for n, s in result.scorers.items()}
    if any(errors.values()):
        md += ["", "## Failures", ""]
        for n, kinds in errors.items():
            for msg, count in kinds.items():
                md.append(f"- {n}: {count} x {msg}")
    md += [
        "",
        f"Time: {result.elapsed_s:.1f} s. Versions: "
        + ", ".join(f"{k} {v}" for k, v in package_versions().items() if v),
    ]
    atomic_write_text(out / "summary.md", "\n".join(md) + "\n")
    paths["md"] = out / "summary.md"

    buf = io.StringIO()
    w = csv.writer(buf)
    metric_names = list(next(iter(reports.values())).values) if reports else []
    w.writerow(
        ["scorer", "group", "n_ok", "n_failed"]
        + [f"{m}{s}" for m in metric_names for s in ("", "_ci_low", "_ci_high")]
    )
    for n, s in result.scorers.items():
        for group, rep in [("all", s.report), *s.breakdown.items()]:
            vals: list[Any] = []
            for m in metric_names:
                mv = rep.values.get(m)
                vals += [None, None, None] if mv is None else [mv.value, mv.ci_low, mv.ci_high]
            w.writerow([n, group, rep.n_ok, rep.n_failed] + ["" if v is None else f"{v:.6g}" for v in vals])
    atomic_write_text(out / "summary.csv", buf.getvalue())
    paths["csv"] = out / "summary.csv"

    summary = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "datasets": datasets,
        "n_images": len(rows),
        "elapsed_s": round(result.elapsed_s, 2),
        "scorers": {
            n: {
                "all": s.report.to_dict(),
                "breakdown": {g: r.to_dict() for g, r in s.breakdown.items()},
                "errors": errors[n],
            }
            for n, s in result.scorers.items()
        },
        "config": asdict(config),
        "versions": package_versions(),
        "git": git_revision(),
        "platform": {"system": platform.platform(), "executable": sys.executable},
    }
    atomic_write_json(out / "summary.json", summary)
    paths["json"] = out / "summary.json"
    for n, s in result.scorers.items():
        png = scatter_plot(
            s.records, rows, out / f"scatter_{n}.png", title=f"{n} on {', '.join(datasets)}", report=s.report
        )
        if png is not None:
            paths[f"scatter_{n}"] = png
    return paths


def _error_kinds(records: list[dict[str, Any]]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for r in records:
        if r.get("score") is None:
            msg = str(r.get("error") or "no score")
            key = msg.split(": ", 1)[0] if len(msg) > 80 else msg
            kinds[key] = kinds.get(key, 0) + 1
    return kinds


def scatter_plot(
    records: list[dict[str, Any]], rows: list[Any], path: Path, title: str, report: MetricReport | None = None
) -> Path | None:
    """Prediction vs MOS with the fitted logistic; None (and nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import numpy as np

    from qprobe.eval.metrics import fit_logistic

    pts = [
        (rec["score"], r.mos)
        for rec, r in zip(records, rows)
        if rec.get("score") is not None and r.mos is not None
    ]
    if not pts:
        return None
    x = np.array([p[0] for p in pts], dtype=float)
    y = np.array([p[1] for p in pts], dtype=float)
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=110)
    ax.scatter(x, y, s=8, alpha=0.5, edgecolors="none")
    if len(x) >= 4 and np.std(x) > 0:
        grid = np.linspace(x.min(), x.max(), 200)
        ax.plot(grid, fit_logistic(x, y)(grid), color="C3", lw=1.5, label="4-parameter logistic")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("prediction (1–5)")
    ax.set_ylabel("MOS (1–5)")
    sub = ""
    if report is not None and report.value("srcc") is not None:
        sub = f"\nSRCC {report.value('srcc'):.3f}  PLCC {report.value('plcc'):.3f}  n={report.n_ok} failed={report.n_failed}"
    ax.set_title(title + sub, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path
