"""ServiceSpread (fewer instances of the same service scores higher, per node and per
cluster) and ServiceAntiAffinity (at most max_per_domain per node or cluster)."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import AntiAffinityConstraint
from harmonia.sched import Code
from harmonia.sched.plugins import ServiceAntiAffinity, ServiceSpread
from harmonia.sched.state import ClusterState
from tests.builders import make_cycle, make_node, make_request, make_state, place


def with_instances(clusters: list[str], counts: list[int], service: str = "web") -> ClusterState:
    """Nodes n0.. in ``clusters``, node i already running ``counts[i]`` of ``service``."""
    state = make_state([make_node(f"n{i}", cluster=cluster) for i, cluster in enumerate(clusters)])
    for i, count in enumerate(counts):
        for _ in range(count):
            place(state, f"n{i}", make_request(service=service))
    return state


def spread_scores(state: ClusterState, service: str = "web") -> list[float]:
    cycle = make_cycle(state, make_request(service=service))
    plugin = ServiceSpread()
    assert plugin.pre_score(state, cycle, state.schedulable).ok
    return plugin.score(state, cycle, state.schedulable).tolist()


@pytest.mark.parametrize(
    ("clusters", "counts", "expected"),
    [
        # docstring, two clusters: node counts 0,1,2 (max 2) → 100, 50, 0; cluster counts
        # (n0, n1 in A = 1; n2 in B = 2, max 2) → 50, 50, 0;
        # totals = floor(node/3 + cluster*2/3) → 66, 50, 0
        (["A", "A", "B"], [0, 1, 2], [66, 50, 0]),
        # one cluster: the node part only, (max - c)*100/max
        (["A", "A", "A"], [0, 1, 2], [100, 50, 0]),
        (["A", "A", "A", "A"], [0, 1, 3, 3], [100, 66, 0, 0]),
        # two clusters, balanced clusters: cluster part 0 everywhere → node/3
        (["A", "B"], [1, 1], [0, 0]),
        # A holds 2, B none: B's nodes get the whole cluster share 2/3*100 = 66.7
        # n0: (2-2)*100/2/3 + 0 = 0; n1: (2-0)*50/3 + 0 = 33; n2, n3: 100/3 + 66.7 = 100
        (["A", "A", "B", "B"], [2, 0, 0, 0], [0, 33, 100, 100]),
        # the docstring example with the clusters interleaved: the same per-node result
        (["A", "B", "A"], [0, 2, 1], [66, 0, 50]),
    ],
)
def test_service_spread(clusters: list[str], counts: list[int], expected: list[float]) -> None:
    assert spread_scores(with_instances(clusters, counts)) == expected


def test_spread_looks_only_at_the_requests_service() -> None:
    state = with_instances(["A", "A"], [0, 2], service="web")
    place(state, "n0", make_request(service="db"))
    place(state, "n0", make_request(service="db"))
    assert spread_scores(state, "web") == [100, 0]
    assert spread_scores(state, "db") == [0, 100]


@pytest.mark.parametrize("service", ["", "web"])
def test_spread_skips_when_the_service_has_no_instances(service: str) -> None:
    state = with_instances(["A", "B"], [0, 0])
    place(state, "n0", make_request(service="db"))
    cycle = make_cycle(state, make_request(service=service))
    assert ServiceSpread().pre_score(state, cycle, state.schedulable).code is Code.SKIP


# -- ServiceAntiAffinity --------------------------------------------------------------------


def anti_mask(
    state: ClusterState, *rules: AntiAffinityConstraint, service: str = "web"
) -> list[bool]:
    cycle = make_cycle(state, make_request(service=service, constraints=rules))
    plugin = ServiceAntiAffinity()
    assert plugin.pre_filter(state, cycle).ok
    return plugin.filter(state, cycle).tolist()


CLUSTERS = ["A", "A", "B", "B"]


@pytest.mark.parametrize(
    ("rule", "counts", "expected"),
    [
        (AntiAffinityConstraint(), [0, 1, 2, 0], [True, False, False, True]),  # node, max 1
        (AntiAffinityConstraint(max_per_domain=2), [0, 1, 2, 0], [True, True, False, True]),
        # cluster scope: A holds 0+1 = 1, B holds 2+0 = 2
        (AntiAffinityConstraint(scope="cluster"), [0, 1, 2, 0], [False] * 4),
        (
            AntiAffinityConstraint(scope="cluster", max_per_domain=2),
            [0, 1, 2, 0],
            [True, True, False, False],
        ),
        (AntiAffinityConstraint(scope="cluster"), [0, 0, 1, 0], [True, True, False, False]),
    ],
)
def test_anti_affinity(
    rule: AntiAffinityConstraint, counts: list[int], expected: list[bool]
) -> None:
    assert anti_mask(with_instances(CLUSTERS, counts), rule) == expected


def test_anti_affinity_cluster_scope_with_interleaved_clusters() -> None:
    # n0, n2 in A hold 0 + 1 = 1; n1, n3 in B hold 2 + 0 = 2
    state = with_instances(["A", "B", "A", "B"], [0, 2, 1, 0])
    rule = AntiAffinityConstraint(scope="cluster", max_per_domain=2)
    assert anti_mask(state, rule) == [True, False, True, False]


def test_anti_affinity_against_another_service() -> None:
    state = with_instances(CLUSTERS, [1, 0, 0, 0], service="db")
    place(state, "n1", make_request(service="web"))
    rule = AntiAffinityConstraint(service="db")
    assert anti_mask(state, rule, service="web") == [False, True, True, True]


def test_several_rules_must_all_hold() -> None:
    state = with_instances(CLUSTERS, [0, 0, 1, 0])
    rules = (AntiAffinityConstraint(), AntiAffinityConstraint(scope="cluster", max_per_domain=1))
    assert anti_mask(state, *rules) == [True, True, False, False]


def test_anti_affinity_explain() -> None:
    state = with_instances(CLUSTERS, [0, 1, 2, 0])
    rules = (AntiAffinityConstraint(), AntiAffinityConstraint(scope="cluster", max_per_domain=2))
    cycle = make_cycle(state, make_request(service="web", constraints=rules))
    plugin = ServiceAntiAffinity()
    plugin.pre_filter(state, cycle)
    assert plugin.explain(state, cycle, np.array([1, 2, 3])) == [
        "node already runs 1 instance(s) of 'web' (max 1)",
        "node already runs 2 instance(s) of 'web' (max 1); "
        "cluster already runs 2 instance(s) of 'web' (max 2)",
        "cluster already runs 2 instance(s) of 'web' (max 2)",
    ]


def test_anti_affinity_pre_filter_skips_without_rules() -> None:
    state = with_instances(CLUSTERS, [1, 0, 0, 0])
    cycle = make_cycle(state, make_request(service="web"))
    assert ServiceAntiAffinity().pre_filter(state, cycle).code is Code.SKIP


def test_anti_affinity_enforces_its_constraint() -> None:
    assert ServiceAntiAffinity.constraint_types == ("anti_affinity",)
