"""Baseline scorers: RandomScore and RoundRobin.

Both exist as yardsticks for the simulator and for hosts that want no preference.
RandomScore draws from the scheduler's seeded generator, so a run is replayable from
its seed. RoundRobin prefers the first feasible node after the one it chose last.
"""

from __future__ import annotations

import numpy as np

from harmonia.sched.framework import MAX_NODE_SCORE, OK, CycleState, Status
from harmonia.sched.state import BoolArray, ClusterState, FloatArray


class RandomScore:
    name = "RandomScore"

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        draws = cycle.rng.random(len(state))
        draws *= MAX_NODE_SCORE
        return draws


class RoundRobin:
    """Scores fall linearly with the distance (in node order) after the last choice.

    Example with 4 nodes and last choice node 1: nodes 2, 3, 0, 1 score 100, 75, 50, 25.
    """

    name = "RoundRobin"

    def __init__(self) -> None:
        self._next = 0

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        n = len(state)
        distance = (np.arange(n) - self._next) % max(n, 1)
        scores = (n - distance).astype(np.float64)
        scores *= MAX_NODE_SCORE / max(n, 1)
        return scores

    def reserve(self, state: ClusterState, cycle: CycleState, node: int) -> Status:
        cycle.data[self.name] = self._next
        self._next = node + 1
        return OK

    def unreserve(self, state: ClusterState, cycle: CycleState, node: int) -> None:
        previous = cycle.data.pop(self.name, None)
        if previous is not None:
            self._next = previous
