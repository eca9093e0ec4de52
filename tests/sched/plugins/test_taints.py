"""TaintToleration: NoSchedule/NoExecute taints filter, PreferNoSchedule taints score
(reverse-normalized), tolerations with Equal and Exists."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import Toleration
from harmonia.sched import Code
from harmonia.sched.plugins import TaintToleration
from harmonia.sched.state import ClusterState
from tests.builders import make_cycle, make_node, make_request, make_state, taint, toleration

GPU = taint("gpu", "true")  # NoSchedule
DEDICATED = taint("dedicated", effect="NoExecute")
SPOT = taint("spot", effect="PreferNoSchedule")
OLD = taint("old", "yes", effect="PreferNoSchedule")


def tainted_state() -> ClusterState:
    return make_state(
        [
            make_node("plain"),
            make_node("gpu", taints=[GPU]),
            make_node("dedicated", taints=[DEDICATED]),
            make_node("spot", taints=[SPOT]),
            make_node("spot-old", taints=[SPOT, OLD]),
        ]
    )


def filter_mask(*tolerations: Toleration) -> list[bool] | None:
    """The filter's mask, or None when the pre-filter skips the filter."""
    state = tainted_state()
    cycle = make_cycle(state, make_request(tolerations=tolerations))
    plugin = TaintToleration()
    if plugin.pre_filter(state, cycle).code is Code.SKIP:
        return None
    return plugin.filter(state, cycle).tolist()


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        # PreferNoSchedule taints never filter
        ((), [True, False, False, True, True]),
        ((toleration("gpu", "true"),), [True, True, False, True, True]),
        ((toleration("gpu", "false"),), [True, False, False, True, True]),  # wrong value
        ((toleration("gpu", operator="Exists"),), [True, True, False, True, True]),
        # the effect must match when given
        (
            (toleration("gpu", operator="Exists", effect="NoExecute"),),
            [True] + [False] * 2 + [True] * 2,
        ),
        (
            (toleration("dedicated", operator="Exists", effect="NoExecute"),),
            [True, False, True, True, True],
        ),
        # Equal with an empty value tolerates a taint without value
        ((toleration("dedicated"),), [True, False, True, True, True]),
    ],
)
def test_filter(tolerations: tuple[Toleration, ...], expected: list[bool]) -> None:
    assert filter_mask(*tolerations) == expected


@pytest.mark.parametrize(
    "tolerations",
    [
        (toleration(operator="Exists"),),  # empty key with Exists tolerates everything
        (toleration("gpu", "true"), toleration("dedicated", operator="Exists")),
    ],
)
def test_pre_filter_skips_when_every_hard_taint_is_tolerated(
    tolerations: tuple[Toleration, ...],
) -> None:
    assert filter_mask(*tolerations) is None


def test_pre_filter_skips_without_taints() -> None:
    state = make_state(2)
    cycle = make_cycle(state, make_request())
    plugin = TaintToleration()
    assert plugin.pre_filter(state, cycle).code is Code.SKIP
    assert plugin.pre_score(state, cycle, state.schedulable).code is Code.SKIP


def test_explain_names_the_untolerated_taints() -> None:
    state = make_state([make_node("a", taints=[GPU, DEDICATED, SPOT])])
    cycle = make_cycle(state, make_request())
    plugin = TaintToleration()
    plugin.pre_filter(state, cycle)
    assert plugin.explain(state, cycle, np.array([0])) == [
        "untolerated taint gpu=true:NoSchedule, dedicated:NoExecute"
    ]


def normalized(*tolerations: Toleration, feasible: list[bool] | None = None) -> list[float]:
    state = tainted_state()
    cycle = make_cycle(state, make_request(tolerations=tolerations))
    mask = np.array(feasible) if feasible is not None else np.ones(len(state), dtype=bool)
    plugin = TaintToleration()
    assert plugin.pre_score(state, cycle, mask).ok
    raw = plugin.score(state, cycle, mask)
    return plugin.normalize(state, cycle, raw, mask).tolist()


def test_score_prefers_fewer_untolerated_prefer_no_schedule_taints() -> None:
    # docstring: untolerated counts 0, 1, 2 → 100, 50, 0 (max 2: 100 - c*100//2)
    # plain 0, gpu 0, dedicated 0, spot 1, spot-old 2
    assert normalized() == [100, 100, 100, 50, 0]


def test_score_counts_only_untolerated_taints() -> None:
    # spot tolerated: counts 0, 0, 0, 0, 1 → max 1
    assert normalized(toleration("spot", operator="Exists")) == [100, 100, 100, 100, 0]


def test_score_maximum_is_over_feasible_nodes() -> None:
    # spot-old (2) infeasible: the max is spot's 1 → spot 0, the others 100
    assert normalized(feasible=[True, True, True, True, False])[:4] == [100, 100, 100, 0]
    # no feasible node carries a soft taint: all 100
    assert normalized(feasible=[True, True, True, False, False])[:3] == [100, 100, 100]


def test_pre_score_skips_when_soft_taints_are_tolerated() -> None:
    state = tainted_state()
    request = make_request(tolerations=[toleration(operator="Exists", effect="PreferNoSchedule")])
    cycle = make_cycle(state, request)
    assert TaintToleration().pre_score(state, cycle, state.schedulable).code is Code.SKIP


def test_one_plugin_judges_each_set_of_tolerations_on_its_own_and_per_state() -> None:
    """Verdicts are kept per set of tolerations and per state: a second request with
    other tolerations, or the same ones on another state, gets its own answer."""
    plugin = TaintToleration()
    state = tainted_state()

    def mask_of(on: ClusterState, *tolerations: Toleration) -> list[bool]:
        cycle = make_cycle(on, make_request(tolerations=tolerations))
        assert plugin.pre_filter(on, cycle).ok
        return plugin.filter(on, cycle).tolist()

    plain = mask_of(state)
    assert plain == [True, False, False, True, True]
    assert mask_of(state, toleration("gpu", "true")) == [True, True, False, True, True]
    assert mask_of(state) == plain
    shared = plugin.filter(state, make_cycle(state, make_request()))
    with pytest.raises(ValueError, match="read-only"):
        shared[0] = False  # shared by every such request: no caller may write into it
    other = make_state([make_node("gpu", taints=[GPU]), make_node("plain")])
    assert mask_of(other) == [False, True]
