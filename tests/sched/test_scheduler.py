"""Scheduler: one decision and batches; reservations, unschedulable and unresolvable
requests as data, ties, constraints end to end, and the reserve/permit/bind rollback."""

from __future__ import annotations

import random

import pytest

from harmonia.model import (
    AntiAffinityConstraint,
    DirectConstraint,
    GeoConstraint,
    GeoPoint,
    LatencyConstraint,
    NodeAffinityConstraint,
)
from harmonia.sched import (
    Code,
    CycleState,
    Decision,
    Profile,
    Scheduler,
    Status,
    UnknownPolicyError,
    get_policy,
    policy_names,
    scheduler_for,
)
from harmonia.sched.framework import OK, Plugin
from harmonia.sched.plugins import (
    LeastAllocated,
    NodeResourcesFit,
    NodeSchedulable,
    TaintToleration,
)
from harmonia.sched.state import ClusterState
from tests.builders import make_node, make_request, make_state, taint, toleration

# -- placing and reserving ------------------------------------------------------------------


def test_a_placement_is_reserved_at_once() -> None:
    state = make_state([make_node("small", cpu=2000), make_node("big", cpu=8000)])
    decision = Scheduler(state).schedule(make_request("r1", cpu=1000, mem=512, service="web"))

    assert decision.code is Code.OK
    assert decision.node == "big"  # LeastAllocated: 7000/8000 left beats 1000/2000
    assert decision.placed
    assert decision.nodes_total == 2 and decision.nodes_feasible == 2
    assert decision.policy == "default"
    assert decision.summary() == "r1 -> big (2/2 feasible)"
    assert state.allocated[1, :2].tolist() == [1000, 512]
    assert state.counts_of("web").tolist() == [0, 1]


def test_decisions_see_previous_reservations() -> None:
    state = make_state(3)  # 3 × 4000m
    scheduler = Scheduler(state)
    plan = scheduler.schedule_many(make_request(f"r{i}", cpu=1000) for i in range(13))

    assert plan.scheduled == 12  # 3 nodes × 4 requests of 1000m
    assert plan.unschedulable == 1
    assert plan.decisions[-1].code is Code.UNSCHEDULABLE
    assert state.allocated[:, 0].tolist() == [4000, 4000, 4000]
    assert not state.free.min() < 0


@pytest.mark.parametrize("policy", policy_names())
def test_no_over_commit_under_any_policy(policy: str) -> None:
    rng = random.Random(policy)
    state = make_state(
        [
            make_node(f"n{i}", cpu=rng.choice([1000, 2000, 4000]), mem=rng.choice([1024, 4096]))
            for i in range(8)
        ]
    )
    requests = [
        make_request(f"r{i}", cpu=rng.choice([100, 250, 500, 1000]), mem=rng.choice([0, 128, 512]))
        for i in range(200)
    ]

    plan = Scheduler(state, policy, seed=1).schedule_many(requests)

    assert plan.scheduled > 0 and plan.unschedulable > 0
    assert (state.allocated <= state.allocatable).all()
    # what the plan placed is exactly what the state holds
    by_id = {r.id: r for r in requests}
    placed_cpu = sum(by_id[request_id].cpu_m for request_id, _ in plan.placements)
    assert int(state.allocated[:, 0].sum()) == placed_cpu


def test_schedule_many_returns_a_plan() -> None:
    state = make_state([make_node("a", cpu=1000), make_node("b", cpu=1000)])
    seen: list[Decision] = []
    requests = [
        make_request("r1", cpu=800),
        make_request("r2", cpu=800),
        make_request("r3", cpu=800),
    ]

    plan = Scheduler(state).schedule_many(requests, on_decision=seen.append)

    assert plan.placements == [("r1", "a"), ("r2", "b")]
    assert (plan.scheduled, plan.unschedulable) == (2, 1)
    assert [d.request_id for d in plan.decisions] == ["r1", "r2", "r3"]
    assert seen == plan.decisions
    assert plan.evictions == [] and plan.migrations == []
    assert plan.seconds >= 0


@pytest.mark.parametrize("policy", ["default", "binpack", "spread", "ratio", "round-robin"])
def test_ties_go_to_the_lowest_node_index(policy: str) -> None:
    state = make_state(5)
    assert Scheduler(state, policy).schedule(make_request(cpu=100)).node == "n0"


def test_released_capacity_is_used_again() -> None:
    state = make_state(1)
    scheduler = Scheduler(state)
    first = make_request("r1", cpu=4000)
    assert scheduler.schedule(first).placed
    assert not scheduler.schedule(make_request("r2", cpu=1)).placed

    state.release(0, first)  # the host ends the instance

    assert scheduler.schedule(make_request("r3", cpu=4000)).node == "n0"


def test_health_and_cordon_changes_apply_to_the_next_decision() -> None:
    state = make_state([make_node("a", cpu=8000), make_node("b")])
    scheduler = Scheduler(state)
    assert scheduler.schedule(make_request("r1", cpu=10)).node == "a"
    state.set_healthy("a", False)
    assert scheduler.schedule(make_request("r2", cpu=10)).node == "b"
    state.set_healthy("a", True)
    state.set_cordoned("b", True)
    assert scheduler.schedule(make_request("r3", cpu=10)).node == "a"
    state.set_cordoned("a", True)
    assert scheduler.schedule(make_request("r4", cpu=10)).code is Code.UNSCHEDULABLE


def test_a_what_if_on_a_copy_leaves_the_state_alone() -> None:
    state = make_state(2)
    Scheduler(state).schedule(make_request("r1", cpu=1000, service="web"))
    before = state.allocated.copy()

    what_if = Scheduler(state.copy())
    plan = what_if.schedule_many(make_request(f"w{i}", cpu=1000, service="web") for i in range(5))

    assert plan.scheduled == 5
    assert state.allocated.tolist() == before.tolist()
    assert state.counts_of("web").tolist() == [1, 0]


# -- unschedulable and unresolvable ---------------------------------------------------------


def test_unschedulable_request_is_a_decision_with_a_summary() -> None:
    state = make_state(3)
    for i in range(3):
        state.reserve(i, make_request(cpu=2500))  # 1500m free everywhere

    decision = Scheduler(state).schedule(make_request("big", cpu=2000))

    assert decision.code is Code.UNSCHEDULABLE
    assert decision.node is None and not decision.placed
    assert decision.nodes_feasible == 0
    assert decision.reasons == [
        "0/3 nodes are available: 3 rejected by NodeResourcesFit "
        "(e.g. n0: insufficient cpu_m 2000m > free 1500m)"
    ]
    assert decision.summary() == "big: " + decision.reasons[0]
    [rejection] = decision.rejections
    assert (rejection.plugin, rejection.count) == ("NodeResourcesFit", 3)
    assert rejection.examples == tuple(
        f"n{i}: insufficient cpu_m 2000m > free 1500m" for i in range(3)
    )
    assert state.allocated[:, 0].tolist() == [2500] * 3  # nothing reserved


def test_each_rejected_node_counts_once_for_the_first_filter_that_rejects_it() -> None:
    state = make_state(
        [
            make_node("down", cpu=1000),
            make_node("cordoned", unschedulable=True),
            make_node("small", cpu=1000),
            make_node("tainted", taints=[taint("gpu", "true")]),
            make_node("tiny", cpu=500),
        ]
    )
    state.set_healthy("down", False)

    decision = Scheduler(state).schedule(make_request("r", cpu=2000))

    assert [(r.plugin, r.count) for r in decision.rejections] == [
        ("NodeSchedulable", 2),
        ("NodeResourcesFit", 2),  # "down" is too small as well but counts once
        ("TaintToleration", 1),
    ]
    assert decision.reasons == [
        "0/5 nodes are available: "
        "2 rejected by NodeSchedulable (e.g. down: node is unhealthy), "
        "2 rejected by NodeResourcesFit (e.g. small: insufficient cpu_m 2000m > free 1000m), "
        "1 rejected by TaintToleration (e.g. tainted: untolerated taint gpu=true:NoSchedule)"
    ]


def test_too_big_for_any_node_is_unresolvable() -> None:
    state = make_state(3)
    decision = Scheduler(state).schedule(make_request("huge", cpu=5000))
    assert decision.code is Code.UNRESOLVABLE
    assert decision.reasons == [
        "NodeResourcesFit: cpu_m 5000m exceeds the largest node's allocatable 4000m"
    ]


# ``latency`` and ``ldp`` enforce both (tests/sched/test_latency_policy.py,
# tests/sched/test_hierarchy.py); delegated policies refuse at the root, as flat ones do.
@pytest.mark.parametrize(
    "policy",
    [p for p in policy_names() if not {"latency", "geo"} & get_policy(p).constraint_types],
)
def test_unenforced_constraint_is_unresolvable_not_ignored(policy: str) -> None:
    request = make_request(
        "r",
        cpu=100,
        constraints=[
            LatencyConstraint(threshold_ms=20, target="n0"),
            GeoConstraint(location=GeoPoint(lat=48.1, long=11.6), threshold_km=50),
        ],
    )
    decision = scheduler_for(make_state(2), policy).schedule(request)
    assert decision.code is Code.UNRESOLVABLE
    assert decision.reasons == [
        f"policy {policy!r} has no plugin that enforces 'geo' constraints",
        f"policy {policy!r} has no plugin that enforces 'latency' constraints",
    ]


def test_delay_labels_are_latency_constraints_not_ignored() -> None:
    # kubernetes-edge-scheduler's label: within 25 ms of node n1
    request = make_request("r", cpu=100, labels={"delay_n1": "25", "tier": "web"})
    decision = Scheduler(make_state(2), "default").schedule(request)
    assert decision.code is Code.UNRESOLVABLE
    assert decision.reasons == [
        "policy 'default' has no plugin that enforces 'latency' constraints "
        "(delay labels are latency constraints)"
    ]


def test_plain_labels_do_not_constrain() -> None:
    request = make_request("r", cpu=100, labels={"tier": "web"})
    assert Scheduler(make_state(2), "default").schedule(request).node == "n0"


def test_unknown_direct_target_is_unresolvable() -> None:
    request = make_request("r", constraints=[DirectConstraint(nodes=("n0", "ghost"))])
    decision = Scheduler(make_state(2)).schedule(request)
    assert decision.code is Code.UNRESOLVABLE
    assert decision.reasons == ["Direct: unknown node 'ghost'"]


def test_unknown_policy_name() -> None:
    with pytest.raises(UnknownPolicyError, match="unknown policy 'nope'"):
        Scheduler(make_state(1), "nope")


# -- constraints end to end -----------------------------------------------------------------


def test_built_in_constraints_are_enforced() -> None:
    state = make_state(
        [
            make_node("a", cpu=16000, cluster="x", labels={"zone": "z1"}),
            make_node("b", cluster="x", labels={"zone": "z2"}),
            make_node("c", cluster="y", labels={"zone": "z2"}, taints=[taint("edge")]),
        ]
    )
    scheduler = Scheduler(state)
    zone2 = NodeAffinityConstraint(match_labels={"zone": "z2"})
    assert scheduler.schedule(make_request("r1", constraints=[zone2])).node == "b"
    assert (
        scheduler.schedule(make_request("r2", constraints=[DirectConstraint(cluster="y")])).code
        is Code.UNSCHEDULABLE
    )
    tolerated = make_request(
        "r3", constraints=[DirectConstraint(cluster="y")], tolerations=[toleration("edge")]
    )
    assert scheduler.schedule(tolerated).node == "c"

    one_per_node = AntiAffinityConstraint()
    nodes = [
        scheduler.schedule(
            make_request(
                f"w{i}", service="web", constraints=[one_per_node], tolerations=[toleration("edge")]
            )
        ).node
        for i in range(4)
    ]
    assert set(nodes[:3]) == {"a", "b", "c"}
    assert nodes[3] is None


# -- reserve, permit and bind ---------------------------------------------------------------


class Ledger:
    """A reserve plugin that records its calls and may refuse."""

    def __init__(self, name: str, calls: list[str], refuse: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.refuse = refuse

    def reserve(self, state: ClusterState, cycle: CycleState, node: int) -> Status:
        self.calls.append(f"{self.name}.reserve {state.names[node]}")
        return Status(Code.UNSCHEDULABLE, ("ledger full",)) if self.refuse else OK

    def unreserve(self, state: ClusterState, cycle: CycleState, node: int) -> None:
        self.calls.append(f"{self.name}.unreserve {state.names[node]}")


class Gate:
    """A permit plugin that refuses with ``status``; records what it saw allocated."""

    name = "Gate"

    def __init__(self, status: Status) -> None:
        self.status = status
        self.seen_allocated: list[int] = []

    def permit(self, state: ClusterState, cycle: CycleState, node: int) -> Status:
        self.seen_allocated.append(int(state.allocated[node, 0]))
        return self.status


class Binder:
    name = "Binder"

    def __init__(self, status: Status) -> None:
        self.status = status

    def bind(self, state: ClusterState, cycle: CycleState, node: int) -> Status:
        return self.status


def gated_profile(*extra: Plugin) -> Profile:
    plugins: list[Plugin] = [NodeSchedulable(), NodeResourcesFit(), LeastAllocated(), *extra]
    return Profile("gated", plugins)


def test_permit_refusal_rolls_back_the_reservation() -> None:
    calls: list[str] = []
    gate = Gate(Status(Code.UNSCHEDULABLE, ("maintenance window",)))
    state = make_state(2)
    scheduler = Scheduler(state, gated_profile(Ledger("L1", calls), Ledger("L2", calls), gate))

    decision = scheduler.schedule(make_request("r", cpu=1000, service="web"))

    assert gate.seen_allocated == [1000]  # the permit saw the reservation ...
    assert not state.allocated.any()  # ... which was undone
    assert state.free.tolist() == state.allocatable.tolist()
    assert state.counts_of("web").tolist() == [0, 0]
    assert decision.code is Code.UNSCHEDULABLE
    assert decision.node is None
    assert decision.reasons == ["Gate refused n0: maintenance window"]
    # every reserve plugin is unreserved, in reverse order
    assert calls == ["L1.reserve n0", "L2.reserve n0", "L2.unreserve n0", "L1.unreserve n0"]


def test_permit_refusal_keeps_its_code() -> None:
    gate = Gate(Status(Code.UNRESOLVABLE))
    decision = Scheduler(make_state(1), gated_profile(gate)).schedule(make_request(cpu=1))
    assert decision.code is Code.UNRESOLVABLE
    assert decision.reasons == ["Gate refused n0"]


def test_reserve_refusal_unreserves_every_reserve_plugin_in_reverse() -> None:
    calls: list[str] = []
    state = make_state(1)
    profile = gated_profile(
        Ledger("L1", calls), Ledger("L2", calls, refuse=True), Ledger("L3", calls)
    )

    decision = Scheduler(state, profile).schedule(make_request(cpu=500))

    assert decision.reasons == ["L2 refused n0: ledger full"]
    # As in Kubernetes: all reserve plugins unreserve, in reverse, whether or not they ran.
    assert calls == [
        "L1.reserve n0",
        "L2.reserve n0",
        "L3.unreserve n0",
        "L2.unreserve n0",
        "L1.unreserve n0",
    ]
    assert not state.allocated.any()


def test_bind_refusal_rolls_back() -> None:
    calls: list[str] = []
    state = make_state(1)
    profile = gated_profile(Ledger("L1", calls), Binder(Status(Code.ERROR, ("store down",))))

    decision = Scheduler(state, profile).schedule(make_request(cpu=500))

    assert decision.code is Code.ERROR
    assert decision.reasons == ["Binder refused n0: store down"]
    assert calls == ["L1.reserve n0", "L1.unreserve n0"]
    assert not state.allocated.any()


def test_permitted_placement_binds() -> None:
    state = make_state(1)
    profile = gated_profile(Gate(OK), Binder(OK))
    assert Scheduler(state, profile).schedule(make_request(cpu=500)).node == "n0"
    assert state.allocated[0, 0] == 500


def test_a_profile_instance_may_be_passed() -> None:
    profile = Profile("mine", [NodeResourcesFit(), LeastAllocated()])
    scheduler = Scheduler(make_state(2), profile)
    assert scheduler.profile is profile
    assert scheduler.schedule(make_request(cpu=1)).policy == "mine"


def taints_only() -> Scheduler:
    profile = Profile("taints-only", [TaintToleration(), LeastAllocated()])
    state = make_state([make_node("a", cpu=1000), make_node("b", cpu=8000)])
    return Scheduler(state, profile, cache=False)


def test_a_profile_whose_filters_all_skip_places_anywhere_cached() -> None:
    scheduler = taints_only()
    scheduler.cache = True
    # a: cpu 500*100//1000 = 50, mem 100 → 75; b: cpu 7500*100//8000 = 93, mem 100 → 96
    assert scheduler.schedule(make_request(cpu=500)).node == "b"


@pytest.mark.parametrize("explain", [False, True])
def test_a_profile_whose_filters_all_skip_places_anywhere_full(explain: bool) -> None:
    assert taints_only().schedule(make_request(cpu=500), explain=explain).node == "b"


def test_an_empty_state_places_nothing() -> None:
    scheduler = Scheduler(make_state([]))
    sized = scheduler.schedule(make_request("r1", cpu=1))
    assert sized.code is Code.UNRESOLVABLE  # larger than the largest node (none)
    empty = scheduler.schedule(make_request("r2"))
    assert empty.code is Code.UNSCHEDULABLE
    assert empty.reasons == ["0/0 nodes are available"]


def test_unexplained_failures_still_refuse_and_change_nothing() -> None:
    state = make_state(2)
    scheduler = Scheduler(state, "default", explain_failures=False)
    decision = scheduler.schedule(make_request("big", cpu=3000, mem=1))
    decision = scheduler.schedule(make_request("big2", cpu=3000, mem=1))
    decision = scheduler.schedule(make_request("big3", cpu=3000, mem=1))
    assert decision.code is Code.UNSCHEDULABLE
    assert decision.node is None
    assert decision.reasons == ["0/2 nodes are available"]
    assert decision.rejections == []
    assert int(state.allocated[:, 0].sum()) == 6000
