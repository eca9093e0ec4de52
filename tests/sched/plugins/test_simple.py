"""RandomScore (seeded, replayable) and RoundRobin (feasible nodes in turn)."""

from __future__ import annotations

import numpy as np

from harmonia.sched import Scheduler
from harmonia.sched.plugins import RandomScore, RoundRobin
from tests.builders import make_cycle, make_request, make_state


def test_random_score_is_reproducible_for_a_seed() -> None:
    state = make_state(20)
    request = make_request(cpu=100)

    def draws(seed: int) -> list[float]:
        cycle = make_cycle(state, request, seed=seed)
        return RandomScore().score(state, cycle, state.schedulable).tolist()

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert all(0 <= d < 100 for d in draws(7))


def test_random_policy_replays_from_its_seed() -> None:
    requests = [make_request(f"r{i}", cpu=100) for i in range(30)]

    def placements(seed: int) -> list[tuple[str, str]]:
        return Scheduler(make_state(10), "random", seed=seed).schedule_many(requests).placements

    assert placements(3) == placements(3)
    assert placements(3) != placements(4)


def test_round_robin_docstring_example() -> None:
    # 4 nodes, last choice node 1: nodes 2, 3, 0, 1 score 100, 75, 50, 25
    state = make_state(4)
    plugin = RoundRobin()
    cycle = make_cycle(state, make_request())
    plugin.reserve(state, cycle, 1)
    assert plugin.score(state, cycle, state.schedulable).tolist() == [50, 25, 100, 75]


def test_round_robin_starts_at_the_first_node() -> None:
    state = make_state(4)
    cycle = make_cycle(state, make_request())
    assert RoundRobin().score(state, cycle, state.schedulable).tolist() == [100, 75, 50, 25]


def test_round_robin_cycles_through_nodes_in_order() -> None:
    scheduler = Scheduler(make_state(4), "round-robin")
    plan = scheduler.schedule_many(make_request(f"r{i}", cpu=10) for i in range(6))
    assert [node for _, node in plan.placements] == ["n0", "n1", "n2", "n3", "n0", "n1"]


def test_round_robin_skips_infeasible_nodes() -> None:
    state = make_state(4)
    state.set_cordoned("n2", True)
    scheduler = Scheduler(state, "round-robin")
    plan = scheduler.schedule_many(make_request(f"r{i}", cpu=10) for i in range(5))
    assert [node for _, node in plan.placements] == ["n0", "n1", "n3", "n0", "n1"]


def test_round_robin_unreserve_restores_the_cursor() -> None:
    state = make_state(4)
    plugin = RoundRobin()
    cycle = make_cycle(state, make_request())
    plugin.reserve(state, cycle, 0)
    plugin.reserve(state, cycle, 2)
    plugin.unreserve(state, cycle, 2)
    # back to "last choice node 0": node 1 is next
    assert int(np.argmax(plugin.score(state, cycle, state.schedulable))) == 1
