"""TaintToleration: keep requests off nodes whose taints they do not tolerate.

After Kubernetes' TaintToleration plugin. Filter: a node with a ``NoSchedule`` or
``NoExecute`` taint the request does not tolerate is rejected. Score: fewer untolerated
``PreferNoSchedule`` taints is better, normalized in reverse (the node with the most gets
0). Example: untolerated counts 0, 1, 2 → 100, 50, 0.

Taints are kept per distinct taint as node masks, so the cost grows with the number of
distinct taints, not with nodes times taints.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from harmonia.model import Taint, TaintEffect, Toleration
from harmonia.sched.framework import OK, SKIP, CycleState, Status
from harmonia.sched.plugins.normalize import normalize_by_max
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray, NodeRow

_HARD = (TaintEffect.NO_SCHEDULE, TaintEffect.NO_EXECUTE)
# Sets of tolerations whose verdicts are kept per state (one node mask each).
VERDICTS_KEPT = 256


@dataclass
class _Verdict:
    """What one set of tolerations makes of a state's taints."""

    hard: list[Taint]  # NoSchedule / NoExecute taints not tolerated
    soft: list[Taint]  # PreferNoSchedule taints not tolerated
    mask: BoolArray | None = None  # nodes free of the hard ones, once asked for


class TaintToleration:
    name = "TaintToleration"
    # The filter depends only on the node's taints and the request's tolerations; the
    # score is normalized over feasible nodes, so only the filter is row-local.
    row_local_filter = True

    def __init__(self) -> None:
        # A state's taints are fixed when it is built, so what a set of tolerations makes
        # of them is kept per set: most requests carry the same few (usually none).
        self._taints: dict[Taint, BoolArray] | None = None
        self._verdicts: dict[tuple[Toleration, ...], _Verdict] = {}

    def cache_key(self, cycle: CycleState) -> Hashable:
        return cycle.request.tolerations

    def _verdict(self, state: ClusterState, cycle: CycleState) -> _Verdict:
        if state.taints is not self._taints:
            self._taints, self._verdicts = state.taints, {}
        tolerations = cycle.request.tolerations
        verdict = self._verdicts.get(tolerations)
        if verdict is None:
            if len(self._verdicts) >= VERDICTS_KEPT:
                self._verdicts.clear()
            untolerated = [t for t in state.taints if not _tolerated(cycle, t)]
            verdict = _Verdict(
                [t for t in untolerated if t.effect in _HARD],
                [t for t in untolerated if t.effect is TaintEffect.PREFER_NO_SCHEDULE],
            )
            self._verdicts[tolerations] = verdict
        return verdict

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        if not state.taints:
            return SKIP
        verdict = self._verdict(state, cycle)
        cycle.data[self.name] = verdict.hard
        return OK if verdict.hard else SKIP

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        verdict = self._verdict(state, cycle)
        if verdict.mask is None:
            mask = np.ones(len(state), dtype=bool)
            for taint in verdict.hard:
                mask &= ~state.taints[taint]
            mask.flags.writeable = False  # shared by every request with these tolerations
            verdict.mask = mask
        return verdict.mask

    def filter_node(self, row: NodeRow, cycle: CycleState) -> bool:
        if not row.taints:
            return True
        hard = cycle.data[self.name]
        return not any(taint in hard for taint in row.taints)

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        out = []
        for i in rejected.tolist():
            bad = [
                f"{t.key}={t.value}:{t.effect.value}" if t.value else f"{t.key}:{t.effect.value}"
                for t in state.node_taints(i)
                if t.effect in _HARD and not _tolerated(cycle, t)
            ]
            out.append("untolerated taint " + ", ".join(bad))
        return out

    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status:
        if not state.taints:
            return SKIP
        soft = self._verdict(state, cycle).soft
        cycle.data[self.name + ".soft"] = soft
        return OK if soft else SKIP

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        counts = np.zeros(len(state), dtype=np.float64)
        for taint in cycle.data[self.name + ".soft"]:
            counts += state.taints[taint]
        return counts

    def normalize(
        self, state: ClusterState, cycle: CycleState, scores: FloatArray, feasible: BoolArray
    ) -> FloatArray:
        return normalize_by_max(scores, feasible, reverse=True)


def _tolerated(cycle: CycleState, taint: Taint) -> bool:
    return any(tol.tolerates(taint) for tol in cycle.request.tolerations)
