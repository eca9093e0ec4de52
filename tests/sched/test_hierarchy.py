"""Delegated scheduling (``rom``, ``ldp``): root → cluster → node.

The root never asks a cluster that lacks what it checks (a node with each requested
resource free for ``rom``; a schedulable node with room within every geo and latency
bound for ``ldp``), and a cluster of many small free nodes is not chosen for a request
none of them holds (Oakestra's summed-capacity check). Placements meet every constraint,
checked by brute force; nothing is ever over-committed over long random sequences with
releases and health changes, whether the host goes through the scheduler or changes the
global state directly; the global state and the clusters' sub-states stay identical row
for row; refusals name the clusters tried; the row cache on and off decide alike.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from harmonia.model import (
    DirectConstraint,
    GeoPoint,
    LatencyConstraint,
    Node,
    NodeRole,
    PlacementRequest,
    Topology,
    generate_nodes,
)
from harmonia.sched import (
    ClusterState,
    Code,
    DelegatedProfile,
    DelegatingScheduler,
    ProfileError,
    Scheduler,
    get_policy,
    policy_names,
    scheduler_for,
)
from harmonia.sched import shapes as shapes_module
from harmonia.sched import state as state_module
from harmonia.sched.hierarchy import NO_NODE, ClusterRows
from harmonia.sched.hierarchy import root as root_module
from harmonia.sched.hierarchy import rows as rows_module
from harmonia.sched.hierarchy.root import Rom, RootView
from harmonia.sched.state import Area, request_amounts
from tests.builders import make_node, make_request, make_state, place
from tests.sched.test_latency_policy import (
    SERVICES,
    World,
    add_areas,
    fits,
    random_bounds,
    world_of,
)

# -- helpers -------------------------------------------------------------------------------


def spy(scheduler: DelegatingScheduler, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every cluster the root asks, in order."""
    asked: list[str] = []
    for scope in scheduler.clusters:
        original = scope.scheduler.schedule

        def schedule(
            request: PlacementRequest,
            *,
            explain: bool = False,
            name: str = scope.name,
            original: Callable[..., object] = original,
        ) -> object:
            asked.append(name)
            return original(request, explain=explain)

        monkeypatch.setattr(scope.scheduler, "schedule", schedule)
    return asked


def assert_mirrored(scheduler: DelegatingScheduler) -> None:
    """Every sub-state equals its cluster's rows of the global state (once direct changes
    to the global state are copied, as the next decision would)."""
    scheduler.sync()
    state = scheduler.state
    for scope in scheduler.clusters:
        sub, members = scope.state, scope.members
        assert sub.names == [state.names[i] for i in members.tolist()]
        for column in ("allocated", "free", "allocated_f", "free_f", "healthy", "cordoned"):
            assert np.array_equal(getattr(sub, column), getattr(state, column)[members]), column
        assert np.array_equal(sub.schedulable, state.schedulable[members])
        for service, counts in state.service_counts.items():
            assert np.array_equal(sub.counts_of(service), counts[members]), service
            in_cluster = state.cluster_counts_of(service)[scope.index]
            assert sub.cluster_counts_of(service)[0] == in_cluster


def assert_not_over_committed(scheduler: DelegatingScheduler) -> None:
    for state in (scheduler.state, *(scope.state for scope in scheduler.clusters)):
        assert (state.allocated <= state.allocatable).all()
        assert (state.free >= 0).all()


def clusters_of(state: ClusterState, nodes: list[int]) -> set[str]:
    return {state.cluster_names[int(state.cluster_id[j])] for j in nodes}


def fleet(seed: int, count: int = 240, clusters: int = 6) -> tuple[ClusterState, list[Node]]:
    """A generated edge-cloud fleet with its RTT matrix and two user areas."""
    nodes = generate_nodes(count, clusters=clusters, seed=seed)
    state = ClusterState(nodes)
    topology = Topology.generate(nodes, np.random.default_rng(seed))
    state.attach_rtt(topology.names, topology.rtt_ms)
    located = [(n.location.lat, n.location.long) for n in nodes if n.location]
    add_areas(state, located, random.Random(seed))
    return state, nodes


# -- registration and construction -----------------------------------------------------------


def test_rom_and_ldp_are_delegated_policies_usable_by_name() -> None:
    assert {"rom", "ldp"} <= set(policy_names())
    for name, node_policy in (("rom", "default"), ("ldp", "latency")):
        profile = get_policy(name)
        assert isinstance(profile, DelegatedProfile)
        assert (profile.name, profile.root, profile.node_policy) == (name, name, node_policy)
        assert [p.name for p in profile.plugins] == [
            p.name for p in get_policy(node_policy).plugins
        ]
        scheduler = scheduler_for(make_state(2), name)
        assert isinstance(scheduler, DelegatingScheduler)
        assert scheduler.profile.name == name
        decision = scheduler.schedule(make_request("r", cpu=100))
        assert (decision.node, decision.policy) == ("n0", name)
    assert type(scheduler_for(make_state(2), "default")) is Scheduler
    assert type(scheduler_for(make_state(2), get_policy("latency"))) is Scheduler


def test_delegating_scheduler_refuses_a_flat_policy_or_no_cluster_to_try() -> None:
    with pytest.raises(ProfileError, match="policy 'default' is not delegated"):
        DelegatingScheduler(make_state(2), "default")
    with pytest.raises(ProfileError, match="max_clusters must be at least 1"):
        DelegatingScheduler(make_state(2), "rom", max_clusters=0)


def test_node_policy_can_be_chosen() -> None:
    state = make_state([make_node("a0", cluster="a"), make_node("a1", cluster="a")])
    scheduler = DelegatingScheduler(state, "rom", node_policy="binpack")
    placed = [scheduler.schedule(make_request(f"r{i}", cpu=500)).node for i in range(2)]
    assert placed == ["a0", "a0"]  # binpack on the nodes; default would spread
    assert scheduler.profile.name == "rom/binpack"


def test_scheduler_mutators_change_its_state() -> None:
    state = make_state(2)
    scheduler = Scheduler(state)
    request = make_request("r", cpu=1000, service="web")
    decision = scheduler.schedule(request)
    node = state.node_index(decision.node or "")
    scheduler.release(node, request)
    assert state.allocated.sum() == 0 and state.counts_of("web").sum() == 0
    scheduler.set_healthy("n1", False)
    scheduler.set_cordoned("n0", True)
    assert state.schedulable.tolist() == [False, False]


# -- the root's choice -------------------------------------------------------------------------


def test_rom_does_not_pick_a_cluster_of_many_small_free_nodes() -> None:
    # Cluster "many": 8 nodes with 1000m free each, 8000m in all (Oakestra's summed check
    # passes a 3000m request); cluster "one": a single node with 4000m free.
    nodes = [make_node(f"many-{i}", cpu=1000, cluster="many") for i in range(8)]
    nodes.append(make_node("one-0", cpu=4000, cluster="one"))
    state = make_state(nodes)
    rows = ClusterRows(state)
    assert rows.free[:, 0].tolist() == [8000, 4000]  # "many" sorts first
    assert rows.max_free[:, 0].tolist() == [1000, 4000]
    scheduler = DelegatingScheduler(state, "rom")
    decision = scheduler.schedule(make_request("big", cpu=3000))
    assert decision.node == "one-0"
    assert decision.reasons == []  # asked first, placed at once
    # a small request goes to the least-allocated cluster: "many" (8000m of 8000m free)
    assert scheduler.schedule(make_request("small", cpu=500)).node == "many-0"


def test_rom_ranks_clusters_by_least_allocated_then_name() -> None:
    nodes = [make_node(f"{c}-0", cpu=4000, cluster=c) for c in ("a", "b", "c")]
    state = make_state(nodes)
    place(state, "a-0", make_request(cpu=2000))
    scheduler = DelegatingScheduler(state, "rom")
    # b and c tie (empty); b sorts first. Then c is the emptiest; then a/b tie at 2000m...
    placed = [scheduler.schedule(make_request(f"r{i}", cpu=2000)).node for i in range(3)]
    assert placed == ["b-0", "c-0", "a-0"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rom_only_asks_clusters_with_each_resource_free_on_some_node(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    nodes = [
        make_node(
            f"n{i}",
            cpu=rng.choice([1000, 2000, 4000, 8000]),
            mem=rng.choice([1024, 4096, 16384]),
            gpu=rng.choice([0, 0, 0, 1]),
            cluster=f"c{rng.randrange(8)}",
            unschedulable=rng.random() < 0.1,
        )
        for i in range(80)
    ]
    state = make_state(nodes)
    scheduler = DelegatingScheduler(state, "rom", seed=seed)
    asked = spy(scheduler, monkeypatch)
    placed = 0
    for i in range(300):
        request = make_request(
            f"r{i}",
            cpu=rng.choice([250, 1000, 3000]),
            mem=rng.choice([0, 512, 6000]),
            gpu=rng.choice([0, 0, 1]),
        )
        # what the rows knew before the decision
        free, schedulable = state.free.copy(), state.schedulable.copy()
        asked.clear()
        decision = scheduler.schedule(request)
        amounts = request_amounts(request)
        for name in asked:
            members = [j for j in range(len(state)) if state.names[j].startswith("n")]
            in_cluster = [j for j in members if nodes[j].cluster == name and schedulable[j]]
            for r, amount in enumerate(amounts):
                if amount:
                    assert any(free[j, r] >= amount for j in in_cluster), (name, r)
        candidates = [j for j in range(len(state)) if schedulable[j] and (free[j] >= amounts).all()]
        if decision.node is None:
            # refused: no node fits anywhere, or the clusters asked (up to 3) all refused
            # and none of them had a fitting node
            assert not clusters_of(state, candidates) & set(asked)
            assert not candidates or len(asked) == 3
        else:
            placed += 1
            j = state.node_index(decision.node)
            assert j in candidates
        assert_not_over_committed(scheduler)
    assert placed > 50


def test_ldp_asks_only_clusters_with_a_node_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, nodes = fleet(seed=4)
    world = world_of(state, nodes)
    scheduler = DelegatingScheduler(state, "ldp", seed=4)
    asked = spy(scheduler, monkeypatch)
    rng = random.Random(4)
    outcomes: dict[Code, int] = {}
    for i in range(200):
        labels, constraints = random_bounds(rng, world.names, world.positions)
        service = rng.choice([*SERVICES, ""])
        cpu, mem = rng.choice([(250, 256), (1000, 1024), (4000, 8192)])
        request = make_request(
            f"r{i}", cpu=cpu, mem=mem, service=service, labels=labels, constraints=constraints
        )
        good = [
            j for j in range(len(state)) if fits(state, request, j) and world.bound_ok(request, j)
        ]
        within = [j for j in range(len(state)) if world.bound_ok(request, j)]
        asked.clear()
        decision = scheduler.schedule(request)
        outcomes[decision.code] = outcomes.get(decision.code, 0) + 1
        if labels or constraints:
            # each cluster asked has a schedulable node with room within every bound
            assert set(asked) <= clusters_of(state, good), (request, asked)
        if decision.node is not None:
            j = state.node_index(decision.node)
            assert j in good and j in within
            world.place(service, j)
        elif decision.code is Code.UNSCHEDULABLE:
            assert not clusters_of(state, good) & set(asked)
            assert not good or len(asked) == 3, (request, decision.reasons)
    assert outcomes.get(Code.OK, 0) > 80 and outcomes.get(Code.UNSCHEDULABLE, 0) > 5


def test_ldp_prefers_the_cluster_with_the_closest_node_and_the_cloud_for_unbounded() -> None:
    # Two edge clusters on a line, RTT 10 ms per step, and a cloud cluster far away.
    nodes = [
        make_node("a-0", cluster="a", role=NodeRole.EDGE),
        make_node("b-0", cluster="b", role=NodeRole.EDGE),
        make_node("z-0", cluster="z", role=NodeRole.CLOUD),
    ]
    state = make_state(nodes)
    state.attach_rtt(state.names, [[0, 10, 50], [10, 0, 50], [50, 50, 0]])
    place(state, "b-0", make_request(cpu=3000))  # b is busier, but closer to b-0 itself
    scheduler = DelegatingScheduler(state, "ldp")
    assert scheduler.schedule(make_request("near-b", cpu=100, labels={"delay_b-0": "20"})).node == (
        "b-0"
    )
    assert scheduler.schedule(make_request("near-a", cpu=100, labels={"delay_b-0": "20"})).node in {
        "b-0",
        "a-0",
    }
    assert scheduler.schedule(make_request("free", cpu=100)).node == "z-0"


# -- references across clusters ----------------------------------------------------------------


def line_clusters() -> ClusterState:
    """a-0 a-1 | b-0 b-1 on a line, 10 ms per step; all edge nodes."""
    names = ["a-0", "a-1", "b-0", "b-1"]
    nodes = [make_node(n, cluster=n[0], role=NodeRole.EDGE) for n in names]
    state = make_state(nodes)
    state.attach_rtt(names, [[10.0 * abs(i - j) for j in range(4)] for i in range(4)])
    return state


@pytest.mark.parametrize("cache", [True, False])
def test_delay_to_a_node_or_an_instance_in_another_cluster(cache: bool) -> None:
    state = line_clusters()
    place(state, "a-1", make_request(cpu=4000))  # a-1 is full: only b-0 is within 10 ms
    scheduler = DelegatingScheduler(state, "ldp", cache=cache)
    to_node = scheduler.schedule(make_request("n", cpu=100, labels={"delay_a-1": "10"}))
    assert (to_node.code, to_node.node) == (Code.OK, "b-0")
    # the only instance of "db" runs in cluster a; a request within 15 ms of it lands in b
    scheduler.schedule(make_request("db-0", cpu=100, service="db", constraints=[direct("a-0")]))
    state.set_cordoned("a-0", True)  # the instance keeps running; a-0 takes nothing new
    near_db = scheduler.schedule(
        make_request("s", cpu=100, constraints=[LatencyConstraint(threshold_ms=15, target="db")])
    )
    assert (near_db.code, near_db.node) == (Code.UNSCHEDULABLE, None)  # a-1 full, b-0 at 20
    near_db = scheduler.schedule(
        make_request("s", cpu=100, constraints=[LatencyConstraint(threshold_ms=20, target="db")])
    )
    assert (near_db.code, near_db.node) == (Code.OK, "b-0")
    assert_mirrored(scheduler)


def direct(*nodes: str) -> DirectConstraint:
    return DirectConstraint(nodes=nodes)


def test_direct_names_nodes_of_several_clusters() -> None:
    state = line_clusters()
    place(state, "a-0", make_request(cpu=4000))
    scheduler = DelegatingScheduler(state, "rom")
    decision = scheduler.schedule(make_request("r", cpu=100, constraints=[direct("a-0", "b-1")]))
    assert (decision.code, decision.node) == (Code.OK, "b-1")
    unknown = scheduler.schedule(make_request("u", constraints=[direct("ghost")]))
    assert (unknown.code, unknown.reasons) == (Code.UNRESOLVABLE, ["Direct: unknown node 'ghost'"])


def test_areas_and_rtt_attached_later_reach_the_clusters() -> None:
    names = ["a-0", "b-0"]
    state = make_state(
        [
            make_node("a-0", cluster="a", location=(48.137, 11.575)),
            make_node("b-0", cluster="b", location=(52.520, 13.405)),
        ]
    )
    scheduler = DelegatingScheduler(state, "ldp")
    refused = scheduler.schedule(make_request("r", labels={"delay_a-0": "5"}))
    assert refused.code is Code.UNRESOLVABLE
    state.attach_rtt(names, [[0, 30], [30, 0]])
    state.add_area(Area("munich", (GeoPoint(lat=48.14, long=11.58),)))
    assert scheduler.schedule(make_request("r", labels={"delay_a-0": "5"})).node == "a-0"
    in_area = scheduler.schedule(
        make_request("m", constraints=[LatencyConstraint(threshold_ms=4, area="munich")])
    )
    assert in_area.node == "a-0"
    for scope in scheduler.clusters:
        assert scope.state.areas is state.areas
        assert scope.state.rtt is not None and scope.state.rtt.names == (scope.name + "-0",)


# -- refusals ---------------------------------------------------------------------------------


def test_refusals_name_every_cluster_tried() -> None:
    # Each of a, b, c has a CPU-rich and a memory-rich node: the per-resource maxima pass a
    # 2000m / 4 GiB request, and neither node holds it. d holds it, but is the busiest.
    nodes = []
    for c in ("a", "b", "c"):
        nodes += [
            make_node(f"{c}-cpu", cpu=8000, mem=1024, cluster=c),
            make_node(f"{c}-mem", cpu=1000, mem=16384, cluster=c),
        ]
    nodes.append(make_node("d-0", cpu=2000, mem=4096, cluster="d"))
    request = make_request("r", cpu=2000, mem=4096)

    refused = DelegatingScheduler(make_state(nodes), "rom").schedule(request)
    assert refused.code is Code.UNSCHEDULABLE
    assert refused.reasons[0] == "root rom: 3 of 4 qualifying clusters refused (a, b, c)"
    assert [r.split(":")[0] for r in refused.reasons[1:]] == ["cluster a", "cluster b", "cluster c"]
    assert refused.reasons[1] == (
        "cluster a: 0/2 nodes are available: 2 rejected by NodeResourcesFit "
        "(e.g. a-cpu: insufficient memory_mib 4096Mi > free 1024Mi)"
    )
    assert refused.rejections[0].plugin == "NodeResourcesFit"
    assert refused.rejections[0].count == 6

    placed = DelegatingScheduler(make_state(nodes), "rom", max_clusters=4).schedule(request)
    assert placed.node == "d-0"
    assert [r.split(":")[0] for r in placed.reasons] == ["cluster a", "cluster b", "cluster c"]


def test_no_qualifying_cluster_says_why_per_cluster() -> None:
    nodes = [
        make_node("a-0", cpu=1000, cluster="a"),
        make_node("b-0", cpu=4000, cluster="b", unschedulable=True),
        make_node("c-0", cpu=2000, mem=1024, cluster="c"),
    ]
    scheduler = DelegatingScheduler(make_state(nodes), "rom")
    decision = scheduler.schedule(make_request("r", cpu=1500, mem=2048))
    assert decision.code is Code.UNSCHEDULABLE
    assert decision.reasons == [
        "0/3 clusters are available: 1 have no schedulable node, "
        "1 have no node with cpu_m 1500m free (largest anywhere 2000m), "
        "1 have no node with memory_mib 2048Mi free (largest anywhere 8192Mi)"
    ]
    too_big = scheduler.schedule(make_request("huge", cpu=5000))
    assert (too_big.code, too_big.reasons) == (
        Code.UNRESOLVABLE,
        ["NodeResourcesFit: cpu_m 5000m exceeds the largest node's allocatable 4000m"],
    )


def test_no_cluster_within_the_bound_names_the_best_rtt() -> None:
    state = line_clusters()
    state.set_healthy("a-1", False)
    scheduler = DelegatingScheduler(state, "ldp")
    decision = scheduler.schedule(make_request("r", cpu=100, labels={"delay_a-1": "5"}))
    assert decision.code is Code.UNSCHEDULABLE
    assert decision.reasons == [
        "0/2 clusters are available: 2 have no node that passes Latency",
        "Latency: delay_a-1: best RTT 10.0 ms (node a-0) > 5 ms",
    ]
    waiting = scheduler.schedule(make_request("w", labels={"delay_svc": "5"}, service="svc"))
    assert (waiting.code, waiting.reasons) == (
        Code.UNSCHEDULABLE,
        ["Latency: delay_svc: no running instance of 'svc' yet"],
    )


def test_rom_refuses_bounds_it_does_not_enforce_like_the_flat_policy() -> None:
    request = make_request("r", cpu=100, labels={"delay_n1": "25"})
    delegated = DelegatingScheduler(make_state(2), "rom").schedule(request)
    assert delegated.code is Code.UNRESOLVABLE
    assert delegated.reasons == [
        "policy 'rom' has no plugin that enforces 'latency' constraints "
        "(delay labels are latency constraints)"
    ]


def test_explanations_come_from_the_chosen_cluster() -> None:
    nodes = [make_node(f"a-{i}", cpu=1000 * (i + 1), cluster="a") for i in range(3)]
    nodes.append(make_node("b-0", cpu=500, cluster="b"))
    scheduler = DelegatingScheduler(make_state(nodes), "rom", top_k=2)
    decision = scheduler.schedule(make_request("r", cpu=800), explain=True)
    assert decision.node == "a-2"
    assert decision.reasons == ["root rom: cluster a, choice 1 of 1 qualifying clusters"]
    assert [s.node for s in decision.top_scores] == ["a-2", "a-1"]
    assert (decision.nodes_total, decision.nodes_feasible) == (4, 3)


# -- long random sequences: constraints, no over-commit, mirrors, cache on and off ----------------


@dataclass
class Run:
    state: ClusterState
    scheduler: DelegatingScheduler
    placed: list[tuple[int, PlacementRequest]] = field(default_factory=list)


@pytest.mark.parametrize(
    ("policy", "seed", "tight"),
    [("ldp", 1, False), ("ldp", 2, True), ("rom", 3, False), ("rom", 4, True)],
)
def test_long_random_sequences_decide_alike_with_and_without_cache(
    policy: str, seed: int, tight: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tight:
        # Drop the change log every 7 changes and recompute past 2 changed rows.
        monkeypatch.setattr(state_module, "CHANGE_LOG_LIMIT", 7)
        monkeypatch.setattr(shapes_module, "ROW_REFRESH_LIMIT", 2)
    rng = random.Random(seed)
    runs = []
    for cache in (True, False):
        state, nodes = fleet(seed, count=150, clusters=5)
        runs.append(Run(state, DelegatingScheduler(state, policy, seed=seed, cache=cache)))
    cached, full = runs
    world: World = world_of(cached.state, nodes)
    decided = 0
    for step in range(500):
        roll = rng.random()
        if roll < 0.25 and cached.placed:
            k = rng.randrange(len(cached.placed))
            through_scheduler = rng.random() < 0.5
            for run in runs:
                node, request = run.placed.pop(k)
                if through_scheduler:
                    run.scheduler.release(node, request)
                else:  # a host that forgets: found in the change log
                    run.state.release(node, request)
            world.remove(request.service, node)
        elif roll < 0.32:
            name, flag = rng.choice(nodes).name, rng.random() < 0.6
            cordon, through_scheduler = rng.random() < 0.3, rng.random() < 0.5
            for run in runs:
                target = run.scheduler if through_scheduler else run.state
                (target.set_cordoned if cordon else target.set_healthy)(name, flag)
        else:
            if policy == "ldp":
                labels, constraints = random_bounds(rng, world.names, world.positions)
            else:
                labels, constraints = {}, []
                if rng.random() < 0.1:
                    constraints = [DirectConstraint(cluster=rng.choice(cached.state.cluster_names))]
            request = make_request(
                f"r{step}",
                cpu=rng.choice([250, 1000, 4000, 16000]),
                mem=rng.choice([0, 512, 4096, 65536]),
                service=rng.choice([*SERVICES, ""]),
                labels=labels,
                constraints=constraints,
            )
            a = cached.scheduler.schedule(request)
            b = full.scheduler.schedule(request)
            assert a == b, f"step {step}: {a.summary()} != {b.summary()}"
            decided += 1
            if a.node is not None:
                j = cached.state.node_index(a.node)
                assert world.bound_ok(request, j), (step, request, a.node)
                world.place(request.service, j)
                for run in runs:
                    run.placed.append((j, request))
        if step % 50 == 0:
            for run in runs:
                assert_mirrored(run.scheduler)
        assert_not_over_committed(cached.scheduler)
    for run in runs:
        assert_mirrored(run.scheduler)
    assert cached.state.allocated.tolist() == full.state.allocated.tolist()
    assert decided > 250


def test_direct_changes_to_the_global_state_are_mirrored_before_the_next_decision() -> None:
    state = make_state([make_node(f"{c}-{i}", cluster=c) for c in "ab" for i in range(2)])
    scheduler = DelegatingScheduler(state, "rom")
    web = make_request("w", cpu=4000, service="web")
    state.reserve(state.node_index("a-0"), web)  # placed by someone else
    state.set_healthy("b-1", False)
    state.set_cordoned("a-1", True)
    state.invalidate()  # and the change log is gone: every row is compared
    state.reserve(state.node_index("b-0"), web)
    decision = scheduler.schedule(make_request("r", cpu=1000))
    assert decision.code is Code.UNSCHEDULABLE  # a-0, b-0 full; a-1 cordoned; b-1 down
    assert_mirrored(scheduler)
    scheduler.release(state.node_index("b-0"), web)
    assert scheduler.schedule(make_request("r", cpu=1000)).node == "b-0"
    assert_mirrored(scheduler)


# -- the rows ---------------------------------------------------------------------------------


def brute_rows(state: ClusterState) -> dict[str, list[list[int]] | list[int]]:
    """The rows, computed node by node."""
    k = state.num_clusters
    out: dict[str, list[list[int]] | list[int]] = {
        "healthy": [0] * k,
        "schedulable": [0] * k,
        "schedulable_cloud": [0] * k,
    }
    sums = {"allocatable": [[0] * 6 for _ in range(k)], "free": [[0] * 6 for _ in range(k)]}
    tops = {"max_free": [[NO_NODE] * 6 for _ in range(k)]}
    tops["max_free_cloud"] = [[NO_NODE] * 6 for _ in range(k)]
    for j in range(len(state)):
        c = int(state.cluster_id[j])
        healthy, cloud = bool(state.healthy[j]), bool(state.role[j] == 1)
        out["healthy"][c] += healthy  # type: ignore[operator]
        if not state.schedulable[j]:
            continue
        out["schedulable"][c] += 1  # type: ignore[operator]
        out["schedulable_cloud"][c] += cloud  # type: ignore[operator]
        for r in range(6):
            sums["allocatable"][c][r] += int(state.allocatable[j, r])
            sums["free"][c][r] += int(state.free[j, r])
            tops["max_free"][c][r] = max(tops["max_free"][c][r], int(state.free[j, r]))
            if cloud:
                top = tops["max_free_cloud"][c][r]
                tops["max_free_cloud"][c][r] = max(top, int(state.free[j, r]))
    return {**out, **sums, **tops}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rows_kept_from_the_change_log_equal_rows_computed_node_by_node(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if seed == 3:
        monkeypatch.setattr(state_module, "CHANGE_LOG_LIMIT", 5)
    rng = random.Random(seed)
    # Interleaved clusters: the nodes are not grouped by cluster.
    nodes = random_nodes(rng, 25, ["x", "y", "z"], roles=[NodeRole.EDGE, NodeRole.CLOUD])
    state = make_state(nodes)
    rows = ClusterRows(state)
    placed: list[tuple[int, PlacementRequest]] = []
    for step in range(400):
        for _ in range(rng.choice([1, 1, 1, 3])):  # sometimes several changes per look
            change_randomly(rng, state, nodes, placed, step)
        rows.refresh()
        expected = brute_rows(state)
        for name, value in expected.items():
            assert getattr(rows, name).tolist() == value, (step, name)
        fresh = ClusterRows(state)
        amounts = [rng.choice([0, 500]), rng.choice([0, 256]), 0, 0, 0, 0]
        assert rows.least_allocated(amounts).tolist() == fresh.least_allocated(amounts).tolist()


def random_nodes(
    rng: random.Random, count: int, clusters: list[str], roles: list[NodeRole] | None = None
) -> list[Node]:
    """``count`` nodes of mixed sizes, each in a random one of ``clusters`` (and, if given,
    of ``roles``)."""
    return [
        make_node(
            f"n{i}",
            cpu=rng.choice([1000, 2000, 4000]),
            mem=rng.choice([1024, 4096]),
            cluster=rng.choice(clusters),
            role=rng.choice(roles) if roles else NodeRole.CLOUD,
        )
        for i in range(count)
    ]


def change_randomly(
    rng: random.Random,
    state: ClusterState,
    nodes: list[Node],
    placed: list[tuple[int, PlacementRequest]],
    step: int,
) -> None:
    """One random change: a release, a health or cordon flip, or a placement that fits."""
    roll = rng.random()
    if roll < 0.35 and placed:
        node, request = placed.pop(rng.randrange(len(placed)))
        state.release(node, request)
    elif roll < 0.45:
        state.set_healthy(rng.choice(nodes).name, rng.random() < 0.7)
    elif roll < 0.5:
        state.set_cordoned(rng.choice(nodes).name, rng.random() < 0.3)
    else:
        request = make_request(f"r{step}", cpu=rng.choice([0, 250, 1000]), mem=512)
        node = rng.randrange(len(nodes))
        if (state.free[node] >= request_amounts(request)).all():
            state.reserve(node, request)
            placed.append((node, request))


@pytest.mark.parametrize("seed", [1, 2])
def test_rom_scores_kept_per_shape_equal_scores_computed_afresh(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short logs, so that rescoring, rebuilding and new versions all happen.
    monkeypatch.setattr(root_module, "RESCORED_LIMIT", 3)
    monkeypatch.setattr(rows_module, "TOUCHED_LIMIT", 40)
    rng = random.Random(seed)
    nodes = random_nodes(rng, 30, ["x", "y", "z", "w"])
    state = make_state(nodes)
    rows = ClusterRows(state)
    rom = Rom()
    shapes = [[cpu, mem, 0, 0, 0, 0] for cpu in (0, 300, 1500) for mem in (0, 700)]
    placed: list[tuple[int, PlacementRequest]] = []
    for step in range(300):
        for _ in range(rng.choice([1, 1, 2, 5])):
            change_randomly(rng, state, nodes, placed, step)
        rows.refresh()
        fresh = ClusterRows(state)
        for amounts in rng.sample(shapes, 3):
            vector = np.array(amounts, dtype=np.int64)
            requested = tuple(r for r, amount in enumerate(amounts) if amount)
            view = RootView(vector, amounts, requested)
            expected = np.where(
                fresh.could_fit(vector, requested), fresh.least_allocated(amounts), -np.inf
            )
            ranked = rom.rank(rows, state, view)
            assert ranked.tolist() == expected.tolist(), (step, amounts)
            ranked[:] = -np.inf  # the caller's copy: using it up changes nothing kept
    assert rows.version > 2  # the log overflowed, and weights changed, along the way


# -- batches and shared request facts --------------------------------------------------------


@pytest.mark.parametrize("policy", ["default", "latency", "latency-reliable", "rom", "ldp"])
def test_decisions_create_no_reference_cycles_and_batches_restore_the_collector(
    policy: str,
) -> None:
    # schedule_many pauses the cyclic collector on the promise that decisions leave no
    # cycles behind; a cycle would only be freed by a collection.
    state, nodes = fleet(seed=7)
    world = world_of(state, nodes)
    rng = random.Random(7)
    requests = []
    for i in range(150):
        labels, constraints = (
            random_bounds(rng, world.names, world.positions)
            if policy in ("latency", "latency-reliable", "ldp")
            else ({}, [])
        )
        requests.append(
            make_request(
                f"r{i}",
                cpu=rng.choice([250, 1000, 4000]),
                mem=rng.choice([256, 1024, 8192]),
                service=rng.choice([*SERVICES, ""]),
                labels=labels,
                constraints=constraints,
            )
        )
    # A first pass imports what the policy imports lazily (a module import makes cycles).
    scheduler_for(state.copy(), policy, seed=7).schedule_many(requests)
    scheduler = scheduler_for(state, policy, seed=7)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        decisions = [scheduler.schedule(r) for r in requests[:100]]
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
    assert any(d.node is not None for d in decisions)

    plan = scheduler.schedule_many(requests[100:], on_decision=lambda d: None)
    assert len(plan.decisions) == 50
    assert gc.isenabled() is was_enabled
    gc.disable()
    try:
        scheduler.schedule_many(requests[:1])
        assert not gc.isenabled()  # a batch leaves a paused collector paused
    finally:
        if was_enabled:
            gc.enable()


def test_root_and_clusters_learn_each_request_once() -> None:
    state, _ = fleet(seed=8)
    scheduler = DelegatingScheduler(state, "ldp", seed=8)
    assert all(scope.scheduler.facts is scheduler.facts for scope in scheduler.clusters)
    request = make_request("r", cpu=500, mem=512, labels={"delay_nowhere": "10"})
    first = scheduler.schedule(request)
    assert first.code is Code.UNRESOLVABLE and "nowhere" in " ".join(first.reasons)
    facts = scheduler.facts.learn(request)
    assert facts is scheduler.facts.learn(request)
    assert facts.amounts == request_amounts(request) and not facts.vector.flags.writeable
    # A request equal in value but another object is learned afresh, not mistaken.
    twin = request.model_copy(update={"id": "twin", "labels": {}})
    assert scheduler.facts.learn(twin).inapplicable != facts.inapplicable
    placed = scheduler.schedule(twin)
    assert placed.code is Code.OK
