"""NodeResourcesFit: a node fits when its free amount covers the request in every resource.

After the Kubernetes plugin of the same name (filter part; its scoring strategies are
:mod:`harmonia.sched.plugins.allocation`). The pre-filter answers ``UNRESOLVABLE`` when
the request exceeds the largest allocatable amount of any node: no retry can help.
"""

from __future__ import annotations

import numpy as np

from harmonia.model import RESOURCE_NAMES
from harmonia.sched.framework import OK, CycleState, Status, unresolvable
from harmonia.sched.state import RESOURCE_UNITS, BoolArray, ClusterState, IntArray, NodeRow

NAME = "NodeResourcesFit"


class NodeResourcesFit:
    name = NAME
    row_local = True

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        largest, amounts = state.max_allocatable_amounts, cycle.amounts
        too_big = [r for r in cycle.requested if amounts[r] > largest[r]]
        if not too_big:
            return OK
        return unresolvable(
            *[
                f"{RESOURCE_NAMES[r]} {fmt(r, amounts[r])} exceeds the largest node's "
                f"allocatable {fmt(r, largest[r])}"
                for r in too_big
            ]
        )

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        free, vector = state.free, cycle.vector
        if not cycle.requested:
            return np.ones(len(state), dtype=bool)
        first, *rest = cycle.requested
        mask: BoolArray = free[:, first] >= vector[first]
        for r in rest:
            mask &= free[:, r] >= vector[r]
        return mask

    def filter_node(self, row: NodeRow, cycle: CycleState) -> bool:
        free, amounts = row.free, cycle.amounts
        # NOTE: an explicit loop; all() over a generator costs more on this hot path.
        for r in cycle.requested:  # noqa: SIM110
            if free[r] < amounts[r]:
                return False
        return True

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        out = []
        for i in rejected.tolist():
            free = state.free[i].tolist()
            short = [
                f"{RESOURCE_NAMES[r]} {fmt(r, cycle.amounts[r])} > free {fmt(r, free[r])}"
                for r in cycle.requested
                if free[r] < cycle.amounts[r]
            ]
            out.append("insufficient " + ", ".join(short))
        return out


def fmt(resource: int, amount: int) -> str:
    return f"{amount}{RESOURCE_UNITS[resource]}"
