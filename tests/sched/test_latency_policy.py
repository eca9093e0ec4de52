"""The ``latency`` policy end to end: bounds enforced where ``default`` refuses them,
placements checked by brute force against the RTT matrix and great-circle distances,
refusals checked to be right (no node fits and meets every bound), reasons that name the
bound and the best RTT on offer, cached and uncached schedulers deciding alike, and
unbounded requests going to the cloud.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pytest

from harmonia.model import (
    Constraint,
    GeoConstraint,
    GeoPoint,
    LatencyConstraint,
    Node,
    NodeRole,
    PlacementRequest,
    TaintEffect,
    Topology,
    generate_nodes,
    parse_sla,
)
from harmonia.sched import ClusterState, Code, Scheduler
from harmonia.sched import shapes as shapes_module
from harmonia.sched import state as state_module
from harmonia.sched.state import Area
from tests.builders import make_node, make_request, make_state, place
from tests.sched.plugins.test_latency import km, user_rtt

HARD = (TaintEffect.NO_SCHEDULE, TaintEffect.NO_EXECUTE)
SERVICES = ["svc-0", "svc-1", "svc-2", "svc-3"]


# -- brute force ------------------------------------------------------------------------------


@dataclass
class World:
    """What the brute-force checks know, kept apart from the scheduler's state."""

    names: list[str]
    rtt: list[list[float]]  # the stored float32 values, as Python floats
    positions: list[tuple[float, float] | None]
    areas: dict[str, list[tuple[float, float]]]
    instances: dict[str, list[int]] = field(default_factory=dict)  # service -> nodes

    def bound_ok(self, request: PlacementRequest, j: int) -> bool:
        """Whether node ``j`` meets every latency and geo bound of ``request``."""
        index = {name: i for i, name in enumerate(self.names)}
        checks: list[tuple[str, float, object]] = []
        for key, value in request.labels.items():
            if key.startswith("delay_"):
                checks.append(("target", float(value), key[len("delay_") :]))
        for c in request.constraints:
            if isinstance(c, LatencyConstraint):
                if c.target is not None:
                    checks.append(("target", c.threshold_ms, c.target))
                if c.location is not None:
                    checks.append(("location", c.threshold_ms, (c.location.lat, c.location.long)))
                if c.area is not None:
                    checks.append(("area", c.threshold_ms, c.area))
            elif isinstance(c, GeoConstraint):
                checks.append(("geo", c.threshold_km, (c.location.lat, c.location.long)))
        here = self.positions[j]
        for kind, bound, ref in checks:
            if kind == "target":
                assert isinstance(ref, str)
                if ref in index:
                    rtt = self.rtt[index[ref]][j]
                else:
                    hosts = self.instances.get(ref, [])
                    if not hosts:
                        return False
                    rtt = min(self.rtt[h][j] for h in hosts)
                if rtt > bound:
                    return False
            elif here is None:
                return False
            elif kind == "location":
                assert isinstance(ref, tuple)
                if user_rtt(ref, here) > bound:
                    return False
            elif kind == "area":
                assert isinstance(ref, str)
                if max(user_rtt(p, here) for p in self.areas[ref]) > bound:
                    return False
            else:
                assert isinstance(ref, tuple)
                if km(ref, here) > bound:
                    return False
        return True

    def place(self, service: str, j: int) -> None:
        if service:
            self.instances.setdefault(service, []).append(j)

    def remove(self, service: str, j: int) -> None:
        if service:
            self.instances[service].remove(j)


def fits(state: ClusterState, request: PlacementRequest, j: int) -> bool:
    """Schedulable, enough free of every resource, no hard taint (no tolerations here)."""
    amounts = [request.cpu_m, request.memory_mib, request.gpu, request.storage_mib]
    free = state.free[j].tolist()
    return (
        bool(state.schedulable[j])
        and all(free[r] >= a for r, a in enumerate(amounts))
        and not any(t.effect in HARD for t in state.node_taints(j))
    )


def world_of(state: ClusterState, nodes: list[Node]) -> World:
    assert state.rtt_ms is not None
    return World(
        names=list(state.names),
        rtt=state.rtt_ms.astype(float).tolist(),
        positions=[(n.location.lat, n.location.long) if n.location else None for n in nodes],
        areas={name: [(p.lat, p.long) for p in a.points] for name, a in state.areas.items()},
    )


def random_bounds(
    rng: random.Random, names: list[str], positions: list[tuple[float, float] | None]
) -> tuple[dict[str, str], list[Constraint]]:
    labels: dict[str, str] = {}
    constraints: list[Constraint] = []
    roll = rng.random()
    located = [p for p in positions if p is not None]
    if roll < 0.25:
        labels[f"delay_{rng.choice(names)}"] = f"{rng.uniform(2, 60):.2f}"
    elif roll < 0.4:
        labels[f"delay_{rng.choice(SERVICES)}"] = f"{rng.uniform(2, 40):.2f}"
    elif roll < 0.5:
        target = rng.choice([*SERVICES, *names])
        constraints.append(LatencyConstraint(threshold_ms=rng.uniform(2, 50), target=target))
    elif roll < 0.6:
        lat, long = rng.choice(located)
        user = GeoPoint(lat=lat + rng.uniform(-1, 1), long=long + rng.uniform(-1, 1))
        constraints.append(LatencyConstraint(threshold_ms=rng.uniform(2.5, 8), location=user))
    elif roll < 0.68:
        constraints.append(
            LatencyConstraint(threshold_ms=rng.uniform(2.5, 8), area=rng.choice(["a", "b"]))
        )
    elif roll < 0.78:
        lat, long = rng.choice(located)
        point = GeoPoint(lat=lat + rng.uniform(-0.5, 0.5), long=long + rng.uniform(-0.5, 0.5))
        constraints.append(GeoConstraint(location=point, threshold_km=rng.uniform(5, 300)))
    elif roll < 0.83:  # two bounds at once
        labels[f"delay_{rng.choice(names)}"] = f"{rng.uniform(5, 60):.2f}"
        labels[f"delay_{rng.choice(names)}"] = f"{rng.uniform(5, 60):.2f}"
    return labels, constraints


def add_areas(state: ClusterState, located: list[tuple[float, float]], rng: random.Random) -> None:
    for name in ("a", "b"):
        lat, long = rng.choice(located)
        points = tuple(
            GeoPoint(lat=lat + rng.uniform(-0.3, 0.3), long=long + rng.uniform(-0.3, 0.3))
            for _ in range(rng.randint(1, 3))
        )
        state.add_area(Area(name, points))


# -- default versus latency ---------------------------------------------------------------------


def line_state() -> ClusterState:
    """n0..n3, edge n0 n1, cloud n2 n3; RTT(i, j) = 10 |i − j|."""
    roles = [NodeRole.EDGE, NodeRole.EDGE, NodeRole.CLOUD, NodeRole.CLOUD]
    state = make_state([make_node(f"n{i}", role=r) for i, r in enumerate(roles)])
    state.attach_rtt(state.names, [[10.0 * abs(i - j) for j in range(4)] for i in range(4)])
    return state


def test_default_refuses_bounds_that_latency_enforces() -> None:
    request = make_request("r", cpu=100, labels={"delay_n3": "10"})
    refused = Scheduler(line_state(), "default").schedule(request)
    assert refused.code is Code.UNRESOLVABLE
    assert refused.reasons == [
        "policy 'default' has no plugin that enforces 'latency' constraints "
        "(delay labels are latency constraints)"
    ]
    placed = Scheduler(line_state(), "latency").schedule(request)
    assert placed.code is Code.OK and placed.node == "n3"  # 0 ms beats 10 ms (n2)


def test_unbounded_requests_go_to_the_cloud_bounded_ones_near_their_reference() -> None:
    state = line_state()
    place(state, "n2", make_request(cpu=3000))  # the cloud is busier than the edge
    scheduler = Scheduler(state, "latency")
    assert scheduler.schedule(make_request("free", cpu=100)).node == "n3"
    assert scheduler.schedule(make_request("bound", cpu=100, labels={"delay_n0": "15"})).node in {
        "n0",
        "n1",
    }
    # default spreads by load instead: the emptiest node, an edge one
    assert Scheduler(line_state(), "default").schedule(make_request("free", cpu=100)).node == "n0"


# -- reasons ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("explain", [True, False])
def test_unsatisfiable_bound_names_itself_and_the_best_rtt(cache: bool, explain: bool) -> None:
    state = line_state()
    state.set_healthy("n1", False)  # the node at 10 ms is down: the best left is 20 ms
    request = make_request("r", cpu=100, labels={"delay_n0": "15"})
    state.set_cordoned("n0", True)
    decision = Scheduler(state, "latency", cache=cache).schedule(request, explain=explain)
    assert decision.code is Code.UNSCHEDULABLE
    assert decision.reasons == [
        "0/4 nodes are available: 2 rejected by NodeSchedulable (e.g. n0: node is cordoned), "
        "2 rejected by Latency (e.g. n2: RTT 20.0 ms to n0 > 15 ms)",
        "Latency: delay_n0: best RTT 20.0 ms (node n2) > 15 ms",
    ]


def test_unsatisfiable_geo_and_service_bounds_name_the_best_on_offer() -> None:
    state = make_state(
        [
            make_node("munich", location=(48.137, 11.575)),
            make_node("berlin", location=(52.520, 13.405)),
        ]
    )
    state.attach_rtt(state.names, [[0, 30], [30, 0]])
    place(state, "berlin", make_request(service="db"))
    scheduler = Scheduler(state, "latency")
    paris = GeoPoint(lat=48.857, long=2.352)
    geo = scheduler.schedule(
        make_request("g", constraints=[GeoConstraint(location=paris, threshold_km=100)])
    )
    nearest = km((48.857, 2.352), (48.137, 11.575))
    assert geo.reasons[1:] == [
        f"Geo: geo within 100 km of (48.857, 2.352): nearest node munich is {nearest:.1f} km away"
    ]
    state.set_cordoned("berlin", True)  # the instance's own node: the best left is munich
    near_db = scheduler.schedule(
        make_request("s", constraints=[LatencyConstraint(threshold_ms=5, target="db")])
    )
    assert near_db.reasons[1:] == [
        "Latency: latency target 'db': best RTT 30.0 ms (node munich) > 5 ms"
    ]


def test_no_best_rtt_line_when_the_bound_is_met_but_the_node_is_full() -> None:
    state = line_state()
    place(state, "n0", make_request(cpu=4000))
    decision = Scheduler(state, "latency").schedule(
        make_request("r", cpu=100, labels={"delay_n0": "5"})
    )
    assert decision.reasons == [
        "0/4 nodes are available: 3 rejected by Latency (e.g. n1: RTT 10.0 ms to n0 > 5 ms), "
        "1 rejected by NodeResourcesFit (e.g. n0: insufficient cpu_m 100m > free 0m)"
    ]


def test_unknown_names_are_unresolvable_through_the_scheduler() -> None:
    decision = Scheduler(line_state(), "latency").schedule(
        make_request(
            "r",
            labels={"delay_edge-9": "10"},
            constraints=[
                LatencyConstraint(threshold_ms=5, target="no-such-service"),
                LatencyConstraint(threshold_ms=5, area="downtown"),
            ],
        )
    )
    assert decision.code is Code.UNRESOLVABLE
    assert decision.reasons == [
        "Latency: delay_edge-9: 'edge-9' is neither a node nor a known service",
        "Latency: latency target 'no-such-service': 'no-such-service' is neither a node "
        "nor a known service",
        "Latency: latency area 'downtown': unknown area (known areas: none defined)",
    ]


# -- brute force over a generated fleet --------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_fleet_placements_and_refusals_match_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    nodes = generate_nodes(240, clusters=6, seed=seed)
    state = ClusterState(nodes)
    topology = Topology.generate(nodes, np.random.default_rng(seed))
    state.attach_rtt(topology.names, topology.rtt_ms)
    located = [(n.location.lat, n.location.long) for n in nodes if n.location]
    add_areas(state, located, rng)
    world = world_of(state, nodes)
    scheduler = Scheduler(state, "latency", seed=seed)
    outcomes: dict[Code, int] = {}
    for i in range(400):
        labels, constraints = random_bounds(rng, world.names, world.positions)
        service = rng.choice([*SERVICES, ""])
        cpu, mem = rng.choice([(250, 256), (1000, 1024), (4000, 8192), (16000, 65536)])
        request = make_request(
            f"r{i}", cpu=cpu, mem=mem, service=service, labels=labels, constraints=constraints
        )
        decision = scheduler.schedule(request)
        outcomes[decision.code] = outcomes.get(decision.code, 0) + 1
        if decision.node is not None:
            j = state.node_index(decision.node)
            assert world.bound_ok(request, j), (request, decision.node)
            world.place(service, j)
        else:
            assert decision.code is Code.UNSCHEDULABLE, decision.reasons
            candidates = [
                state.names[j]
                for j in range(len(state))
                if fits(state, request, j) and world.bound_ok(request, j)
            ]
            assert candidates == [], (request, decision.reasons)
    # the sequence reaches both outcomes, or the comparison proves little
    assert outcomes.get(Code.OK, 0) > 100 and outcomes.get(Code.UNSCHEDULABLE, 0) > 20


# -- cached and uncached decide alike ------------------------------------------------------------


def random_fleet(rng: random.Random) -> list[Node]:
    nodes = []
    for i in range(rng.randint(5, 30)):
        located = rng.random() < 0.9
        nodes.append(
            make_node(
                f"n{i}",
                cpu=rng.choice([1000, 2000, 4000, 8000]),
                mem=rng.choice([1024, 4096, 8192]),
                cluster=rng.choice(["c0", "c1", "c2"]),
                role=rng.choice([NodeRole.EDGE, NodeRole.EDGE, NodeRole.CLOUD]),
                location=(rng.uniform(47, 53), rng.uniform(6, 14)) if located else None,
                unschedulable=rng.random() < 0.1,
            )
        )
    return nodes


@dataclass
class Run:
    state: ClusterState
    scheduler: Scheduler
    placed: list[tuple[int, PlacementRequest]] = field(default_factory=list)


@pytest.mark.parametrize(("seed", "tight"), [(1, False), (2, False), (3, True), (4, True)])
def test_cached_and_uncached_latency_schedulers_decide_alike(
    seed: int, tight: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tight:
        # Drop the change log every 7 changes and recompute past 2 changed rows.
        monkeypatch.setattr(state_module, "CHANGE_LOG_LIMIT", 7)
        monkeypatch.setattr(shapes_module, "ROW_REFRESH_LIMIT", 2)
    rng = random.Random(seed)
    nodes = random_fleet(rng)
    n = len(nodes)
    matrix = np.array(
        [[0.0 if i == j else round(rng.uniform(1, 60), 3) for j in range(n)] for i in range(n)],
        dtype=np.float32,
    )
    runs = []
    for cache in (True, False):
        state = ClusterState(nodes)
        state.attach_rtt(state.names, matrix)
        add_areas(state, [(48.1, 11.6), (52.5, 13.4)], random.Random(seed))
        runs.append(Run(state, Scheduler(state, "latency", seed=seed, cache=cache)))
    cached, full = runs
    world = world_of(cached.state, nodes)
    decided = 0
    for step in range(500):
        roll = rng.random()
        if roll < 0.25 and cached.placed:
            k = rng.randrange(len(cached.placed))
            for run in runs:
                node, request = run.placed.pop(k)
                run.state.release(node, request)
            world.remove(request.service, node)
        elif roll < 0.3:
            name, healthy = rng.choice(nodes).name, rng.random() < 0.6
            for run in runs:
                run.state.set_healthy(name, healthy)
        else:
            labels, constraints = random_bounds(rng, world.names, world.positions)
            cpu = rng.choice([100, 250, 500, 1000])
            request = make_request(
                f"r{step}",
                cpu=cpu,
                mem=rng.choice([0, 128, 512]),
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
            else:
                state = cached.state
                assert not [
                    j for j in range(n) if fits(state, request, j) and world.bound_ok(request, j)
                ], (step, request, a.reasons)
    assert decided > 300
    assert cached.state.allocated.tolist() == full.state.allocated.tolist()


# -- SLA connectivity ---------------------------------------------------------------------------


def connectivity_sla(first: str) -> dict[str, object]:
    def microservice(name: str, link_to: str | None) -> dict[str, object]:
        ms: dict[str, object] = {
            "microservice_name": name,
            "microservice_namespace": "test",
            "virtualization": "container",
            "memory": 100,
            "vcpus": 0.1,
            "code": "docker.io/library/nginx:latest",
        }
        if link_to:
            ms["connectivity"] = [
                {
                    "target_microservice_name": link_to,
                    "con_constraints": [{"type": "latency", "threshold": 12}],
                }
            ]
        return ms

    services = [microservice("cam", None), microservice("detect", "cam")]
    if first == "detect":
        services.reverse()
    return {
        "sla_version": "v2.0",
        "customerID": "Admin",
        "applications": [
            {
                "application_name": "vision",
                "application_namespace": "test",
                "microservices": services,
            }
        ],
    }


def test_sla_connectivity_bound_follows_the_target_microservice() -> None:
    state = line_state()
    requests = parse_sla(connectivity_sla("cam")).to_requests()
    # pin the camera to the edge, as a user would, then its detector follows within 12 ms
    cam = requests[0].model_copy(update={"labels": {**requests[0].labels, "delay_n0": "1"}})
    plan = Scheduler(state, "latency").schedule_many([cam, requests[1]])
    # detect: within 12 ms of n0 are n0 (0 ms, Latency 100 × 2) and n1 (10 ms, 16 × 2)
    assert plan.placements == [("vision.cam.0", "n0"), ("vision.detect.0", "n0")]
    # listed first, the detector waits for its camera instead of failing for good
    waiting = Scheduler(line_state(), "latency").schedule(
        parse_sla(connectivity_sla("detect")).to_requests()[0]
    )
    assert waiting.code is Code.UNSCHEDULABLE
    assert waiting.reasons == [
        "Latency: latency target 'vision.cam': no running instance of 'vision.cam' yet"
    ]
