"""Failover reservations and the ``latency-reliable`` policy.

The scenario: three clusters of six edge nodes (Munich, Berlin, Paris; 1-4 ms inside a
cluster, 25-45 ms between them), services bound to a node (``delay_<node>``), to a
service (``delay_db``, a ``latency`` target, ``delay_sensor``, with ``fusion`` placed
next to its ``sensor``), to a user position and a geo radius, one with anti-affinity,
and unbounded filler. Every check below recomputes the truth by brute force from the
RTT matrix, great-circle distances and the test's own record of where each instance
runs, independently of the planner's arithmetic: bounds after every single node
failure, placeholders as "max over primaries of what moves to a node", the state's
accounting, and the overhead figures.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import pytest

from harmonia.model import (
    AntiAffinityConstraint,
    Constraint,
    GeoConstraint,
    GeoPoint,
    HarmoniaError,
    LatencyConstraint,
    Node,
    NodeRole,
    PlacementRequest,
    Topology,
    generate_nodes,
)
from harmonia.sched import ClusterState, Code, CycleState, Profile, Scheduler, Status, get_policy
from harmonia.sched.failover import FailoverPlanner, Move
from harmonia.sched.framework import unschedulable
from harmonia.sched.plugins.failover import (
    FailoverReservation,
    InstanceKey,
    failover_planner,
    schedule_instance,
)
from harmonia.sched.state import StateError, request_vector
from tests.builders import make_node, make_request, make_state
from tests.sched.test_latency_policy import World, add_areas, fits, random_bounds, world_of

CITIES = [(48.14, 11.58), (52.52, 13.40), (48.86, 2.35)]
PARIS = GeoPoint(lat=CITIES[2][0], long=CITIES[2][1])
PER_CLUSTER = 6


# -- the scenario ------------------------------------------------------------------------------


def scenario_nodes() -> list[Node]:
    rng = random.Random(11)
    nodes = []
    for c, (lat, long) in enumerate(CITIES):
        for i in range(PER_CLUSTER):
            nodes.append(
                make_node(
                    f"c{c}-n{i}",
                    cpu=2000 if i == PER_CLUSTER - 1 else 4000,
                    mem=8192,
                    cluster=f"c{c}",
                    role=NodeRole.EDGE,
                    location=(lat + rng.uniform(-0.05, 0.05), long + rng.uniform(-0.05, 0.05)),
                )
            )
    return nodes


def scenario_matrix(seed: int = 3) -> np.ndarray:
    rng = random.Random(seed)
    n = 3 * PER_CLUSTER
    m = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        for j in range(i + 1, n):
            same = i // PER_CLUSTER == j // PER_CLUSTER
            m[i, j] = m[j, i] = round(rng.uniform(1, 4) if same else rng.uniform(25, 45), 1)
    return m


def scenario_requests() -> list[tuple[str, PlacementRequest]]:
    out: list[tuple[str, PlacementRequest]] = []

    def add(
        key: str,
        service: str,
        cpu: int,
        mem: int,
        labels: dict[str, str] | None = None,
        constraints: list[Constraint] | None = None,
    ) -> None:
        request = make_request(
            key, cpu=cpu, mem=mem, service=service, labels=labels, constraints=constraints or []
        )
        out.append((key, request))

    anti: list[Constraint] = [AntiAffinityConstraint(scope="node", max_per_domain=1)]
    for c in range(3):
        for i in range(3):
            add(f"cam{c}-{i}", f"cam{c}", 600, 512, {f"delay_c{c}-n0": "6"}, anti)
    for i in range(2):
        add(f"db-{i}", "db", 800, 1024, {"delay_c1-n0": "6"}, anti)
    for i in range(2):
        add(f"api-{i}", "api", 400, 256, {"delay_db": "5"})
    for i in range(2, 4):
        add(
            f"api-{i}",
            "api",
            400,
            256,
            constraints=[LatencyConstraint(threshold_ms=5, target="db")],
        )
    add("sensor-0", "sensor", 300, 256, {"delay_c2-n0": "6"})
    for i in range(2):  # fusion-0 next to its sensor, fusion-1 on another node near it
        add(f"fusion-{i}", "fusion", 300, 256, {"delay_sensor": "3"}, anti)
    for i in range(2):
        add(
            f"tiles-{i}",
            "tiles",
            500,
            512,
            constraints=[
                GeoConstraint(location=PARIS, threshold_km=50),
                LatencyConstraint(threshold_ms=4, location=PARIS),
            ],
        )
    for i in range(6):
        add(f"batch-{i}", "batch", 1000, 1024)
    return out


@dataclass
class Scenario:
    nodes: list[Node]
    state: ClusterState
    scheduler: Scheduler
    requests: dict[Hashable, PlacementRequest]
    where: dict[Hashable, int] = field(default_factory=dict)  # key -> node, the test's record

    @property
    def planner(self) -> FailoverPlanner:
        return failover_planner(self.scheduler)


def build_scenario() -> Scenario:
    nodes = scenario_nodes()
    state = ClusterState(nodes)
    state.attach_rtt(state.names, scenario_matrix())
    scheduler = Scheduler(state, "latency-reliable")
    sc = Scenario(nodes, state, scheduler, {})
    for key, request in scenario_requests():
        decision = schedule_instance(scheduler, request, key)
        assert decision.node is not None, decision.summary()
        sc.requests[key] = request
        sc.where[key] = state.node_index(decision.node)
    return sc


# -- brute force -------------------------------------------------------------------------------


def bounded(request: PlacementRequest) -> bool:
    return bool(request.constraint_kinds & {"latency", "geo"})


def referenced(requests: dict[Hashable, PlacementRequest]) -> set[str]:
    """Services some request names in a delay label or a latency target."""
    out = set()
    for r in requests.values():
        out |= {k[len("delay_") :] for k in r.labels if k.startswith("delay_")}
        out |= {c.target for c in r.constraints if isinstance(c, LatencyConstraint) and c.target}
    return out


def needs(requests: dict[Hashable, PlacementRequest], key: Hashable) -> bool:
    return bounded(requests[key]) or requests[key].service in referenced(requests)


def world(sc: Scenario, where: dict[Hashable, int], matrix: np.ndarray | None = None) -> World:
    w = world_of(sc.state, sc.nodes)
    if matrix is not None:
        w.rtt = matrix.astype(float).tolist()
    for key, j in where.items():
        w.place(sc.requests[key].service, j)
    return w


def violations(sc: Scenario, where: dict[Hashable, int], matrix: np.ndarray | None = None) -> set:
    """Instances whose bounds (latency, geo, anti-affinity) do not hold at ``where``."""
    w = world(sc, where, matrix)
    bad = {
        k for k, j in where.items() if bounded(sc.requests[k]) and not w.bound_ok(sc.requests[k], j)
    }
    per_node: dict[tuple[str, int], int] = defaultdict(int)
    for k, j in where.items():
        per_node[(sc.requests[k].service, j)] += 1
    for k, j in where.items():
        for c in sc.requests[k].constraints:
            if isinstance(c, AntiAffinityConstraint) and per_node[(sc.requests[k].service, j)] > 1:
                bad.add(k)
    return bad


def expected_placeholders(
    n: int,
    requests: dict[Hashable, PlacementRequest],
    where: dict[Hashable, int],
    backups: dict[Hashable, int | None],
) -> np.ndarray:
    """placeholder[b] = max over primaries p of Σ requests on p backed up on b."""
    moved: dict[tuple[int, int], np.ndarray] = defaultdict(lambda: np.zeros(6, dtype=np.int64))
    for key, b in backups.items():
        if b is not None:
            moved[(where[key], b)] += request_vector(requests[key])
    out = np.zeros((n, 6), dtype=np.int64)
    for (_, b), amount in moved.items():
        out[b] = np.maximum(out[b], amount)
    return out


def backups_of(sc: Scenario, planner: FailoverPlanner, where: dict[Hashable, int]) -> dict:
    out: dict[Hashable, int | None] = {}
    for key in where:
        name = planner.backup_of(key)
        out[key] = None if name is None else sc.state.node_index(name)
    return out


def check_accounting(
    sc: Scenario, planner: FailoverPlanner, where: dict[Hashable, int], backups: dict
) -> None:
    """The state holds exactly the instances plus the placeholders, and nothing overflows."""
    state = planner.state
    placeholders = expected_placeholders(len(state), sc.requests, where, backups)
    assert planner.placeholder.tolist() == placeholders.tolist()
    allocated = placeholders.copy()
    for key, j in where.items():
        allocated[j] += request_vector(sc.requests[key])
    assert state.allocated.tolist() == allocated.tolist()
    assert (state.allocated <= state.allocatable).all()


def failover_outcome(
    sc: Scenario, where: dict[Hashable, int], backups: dict, p: int
) -> dict[Hashable, int]:
    """Where everything runs after node ``p`` fails and its instances go to their backups."""
    return {
        k: (backups[k] if j == p else j)
        for k, j in where.items()
        if j != p or backups[k] is not None
    }


def check_every_failure(
    sc: Scenario, planner: FailoverPlanner, where: dict[Hashable, int], skip: int = -1
) -> None:
    """Predict every single failure from the backups alone: everything that needs a
    backup has one, every bound holds afterwards, and what moves fits the placeholders."""
    backups = backups_of(sc, planner, where)
    for key in where:
        assert (backups[key] is not None) == needs(sc.requests, key), key
    for p in range(len(planner.state)):
        if p == skip:
            continue
        after = failover_outcome(sc, where, backups, p)
        assert not violations(sc, after), (sc.state.names[p], violations(sc, after))
        moved: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(6, dtype=np.int64))
        for key, j in where.items():
            if j == p and backups[key] is not None:
                assert backups[key] != p and planner.state.schedulable[backups[key]]
                moved[backups[key]] += request_vector(sc.requests[key])
        for b, amount in moved.items():
            assert (amount <= planner.placeholder[b]).all()


def apply(where: dict[Hashable, int], moves: list[Move], state: ClusterState) -> dict:
    after = dict(where)
    for move in moves:
        assert after[move.key] == state.node_index(move.source)
        if move.kind == "requeue":
            del after[move.key]
        elif move.target is not None:
            after[move.key] = state.node_index(move.target)
    return after


# -- the scenario, every single failure --------------------------------------------------------


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario()


def test_scenario_places_everything_within_bounds_and_protects_what_needs_it(
    scenario: Scenario,
) -> None:
    sc = scenario
    assert not violations(sc, sc.where)
    assert sc.planner.unprotected() == []
    check_accounting(sc, sc.planner, sc.where, backups_of(sc, sc.planner, sc.where))
    # the scenario exercises a reference next to its dependents on one node
    assert sc.where["fusion-0"] == sc.where["sensor-0"]
    check_every_failure(sc, sc.planner, sc.where)


@pytest.mark.parametrize("failed", range(3 * PER_CLUSTER))
def test_after_any_single_failure_every_instance_is_re_placed_within_its_bound(
    scenario: Scenario, failed: int
) -> None:
    sc = scenario
    planner = sc.planner.copy()
    backups = backups_of(sc, planner, sc.where)
    moves = planner.node_failed(failed)

    on_failed = [k for k, j in sc.where.items() if j == failed]
    by_key = {m.key: m for m in moves}
    for key in on_failed:
        move = by_key[key]
        if needs(sc.requests, key):
            assert move.kind == "failover"
            assert move.target == sc.state.names[backups[key]]
        else:
            assert move.kind == "requeue"  # unbounded filler: the host schedules it again
    assert {m.kind for m in moves} <= {"failover", "requeue"}  # no knock-on was needed
    after = apply(sc.where, moves, planner.state)
    assert failed not in after.values()
    assert not violations(sc, after)
    assert not planner.state.healthy[failed]
    assert planner.unprotected() == []
    check_accounting(sc, planner, after, backups_of(sc, planner, after))
    # the new backups protect against the next failure as well
    check_every_failure(sc, planner, after, skip=failed)


def test_failing_the_sensor_node_moves_its_dependents_along_with_it(scenario: Scenario) -> None:
    sc = scenario
    planner = sc.planner.copy()
    node = sc.where["sensor-0"]
    after = apply(sc.where, planner.node_failed(node), planner.state)
    matrix = scenario_matrix()
    for key in ("fusion-0", "fusion-1"):
        assert matrix[after["sensor-0"], after[key]] <= 3


def test_placeholders_are_shared_and_cost_less_than_dedicated_reservations(
    scenario: Scenario,
) -> None:
    sc = scenario
    backups = backups_of(sc, sc.planner, sc.where)
    primaries: dict[int, set[int]] = defaultdict(set)
    for key, b in backups.items():
        if b is not None:
            primaries[b].add(sc.where[key])
    assert any(len(p) > 1 for p in primaries.values())  # some node backs up several nodes
    overhead = sc.planner.overhead()
    assert overhead["reserved"]["cpu_m"] < overhead["dedicated"]["cpu_m"]


def test_overhead_matches_a_brute_force_recount(scenario: Scenario) -> None:
    sc = scenario
    overhead = sc.planner.overhead()
    backups = backups_of(sc, sc.planner, sc.where)
    placeholders = expected_placeholders(len(sc.state), sc.requests, sc.where, backups)
    needing = [k for k in sc.where if needs(sc.requests, k)]
    protected = [k for k in needing if backups[k] is not None]
    used = sum(request_vector(sc.requests[k]) for k in needing)
    dedicated = sum(request_vector(sc.requests[k]) for k in protected)
    reserved = placeholders.sum(axis=0)
    allocatable = sc.state.allocatable.sum(axis=0)
    names = ["cpu_m", "memory_mib", "gpu", "storage_mib", "bandwidth_in_kbps", "bandwidth_out_kbps"]
    assert overhead["instances"] == len(needing) == 20
    assert overhead["protected"] == len(protected)
    assert overhead["unprotected"] == 0
    assert overhead["placeholder_nodes"] == int((placeholders > 0).any(axis=1).sum())
    for r, name in enumerate(names):
        assert overhead["reserved"][name] == reserved[r]
        assert overhead["dedicated"][name] == dedicated[r]
        share = reserved[r] / allocatable[r] if allocatable[r] else 0.0
        assert overhead["share_of_allocatable"][name] == pytest.approx(share)
        share = reserved[r] / used[r] if used[r] else 0.0
        assert overhead["share_of_instances"][name] == pytest.approx(share)


# -- RTT changes -------------------------------------------------------------------------------


def test_rtt_change_migrates_exactly_the_violating_instances(scenario: Scenario) -> None:
    sc = scenario
    state = sc.state.copy()
    planner = sc.planner.copy(state)
    matrix = scenario_matrix()
    # c0-n0 drifts away from the nodes running cam0 instances; Paris users' tiles node
    # and the api's db links are untouched.
    anchor = state.node_index("c0-n0")
    hosts = sorted(
        {sc.where[k] for k in sc.where if k.startswith("cam0") and sc.where[k] != anchor}
    )
    assert hosts
    for j in hosts:
        matrix[anchor, j] = matrix[j, anchor] = 20.0
    # and one api instance's link to both db instances
    api = sc.where["api-0"]
    for key in ("db-0", "db-1"):
        db = sc.where[key]
        if db != api:
            matrix[api, db] = matrix[db, api] = 9.0
    expected = violations(sc, sc.where, matrix)
    assert expected  # the edit breaks something

    state.attach_rtt(state.names, matrix)
    moves = planner.rtt_changed()

    assert {m.kind for m in moves} == {"migrate"}
    assert {m.key for m in moves} == expected
    after = apply(sc.where, moves, state)
    assert not violations(sc, after, matrix)
    sc_after = Scenario(sc.nodes, state, sc.scheduler, sc.requests)
    w = world(sc_after, after, matrix)
    for m in moves:
        assert w.bound_ok(sc.requests[m.key], state.node_index(m.target or ""))
    backups = backups_of(sc, planner, after)
    check_accounting(sc, planner, after, backups)
    # backups were re-chosen against the new RTTs: every failure still lands within bounds
    for p in range(len(state)):
        assert not violations(sc, failover_outcome(sc, after, backups, p), matrix)


def test_rtt_change_without_room_strands_and_says_why() -> None:
    state = make_state([make_node("a", cpu=1000), make_node("b", cpu=1000)])
    state.attach_rtt(state.names, [[0, 2], [2, 0]])
    planner = FailoverPlanner(state)
    request = make_request("r", cpu=600, labels={"delay_a": "5"})
    state.reserve(1, request)
    planner.placed("r", request, "b")
    assert planner.backup_of("r") == "a"
    state.attach_rtt(state.names, [[0, 9], [9, 0]])
    (move,) = planner.rtt_changed()
    assert move.kind == "stranded" and move.source == "b" and move.target is None
    # "a" meets the bound but the 600m there are the instance's own placeholder
    assert "no node within them has room" in move.reason


# -- placeholders and capacity -----------------------------------------------------------------


def edge_trio() -> tuple[ClusterState, FailoverPlanner]:
    """The module docstring's example: e1, e2, e3 within 5 ms of one another, 4 cores."""
    state = make_state([make_node(n, cpu=4000, role=NodeRole.EDGE) for n in ("e1", "e2", "e3")])
    state.attach_rtt(state.names, [[0, 5, 5], [5, 0, 5], [5, 5, 0]])
    return state, FailoverPlanner(state)


def test_docstring_example_two_primaries_share_one_placeholder() -> None:
    state, planner = edge_trio()
    a = make_request("a", cpu=1000, service="cam", labels={"delay_e1": "10"})
    b = make_request("b", cpu=1000, service="cam", labels={"delay_e1": "10"})
    state.reserve(0, a)
    planner.placed("a", a, "e1")
    assert planner.backup_of("a") == "e2"  # a tie; the lower index
    state.reserve(2, b)
    planner.placed("b", b, "e3")
    # e2 already holds 1 core, and no other instance of e3 moves there: it costs nothing
    assert planner.backup_of("b") == "e2"
    assert planner.placeholder[:, 0].tolist() == [0, 1000, 0]
    assert state.free[:, 0].tolist() == [3000, 3000, 3000]
    overhead = planner.overhead()
    assert overhead["reserved"]["cpu_m"] == 1000 and overhead["dedicated"]["cpu_m"] == 2000

    # releasing one of the sharers keeps the placeholder; releasing both frees it
    state.release(0, a)
    assert planner.released("a")
    assert planner.placeholder[:, 0].tolist() == [0, 1000, 0]
    state.release(2, b)
    assert planner.released("b")
    assert not planner.released("b")
    assert planner.placeholder.sum() == 0 and state.allocated.sum() == 0


def test_placeholders_block_normal_placements() -> None:
    nodes = [make_node("a", cpu=1000), make_node("b", cpu=1000)]
    for policy, fits_second in (("latency", True), ("latency-reliable", False)):
        state = make_state(nodes)
        state.attach_rtt(state.names, [[0, 1], [1, 0]])
        scheduler = Scheduler(state, policy)
        bounded_request = make_request("near-a", cpu=600, labels={"delay_a": "5"})
        assert scheduler.schedule(bounded_request).node == "a"
        decision = scheduler.schedule(make_request("plain", cpu=600))
        assert decision.placed is fits_second, (policy, decision.summary())
    assert decision.code is Code.UNSCHEDULABLE
    assert failover_planner(scheduler).backup_of(InstanceKey("near-a", 1)) == "b"


def test_releasing_every_instance_shrinks_placeholders_to_nothing(scenario: Scenario) -> None:
    sc = scenario
    state = sc.state.copy()
    planner = sc.planner.copy(state)
    where = dict(sc.where)
    totals = []
    for key in sorted(where, key=str):
        state.release(where.pop(key), sc.requests[key])
        assert planner.released(key)
        check_accounting(sc, planner, where, backups_of(sc, planner, where))
        totals.append(int(planner.placeholder.sum()))
    assert totals[-1] == 0 and state.allocated.sum() == 0


def test_an_instance_that_no_other_node_can_take_is_unprotected_and_requeued() -> None:
    state, planner = edge_trio()
    request = make_request("r", cpu=1000, service="svc", labels={"delay_e1": "1"})
    state.reserve(0, request)
    planner.placed("r", request, 0)
    assert planner.unprotected() == ["r"] and planner.backup_of("r") is None
    assert planner.overhead()["unprotected"] == 1
    (move,) = planner.node_failed("e1")
    assert (move.kind, move.source, move.target) == ("requeue", "e1", None)
    assert state.allocated.sum() == 0


def test_a_failed_backup_node_is_replaced() -> None:
    state, planner = edge_trio()
    request = make_request("r", cpu=1000, labels={"delay_e1": "10"})
    state.reserve(0, request)
    planner.placed("r", request, "e1")
    assert planner.backup_of("r") == "e2"
    state.set_healthy("e2", False)  # the host marks it; the planner notices at its next call
    assert planner.backup_of("r") == "e3"
    assert planner.placeholder[:, 0].tolist() == [0, 0, 1000]


def test_host_errors_are_clear() -> None:
    state, planner = edge_trio()
    request = make_request("r", cpu=1000, labels={"delay_e1": "10"})
    state.reserve(0, request)
    planner.placed("r", request, "e1")
    with pytest.raises(StateError, match="instance 'r' is already placed on 'e1'"):
        planner.placed("r", request, "e1")
    with pytest.raises(StateError, match="unknown node 'e9'"):
        planner.node_failed("e9")
    with pytest.raises(StateError, match="not tracked"):
        planner.node_of("nope")
    state.release(0, request)  # the host released first: node_failed says what to do
    with pytest.raises(StateError, match="call node_failed before releasing"):
        planner.node_failed("e1")


# -- the policy --------------------------------------------------------------------------------


def test_policy_exposes_its_planner_and_numbers_instances_without_keys() -> None:
    state, _ = edge_trio()
    scheduler = Scheduler(state, "latency-reliable")
    plugin = next(p for p in scheduler.profile.plugins if isinstance(p, FailoverReservation))
    request = make_request("cam", cpu=500, service="cam", labels={"delay_e1": "10"})
    assert scheduler.schedule(request).placed
    assert scheduler.schedule(request).placed
    assert plugin.last_key == InstanceKey("cam", 2)
    planner = failover_planner(scheduler)
    assert planner is plugin.planner
    assert planner.node_of(InstanceKey("cam", 1)) == "e1"
    assert schedule_instance(scheduler, request, "mine").placed
    assert plugin.last_key == "mine" and planner.node_of("mine") == "e1"
    with pytest.raises(HarmoniaError, match="keeps no failover reservations"):
        failover_planner(Scheduler(state.copy(), "latency"))
    with pytest.raises(StateError, match="already serves another ClusterState"):
        plugin.planner_for(state.copy())


def test_a_refused_later_phase_undoes_the_reservation() -> None:
    class Refuse:
        name = "Refuse"

        def permit(self, state: ClusterState, cycle: CycleState, node: int) -> Status:
            return unschedulable("not now")

    state, _ = edge_trio()
    base = get_policy("latency-reliable")
    profile = Profile("refusing", [*base.plugins, Refuse()], base.weights)
    scheduler = Scheduler(state, profile)
    decision = scheduler.schedule(make_request("r", cpu=1000, labels={"delay_e1": "10"}))
    assert decision.code is Code.UNSCHEDULABLE
    assert state.allocated.sum() == 0
    assert failover_planner(scheduler).overhead()["instances"] == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_latency_reliable_decisions_meet_bounds_like_latency(seed: int) -> None:
    """A generated fleet and random bounds: every placement meets its bounds, every
    refusal is right (no node with room meets them), and failing a few nodes moves only
    within bounds into capacity that was free or reserved."""
    rng = random.Random(seed)
    nodes = generate_nodes(80, clusters=4, seed=seed)
    state = ClusterState(nodes)
    topology = Topology.generate(nodes, np.random.default_rng(seed))
    state.attach_rtt(topology.names, topology.rtt_ms)
    located = [(n.location.lat, n.location.long) for n in nodes if n.location]
    add_areas(state, located, rng)
    w = world_of(state, nodes)
    scheduler = Scheduler(state, "latency-reliable", seed=seed)
    placed: dict[Hashable, tuple[PlacementRequest, int]] = {}
    outcomes: dict[Code, int] = defaultdict(int)
    for i in range(300):
        labels, constraints = random_bounds(rng, w.names, w.positions)
        request = make_request(
            f"r{i}",
            cpu=rng.choice([250, 1000, 4000]),
            mem=rng.choice([256, 1024, 8192]),
            service=rng.choice(["svc-0", "svc-1", "svc-2", "svc-3", ""]),
            labels=labels,
            constraints=constraints,
        )
        decision = schedule_instance(scheduler, request, i)
        outcomes[decision.code] += 1
        if decision.node is not None:
            j = state.node_index(decision.node)
            assert w.bound_ok(request, j), (request, decision.node)
            w.place(request.service, j)
            placed[i] = (request, j)
        elif decision.code is Code.UNRESOLVABLE:  # a service bound before the service ran
            assert "is neither a node nor a known service" in decision.reasons[0]
        else:
            assert decision.code is Code.UNSCHEDULABLE, decision.reasons
            assert not [
                j for j in range(len(state)) if fits(state, request, j) and w.bound_ok(request, j)
            ]
    assert outcomes[Code.OK] > 100 and outcomes[Code.UNSCHEDULABLE] > 5
    planner = failover_planner(scheduler)
    assert planner.overhead()["protected"] > 50
    for failed in rng.sample(range(len(state)), 8):
        clone = planner.copy()
        after = {k: j for k, (_, j) in placed.items()}
        for move in clone.node_failed(failed):
            if move.kind == "requeue":
                del after[move.key]
            elif move.target is not None:
                after[move.key] = clone.state.node_index(move.target)
        # what stays on the failed node is untracked (no service, no bound): requeued
        assert all(
            not bounded(placed[k][0]) and not placed[k][0].service
            for k, j in after.items()
            if j == failed
        )
        after = {k: j for k, j in after.items() if j != failed}
        post = world_of(clone.state, nodes)
        for key, j in after.items():
            post.place(placed[key][0].service, j)
        for key, j in after.items():
            request = placed[key][0]
            if j != placed[key][1] and bounded(request):
                assert post.bound_ok(request, j), (key, request, state.names[j])
        assert (clone.state.allocated <= clone.state.allocatable).all()


# -- service references: co-moving, sole hosts, knock-on ---------------------------------------


def quad(rtt: dict[tuple[str, str], float]) -> tuple[ClusterState, FailoverPlanner]:
    """Nodes a, b, c, d with the given RTTs (symmetric; 2 ms where not given)."""
    names = ["a", "b", "c", "d"]
    state = make_state([make_node(n, cpu=4000, role=NodeRole.EDGE) for n in names])
    matrix = [[0.0 if i == j else 2.0 for j in names] for i in names]
    for (x, y), ms in rtt.items():
        matrix[names.index(x)][names.index(y)] = matrix[names.index(y)][names.index(x)] = ms
    state.attach_rtt(names, matrix)
    return state, FailoverPlanner(state)


def host(
    state: ClusterState, planner: FailoverPlanner, key: str, request: PlacementRequest, node: str
) -> None:
    """What a host does when it places an instance itself: reserve, then tell the planner."""
    state.reserve(state.node_index(node), request)
    planner.placed(key, request, node)


def test_a_reference_gets_its_backup_before_its_co_moving_dependent() -> None:
    state, planner = quad({("b", "c"): 1.0})
    sensor = make_request("sensor", cpu=500, service="sensor", labels={"delay_a": "10"})
    fusion = make_request("fusion", cpu=500, service="fusion", labels={"delay_sensor": "1"})
    host(state, planner, "sensor", sensor, "a")
    host(state, planner, "fusion", fusion, "a")
    assert (planner.backup_of("sensor"), planner.backup_of("fusion")) == ("b", "b")
    moves = planner.node_failed("a")
    assert [(m.key, m.target) for m in moves] == [("sensor", "b"), ("fusion", "b")]
    # both need new backups at once: the sensor's is chosen first, the fusion's near it
    assert planner.unprotected() == []
    sensor_backup, fusion_backup = planner.backup_of("sensor"), planner.backup_of("fusion")
    assert sensor_backup is not None and fusion_backup is not None
    assert state.rtt is not None
    rtt = state.rtt.rtt(state.node_index(sensor_backup), state.node_index(fusion_backup))
    assert rtt <= 1


def test_a_new_dependent_makes_its_sole_reference_back_up_near_it() -> None:
    state, planner = quad({("b", "c"): 8.0, ("b", "d"): 5.0})
    host(
        state,
        planner,
        "sensor",
        make_request("s", cpu=500, service="sensor", labels={"delay_a": "10"}),
        "a",
    )
    # a first dependent next to it: the sensor is referenced, its backup b still fine
    host(state, planner, "w", make_request("w", cpu=100, labels={"delay_sensor": "3"}), "a")
    assert planner.backup_of("sensor") == "b"
    # y on c relies on the sensor on a alone; b is 8 ms from c, so a failover to b breaks y
    host(state, planner, "y", make_request("y", cpu=500, labels={"delay_sensor": "3"}), "c")
    assert planner.backup_of("sensor") in {"c", "d"}
    moves = planner.copy().node_failed("a")
    assert [(m.key, m.kind) for m in moves] == [("sensor", "failover"), ("w", "failover")]
    assert state.rtt is not None
    assert state.rtt.rtt(state.node_index(moves[0].target or ""), state.node_index("c")) <= 3


def test_a_migrating_reference_keeps_its_dependents_within_their_bounds() -> None:
    state, planner = quad({("b", "d"): 4.0, ("c", "d"): 1.0, ("b", "c"): 6.0})
    sensor = make_request("s", cpu=500, service="sensor", labels={"delay_d": "5"})
    host(state, planner, "sensor", sensor, "a")
    host(state, planner, "y", make_request("y", cpu=500, labels={"delay_sensor": "3"}), "b")
    matrix = state.rtt_ms
    assert matrix is not None
    moved = matrix.copy()
    moved[0, 3] = moved[3, 0] = 9.0  # a drifts away from d: the sensor must move
    state.attach_rtt(state.names, moved)
    moves = planner.rtt_changed()
    # c is nearer d, but b keeps y within 3 ms of the sensor: only the sensor moves
    assert [(m.key, m.kind, m.target) for m in moves] == [("sensor", "migrate", "b")]


def test_a_reference_leaving_through_the_state_alone_is_noticed() -> None:
    state, planner = quad({})
    db = make_request("db", cpu=500, service="db")
    state.reserve(0, db)  # placed by someone the planner does not hear from
    host(state, planner, "y", make_request("y", cpu=500, labels={"delay_db": "3"}), "b")
    assert planner.backup_of("y") is not None
    state.release(0, db)
    # the backup relied on that instance: none is left, so y cannot be protected now
    assert planner.unprotected() == ["y"]
    assert planner.placeholder.sum() == 0
