"""CloudFirst: requests without a latency or geo bound prefer cloud nodes (as the
kubernetes-edge-scheduler sends unlabelled pods to the cloud); bounded ones skip it."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import (
    GeoConstraint,
    GeoPoint,
    LatencyConstraint,
    NodeAffinityConstraint,
    NodeRole,
    PlacementRequest,
)
from harmonia.sched import Code
from harmonia.sched.plugins import CloudFirst
from tests.builders import make_cycle, make_node, make_request, make_state

CLOUD, EDGE = NodeRole.CLOUD, NodeRole.EDGE


def test_docstring_example_cloud_edge_cloud() -> None:
    state = make_state([make_node(f"n{i}", role=r) for i, r in enumerate([CLOUD, EDGE, CLOUD])])
    cycle = make_cycle(state, make_request())
    plugin = CloudFirst()
    feasible = np.ones(3, dtype=bool)
    assert plugin.pre_score(state, cycle, feasible).ok
    assert plugin.score(state, cycle, feasible).tolist() == [100, 0, 100]
    # the same vector again, and it cannot be changed by whoever receives it
    again = plugin.score(state, cycle, feasible)
    assert again.tolist() == [100, 0, 100]
    with pytest.raises(ValueError, match="read-only"):
        again[0] = 0


@pytest.mark.parametrize(
    ("asked", "code"),
    [
        (make_request(labels={"tier": "web"}), Code.OK),
        (make_request(constraints=[NodeAffinityConstraint(match_labels={"a": "b"})]), Code.OK),
        (make_request(labels={"delay_n0": "10"}), Code.SKIP),
        (make_request(constraints=[LatencyConstraint(threshold_ms=5, target="n0")]), Code.SKIP),
        (
            make_request(
                constraints=[GeoConstraint(location=GeoPoint(lat=1, long=2), threshold_km=5)]
            ),
            Code.SKIP,
        ),
    ],
)
def test_only_requests_without_a_location_bound_are_scored(
    asked: PlacementRequest, code: Code
) -> None:
    state = make_state([make_node("n0", role=EDGE), make_node("n1", role=CLOUD)])
    status = CloudFirst().pre_score(state, make_cycle(state, asked), np.ones(2, dtype=bool))
    assert status.code is code


def test_scores_follow_the_state_they_are_asked_about() -> None:
    plugin = CloudFirst()
    first = make_state([make_node("a", role=EDGE), make_node("b", role=CLOUD)])
    second = make_state([make_node("a", role=CLOUD), make_node("b", role=EDGE)])
    ones = np.ones(2, dtype=bool)
    assert plugin.score(first, make_cycle(first, make_request()), ones).tolist() == [0, 100]
    assert plugin.score(second, make_cycle(second, make_request()), ones).tolist() == [100, 0]
