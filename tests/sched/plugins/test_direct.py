"""Direct: only the named cluster and/or nodes; unknown names are UNRESOLVABLE."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import DirectConstraint
from harmonia.sched import Code
from harmonia.sched.plugins import Direct
from harmonia.sched.state import ClusterState
from tests.builders import make_cycle, make_node, make_request, make_state


def two_clusters() -> ClusterState:
    return make_state(
        [
            make_node("n0", cluster="munich"),
            make_node("n1", cluster="munich"),
            make_node("n2", cluster="berlin"),
            make_node("n3", cluster="berlin"),
        ]
    )


def direct_mask(*constraints: DirectConstraint) -> list[bool]:
    state = two_clusters()
    cycle = make_cycle(state, make_request(constraints=constraints))
    plugin = Direct()
    assert plugin.pre_filter(state, cycle).ok
    return plugin.filter(state, cycle).tolist()


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        (DirectConstraint(cluster="berlin"), [False, False, True, True]),
        (DirectConstraint(nodes=("n0", "n3")), [True, False, False, True]),
        (DirectConstraint(nodes="n1; n2"), [False, True, True, False]),  # Oakestra's list
        (DirectConstraint(cluster="munich", nodes=("n1", "n2")), [False, True, False, False]),
        # a node list outside the cluster leaves nothing: unschedulable, not unresolvable
        (DirectConstraint(cluster="munich", nodes=("n3",)), [False, False, False, False]),
    ],
)
def test_filter(constraint: DirectConstraint, expected: list[bool]) -> None:
    assert direct_mask(constraint) == expected


def test_several_constraints_must_all_hold() -> None:
    assert direct_mask(
        DirectConstraint(cluster="munich"), DirectConstraint(nodes=("n1", "n2"))
    ) == [False, True, False, False]


def test_unknown_names_are_unresolvable_with_every_problem() -> None:
    state = two_clusters()
    constraint = DirectConstraint(cluster="paris", nodes=("n0", "x1", "x2"))
    cycle = make_cycle(state, make_request(constraints=[constraint]))

    status = Direct().pre_filter(state, cycle)

    assert status.code is Code.UNRESOLVABLE
    assert status.reasons == ("unknown cluster 'paris'", "unknown node 'x1'", "unknown node 'x2'")


def test_pre_filter_skips_without_direct_constraints() -> None:
    state = two_clusters()
    assert Direct().pre_filter(state, make_cycle(state, make_request())).code is Code.SKIP


def test_explain_names_what_was_asked_for() -> None:
    state = two_clusters()
    constraint = DirectConstraint(cluster="munich", nodes=("n0", "n1"))
    cycle = make_cycle(state, make_request(constraints=[constraint]))
    plugin = Direct()
    plugin.pre_filter(state, cycle)
    assert (
        plugin.explain(state, cycle, np.array([2, 3]))
        == ["not among the directly named cluster munich nodes n0;n1"] * 2
    )


def test_enforces_the_direct_constraint() -> None:
    assert Direct.constraint_types == ("direct",)
