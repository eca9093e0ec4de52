"""Cluster-level stand-ins for the plugins that reason about the whole infrastructure.

``Direct`` names nodes and clusters anywhere, ``Latency`` names nodes and services whose
instances may run in any cluster (``delay_<service>``: the *nearest* running instance
anywhere counts), and ``Geo``/``Latency`` are the filters whose per-node masks the root of
``ldp`` computes anyway. In a cluster's profile each is replaced by a :class:`GlobalFilter`
(or :class:`GlobalScore`) around the *one* global instance: it runs on the global state and
slices the result to the cluster's nodes. A delay bound to a node or an instance in another
cluster is thus checked against the real RTT row, with the global per-service
nearest-instance rows (kept incrementally from the global change log: one cache for every
cluster), and explanations name the same nodes and best RTTs as the flat policy's.

Within a decision the wrappers reuse what the root computed for the same request
(:class:`RootContext`: pre-filter outcomes and data, masks, the Latency score), so the
cluster level adds O(nodes in the cluster) slices, not another pass over every node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harmonia.model import PlacementRequest
from harmonia.sched.framework import (
    OK,
    CycleState,
    FilterPlugin,
    Plugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
)
from harmonia.sched.hierarchy.rows import IndexArray
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray


@dataclass
class RootContext:
    """The root's results for the request being decided; empty between decisions."""

    request: PlacementRequest | None = None
    data: dict[str, Any] = field(default_factory=dict)  # the root cycle's plugin data
    statuses: dict[str, Status] = field(default_factory=dict)  # pre-filter outcomes
    masks: dict[str, BoolArray] = field(default_factory=dict)  # filter masks, global
    pre_scores: dict[str, Status] = field(default_factory=dict)
    scores: dict[str, FloatArray] = field(default_factory=dict)  # scores, global

    def clear(self) -> None:
        self.request = None
        self.data = {}
        self.statuses.clear()
        self.masks.clear()
        self.pre_scores.clear()
        self.scores.clear()


class GlobalFilter:
    """A node-level filter run on the global state and sliced to one cluster's nodes.

    Stands in for ``inner`` (one instance shared by every cluster and the root) in a
    cluster's profile, under the same name and constraint types. Reuses the root's results
    for the request being decided (see :class:`RootContext`); computes them on the global
    state otherwise. Explanations name the same nodes as the flat policy's.
    """

    def __init__(
        self, inner: Plugin, state: ClusterState, members: IndexArray, context: RootContext
    ) -> None:
        assert isinstance(inner, FilterPlugin)
        self.inner = inner
        self.name = inner.name
        self.constraint_types: tuple[str, ...] = tuple(getattr(inner, "constraint_types", ()))
        self._state = state
        self._members = members
        self._context = context
        self._scattered: tuple[CycleState, BoolArray, BoolArray] | None = None

    def _mine(self, cycle: CycleState) -> bool:
        return self._context.request is cycle.request

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        context = self._context
        if self._mine(cycle):
            status = context.statuses.get(self.name)
            if status is not None:
                data = context.data.get(self.name)
                if data is not None:
                    cycle.data[self.name] = data
                return status
        pre_filter: Callable[[ClusterState, CycleState], Status] | None = getattr(
            self.inner, "pre_filter", None
        )
        return OK if pre_filter is None else pre_filter(self._state, cycle)

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        mask = self._context.masks.get(self.name) if self._mine(cycle) else None
        if mask is None:
            mask = self.inner.filter(self._state, cycle)
        sliced: BoolArray = mask[self._members]
        return sliced

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        return self.inner.explain(self._state, cycle, self._members[rejected])

    def summarize(self, state: ClusterState, cycle: CycleState, judged: IntArray) -> list[str]:
        summarize: Callable[[ClusterState, CycleState, IntArray], list[str]] | None = getattr(
            self.inner, "summarize", None
        )
        if summarize is None:
            return []
        return summarize(self._state, cycle, self._members[judged])

    def _global_feasible(self, cycle: CycleState, feasible: BoolArray) -> BoolArray:
        """``feasible`` (over the cluster) as a mask over all nodes, kept for the cycle."""
        scattered = self._scattered
        if scattered is not None and scattered[0] is cycle and scattered[1] is feasible:
            return scattered[2]
        full = np.zeros(len(self._state), dtype=bool)
        full[self._members] = feasible
        self._scattered = (cycle, feasible, full)
        return full


class GlobalScore(GlobalFilter):
    """:class:`GlobalFilter` for a plugin that also scores (``Latency``)."""

    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status:
        if self._mine(cycle):
            status = self._context.pre_scores.get(self.name)
            if status is not None:
                return status
        if not isinstance(self.inner, PreScorePlugin):
            return OK
        return self.inner.pre_score(self._state, cycle, self._global_feasible(cycle, feasible))

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        # NOTE: the root scored with its node mask as the feasible set, a superset of the
        # cluster's feasible nodes; a score is the same on every node both count as
        # feasible, and the others are never chosen.
        scores = self._context.scores.get(self.name) if self._mine(cycle) else None
        if scores is None:
            assert isinstance(self.inner, ScorePlugin)
            scores = self.inner.score(self._state, cycle, self._global_feasible(cycle, feasible))
        sliced: FloatArray = scores[self._members]
        return sliced


__all__ = ["GlobalFilter", "GlobalScore", "RootContext"]
