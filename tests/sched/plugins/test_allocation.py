"""LeastAllocated, MostAllocated and RequestedToCapacityRatio: exact scores, the
docstrings' worked examples, custom resource weights, shapes and config validation."""

from __future__ import annotations

from typing import TypeAlias

import pytest

from harmonia.model import Resources
from harmonia.sched.plugins import (
    AllocationConfig,
    LeastAllocated,
    MostAllocated,
    RatioConfig,
    RequestedToCapacityRatio,
    ShapePoint,
)
from harmonia.sched.plugins.allocation import shape
from harmonia.sched.state import ClusterState
from tests.builders import make_cycle, make_node, make_request, make_state, place

Scorer: TypeAlias = LeastAllocated | MostAllocated | RequestedToCapacityRatio


def one_node(
    cpu: int, mem: int, used_cpu: int = 0, used_mem: int = 0, *, gpu: int = 0
) -> ClusterState:
    """One node with allocatable ``cpu``/``mem`` and ``used_*`` already allocated."""
    state = make_state([make_node("n", cpu=cpu, mem=mem, gpu=gpu)])
    if used_cpu or used_mem:
        place(state, "n", make_request(cpu=used_cpu, mem=used_mem))
    return state


def score_of(plugin: Scorer, state: ClusterState, cpu: int, mem: int, gpu: int = 0) -> float:
    """The node's score through the vector path, checked against the scalar path."""
    cycle = make_cycle(state, make_request(cpu=cpu, mem=mem, gpu=gpu))
    vector = float(plugin.score(state, cycle, state.schedulable)[0])
    assert plugin.score_node(state.row(0), cycle) == vector
    return vector


# -- LeastAllocated -----------------------------------------------------------------------

# (allocatable cpu, mem), (already used cpu, mem), (request cpu, mem), expected score
LEAST_CASES = [
    # docstring: cpu (4000-3000)*100//4000 = 25; mem (10000-5000)*100//10000 = 50;
    # node = (25+50)//2 = 37
    ((4000, 10000), (2000, 3000), (1000, 2000), 37),
    # empty node, empty request: (100+100)//2 = 100
    ((4000, 8192), (0, 0), (0, 0), 100),
    # floors per resource: cpu 2000*100//3000 = 66; mem 100 → (66+100)//2 = 83
    ((3000, 1000), (0, 0), (1000, 0), 83),
    # request does not fit cpu: cpu 0 (never negative); mem (8192-1024)*100//8192 = 87
    # → (0+87)//2 = 43
    ((4000, 8192), (3500, 0), (1000, 1024), 43),
    # nothing allocatable of cpu: 0; mem 100 → 50
    ((0, 8192), (0, 0), (0, 0), 50),
    # full node: 0 + 0
    ((4000, 8192), (4000, 8192), (0, 0), 0),
]


@pytest.mark.parametrize(("allocatable", "used", "asked", "expected"), LEAST_CASES)
def test_least_allocated(
    allocatable: tuple[int, int],
    used: tuple[int, int],
    asked: tuple[int, int],
    expected: int,
) -> None:
    state = one_node(*allocatable, *used)
    assert score_of(LeastAllocated(), state, *asked) == expected


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        # docstring node: cpu 25, mem 50
        ((("cpu_m", 3), ("memory_mib", 1)), 31),  # (25*3 + 50*1)//4 = 125//4 = 31
        ((("cpu_m", 1), ("memory_mib", 3)), 43),  # (25 + 150)//4 = 175//4 = 43
        ((("cpu_m", 1),), 25),  # cpu only
        ((("memory_mib", 7),), 50),  # one resource: its weight cancels, 350//7 = 50
        # no gpu allocatable scores 0 but still weighs: (25*2 + 50*3 + 0*5)//10 = 20
        ((("cpu_m", 2), ("memory_mib", 3), ("gpu", 5)), 20),
    ],
)
def test_least_allocated_with_custom_weights(
    resources: tuple[tuple[str, int], ...], expected: int
) -> None:
    state = one_node(4000, 10000, 2000, 3000)
    plugin = LeastAllocated(AllocationConfig(resources))
    assert score_of(plugin, state, 1000, 2000) == expected


# -- MostAllocated ------------------------------------------------------------------------

MOST_CASES = [
    # docstring: cpu 3000*100//4000 = 75; mem 5000*100//10000 = 50; node = (75+50)//2 = 62
    ((4000, 10000), (2000, 3000), (1000, 2000), 62),
    ((4000, 8192), (0, 0), (0, 0), 0),  # empty node, empty request
    # floors per resource: cpu 1000*100//3000 = 33; mem 0 → 33//2 = 16
    ((3000, 1000), (0, 0), (1000, 0), 16),
    # over capacity is capped at allocatable: cpu min(4500, 4000) → 100; mem 1024 → 12
    # → (100+12)//2 = 56
    ((4000, 8192), (3500, 0), (1000, 1024), 56),
    ((0, 8192), (0, 0), (0, 4096), 25),  # cpu nothing allocatable → 0; mem 50 → 25
    ((4000, 8192), (4000, 8192), (0, 0), 100),  # full node
]


@pytest.mark.parametrize(("allocatable", "used", "asked", "expected"), MOST_CASES)
def test_most_allocated(
    allocatable: tuple[int, int],
    used: tuple[int, int],
    asked: tuple[int, int],
    expected: int,
) -> None:
    state = one_node(*allocatable, *used)
    assert score_of(MostAllocated(), state, *asked) == expected


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        # docstring node: cpu 75, mem 50
        ((("cpu_m", 3), ("memory_mib", 1)), 68),  # (75*3 + 50)//4 = 275//4 = 68
        ((("cpu_m", 1), ("memory_mib", 3)), 56),  # (75 + 150)//4 = 225//4 = 56
        ((("memory_mib", 5),), 50),
        ((("cpu_m", 2), ("memory_mib", 3), ("gpu", 5)), 30),  # (150 + 150 + 0)//10 = 30
    ],
)
def test_most_allocated_with_custom_weights(
    resources: tuple[tuple[str, int], ...], expected: int
) -> None:
    state = one_node(4000, 10000, 2000, 3000)
    plugin = MostAllocated(AllocationConfig(resources))
    assert score_of(plugin, state, 1000, 2000) == expected


def test_least_and_most_allocated_rank_nodes_oppositely() -> None:
    state = make_state([make_node("empty"), make_node("half")])
    place(state, "half", make_request(cpu=2000, mem=4096))
    cycle = make_cycle(state, make_request(cpu=1000, mem=1024))
    least = LeastAllocated().score(state, cycle, state.schedulable).tolist()
    most = MostAllocated().score(state, cycle, state.schedulable).tolist()
    # empty: cpu 3000*100//4000 = 75, mem 7168*100//8192 = 87 → 81; most 25, 12 → 18
    # half: cpu 1000*100//4000 = 25, mem 3072*100//8192 = 37 → 31; most 75, 62 → 68
    assert least == [81, 31]
    assert most == [18, 68]


# -- RequestedToCapacityRatio ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "asked", "expected"),
    [
        # docstring, shape (0,0),(100,100): cpu 3000 of 4000 → u=75 → 75;
        # mem 5000 of 10000 → u=50 → 50; node = round((75+50)/2) = round(62.5) = 63
        ([(0, 0), (100, 100)], (1000, 2000), 63),
        # reversed shape spreads: cpu 100-75 = 25, mem 50 → round(37.5) = 38
        ([(0, 100), (100, 0)], (1000, 2000), 38),
        # peak at 50%: cpu u=75 → 100 + (0-100)*(75-50)//50 = 50; mem u=50 → 100 → 75
        ([(0, 0), (50, 100), (100, 0)], (1000, 2000), 75),
        # one point is a constant
        ([(40, 70)], (1000, 2000), 70),
        # u at or below the first point takes its score: cpu 75 and mem 50 → 10
        ([(80, 10), (100, 90)], (1000, 2000), 10),
        # u past the last point takes its score
        ([(0, 0), (40, 30)], (1000, 2000), 30),
    ],
)
def test_requested_to_capacity_ratio(
    points: list[tuple[int, int]], asked: tuple[int, int], expected: int
) -> None:
    state = one_node(4000, 10000, 2000, 3000)
    plugin = RequestedToCapacityRatio(RatioConfig(shape=shape(points)))
    assert score_of(plugin, state, *asked) == expected


@pytest.mark.parametrize(
    ("points", "used_cpu", "expected"),
    [
        # integer interpolation truncates like Go: (0,0),(30,100) at u=10:
        # 0 + 100*10/30 = 33.3 → 33 (cpu only, weight 1)
        ([(0, 0), (30, 100)], 400, 33),
        # towards zero for falling shapes too: (0,100),(30,0) at u=10:
        # 100 + trunc(-100*10/30) = 100 - 33 = 67 (floor would give 66)
        ([(0, 100), (30, 0)], 400, 67),
        # utilization itself is floored: 399/4000 → u=9 → 100*9/30 = 30
        ([(0, 0), (30, 100)], 399, 30),
    ],
)
def test_requested_to_capacity_ratio_interpolation(
    points: list[tuple[int, int]], used_cpu: int, expected: int
) -> None:
    state = one_node(4000, 10000, used_cpu, 0)
    plugin = RequestedToCapacityRatio(RatioConfig(resources=(("cpu_m", 1),), shape=shape(points)))
    assert score_of(plugin, state, 0, 0) == expected


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        # default shape, docstring node: cpu 75, mem 50
        ((("cpu_m", 2), ("memory_mib", 1)), 67),  # (150+50)/3 = 66.67 → 67 (rounded)
        ((("cpu_m", 1), ("memory_mib", 2)), 58),  # (75+100)/3 = 58.33 → 58
        ((("cpu_m", 1), ("memory_mib", 1), ("gpu", 2)), 31),  # (75+50+0)/4 = 31.25 → 31
    ],
)
def test_requested_to_capacity_ratio_weights_round_half_up(
    resources: tuple[tuple[str, int], ...], expected: int
) -> None:
    state = one_node(4000, 10000, 2000, 3000)
    plugin = RequestedToCapacityRatio(RatioConfig(resources=resources))
    assert score_of(plugin, state, 1000, 2000) == expected


def test_default_ratio_packs_like_most_allocated() -> None:
    state = make_state([make_node("empty"), make_node("half")])
    place(state, "half", make_request(cpu=2000, mem=4096))
    cycle = make_cycle(state, make_request(cpu=1000, mem=1024))
    # empty: u cpu 25, mem 12 → round(18.5) = 19; half: 75, 62 → round(68.5) = 69
    scores = RequestedToCapacityRatio().score(state, cycle, state.schedulable).tolist()
    assert scores == [19, 69]


def test_zero_allocatable_scores_zero_utilization() -> None:
    state = make_state(
        [make_node("n", cpu=4000, mem=1, allocatable=Resources(cpu_m=4000, memory_mib=0))]
    )
    # cpu u = 1000*100//4000 = 25; mem allocatable 0 → u = 0 → (25+0)/2 = 12.5 → 13
    assert score_of(RequestedToCapacityRatio(), state, 1000, 0) == 13


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ((), "at least one resource"),
        ((("cpu", 1),), "unknown resource 'cpu'"),
        ((("cpu_m", 0),), "weight of 'cpu_m' must be > 0"),
        ((("memory_mib", -2),), "weight of 'memory_mib' must be > 0"),
    ],
)
def test_allocation_config_is_validated(
    resources: tuple[tuple[str, int], ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AllocationConfig(resources)
    with pytest.raises(ValueError, match=message):
        RatioConfig(resources=resources)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([], "at least one point"),
        ([(50, 0), (50, 100)], "increase strictly"),
        ([(60, 0), (40, 100)], "increase strictly"),
        ([(0, 0), (101, 100)], r"0\.\.100"),
        ([(0, 0), (100, 101)], r"0\.\.100"),
        ([(-1, 0)], r"0\.\.100"),
    ],
)
def test_ratio_shape_is_validated(points: list[tuple[int, int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RatioConfig(shape=tuple(ShapePoint(u, s) for u, s in points))
