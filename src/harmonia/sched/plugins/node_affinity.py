"""NodeAffinity: required node labels filter, preferred node labels score.

After Kubernetes' NodeAffinity plugin. Required: every ``match_labels`` pair and every
expression must hold (expressions: In, NotIn, Exists, DoesNotExist). Preferred: a node
gains the weight of each term it matches; scores are normalized so the best feasible
node gets 100. Example: terms of weight 30 and 10; node A matches both (40), node B the
second (10): A = 100, B = 10*100//40 = 25.

Enforces the ``node_affinity`` constraint of :mod:`harmonia.model.constraints`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from harmonia.model import LabelExpression, NodeAffinityConstraint
from harmonia.model.constraints import LabelOperator
from harmonia.sched.framework import OK, SKIP, CycleState, Status
from harmonia.sched.plugins.normalize import normalize_by_max
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray


class NodeAffinity:
    name = "NodeAffinity"
    constraint_types = ("node_affinity",)

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        terms = _affinities(cycle)
        if not any(t.match_labels or t.expressions for t in terms):
            return SKIP
        return OK

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        mask = np.ones(len(state), dtype=bool)
        for term in _affinities(cycle):
            mask &= selector_mask(state, term.match_labels, term.expressions)
        return mask

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        out = []
        for i in rejected.tolist():
            labels = state.node_labels(i)
            missing = [
                f"{k}={v}"
                for t in _affinities(cycle)
                for k, v in t.match_labels.items()
                if labels.get(k) != v
            ] + [
                f"{e.key} {e.operator.value}" + (f" {list(e.values)}" if e.values else "")
                for t in _affinities(cycle)
                for e in t.expressions
                if not e.matches(labels)
            ]
            out.append("node labels do not match " + ", ".join(missing))
        return out

    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status:
        return OK if any(t.preferred for t in _affinities(cycle)) else SKIP

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        total = np.zeros(len(state), dtype=np.float64)
        for term in (p for t in _affinities(cycle) for p in t.preferred):
            total += selector_mask(state, term.match_labels, term.expressions) * float(term.weight)
        return total

    def normalize(
        self, state: ClusterState, cycle: CycleState, scores: FloatArray, feasible: BoolArray
    ) -> FloatArray:
        return normalize_by_max(scores, feasible)


def _affinities(cycle: CycleState) -> list[NodeAffinityConstraint]:
    if not cycle.request.constraints:
        return []
    return [c for c in cycle.request.constraints if isinstance(c, NodeAffinityConstraint)]


def selector_mask(
    state: ClusterState, match_labels: dict[str, str], expressions: Iterable[LabelExpression]
) -> BoolArray:
    """Nodes whose labels satisfy every pair and every expression."""
    mask = np.ones(len(state), dtype=bool)
    for key, value in match_labels.items():
        mask &= state.label_mask(key, value)
    for expr in expressions:
        column = state.labels.get(expr.key)
        if column is None:
            present = np.zeros(len(state), dtype=bool)
            hit = present
        else:
            present = column.exists()
            hit = column.isin(expr.values) if expr.values else present
        if expr.operator is LabelOperator.IN:
            mask &= hit
        elif expr.operator is LabelOperator.NOT_IN:
            mask &= ~hit
        elif expr.operator is LabelOperator.EXISTS:
            mask &= present
        else:
            mask &= ~present
    return mask
