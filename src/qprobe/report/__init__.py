"""Self-contained HTML reports of assessments (images embedded, no external files).

``write_report(assessments, "report.html")`` writes one page: for each image
the picture with defect and probe overlays, the zoom crops cut from the
full-resolution original, the score, reasons and the trajectory; with more
than one image, a summary table sortable by score.
"""

from __future__ import annotations

from qprobe.report.html import write_image_reports, write_report

__all__ = ["write_image_reports", "write_report"]
