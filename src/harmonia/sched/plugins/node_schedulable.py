"""NodeSchedulable: reject nodes that are unhealthy (missed heartbeats, failed) or cordoned.

Kubernetes splits this between the node lifecycle controller and the NodeUnschedulable
plugin; here health and cordon are columns of ``ClusterState`` and this is the first,
cheapest filter of every profile.
"""

from __future__ import annotations

from harmonia.sched.framework import CycleState
from harmonia.sched.state import BoolArray, ClusterState, IntArray, NodeRow

NAME = "NodeSchedulable"


class NodeSchedulable:
    name = NAME
    row_local = True

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        return state.schedulable

    def filter_node(self, row: NodeRow, cycle: CycleState) -> bool:
        return row.schedulable

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        return [
            "node is unhealthy" if not state.healthy[i] else "node is cordoned" for i in rejected
        ]
