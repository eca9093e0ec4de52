"""Geo: within a great-circle distance in kilometres of a position (not degrees, as
Oakestra's implementation compares); nodes without coordinates are rejected with a reason.

Distances are checked against a haversine written out with ``math`` here.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from harmonia.model import GeoConstraint, GeoPoint
from harmonia.sched import Code
from harmonia.sched.plugins import Geo
from harmonia.sched.state import ClusterState
from tests.builders import make_cycle, make_node, make_request, make_state
from tests.sched.plugins.test_latency import km

MUNICH, AUGSBURG, BERLIN = (48.1351, 11.5820), (48.3705, 10.8978), (52.5200, 13.4050)


def located_state() -> ClusterState:
    return make_state(
        [
            make_node("munich", location=MUNICH),
            make_node("augsburg", location=AUGSBURG),
            make_node("berlin", location=BERLIN),
            make_node("nowhere"),
        ]
    )


def geo(lat: float, long: float, threshold_km: float) -> GeoConstraint:
    return GeoConstraint(location=GeoPoint(lat=lat, long=long), threshold_km=threshold_km)


def geo_mask(state: ClusterState, *constraints: GeoConstraint) -> list[bool]:
    plugin = Geo()
    cycle = make_cycle(state, make_request(constraints=constraints))
    assert plugin.pre_filter(state, cycle).ok
    return plugin.filter(state, cycle).tolist()


def test_docstring_example_munich_to_augsburg() -> None:
    state = located_state()
    assert 55 < km(MUNICH, AUGSBURG) < 58
    assert geo_mask(state, geo(*MUNICH, 50)) == [True, False, False, False]
    assert geo_mask(state, geo(*MUNICH, 60)) == [True, True, False, False]


def test_the_threshold_is_kilometres_not_degrees() -> None:
    # 0.5° of latitude is about 55.6 km: a 1 km bound rejects it (comparing degrees with
    # kilometres, as Oakestra does, would accept it: 0.5 < 1)
    state = make_state([make_node("north", location=(48.5, 11.0))])
    assert geo_mask(state, geo(48.0, 11.0, 1)) == [False]
    assert geo_mask(state, geo(48.0, 11.0, 56)) == [True]


def test_random_positions_against_brute_force() -> None:
    rng = random.Random(5)
    for _ in range(20):
        points = [(rng.uniform(-60, 70), rng.uniform(-180, 180)) for _ in range(rng.randint(1, 12))]
        state = make_state([make_node(f"n{i}", location=p) for i, p in enumerate(points)])
        center = (rng.uniform(-60, 70), rng.uniform(-180, 180))
        threshold = rng.uniform(10, 8000)
        assert geo_mask(state, geo(*center, threshold)) == [
            km(center, p) <= threshold for p in points
        ]


def test_every_geo_constraint_must_hold() -> None:
    state = located_state()
    # within 600 km of Munich (munich, augsburg, berlin at ~504 km) and 100 km of Berlin
    assert geo_mask(state, geo(*MUNICH, 600), geo(*BERLIN, 100)) == [False, False, True, False]


def test_pre_filter_skips_requests_without_geo_constraints() -> None:
    state = located_state()
    assert Geo().pre_filter(state, make_cycle(state, make_request())).code is Code.SKIP


def test_explain_and_summarize_give_distances() -> None:
    state = located_state()
    plugin = Geo()
    cycle = make_cycle(state, make_request(constraints=[geo(*MUNICH, 30)]))
    plugin.pre_filter(state, cycle)
    far = km(MUNICH, BERLIN)
    assert plugin.explain(state, cycle, np.array([2, 3])) == [
        f"{far:.1f} km from (48.1351, 11.582) > 30 km",
        "node has no coordinates (geo bound around (48.1351, 11.582))",
    ]
    near = km(MUNICH, AUGSBURG)
    assert plugin.summarize(state, cycle, np.array([1, 2, 3])) == [
        f"geo within 30 km of (48.1351, 11.582): nearest node augsburg is {near:.1f} km away"
    ]
    assert plugin.summarize(state, cycle, np.array([3])) == [
        "geo within 30 km of (48.1351, 11.582): no node has coordinates"
    ]


@pytest.mark.parametrize("repeat", [1, 3])
def test_cached_distances_serve_copies_and_stay_read_only(repeat: int) -> None:
    state = located_state()
    plugin = Geo()
    for _ in range(repeat):
        for current in (state, state.copy()):
            cycle = make_cycle(current, make_request(constraints=[geo(*MUNICH, 60)]))
            plugin.pre_filter(current, cycle)
            assert plugin.filter(current, cycle).tolist() == [True, True, False, False]
    other = make_state([make_node("berlin", location=BERLIN)])
    cycle = make_cycle(other, make_request(constraints=[geo(*MUNICH, 60)]))
    plugin.pre_filter(other, cycle)
    assert plugin.filter(other, cycle).tolist() == [False]
