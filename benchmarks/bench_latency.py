"""Decisions per second of the ``latency`` policy with delay constraints, and a check that
every placement meets its bound.

Infrastructure: ``generate_nodes(10000, clusters=10, seed=S)`` with the RTT matrix of
``Topology.generate`` (float32, 10,000 × 10,000, about 400 MB) attached to the state.

Workload, after kubernetes-edge-scheduler deployments and Oakestra SLAs: first one
unbounded instance of each of 20 services (they go to the cloud; delay labels naming a
service need a running instance), then ``--requests`` requests, one at a time, each
seeing the previous reservations:

- 40 % ``delay_<edge node>: "<ms>"`` with a bound of 15-60 ms;
- 20 % ``delay_<service>: "<ms>"`` (within the bound of the service's nearest instance);
- 10 % ``LatencyConstraint(target=<service>)``;
- 10 % ``LatencyConstraint(location=<user near an edge site>)``, 3-10 ms;
- 20 % unbounded, each of one of the 20 services (so services grow and move).

Every placement is checked against the matrix (and, for users, great-circle estimates)
afterwards; the report says how many violate their bound (must be 0). The same requests
go through the scheduler with its row-local cache (the default) and without it, and the
two must place them identically. Rates are the best of ``--repeat`` runs, by wall clock
(``decisions_per_s``, the target) and by this process's CPU time
(``decisions_per_cpu_s``, which other load on a shared machine disturbs less).

Sections:

- ``flat``: one ``latency`` scheduler over all nodes, on 10 clusters of 1,000 nodes.
- ``hierarchical``: delegated scheduling (root → cluster → node,
  :mod:`harmonia.sched.hierarchy`) on ``generate_nodes(10000, clusters=100)``, 100
  clusters of 100 nodes. ``ldp`` runs the mix above with 10 of the 20 % unbounded
  requests turned into ``GeoConstraint`` bounds (20-100 km around a user near an edge
  site), against the flat ``latency`` policy on the same nodes and requests as the
  reference; ``rom`` enforces no location bound, so it runs the same requests with their
  bounds removed, against the flat ``default`` policy. Per policy: decisions per second,
  outcomes, success rate and violations (must be 0); for ``ldp`` also whether the
  scheduler decides alike with its row caches on and off. Target: 5,000 decisions/s for
  ``rom`` and ``ldp`` (``target_met``); ``targets`` also says, for each reading of the
  issue apart, whether ``rom`` and ``ldp`` reach 5,000/s and ``ldp`` 2,000/s (the rate the
  issue sets for decisions with delay constraints).
- ``scaling``: ``rom`` against flat ``default`` on 10,000, 30,000 and 100,000 nodes in
  clusters of 100, requests without bounds (3,000 per size); also the seconds it takes to
  build the delegating scheduler (one sub-state and scheduler per cluster).

Prints one JSON document on stdout; progress goes to stderr.

    python benchmarks/bench_latency.py [--nodes 10000] [--requests 10000] [--seed 1]
        [--sections flat,hierarchical,scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harmonia import __version__
from harmonia.model import (
    Constraint,
    GeoConstraint,
    GeoPoint,
    LatencyConstraint,
    Node,
    NodeRole,
    PlacementRequest,
    Topology,
    generate_nodes,
)
from harmonia.model.topology import distance_rtt_ms, haversine_km
from harmonia.sched import ClusterState, scheduler_for
from harmonia.sched.plugins.latency import DEFAULT_ACCESS_MS

SERVICES = 20
SHAPES = ((100, 128), (250, 512), (500, 1024), (1000, 2048))  # (cpu_m, memory_mib)
TARGET_NODES = 10_000
TARGET_DECISIONS_PER_S = 2_000
HIERARCHY_CLUSTERS = 100
TARGET_DELEGATED_PER_S = 5_000
SCALING_NODES = (10_000, 30_000, 100_000)
SCALING_REQUESTS = 3_000


@dataclass
class Fleet:
    nodes: list[Node]
    names: list[str]
    rtt: np.ndarray[Any, np.dtype[np.float32]]  # state order
    edge: list[int]  # indices of edge nodes


def make_fleet(count: int, seed: int, clusters: int = 10) -> Fleet:
    nodes = generate_nodes(count, clusters=clusters, seed=seed)
    topology = Topology.generate(nodes, np.random.default_rng(seed))
    names = [n.name for n in nodes]
    assert list(topology.names) == names
    edge = [i for i, n in enumerate(nodes) if n.role is NodeRole.EDGE]
    return Fleet(nodes, names, np.asarray(topology.rtt_ms), edge)


def make_state(fleet: Fleet) -> ClusterState:
    state = ClusterState(fleet.nodes)
    state.attach_rtt(fleet.names, fleet.rtt)
    return state


def make_requests(
    fleet: Fleet, count: int, seed: int, *, geo: bool = False
) -> list[PlacementRequest]:
    """The warm-up instances, then ``count`` requests of the documented mix (with
    ``geo``, half of the unbounded ones carry a geo bound instead)."""
    rng = np.random.default_rng(seed)
    requests = [
        PlacementRequest(id=f"warm-{s}", service=f"svc-{s}", cpu_m=250, memory_mib=512)
        for s in range(SERVICES)
    ]
    for i in range(count):
        cpu, mem = SHAPES[i % len(SHAPES)]
        service = f"svc-{int(rng.integers(SERVICES))}"
        kind = float(rng.random())
        labels: dict[str, str] = {}
        constraints: tuple[Constraint, ...] = ()
        if kind < 0.4:
            node = fleet.names[fleet.edge[int(rng.integers(len(fleet.edge)))]]
            labels = {f"delay_{node}": f"{rng.uniform(15, 60):.1f}"}
        elif kind < 0.6:
            labels = {f"delay_svc-{int(rng.integers(SERVICES))}": f"{rng.uniform(15, 60):.1f}"}
        elif kind < 0.7:
            target = f"svc-{int(rng.integers(SERVICES))}"
            constraints = (LatencyConstraint(threshold_ms=rng.uniform(15, 60), target=target),)
        elif kind < 0.8:
            site = fleet.nodes[fleet.edge[int(rng.integers(len(fleet.edge)))]].location
            assert site is not None
            user = GeoPoint(
                lat=site.lat + rng.uniform(-0.2, 0.2), long=site.long + rng.uniform(-0.2, 0.2)
            )
            constraints = (LatencyConstraint(threshold_ms=rng.uniform(3, 10), location=user),)
        elif geo and kind < 0.9:
            site = fleet.nodes[fleet.edge[int(rng.integers(len(fleet.edge)))]].location
            assert site is not None
            user = GeoPoint(
                lat=site.lat + rng.uniform(-0.2, 0.2), long=site.long + rng.uniform(-0.2, 0.2)
            )
            constraints = (GeoConstraint(location=user, threshold_km=rng.uniform(20, 100)),)
        requests.append(
            PlacementRequest(
                id=f"r{i}",
                service=service,
                cpu_m=cpu,
                memory_mib=mem,
                labels=labels,
                constraints=constraints,
            )
        )
    return requests


def violations(
    fleet: Fleet, requests: list[PlacementRequest], placements: list[str | None]
) -> dict[str, int]:
    """Placements that break a bound, replaying the instances as they were placed."""
    index = {name: i for i, name in enumerate(fleet.names)}
    lat = np.array([n.location.lat if n.location else np.nan for n in fleet.nodes])
    lon = np.array([n.location.long if n.location else np.nan for n in fleet.nodes])
    hosts: dict[str, list[int]] = {}
    checked = broken = 0
    for request, node in zip(requests, placements, strict=True):
        if node is None:
            continue
        j = index[node]
        bounds: list[tuple[float, float]] = []  # (rtt, bound)
        for key, value in request.labels.items():
            ref = key.removeprefix("delay_")
            bounds.append((_rtt_to(fleet, hosts, index, ref, j), float(value)))
        for c in request.constraints:
            if isinstance(c, GeoConstraint):
                km = haversine_km(c.location.lat, c.location.long, lat[j], lon[j])
                bounds.append((float(km), c.threshold_km))
                continue
            assert isinstance(c, LatencyConstraint)
            if c.target is not None:
                bounds.append((_rtt_to(fleet, hosts, index, c.target, j), c.threshold_ms))
            if c.location is not None:
                km = haversine_km(c.location.lat, c.location.long, lat[j], lon[j])
                estimate = float(distance_rtt_ms(km)) + DEFAULT_ACCESS_MS
                bounds.append((estimate, c.threshold_ms))
        checked += bool(bounds)
        broken += any(not rtt <= bound for rtt, bound in bounds)
        hosts.setdefault(request.service, []).append(j)
    return {"bounded_placements_checked": checked, "violations": broken}


def _rtt_to(
    fleet: Fleet, hosts: dict[str, list[int]], index: dict[str, int], ref: str, j: int
) -> float:
    if ref in index:
        return float(fleet.rtt[index[ref], j])
    return float(fleet.rtt[hosts[ref], j].min()) if hosts.get(ref) else float("inf")


@dataclass
class Timing:
    seconds: float  # wall clock
    cpu_seconds: float  # this process's CPU time: less disturbed by other load on the machine
    placements: list[str | None]
    codes: dict[str, int]


def timed(
    state: ClusterState,
    requests: list[PlacementRequest],
    cache: bool,
    seed: int,
    policy: str = "latency",
) -> Timing:
    """Decide ``requests`` one by one with ``policy``, as a host builds it (a delegating
    scheduler for ``rom``/``ldp``); building the scheduler is not timed."""
    scheduler = scheduler_for(state, policy, seed=seed, cache=cache)
    started, cpu_started = time.perf_counter(), time.process_time()
    plan = scheduler.schedule_many(requests)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    codes: dict[str, int] = {}
    for d in plan.decisions:
        codes[d.code.value] = codes.get(d.code.value, 0) + 1
    return Timing(seconds, cpu, [d.node for d in plan.decisions], codes)


# -- sections -------------------------------------------------------------------------------


def flat(args: argparse.Namespace) -> dict[str, Any]:
    """One scheduler over every node, the policy as the CLI runs it."""
    log(f"[flat] generating {args.nodes} nodes and their RTT matrix ...")
    fleet = make_fleet(args.nodes, args.seed)
    requests = make_requests(fleet, args.requests, args.seed)
    runs = []
    for _ in range(args.repeat):
        log("[flat] latency policy, cached ...")
        runs.append(timed(make_state(fleet), requests, cache=True, seed=args.seed))
    best = min(runs, key=lambda r: r.seconds)
    placements = best.placements
    uncached_count = min(len(requests), args.uncached_requests)
    log(f"[flat] latency policy, uncached, first {uncached_count} requests ...")
    uncached = timed(make_state(fleet), requests[:uncached_count], cache=False, seed=args.seed)
    identical = uncached.placements == placements[:uncached_count] and all(
        r.placements == placements for r in runs
    )
    check = violations(fleet, requests, placements)
    rate = len(requests) / best.seconds
    return {
        "policy": "latency",
        "nodes": args.nodes,
        "clusters": 10,
        "requests": len(requests),
        "outcomes": best.codes,
        "decisions_per_s": round(rate),
        "us_per_decision": round(best.seconds / len(requests) * 1e6, 1),
        "decisions_per_cpu_s": round(len(requests) / min(r.cpu_seconds for r in runs)),
        "uncached_decisions_per_s": round(uncached_count / uncached.seconds),
        "identical_uncached": identical,
        **check,
        "target_decisions_per_s": TARGET_DECISIONS_PER_S,
        "target_met": args.nodes >= TARGET_NODES
        and rate >= TARGET_DECISIONS_PER_S
        and check["violations"] == 0
        and identical,
    }


def hierarchical(args: argparse.Namespace) -> dict[str, Any]:
    """Root → cluster → node on 100 clusters, ``ldp`` and ``rom`` against flat policies."""
    log(f"[hierarchical] generating {args.nodes} nodes in {HIERARCHY_CLUSTERS} clusters ...")
    fleet = make_fleet(args.nodes, args.seed, clusters=HIERARCHY_CLUSTERS)
    bounded = make_requests(fleet, args.requests, args.seed, geo=True)
    # rom enforces no location bound (it would refuse those requests): the same requests
    # without their bounds.
    plain = [r.model_copy(update={"labels": {}, "constraints": ()}) for r in bounded]
    report: dict[str, Any] = {
        "nodes": args.nodes,
        "clusters": HIERARCHY_CLUSTERS,
        "requests": len(bounded),
        "target_decisions_per_s": TARGET_DELEGATED_PER_S,
    }
    met = args.nodes >= TARGET_NODES
    targets: dict[str, bool] = {}
    for policy, reference, requests in (("ldp", "latency", bounded), ("rom", "default", plain)):
        runs = []
        for _ in range(args.repeat):
            log(f"[hierarchical] {policy} ...")
            runs.append(
                timed(make_state(fleet), requests, cache=True, seed=args.seed, policy=policy)
            )
        best = min(runs, key=lambda r: r.seconds)
        identical = all(r.placements == best.placements for r in runs)
        entry = _summary(fleet, requests, runs)
        if policy == "ldp":
            count = min(len(requests), args.uncached_requests)
            log(f"[hierarchical] {policy}, uncached, first {count} requests ...")
            uncached = timed(
                make_state(fleet), requests[:count], cache=False, seed=args.seed, policy=policy
            )
            identical = identical and uncached.placements == best.placements[:count]
            entry["uncached_decisions_per_s"] = round(count / uncached.seconds)
        entry["identical_runs" if policy == "rom" else "identical_uncached"] = identical
        log(f"[hierarchical] flat {reference} (reference) ...")
        flat_run = timed(make_state(fleet), requests, cache=True, seed=args.seed, policy=reference)
        entry[f"flat_{reference}"] = _summary(fleet, requests, [flat_run])
        report[policy] = entry
        sound = args.nodes >= TARGET_NODES and entry["violations"] == 0 and identical
        targets[f"{policy}_at_{TARGET_DELEGATED_PER_S}_per_s"] = (
            sound and entry["decisions_per_s"] >= TARGET_DELEGATED_PER_S
        )
        if policy == "ldp":
            targets[f"ldp_at_{TARGET_DECISIONS_PER_S}_per_s"] = (
                sound and entry["decisions_per_s"] >= TARGET_DECISIONS_PER_S
            )
        met = met and targets[f"{policy}_at_{TARGET_DELEGATED_PER_S}_per_s"]
    # Each reading of the targets on its own: the delegated path at 5,000/s for
    # both policies (target_met), or for rom with ldp's delay-constrained decisions held
    # to the 2,000/s that the issue sets for decisions with delay constraints.
    report["targets"] = targets
    report["target_met"] = met
    return report


def _summary(fleet: Fleet, requests: list[PlacementRequest], runs: list[Timing]) -> dict[str, Any]:
    best = min(runs, key=lambda r: r.seconds)
    placed = sum(node is not None for node in best.placements)
    return {
        "decisions_per_s": round(len(requests) / best.seconds),
        "us_per_decision": round(best.seconds / len(requests) * 1e6, 1),
        "decisions_per_cpu_s": round(len(requests) / min(r.cpu_seconds for r in runs)),
        "outcomes": best.codes,
        "success_rate": round(placed / len(requests), 4),
        **violations(fleet, requests, best.placements),
    }


def scaling(args: argparse.Namespace) -> dict[str, Any]:
    """``rom`` against flat ``default`` as the node count grows, 100 nodes per cluster, on
    requests without bounds (no RTT matrix needed): the flat policy's work grows with the
    nodes, a delegated decision's with the clusters and one cluster's nodes."""
    report: dict[str, Any] = {}
    for count in SCALING_NODES:
        log(f"[scaling] {count} nodes ...")
        nodes = generate_nodes(count, clusters=count // 100, seed=args.seed)
        rng = np.random.default_rng(args.seed)
        requests = [
            PlacementRequest(
                id=f"r{i}",
                service=f"svc-{int(rng.integers(SERVICES))}",
                cpu_m=SHAPES[i % len(SHAPES)][0],
                memory_mib=SHAPES[i % len(SHAPES)][1],
            )
            for i in range(min(args.requests, SCALING_REQUESTS))
        ]
        entry: dict[str, Any] = {"clusters": count // 100}
        for policy in ("rom", "default"):
            state = ClusterState(nodes)
            started = time.perf_counter()
            scheduler = scheduler_for(state, policy, seed=args.seed)
            built = time.perf_counter() - started
            started = time.perf_counter()
            plan = scheduler.schedule_many(requests)
            seconds = time.perf_counter() - started
            entry[policy] = {
                "decisions_per_s": round(len(requests) / seconds),
                "scheduled": plan.scheduled,
                "build_s": round(built, 2),
            }
        report[str(count)] = entry
    return report


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "flat": flat,
    "hierarchical": hierarchical,
    "scaling": scaling,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=TARGET_NODES)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--uncached-requests", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many timed runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated")
    args = parser.parse_args()
    report = {
        "benchmark": "bench_latency",
        "harmonia": __version__,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.processor() or platform.machine(),
        },
        "sections": {name: SECTIONS[name](args) for name in args.sections.split(",")},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
