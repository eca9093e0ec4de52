"""Row-local plugins: the scalar path (``filter_node``/``score_node`` on ``state.row(i)``)
equals the vector path (``filter(...)[i]``/``score(...)[i]``) exactly, on random states.

The scheduler caches row-local results per request shape and refreshes changed rows
through the scalar path, so any difference would make cached decisions differ from full
ones. Row-local filters: NodeSchedulable, NodeResourcesFit, TaintToleration; row-local
scores: LeastAllocated, MostAllocated, RequestedToCapacityRatio, BalancedAllocation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmonia.model import RESOURCE_NAMES, Node, PlacementRequest, Resources, Toleration
from harmonia.model.resources import MAX_AMOUNT
from harmonia.sched import ClusterState, Code, get_policy, policy_names
from harmonia.sched.framework import is_row_local_filter, is_row_local_score
from harmonia.sched.plugins import (
    AllocationConfig,
    BalancedAllocation,
    LeastAllocated,
    MostAllocated,
    NodeResourcesFit,
    NodeSchedulable,
    RatioConfig,
    RequestedToCapacityRatio,
    ShapePoint,
    TaintToleration,
)
from tests.builders import make_cycle, taint, toleration

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Small, edge-like and cloud-like amounts, with zero and "just above" values common, and
# amounts near MAX_AMOUNT, where the float paths must still be exact.
amount = st.one_of(
    st.just(0),
    st.integers(1, 16),
    st.integers(0, 70_000),
    st.sampled_from([1000, 1024, 4000, 4096, 65_536]),
    st.integers(MAX_AMOUNT - 1000, MAX_AMOUNT),
)
vectors = st.lists(amount, min_size=len(RESOURCE_NAMES), max_size=len(RESOURCE_NAMES))
TAINTS = [
    taint("gpu", "true"),
    taint("gpu", "false"),
    taint("dedicated", effect="NoExecute"),
    taint("spot", effect="PreferNoSchedule"),
]
TOLERATIONS = [
    toleration("gpu", "true"),
    toleration("gpu", operator="Exists"),
    toleration("dedicated", operator="Exists", effect="NoExecute"),
    toleration("spot"),
    toleration(operator="Exists"),
]


@st.composite
def states(draw: st.DrawFn) -> ClusterState:
    """1-8 nodes; allocatable anywhere from 0 to capacity; random reservations that may
    overshoot the allocatable amount (``reserve`` does not check); some nodes down."""
    count = draw(st.integers(1, 8))
    nodes = []
    for i in range(count):
        capacity = draw(vectors)
        allocatable = [draw(st.integers(0, c)) for c in capacity]
        nodes.append(
            Node(
                name=f"n{i}",
                capacity=Resources.from_tuple(capacity),
                allocatable=Resources.from_tuple(allocatable),
                taints=tuple(draw(st.lists(st.sampled_from(TAINTS), unique=True, max_size=3))),
            )
        )
    state = ClusterState(nodes)
    for _ in range(draw(st.integers(0, 12))):
        node = draw(st.integers(0, count - 1))
        state.reserve(node, request_of(draw(vectors)))
    for i in range(count):
        if draw(st.booleans()):
            state.set_healthy(f"n{i}", draw(st.booleans()))
            state.set_cordoned(f"n{i}", draw(st.booleans()))
    return state


def request_of(amounts: list[int], tolerations: list[Toleration] | None = None) -> PlacementRequest:
    return PlacementRequest(
        id="r",
        tolerations=tuple(tolerations or ()),
        **dict(zip(RESOURCE_NAMES, amounts, strict=True)),
    )


requests = st.builds(
    request_of, vectors, st.lists(st.sampled_from(TOLERATIONS), unique=True, max_size=2)
)

weighted_resources = st.lists(
    st.tuples(st.sampled_from(RESOURCE_NAMES), st.integers(1, 13)),
    min_size=1,
    max_size=len(RESOURCE_NAMES),
    unique_by=lambda pair: pair[0],
).map(tuple)


@st.composite
def shapes(draw: st.DrawFn) -> tuple[ShapePoint, ...]:
    xs = sorted(draw(st.sets(st.integers(0, 100), min_size=1, max_size=5)))
    return tuple(ShapePoint(x, draw(st.integers(0, 100))) for x in xs)


PluginFactory = Callable[[st.DataObject], Any]

ROW_LOCAL_FILTERS: dict[str, PluginFactory] = {
    "NodeSchedulable": lambda data: NodeSchedulable(),
    "NodeResourcesFit": lambda data: NodeResourcesFit(),
    "TaintToleration": lambda data: TaintToleration(),
}
ROW_LOCAL_SCORES: dict[str, PluginFactory] = {
    "LeastAllocated": lambda data: LeastAllocated(AllocationConfig(data.draw(weighted_resources))),
    "MostAllocated": lambda data: MostAllocated(AllocationConfig(data.draw(weighted_resources))),
    "RequestedToCapacityRatio": lambda data: RequestedToCapacityRatio(
        RatioConfig(data.draw(weighted_resources), data.draw(shapes()))
    ),
    "BalancedAllocation": lambda data: BalancedAllocation(
        AllocationConfig(data.draw(weighted_resources))
    ),
}


def test_every_row_local_plugin_of_every_policy_is_covered_here() -> None:
    plugins = [plugin for name in policy_names() for plugin in get_policy(name).plugins]
    filters = {p.name for p in plugins if is_row_local_filter(p) and hasattr(p, "filter")}
    scores = {p.name for p in plugins if is_row_local_score(p) and hasattr(p, "score")}
    assert filters <= set(ROW_LOCAL_FILTERS)
    assert scores <= set(ROW_LOCAL_SCORES)
    assert {"NodeSchedulable", "NodeResourcesFit"} <= filters


# NOTE: one example checks every plugin of a kind; drawing a state costs far more than
# checking a plugin on it, and the assertion message names the plugin that differs.


@SETTINGS
@given(state=states(), request=requests, data=st.data())
def test_scalar_filter_equals_vector_filter(
    state: ClusterState, request: PlacementRequest, data: st.DataObject
) -> None:
    for name, factory in ROW_LOCAL_FILTERS.items():
        plugin = factory(data)
        assert is_row_local_filter(plugin), name
        cycle = make_cycle(state, request)
        if hasattr(plugin, "pre_filter") and plugin.pre_filter(state, cycle).code is not Code.OK:
            continue  # a skipped filter is used by neither path

        mask = plugin.filter(state, cycle).tolist()
        scalar = [plugin.filter_node(state.row(i), cycle) for i in range(len(state))]
        assert scalar == mask, name


@SETTINGS
@given(state=states(), request=requests, data=st.data())
def test_scalar_score_equals_vector_score(
    state: ClusterState, request: PlacementRequest, data: st.DataObject
) -> None:
    for name, factory in ROW_LOCAL_SCORES.items():
        plugin = factory(data)
        assert is_row_local_score(plugin), name
        cycle = make_cycle(state, request)

        vector = plugin.score(state, cycle, state.schedulable).tolist()
        scalar = [plugin.score_node(state.row(i), cycle) for i in range(len(state))]
        assert scalar == vector, name  # bit for bit, not approximately
        assert all(0 <= s <= 100 for s in vector), name
