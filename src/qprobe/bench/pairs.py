"""Ranking pairs with preference probabilities, for the ranking reward.

Pairs are formed *within a source photo* (its clean copy, depth-of-field
negative and degraded variants share content, so only quality differs). The
preference probability follows the Thurstone model with the labels'
uncertainty (DeQA-Score's probabilistic target, DESIGN §2.4)::

    p(a better than b) = Φ((mos_a − mos_b) / sqrt(std_a² + std_b²))
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from qprobe.manifest import ManifestRow


def preference(mos_a: float, mos_b: float, std_a: float, std_b: float, eps: float = 1e-6) -> float:
    """Thurstone probability that ``a`` is preferred over ``b``.

    >>> round(preference(4.0, 3.0, 0.3, 0.4), 4)
    0.9772
    >>> preference(3.0, 3.0, 0.3, 0.3)
    0.5
    """
    z = (mos_a - mos_b) / math.sqrt(std_a**2 + std_b**2 + eps)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def make_pairs(rows: Iterable[ManifestRow], min_gap: float = 0.0) -> list[dict[str, Any]]:
    """All within-source pairs whose MOS differ by at least ``min_gap``, in a stable order."""
    groups: dict[str, list[ManifestRow]] = defaultdict(list)
    for row in rows:
        if row.mos is not None:
            groups[row.source_id or row.id].append(row)
    out: list[dict[str, Any]] = []
    for group_id in sorted(groups):
        members = sorted(groups[group_id], key=lambda r: r.id)
        for a, b in itertools.combinations(members, 2):
            assert a.mos is not None and b.mos is not None
            if abs(a.mos - b.mos) < min_gap:
                continue
            p = preference(a.mos, b.mos, a.mos_std or 0.0, b.mos_std or 0.0)
            out.append(
                {
                    "a": a.id,
                    "b": b.id,
                    "group_id": group_id,
                    "mos_a": a.mos,
                    "mos_b": b.mos,
                    "p_a_better": round(p, 6),
                }
            )
    return out
