"""DirectConstraint: only the cluster and/or nodes the request names.

Oakestra's ``direct`` constraint (Bartolomeo et al., USENIX ATC'23): a cluster name
and/or a ``;``-separated node list. A name that matches no node or cluster is an
``UNRESOLVABLE`` request, not a silent empty match.
"""

from __future__ import annotations

import numpy as np

from harmonia.model import DirectConstraint
from harmonia.sched.framework import OK, SKIP, CycleState, Status, unresolvable
from harmonia.sched.state import BoolArray, ClusterState, IntArray


class Direct:
    name = "Direct"
    constraint_types = ("direct",)

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        if not cycle.request.constraints:
            return SKIP
        constraints = [c for c in cycle.request.constraints if isinstance(c, DirectConstraint)]
        if not constraints:
            return SKIP
        problems = []
        for c in constraints:
            if c.cluster and c.cluster not in state.cluster_names:
                problems.append(f"unknown cluster {c.cluster!r}")
            problems += [f"unknown node {n!r}" for n in c.nodes if n not in state.index]
        if problems:
            return unresolvable(*problems)
        cycle.data[self.name] = constraints
        return OK

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        mask = np.ones(len(state), dtype=bool)
        for c in cycle.data[self.name]:
            if c.cluster:
                mask &= state.cluster_mask(c.cluster)
            if c.nodes:
                listed = np.zeros(len(state), dtype=bool)
                listed[[state.index[n] for n in c.nodes]] = True
                mask &= listed
        return mask

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        wanted = "; ".join(
            " ".join(
                part
                for part in (
                    f"cluster {c.cluster}" if c.cluster else "",
                    f"nodes {';'.join(c.nodes)}" if c.nodes else "",
                )
                if part
            )
            for c in cycle.data[self.name]
        )
        return [f"not among the directly named {wanted}" for _ in rejected]
