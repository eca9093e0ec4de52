"""normalize_by_max: Kubernetes' DefaultNormalizeScore over the feasible nodes."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.sched.plugins.normalize import normalize_by_max


@pytest.mark.parametrize(
    ("raw", "feasible", "reverse", "expected"),  # expected: the feasible nodes' scores
    [
        # docstring: raw 0, 2, 4 → 0, 50, 100; reversed → 100, 50, 0
        ([0, 2, 4], [1, 1, 1], False, [0, 50, 100]),
        ([0, 2, 4], [1, 1, 1], True, [100, 50, 0]),
        ([1, 3], [1, 1], False, [33, 100]),  # 1*100/3 = 33.3 → 33
        ([1, 3], [1, 1], True, [67, 0]),  # 100 - 33
        # the maximum is over feasible nodes only: 2 is the top, 4 is infeasible
        ([0, 2, 4], [1, 1, 0], False, [0, 100]),
        # every feasible node scores 0: all 0, or all 100 reversed
        ([0, 0, 5], [1, 1, 0], False, [0, 0]),
        ([0, 0, 5], [1, 1, 0], True, [100, 100]),
        ([], [], False, []),
    ],
)
def test_normalize_by_max(
    raw: list[float], feasible: list[int], reverse: bool, expected: list[float]
) -> None:
    mask = np.array(feasible, dtype=bool)
    out = normalize_by_max(np.array(raw, dtype=np.float64), mask, reverse=reverse)
    assert out[mask].tolist() == expected  # only feasible nodes' scores matter
