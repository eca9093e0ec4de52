"""CloudFirst: requests without a location bound prefer cloud nodes.

The kubernetes-edge-scheduler (Haja et al., "Sharpening Kubernetes for the Edge", ACM
SIGCOMM'19 Posters and Demos) places pods that carry no delay label in the cloud, which
keeps the scarce edge capacity for the services that need to be near their users. Here
that is a score, not a filter, so an unconstrained request still lands on the edge when
no cloud node fits.

Score: 100 on cloud nodes (role 1), 0 on edge nodes, for a request with no ``latency`` or
``geo`` constraint (delay labels count as ``latency``). A request with one skips this
score: where it goes is decided by its bound and the Latency score. Other constraints
(affinity, direct, anti-affinity) do not tie a request to a place near users, so such
requests still prefer the cloud among the nodes they allow. Example: nodes cloud, edge,
cloud → 100, 0, 100.
"""

from __future__ import annotations

import numpy as np

from harmonia.model.request import DELAY_LABEL_PREFIX
from harmonia.sched.framework import MAX_NODE_SCORE, OK, SKIP, CycleState, Status
from harmonia.sched.state import BoolArray, ClusterState, FloatArray

NAME = "CloudFirst"
LOCATION_KINDS = frozenset({"latency", "geo"})


class CloudFirst:
    """Score: cloud nodes 100, edge nodes 0, for requests without a location bound."""

    name = NAME

    def __init__(self) -> None:
        # The score depends only on node roles, which never change in a state.
        self._role: object = None  # the role vector the scores were built from
        self._scores: FloatArray | None = None

    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status:
        request = cycle.request
        # NOTE: the checks of PlacementRequest.constraint_kinds, without building its set:
        # this runs on every decision.
        for c in request.constraints:
            if c.type in LOCATION_KINDS:
                return SKIP
        for key in request.labels:
            if key.startswith(DELAY_LABEL_PREFIX):
                return SKIP
        return OK

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        if self._role is not state.role or self._scores is None:
            scores = (state.role == 1).astype(np.float64) * MAX_NODE_SCORE
            scores.flags.writeable = False  # shared by every decision
            self._role, self._scores = state.role, scores
        return self._scores
