"""BalancedAllocation: prefer nodes whose resources would be used in equal shares.

After Kubernetes' NodeResourcesBalancedAllocation (v1.26+): with ``f_r`` the share of
allocatable that resource r would have in use after placement (capped at 1), the score
is ``int((1 - std(f)) * 100)``. Example: cpu 3000/4000 = 0.75, mem 5000/10000 = 0.5;
std = |0.75-0.5|/2 = 0.125; node = int(0.875*100) = 87. Row-local, with a scalar path
that repeats the vector path's operations (see :mod:`.allocation`).
"""

from __future__ import annotations

import math

import numpy as np

from harmonia.sched.framework import MAX_NODE_SCORE, CycleState
from harmonia.sched.plugins.allocation import AllocationConfig
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, NodeRow

_SCORE = float(MAX_NODE_SCORE)


class BalancedAllocation:
    name = "BalancedAllocation"
    row_local = True
    fresh_scores = True  # score() returns a new array, which the caller may keep

    def __init__(self, config: AllocationConfig | None = None) -> None:
        self.config = config or AllocationConfig()
        # Kubernetes weighs resources equally here; weights in the config are ignored.
        self._columns = [col for col, _ in self.config.columns]
        self._pair = tuple(self._columns) if len(self._columns) == 2 else None

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        shares = []
        for col in self._columns:
            share = state.allocated_f[:, col] + cycle.amounts[col]
            share /= state.divisor_f[:, col]
            shares.append(np.minimum(share, 1.0, out=share))
        if len(shares) == 2:
            std = np.subtract(shares[0], shares[1], out=shares[0])
            np.abs(std, out=std)
            std *= 0.5  # the same IEEE result as /= 2, at half the cost
        else:
            std = np.sqrt(np.var(np.vstack(shares), axis=0))
        score = np.subtract(1.0, std, out=std)
        score *= _SCORE
        result: FloatArray = np.floor(score, out=score)
        return result

    def score_node(self, row: NodeRow, cycle: CycleState) -> float:
        allocated, divisor, amounts = row.allocated, row.divisor, cycle.amounts
        if self._pair is not None:
            # NOTE: the two-resource case unrolled (it runs per changed node); each step is
            # the IEEE operation the vector path performs.
            a, b = self._pair
            share_a = (allocated[a] + amounts[a]) / divisor[a]
            if share_a > 1.0:
                share_a = 1.0
            share_b = (allocated[b] + amounts[b]) / divisor[b]
            if share_b > 1.0:
                share_b = 1.0
            std = (share_a - share_b if share_a > share_b else share_b - share_a) / 2
        else:
            shares = [min((allocated[c] + amounts[c]) / divisor[c], 1.0) for c in self._columns]
            std = math.sqrt(float(np.var(shares)))
        return float(math.floor((1.0 - std) * _SCORE))
