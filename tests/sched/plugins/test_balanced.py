"""BalancedAllocation: 100 minus the standard deviation of the per-resource shares."""

from __future__ import annotations

import pytest

from harmonia.sched.plugins import AllocationConfig, BalancedAllocation
from tests.builders import make_cycle, make_node, make_request, make_state, place


def score_of(plugin: BalancedAllocation, used: tuple[int, ...], asked: tuple[int, ...]) -> float:
    """Score of one node with allocatable cpu 4000, mem 10000, storage 1000."""
    state = make_state([make_node("n", cpu=4000, mem=10000, storage=1000)])
    place(state, "n", make_request(cpu=used[0], mem=used[1], storage=used[2]))
    cycle = make_cycle(state, make_request(cpu=asked[0], mem=asked[1], storage=asked[2]))
    vector = float(plugin.score(state, cycle, state.schedulable)[0])
    assert plugin.score_node(state.row(0), cycle) == vector
    return vector


@pytest.mark.parametrize(
    ("used", "asked", "expected"),
    [
        # docstring: cpu 3000/4000 = 0.75, mem 5000/10000 = 0.5; std = |0.75-0.5|/2 = 0.125;
        # node = int(0.875*100) = 87
        ((2000, 3000, 0), (1000, 2000, 0), 87),
        ((1000, 2500, 0), (1000, 2500, 0), 100),  # 0.5 and 0.5: perfectly balanced
        ((0, 0, 0), (0, 0, 0), 100),  # empty node
        ((0, 0, 0), (4000, 0, 0), 50),  # 1.0 and 0.0: std 0.5 → 50
        # shares are capped at 1: cpu (3000+2000)/4000 → 1.0, mem 0.5 → std 0.25 → 75
        ((3000, 0, 0), (2000, 5000, 0), 75),
        ((0, 0, 0), (1000, 1000, 0), 92),  # 0.25 and 0.1: std 0.075 → 92.5 → 92
    ],
)
def test_two_resources(used: tuple[int, ...], asked: tuple[int, ...], expected: int) -> None:
    assert score_of(BalancedAllocation(), used, asked) == expected


def test_three_resources_use_the_population_standard_deviation() -> None:
    # cpu 2000/4000 = 0.5, mem 5000/10000 = 0.5, storage 800/1000 = 0.8; mean 0.6;
    # var = (0.01 + 0.01 + 0.04)/3 = 0.02; std = 0.1414 → (1-0.1414)*100 = 85.86 → 85
    plugin = BalancedAllocation(
        AllocationConfig((("cpu_m", 1), ("memory_mib", 1), ("storage_mib", 1)))
    )
    assert score_of(plugin, (2000, 5000, 800), (0, 0, 0)) == 85


def test_one_resource_is_always_balanced() -> None:
    plugin = BalancedAllocation(AllocationConfig((("cpu_m", 1),)))
    assert score_of(plugin, (3000, 0, 0), (0, 0, 0)) == 100


def test_resource_weights_are_ignored() -> None:
    weighted = BalancedAllocation(AllocationConfig((("cpu_m", 5), ("memory_mib", 1))))
    assert score_of(weighted, (2000, 3000, 0), (1000, 2000, 0)) == 87  # as unweighted


def test_balanced_prefers_the_node_the_request_evens_out() -> None:
    state = make_state([make_node("cpu-heavy"), make_node("mem-heavy")])
    place(state, "cpu-heavy", make_request(cpu=2000))
    place(state, "mem-heavy", make_request(mem=4096))
    cycle = make_cycle(state, make_request(cpu=1000))
    # cpu-heavy: 3000/4000 = 0.75 vs 0 → std 0.375 → 62
    # mem-heavy: 1000/4000 = 0.25 vs 4096/8192 = 0.5 → std 0.125 → 87
    scores = BalancedAllocation().score(state, cycle, state.schedulable).tolist()
    assert scores == [62, 87]
