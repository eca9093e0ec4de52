"""NodeSchedulable: unhealthy and cordoned nodes are rejected."""

from __future__ import annotations

import numpy as np

from harmonia.sched.plugins import NodeSchedulable
from tests.builders import make_cycle, make_node, make_request, make_state


def test_rejects_unhealthy_and_cordoned_nodes_with_reasons() -> None:
    state = make_state(
        [make_node("ok"), make_node("down"), make_node("cordoned", unschedulable=True)]
    )
    state.set_healthy("down", False)
    cycle = make_cycle(state, make_request())
    plugin = NodeSchedulable()

    mask = plugin.filter(state, cycle)

    assert mask.tolist() == [True, False, False]
    assert [plugin.filter_node(state.row(i), cycle) for i in range(3)] == mask.tolist()
    assert plugin.explain(state, cycle, np.array([1, 2])) == [
        "node is unhealthy",
        "node is cordoned",
    ]


def test_unhealthy_wins_over_cordoned_in_the_explanation() -> None:
    state = make_state([make_node("a", unschedulable=True)])
    state.set_healthy("a", False)
    cycle = make_cycle(state, make_request())
    assert NodeSchedulable().explain(state, cycle, np.array([0])) == ["node is unhealthy"]


def test_recovered_and_uncordoned_nodes_are_schedulable_again() -> None:
    state = make_state(2)
    state.set_healthy("n0", False)
    state.set_cordoned("n1", True)
    state.set_healthy("n0", True)
    state.set_cordoned("n1", False)
    cycle = make_cycle(state, make_request())
    assert NodeSchedulable().filter(state, cycle).tolist() == [True, True]
    assert NodeSchedulable().filter_node(state.row(1), cycle) is True
