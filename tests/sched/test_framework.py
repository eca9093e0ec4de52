"""Profile: phases detected once, weights and row-local rules checked when it is built."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.sched import CycleState, Profile, ProfileError
from harmonia.sched.framework import (
    OK,
    Code,
    Plugin,
    Status,
    is_row_local_filter,
    is_row_local_score,
)
from harmonia.sched.plugins import (
    BalancedAllocation,
    Direct,
    LeastAllocated,
    NodeAffinity,
    NodeResourcesFit,
    NodeSchedulable,
    RoundRobin,
    ServiceAntiAffinity,
    TaintToleration,
)
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray, NodeRow


class Flat:
    """A score plugin that gives every node 50."""

    name = "Flat"

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        return np.full(len(state), 50.0)


class RowLocalNormalizing:
    """Claims to be row-local but normalizes: its cached scores would go stale."""

    name = "RowLocalNormalizing"
    row_local = True

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        return np.zeros(len(state))

    def score_node(self, row: NodeRow, cycle: CycleState) -> float:
        return 0.0

    def normalize(
        self, state: ClusterState, cycle: CycleState, scores: FloatArray, feasible: BoolArray
    ) -> FloatArray:
        return scores


class RowLocalPreScoring:
    """Claims to be row-local but pre-scores: it would see only the first feasible set."""

    name = "RowLocalPreScoring"
    row_local = True

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        return np.zeros(len(state))

    def score_node(self, row: NodeRow, cycle: CycleState) -> float:
        return 0.0

    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status:
        return OK


class RowLocalScoreWithoutScalar:
    name = "NoScoreNode"
    row_local = True

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        return np.zeros(len(state))


class RowLocalFilterWithoutScalar:
    name = "NoFilterNode"
    row_local_filter = True

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        return np.ones(len(state), dtype=bool)

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        return []


@pytest.mark.parametrize(
    ("plugins", "weights", "message"),
    [
        ([NodeResourcesFit(), NodeResourcesFit()], None, "plugin names repeat"),
        ([NodeResourcesFit(), Flat()], {"NodeResourcesFit": 2}, "'NodeResourcesFit', not a score"),
        ([NodeResourcesFit(), Flat()], {"Missing": 1}, "'Missing', not a score plugin"),
        ([NodeResourcesFit(), Flat()], {"Flat": 0}, "weight of 'Flat' must be a positive int"),
        ([NodeResourcesFit(), Flat()], {"Flat": -3}, "weight of 'Flat' must be a positive int"),
        ([NodeResourcesFit(), Flat()], {"Flat": 1.5}, "weight of 'Flat' must be a positive int"),
        ([Flat(), LeastAllocated()], None, "has no filter plugin"),
        (
            [NodeResourcesFit(), RowLocalNormalizing()],
            None,
            "row-local score 'RowLocalNormalizing' must not pre-score or normalize",
        ),
        (
            [NodeResourcesFit(), RowLocalPreScoring()],
            None,
            "row-local score 'RowLocalPreScoring' must not pre-score or normalize",
        ),
        ([NodeResourcesFit(), RowLocalScoreWithoutScalar()], None, "lacks score_node"),
        ([RowLocalFilterWithoutScalar()], None, "'NoFilterNode' lacks filter_node"),
    ],
)
def test_malformed_profiles_are_refused_when_built(
    plugins: list[Plugin], weights: dict[str, int] | None, message: str
) -> None:
    with pytest.raises(ProfileError, match=message):
        Profile("bad", plugins, weights)


def test_phases_are_detected_from_the_methods_a_plugin_has() -> None:
    fit, affinity, taints, least, rr = (
        NodeResourcesFit(),
        NodeAffinity(),
        TaintToleration(),
        LeastAllocated(),
        RoundRobin(),
    )
    profile = Profile("p", [fit, affinity, taints, least, rr], {"LeastAllocated": 2})

    assert profile.pre_filters == [fit, affinity, taints]
    assert profile.filters == [fit, affinity, taints]
    assert profile.pre_scores == [affinity, taints]
    assert profile.scores == [affinity, taints, least, rr]
    assert profile.reserves == [rr]
    assert profile.permits == [] and profile.binds == []
    # unnamed score plugins weigh 1
    assert profile.weights == {
        "NodeAffinity": 1,
        "TaintToleration": 1,
        "LeastAllocated": 2,
        "RoundRobin": 1,
    }
    assert repr(profile) == (
        "Profile('p': NodeResourcesFit, NodeAffinity×1, TaintToleration×1, "
        "LeastAllocated×2, RoundRobin×1)"
    )


def test_constraint_types_are_gathered_from_the_plugins() -> None:
    profile = Profile("p", [NodeSchedulable(), Direct(), NodeAffinity(), ServiceAntiAffinity()])
    assert profile.constraint_types == {"direct", "node_affinity", "anti_affinity"}
    assert Profile("q", [NodeResourcesFit()]).constraint_types == frozenset()


def test_row_local_filter_may_normalize_its_non_row_local_score() -> None:
    # TaintToleration's filter is row-local, its normalized score is not.
    taints = TaintToleration()
    assert is_row_local_filter(taints) and not is_row_local_score(taints)
    Profile("p", [taints])


@pytest.mark.parametrize(
    ("plugin", "row_local_filter", "row_local_score"),
    [
        (NodeSchedulable(), True, True),  # ``row_local`` covers both phases it has
        (NodeResourcesFit(), True, True),
        (LeastAllocated(), True, True),
        (BalancedAllocation(), True, True),
        (TaintToleration(), True, False),
        (NodeAffinity(), False, False),
        (Flat(), False, False),
    ],
)
def test_row_local_flags(plugin: Plugin, row_local_filter: bool, row_local_score: bool) -> None:
    assert is_row_local_filter(plugin) is row_local_filter
    assert is_row_local_score(plugin) is row_local_score


def test_status_ok_only_for_ok() -> None:
    assert Status().ok
    assert not Status(Code.SKIP).ok
    assert not Status(Code.UNSCHEDULABLE, ("full",)).ok
