"""Score normalization shared by plugins (Kubernetes' DefaultNormalizeScore)."""

from __future__ import annotations

import numpy as np

from harmonia.sched.framework import MAX_NODE_SCORE
from harmonia.sched.state import BoolArray, FloatArray


def normalize_by_max(
    scores: FloatArray, feasible: BoolArray, *, reverse: bool = False
) -> FloatArray:
    """Scale so the best feasible node scores 100: ``score * 100 // max``.

    With ``reverse`` the result is ``100 - that``, for raw scores where less is better.
    When every feasible node scores 0, all get 0 (100 when reversed). Example: raw 0, 2, 4
    → 0, 50, 100; reversed → 100, 50, 0.
    """
    top = float(np.max(scores, where=feasible, initial=0.0))
    if top <= 0:
        return np.full_like(scores, MAX_NODE_SCORE if reverse else 0.0)
    out = np.floor(scores * MAX_NODE_SCORE / top)
    if reverse:
        out = MAX_NODE_SCORE - out
    return out
