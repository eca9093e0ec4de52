"""Latency: delay labels and latency constraints to nodes, services, user locations and
areas, as hard bounds over all nodes; the per-node and no-node-fits explanations; the
RTT score; the nearest-instance rows kept up to date from the host log.

Expected masks are computed here by brute force from the matrix and from a haversine
written with ``math``, not through the plugin's own helpers.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from harmonia.model import GeoPoint, LatencyConstraint, NodeRole, PlacementRequest
from harmonia.sched import Code, CycleState, ProfileError
from harmonia.sched.plugins import Latency, LatencyConfig
from harmonia.sched.plugins import latency as latency_module
from harmonia.sched.plugins.latency import NearestInstances
from harmonia.sched.state import Area, ClusterState
from tests.builders import make_cycle, make_node, make_request, make_state, place

# A line of five nodes; RTT(i -> j) = 10 * |i - j| plus 1 ms from the higher-numbered
# side, so the matrix is asymmetric and the direction read is visible.
LINE = [[10.0 * abs(i - j) + (1.0 if i > j else 0.0) for j in range(5)] for i in range(5)]


def line_state(matrix: list[list[float]] | None = None) -> ClusterState:
    """Nodes n0.. with ``matrix`` (default :data:`LINE`) attached."""
    matrix = LINE if matrix is None else matrix
    state = make_state(len(matrix))
    state.attach_rtt(state.names, matrix)
    return state


def run_filter(
    state: ClusterState, request_kwargs: dict[str, Any], plugin: Latency | None = None
) -> list[bool]:
    plugin = plugin or Latency()
    cycle = make_cycle(state, make_request(**request_kwargs))
    status = plugin.pre_filter(state, cycle)
    assert status.ok, status
    return plugin.filter(state, cycle).tolist()


def pre_filter(state: ClusterState, **request_kwargs: Any) -> tuple[Code, tuple[str, ...]]:
    cycle = make_cycle(state, make_request(**request_kwargs))
    status = Latency().pre_filter(state, cycle)
    return status.code, status.reasons


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance, written out: R = 6371.0088 km."""
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, h)))


def user_rtt(a: tuple[float, float], b: tuple[float, float], access_ms: float = 2.0) -> float:
    """Fibre at 200 km/ms over a route 1.5 times the great circle, both ways, + access."""
    return 2 * km(a, b) * 1.5 / 200 + access_ms


# -- delay labels and targets naming a node ----------------------------------------------


@pytest.mark.parametrize("threshold", [5, 10, 20, 21, 29.5, 40])
def test_delay_label_to_a_node_reads_the_row_of_that_node(threshold: float) -> None:
    state = line_state()
    mask = run_filter(state, {"labels": {"delay_n3": f"{threshold:g}"}})
    # row n3: [31, 21, 11, 0, 10] (from n3 to each node)
    assert mask == [LINE[3][j] <= threshold for j in range(5)]


def test_a_bound_is_inclusive_and_compares_the_stored_float32_exactly() -> None:
    state = line_state([[0, 25, 37.2], [25, 0, 1], [37.2, 1, 0]])
    assert run_filter(state, {"labels": {"delay_n0": "25"}}) == [True, True, False]
    # float32(37.2) = 37.2000007...: above a 37.2 ms bound, within 37.2000008
    assert run_filter(state, {"labels": {"delay_n0": "37.2"}}) == [True, True, False]
    assert run_filter(state, {"labels": {"delay_n0": "37.2000008"}}) == [True, True, True]


def test_target_constraint_naming_a_node_is_the_same_bound() -> None:
    state = line_state()
    constraint = LatencyConstraint(threshold_ms=15, target="n1")
    assert run_filter(state, {"constraints": [constraint]}) == [True, True, True, False, False]


def test_every_bound_must_hold() -> None:
    state = line_state()
    mask = run_filter(
        state,
        {
            "labels": {"delay_n0": "30", "delay_n4": "30"},
            "constraints": [LatencyConstraint(threshold_ms=15, target="n2")],
        },
    )
    # n0 row: 0 10 20 30 40; n4 row: 41 31 21 11 0; n2 row: 21 11 0 10 20
    assert mask == [False, False, True, True, False]


def test_random_matrices_against_brute_force() -> None:
    rng = random.Random(3)
    for _ in range(20):
        n = rng.randint(2, 12)
        matrix = [[0.0 if i == j else rng.uniform(0.5, 60) for j in range(n)] for i in range(n)]
        state = make_state(n)
        state.attach_rtt(state.names, matrix)
        stored = np.asarray(matrix, dtype=np.float32).astype(float).tolist()
        labels = {f"delay_n{rng.randrange(n)}": f"{rng.uniform(1, 60):.3f}" for _ in range(2)}
        mask = run_filter(state, {"labels": labels})
        expected = [
            all(stored[int(k[len("delay_n") :])][j] <= float(v) for k, v in labels.items())
            for j in range(n)
        ]
        assert mask == expected


# -- services ----------------------------------------------------------------------------


def test_service_bound_uses_the_nearest_running_instance() -> None:
    state = line_state()
    place(state, "n0", make_request(service="db"))
    place(state, "n4", make_request(service="db"))
    # min of rows n0 (0 10 20 30 40) and n4 (41 31 21 11 0): 0 10 20 11 0
    assert run_filter(state, {"labels": {"delay_db": "10"}}) == [True, True, False, False, True]
    assert run_filter(
        state, {"constraints": [LatencyConstraint(threshold_ms=11, target="db")]}
    ) == [
        True,
        True,
        False,
        True,
        True,
    ]


def test_service_bound_follows_placements_and_releases() -> None:
    state = line_state()
    plugin = Latency()  # one plugin across decisions: its per-service rows are patched
    first = make_request(service="db")
    place(state, "n0", first)
    assert run_filter(state, {"labels": {"delay_db": "10"}}, plugin) == [True, True] + [False] * 3
    place(state, "n4", make_request(service="db"))
    assert run_filter(state, {"labels": {"delay_db": "10"}}, plugin) == [
        True,
        True,
        False,
        False,
        True,
    ]
    state.release(0, first)  # the nearest instance for n0 and n1 leaves
    # only n4 left: row 41 31 21 11 0
    assert run_filter(state, {"labels": {"delay_db": "11"}}, plugin) == [False] * 3 + [True] * 2


def test_a_node_name_wins_over_a_service_of_the_same_name() -> None:
    state = line_state()
    place(state, "n4", make_request(service="n0"))
    assert run_filter(state, {"labels": {"delay_n0": "10"}}) == [True, True, False, False, False]


@pytest.mark.parametrize(
    ("waiting", "reason"),
    [
        # has run here before, none left now
        (make_request(labels={"delay_db": "10"}), "delay_db: no running instance of 'db' yet"),
        # the request's own service: its first instance waits for another one
        (
            make_request(service="web", labels={"delay_web": "10"}),
            "delay_web: no running instance of 'web' yet",
        ),
        # a microservice of the request's own application (an SLA connectivity target)
        (
            PlacementRequest(
                id="shop.front.0",
                service="shop.front",
                application="shop",
                constraints=(LatencyConstraint(threshold_ms=5, target="shop.cart"),),
            ),
            "latency target 'shop.cart': no running instance of 'shop.cart' yet",
        ),
    ],
)
def test_known_service_without_instances_is_unschedulable(
    waiting: PlacementRequest, reason: str
) -> None:
    state = line_state()
    db = make_request(service="db")
    place(state, "n1", db)
    state.release(1, db)
    status = Latency().pre_filter(state, make_cycle(state, waiting))
    assert (status.code, status.reasons) == (Code.UNSCHEDULABLE, (reason,))


# -- problems that no retry fixes ----------------------------------------------------------


def test_unknown_names_and_bad_values_are_unresolvable_all_at_once() -> None:
    state = line_state()
    code, reasons = pre_filter(
        state,
        labels={
            "delay_ghost": "10",
            "delay_n1": "fast",
            "delay_n2": "0",
            "delay_n3": "-5",
            "delay_n4": "inf",
            "delay_": "10",
            "tier": "web",
        },
        constraints=[
            LatencyConstraint(threshold_ms=5, target="nowhere"),
            LatencyConstraint(threshold_ms=5, area="munich"),
        ],
    )
    assert code is Code.UNRESOLVABLE
    assert reasons == (
        "delay_ghost: 'ghost' is neither a node nor a known service",
        "delay_n1: 'fast' is not a positive number of milliseconds",
        "delay_n2: '0' is not a positive number of milliseconds",
        "delay_n3: '-5' is not a positive number of milliseconds",
        "delay_n4: 'inf' is not a positive number of milliseconds",
        "delay_: the label names no node or service",
        "latency target 'nowhere': 'nowhere' is neither a node nor a known service",
        "latency area 'munich': unknown area (known areas: none defined)",
    )


def test_unknown_area_lists_the_known_ones() -> None:
    state = line_state()
    state.add_area(Area("berlin", (GeoPoint(lat=52.5, long=13.4),)))
    code, reasons = pre_filter(state, constraints=[LatencyConstraint(threshold_ms=5, area="paris")])
    assert code is Code.UNRESOLVABLE
    assert reasons == ("latency area 'paris': unknown area (known areas: 'berlin')",)


def test_node_and_service_bounds_need_rtt_data() -> None:
    state = make_state(2)  # no matrix attached
    place(state, "n1", make_request(service="db"))
    code, reasons = pre_filter(state, labels={"delay_n0": "10", "delay_db": "10"})
    assert code is Code.UNRESOLVABLE
    assert reasons == (
        "delay_n0: the state has no RTT data to check it against",
        "delay_db: the state has no RTT data to check it against",
    )


def test_requests_without_a_bound_skip_the_plugin() -> None:
    state = line_state()
    assert pre_filter(state, labels={"tier": "web"})[0] is Code.SKIP


def test_access_delay_must_be_a_non_negative_number() -> None:
    with pytest.raises(ProfileError, match="access_ms"):
        LatencyConfig(access_ms=-1)
    with pytest.raises(ProfileError, match="access_ms"):
        LatencyConfig(access_ms=math.nan)


# -- users and areas -----------------------------------------------------------------------

MUNICH, AUGSBURG, BERLIN = (48.137, 11.575), (48.371, 10.898), (52.520, 13.405)


def located_state() -> ClusterState:
    return make_state(
        [
            make_node("munich", location=MUNICH),
            make_node("augsburg", location=AUGSBURG),
            make_node("berlin", location=BERLIN),
            make_node("nowhere"),  # no coordinates
        ]
    )


@pytest.mark.parametrize("access_ms", [0.0, 2.0, 20.0])
@pytest.mark.parametrize("threshold", [2.5, 3.0, 6.0, 8.0, 25.0])
def test_location_bound_estimates_rtt_from_distance(access_ms: float, threshold: float) -> None:
    state = located_state()
    user = (48.2, 11.6)
    constraint = LatencyConstraint(
        threshold_ms=threshold, location=GeoPoint(lat=user[0], long=user[1])
    )
    mask = run_filter(state, {"constraints": [constraint]}, Latency(LatencyConfig(access_ms)))
    expected = [user_rtt(user, p, access_ms) <= threshold for p in (MUNICH, AUGSBURG, BERLIN)]
    assert mask == [*expected, False]  # no coordinates: rejected


def test_area_bound_holds_for_its_worst_point() -> None:
    state = located_state()
    north, south = (48.3, 11.6), (47.9, 11.5)
    state.add_area(
        Area(
            "region", (GeoPoint(lat=north[0], long=north[1]), GeoPoint(lat=south[0], long=south[1]))
        )
    )
    for threshold in (3.0, 4.0, 5.0, 9.0):
        constraint = LatencyConstraint(threshold_ms=threshold, area="region")
        mask = run_filter(state, {"constraints": [constraint]})
        expected = [
            max(user_rtt(north, p), user_rtt(south, p)) <= threshold
            for p in (MUNICH, AUGSBURG, BERLIN)
        ]
        assert mask == [*expected, False], threshold
    # the bound is tight: one point alone would pass a node the area does not
    worst = max(user_rtt(north, AUGSBURG), user_rtt(south, AUGSBURG))
    best = min(user_rtt(north, AUGSBURG), user_rtt(south, AUGSBURG))
    middle = (worst + best) / 2
    constraint = LatencyConstraint(threshold_ms=middle, area="region")
    assert run_filter(state, {"constraints": [constraint]})[1] is False


def test_a_redefined_area_is_used_at_once() -> None:
    state = located_state()
    plugin = Latency()
    constraint = LatencyConstraint(threshold_ms=2.5, area="home")
    state.add_area(Area("home", (GeoPoint(lat=MUNICH[0], long=MUNICH[1]),)))
    assert run_filter(state, {"constraints": [constraint]}, plugin)[:3] == [True, False, False]
    state.add_area(Area("home", (GeoPoint(lat=BERLIN[0], long=BERLIN[1]),)))
    assert run_filter(state, {"constraints": [constraint]}, plugin)[:3] == [False, False, True]


# -- explanations ----------------------------------------------------------------------------


def prepared(state: ClusterState, **request_kwargs: Any) -> tuple[Latency, CycleState]:
    plugin = Latency()
    cycle = make_cycle(state, make_request(**request_kwargs))
    assert plugin.pre_filter(state, cycle).ok
    plugin.filter(state, cycle)
    return plugin, cycle


def test_explain_gives_the_rtt_and_the_bound_per_node() -> None:
    state = line_state([[0, 37.2, 10], [37.2, 0, 5], [10, 5, 0]])
    place(state, "n2", make_request(service="db"))
    plugin, cycle = prepared(state, labels={"delay_n0": "25", "delay_db": "4"})
    assert plugin.explain(state, cycle, np.array([1, 0])) == [
        "RTT 37.2 ms to n0 > 25 ms; RTT 5.0 ms to nearest instance of 'db' (n2) > 4 ms",
        "RTT 10.0 ms to nearest instance of 'db' (n2) > 4 ms",
    ]


def test_explain_says_when_a_node_has_no_coordinates() -> None:
    state = located_state()
    user = GeoPoint(lat=MUNICH[0], long=MUNICH[1])
    plugin, cycle = prepared(
        state, constraints=[LatencyConstraint(threshold_ms=2.5, location=user)]
    )
    reasons = plugin.explain(state, cycle, np.array([2, 3]))
    rtt = user_rtt(MUNICH, BERLIN)
    assert reasons == [
        f"RTT {rtt:.1f} ms to user at (48.137, 11.575) (estimated) > 2.5 ms",
        "no coordinates to estimate RTT to user at (48.137, 11.575) (estimated)",
    ]


def test_summarize_names_the_best_rtt_among_the_judged_nodes() -> None:
    state = line_state()
    plugin, cycle = prepared(state, labels={"delay_n0": "5"})
    # all judged: the best other than n0 itself is excluded by the caller's judged set
    assert plugin.summarize(state, cycle, np.array([1, 2, 3, 4])) == [
        "delay_n0: best RTT 10.0 ms (node n1) > 5 ms"
    ]
    # a bound some judged node meets says nothing
    assert plugin.summarize(state, cycle, np.array([0, 3])) == []


def test_summarize_reports_bounds_that_fail_only_together() -> None:
    state = line_state()
    plugin, cycle = prepared(state, labels={"delay_n0": "10", "delay_n4": "10"})
    assert plugin.summarize(state, cycle, np.arange(5)) == [
        "no node is within all 2 latency bounds at once"
    ]


# -- score ----------------------------------------------------------------------------------


def test_score_docstring_example() -> None:
    # bound 25 ms; RTTs 5, 10, 25 → 100 × (1 − rtt/25) = 80, 60, 0
    state = make_state(4)
    state.attach_rtt(state.names, [[0, 5, 10, 25], [5, 0, 1, 1], [10, 1, 0, 1], [25, 1, 1, 0]])
    plugin, cycle = prepared(state, labels={"delay_n0": "25"})
    feasible = np.ones(4, dtype=bool)
    assert plugin.pre_score(state, cycle, feasible).ok
    assert plugin.score(state, cycle, feasible).tolist()[1:] == [80, 60, 0]
    # two bounds: 25 ms at 10 ms → 60; 40 ms at 30 ms → 25; floor((60 + 25) / 2) = 42
    state = make_state(3)
    state.attach_rtt(state.names, [[0, 1, 10], [1, 0, 30], [10, 30, 0]])
    plugin, cycle = prepared(state, labels={"delay_n0": "25", "delay_n1": "40"})
    assert plugin.score(state, cycle, np.ones(3, dtype=bool))[2] == 42


def test_score_is_zero_beyond_the_bound_and_for_unknown_rtt() -> None:
    state = located_state()
    user = GeoPoint(lat=MUNICH[0], long=MUNICH[1])
    plugin, cycle = prepared(state, constraints=[LatencyConstraint(threshold_ms=3, location=user)])
    scores = plugin.score(state, cycle, np.ones(4, dtype=bool)).tolist()
    # munich: 2 ms access only → floor(100 × (1 − 2/3)) = 33; augsburg: 56.5 km → 2.85 ms
    # → floor(100 × (1 − 2.85/3)) = 5; berlin beyond 3 ms, nowhere unknown: 0
    augsburg = math.floor(100 * (1 - user_rtt(MUNICH, AUGSBURG) / 3))
    assert scores == [33, augsburg, 0, 0]


# -- the nearest-instance rows --------------------------------------------------------------


@pytest.mark.parametrize("blocks", [False, True])
def test_nearest_instance_rows_match_a_fresh_minimum_after_random_changes(
    blocks: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if blocks:  # fold every new instance in through blocks of two rows
        monkeypatch.setattr(latency_module, "NEAREST_ONE_BY_ONE", 0)
        monkeypatch.setattr(latency_module, "NEAREST_BLOCK", 2)
    rng = random.Random(11)
    n = 15
    matrix = np.array(
        [[0.0 if i == j else rng.uniform(1, 80) for j in range(n)] for i in range(n)],
        dtype=np.float32,
    )
    state = make_state(n)
    state.attach_rtt(state.names, matrix)
    nearest = NearestInstances()
    placed: list[tuple[int, PlacementRequest]] = []
    for step in range(400):
        if placed and rng.random() < 0.45:
            node, request = placed.pop(rng.randrange(len(placed)))
            state.release(node, request)
        else:
            node = rng.randrange(n)
            request = make_request(service=rng.choice(["a", "b"]))
            state.reserve(node, request)
            placed.append((node, request))
        if rng.random() < 0.05:
            state.invalidate()
        if rng.random() < 0.4:
            continue  # several changes pile up before the next look
        for service in ("a", "b"):
            hosts = sorted({node for node, r in placed if r.service == service})
            got = nearest.row(state, service)
            expected = matrix[hosts].min(axis=0) if hosts else np.full(n, np.inf, dtype=np.float32)
            assert got.tolist() == expected.tolist(), step


def test_nearest_instance_rows_start_over_for_another_state() -> None:
    nearest = NearestInstances()
    first, second = line_state(), line_state()
    place(first, "n0", make_request(service="db"))
    place(second, "n4", make_request(service="db"))
    assert nearest.row(first, "db").tolist() == LINE[0]
    assert nearest.row(second, "db").tolist() == LINE[4]


def test_edge_and_cloud_roles_do_not_matter_to_the_bound() -> None:
    state = make_state([make_node("e", role=NodeRole.EDGE), make_node("c", role=NodeRole.CLOUD)])
    state.attach_rtt(state.names, [[0, 30], [30, 0]])
    assert run_filter(state, {"labels": {"delay_e": "10"}}) == [True, False]
