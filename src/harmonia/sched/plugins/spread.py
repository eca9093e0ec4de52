"""Spreading a service's instances: ServiceSpread (score) and ServiceAntiAffinity (filter).

ServiceSpread follows Kubernetes' SelectorSpread formula, which its default PodTopologySpread
constraints approximate: fewer instances of the same service on a node scores higher,
and when there are several clusters, fewer in the node's cluster weighs 2/3. Unlike
kube-scheduler, the maxima are taken over all nodes and clusters, not only the feasible
ones, so a node's spread score does not depend on which other nodes fit this request
(and the score costs O(nodes) without a pass over the feasible set).
Example, two clusters: node counts 0,1,2 (max 2) → 100, 50, 0; cluster counts
(nodes 0,1 in A = 1; node 2 in B = 2, max 2) → 50, 50, 0;
totals = floor(node/3 + cluster*2/3) → 66, 50, 0.

ServiceAntiAffinity enforces the ``anti_affinity`` constraint: at most
``max_per_domain`` instances of a service per node or per cluster.
"""

from __future__ import annotations

import numpy as np

from harmonia.model import AntiAffinityConstraint
from harmonia.sched.framework import MAX_NODE_SCORE, OK, SKIP, CycleState, Status, unresolvable
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray

ZONE_WEIGHTING = 2.0 / 3.0


class ServiceSpread:
    name = "ServiceSpread"

    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status:
        service = cycle.request.service
        if not service or state.max_count_of(service) == 0:
            return SKIP
        return OK

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        service = cycle.request.service
        counts = state.counts_of(service)
        top = state.max_count_of(service)
        # top > 0: pre_score skips services without instances.
        node_score = (top - counts) * (MAX_NODE_SCORE / top)
        if state.num_clusters > 1:
            per_cluster = state.cluster_counts_of(service)
            top_cluster = state.max_cluster_count_of(service)
            cluster_score = (top_cluster - per_cluster) * (
                MAX_NODE_SCORE * ZONE_WEIGHTING / top_cluster
            )
            node_score *= 1.0 - ZONE_WEIGHTING
            node_score += state.per_node(cluster_score)
        result: FloatArray = np.floor(node_score, out=node_score)
        return result


class ServiceAntiAffinity:
    name = "ServiceAntiAffinity"
    constraint_types = ("anti_affinity",)

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        if not cycle.request.constraints:
            return SKIP
        rules = [c for c in cycle.request.constraints if isinstance(c, AntiAffinityConstraint)]
        if any(not (rule.service or cycle.request.service) for rule in rules):
            return unresolvable(
                "anti_affinity needs the request's service or a service in the rule"
            )
        cycle.data[self.name] = rules
        return OK if rules else SKIP

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        mask: BoolArray | None = None
        for rule in cycle.data[self.name]:
            # NOTE: the float64 counts hold small whole numbers, so they compare with the
            # limit exactly; one pass per rule, no integer copy.
            allowed = _domain_count_floats(state, cycle, rule) < rule.max_per_domain
            mask = allowed if mask is None else np.logical_and(mask, allowed, out=mask)
        return np.ones(len(state), dtype=bool) if mask is None else mask

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        out = []
        for i in rejected.tolist():
            parts = []
            for rule in cycle.data[self.name]:
                count = int(_domain_counts(state, cycle, rule)[i])
                if count >= rule.max_per_domain:
                    service = rule.service or cycle.request.service
                    parts.append(
                        f"{rule.scope} already runs {count} instance(s) of {service!r} "
                        f"(max {rule.max_per_domain})"
                    )
            out.append("; ".join(parts))
        return out


def _domain_counts(
    state: ClusterState, cycle: CycleState, rule: AntiAffinityConstraint
) -> IntArray:
    counts: IntArray = _domain_count_floats(state, cycle, rule).astype(np.int64)
    return counts


def _domain_count_floats(
    state: ClusterState, cycle: CycleState, rule: AntiAffinityConstraint
) -> FloatArray:
    """Instances of the rule's service in each node's domain (its node or its cluster)."""
    service = rule.service or cycle.request.service
    if rule.scope == "node":
        return state.counts_of(service)
    return state.per_node(state.cluster_counts_of(service))
