"""NodeResourcesFit: the fit filter, its UNRESOLVABLE pre-filter and its explanations."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.sched import ClusterState, Code
from harmonia.sched.plugins import NodeResourcesFit
from tests.builders import make_cycle, make_node, make_request, make_state, place


def three_nodes() -> ClusterState:
    """a: 4000m/8192Mi free; b: 2000m/4096Mi free; c: 4000m with 2500m used, 1500m free."""
    state = make_state(
        [make_node("a"), make_node("b", cpu=2000, mem=4096), make_node("c", cpu=4000)]
    )
    place(state, "c", make_request(cpu=2500, mem=1024))
    return state


@pytest.mark.parametrize(
    ("cpu", "mem", "expected"),
    [
        (2000, 1024, [True, True, False]),  # c: 2000m > free 1500m
        (1500, 4096, [True, True, True]),  # exactly the free amounts still fit
        (1501, 0, [True, True, False]),  # c: one millicore short
        (0, 4097, [True, False, True]),  # b: 4097Mi > 4096Mi; c: 8192-1024 = 7168Mi free
        (4000, 8192, [True, False, False]),
        (0, 0, [True, True, True]),  # an empty request fits everywhere
    ],
)
def test_filter_mask(cpu: int, mem: int, expected: list[bool]) -> None:
    state = three_nodes()
    request = make_request(cpu=cpu, mem=mem)
    assert NodeResourcesFit().filter(state, make_cycle(state, request)).tolist() == expected


def test_every_requested_resource_must_fit() -> None:
    state = make_state([make_node("a", gpu=0), make_node("b", gpu=2)])
    request = make_request(cpu=100, gpu=1)
    assert NodeResourcesFit().filter(state, make_cycle(state, request)).tolist() == [False, True]


def test_empty_request_fits_a_node_with_nothing_allocatable() -> None:
    state = make_state([make_node("empty", cpu=0, mem=0)])
    assert NodeResourcesFit().filter(state, make_cycle(state, make_request())).tolist() == [True]


def test_pre_filter_ok_up_to_the_largest_allocatable() -> None:
    state = three_nodes()
    request = make_request(cpu=4000, mem=8192)  # a's allocatable, although only a has it
    assert NodeResourcesFit().pre_filter(state, make_cycle(state, request)).ok


def test_pre_filter_unresolvable_when_request_exceeds_every_node() -> None:
    state = make_state([make_node("a", cpu=4000, mem=8192), make_node("b", cpu=2000)])
    request = make_request(cpu=5000, mem=9000, gpu=1)

    status = NodeResourcesFit().pre_filter(state, make_cycle(state, request))

    assert status.code is Code.UNRESOLVABLE
    assert status.reasons == (  # every resource that is too big, not just the first
        "cpu_m 5000m exceeds the largest node's allocatable 4000m",
        "memory_mib 9000Mi exceeds the largest node's allocatable 8192Mi",
        "gpu 1 exceeds the largest node's allocatable 0",
    )


def test_pre_filter_counts_cordoned_and_unhealthy_nodes_as_possible_homes() -> None:
    # A large node that is down now may come back: the request is unschedulable, not
    # unresolvable.
    state = make_state([make_node("big", cpu=16000, unschedulable=True), make_node("small")])
    state.set_healthy("big", False)
    request = make_request(cpu=8000)
    assert NodeResourcesFit().pre_filter(state, make_cycle(state, request)).ok


def test_explain_names_each_short_resource_with_units() -> None:
    state = three_nodes()
    request = make_request(cpu=2000, mem=7200)
    cycle = make_cycle(state, request)
    rejected = np.flatnonzero(~NodeResourcesFit().filter(state, cycle))
    assert rejected.tolist() == [1, 2]

    assert NodeResourcesFit().explain(state, cycle, rejected) == [
        "insufficient memory_mib 7200Mi > free 4096Mi",  # b: cpu 2000m fits exactly
        "insufficient cpu_m 2000m > free 1500m, memory_mib 7200Mi > free 7168Mi",  # c
    ]


def test_explain_gpu_has_no_unit() -> None:
    state = make_state([make_node("a")])
    request = make_request(gpu=1)
    texts = NodeResourcesFit().explain(state, make_cycle(state, request), np.array([0]))
    assert texts == ["insufficient gpu 1 > free 0"]


def test_filter_node_matches_filter() -> None:
    state = three_nodes()
    plugin = NodeResourcesFit()
    cycle = make_cycle(state, make_request(cpu=2000, mem=1024))
    mask = plugin.filter(state, cycle)
    assert [plugin.filter_node(state.row(i), cycle) for i in range(3)] == mask.tolist()
