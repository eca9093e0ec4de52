"""Decisions per second of the ``default`` policy, one pod at a time, against a reference.

For 1,000, 5,000 and 10,000 generated edge-cloud nodes (10 clusters), 10,000 pods are
scheduled one after another, each decision seeing the previous reservations, as in
kube-scheduler's scheduler_perf ``SchedulingBasic`` test. Two workloads:

- ``basic``: pods of four shapes that belong to no service (scheduler_perf's pods have no
  owner, so the default spreading does not apply to them);
- ``services``: the same shapes spread over 20 services, so ServiceSpread scores too.

Each configuration is timed three ways: Harmonia's scheduler (vectorized, with its
row-local score cache), the same scheduler with the cache off (every plugin over every
node), and a plain per-node Python loop that implements the same filters and scores from
scratch. The reference is slow, so it decides only the first ``--reference-pods`` pods;
the placements of those pods must be identical in all three.

Prints one JSON document on stdout; progress goes to stderr.

    python benchmarks/bench_schedule.py [--nodes 1000,5000,10000] [--pods 10000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

from harmonia import __version__
from harmonia.model import Node, PlacementRequest, TaintEffect, generate_nodes
from harmonia.sched import ClusterState, Scheduler

SHAPES = ((100, 128), (250, 512), (500, 1024), (1000, 2048))  # (cpu_m, memory_mib)
SERVICES = 20
TARGET_NODES = 5000
TARGET_PODS_PER_S = 10_000


def make_pods(count: int, with_services: bool) -> list[PlacementRequest]:
    return [
        PlacementRequest(
            id=f"pod-{i}",
            service=f"svc-{i % SERVICES}" if with_services else "",
            cpu_m=SHAPES[i % len(SHAPES)][0],
            memory_mib=SHAPES[i % len(SHAPES)][1],
        )
        for i in range(count)
    ]


def run_harmonia(
    nodes: list[Node], pods: list[PlacementRequest], cache: bool
) -> tuple[float, list[str | None]]:
    scheduler = Scheduler(ClusterState(nodes), "default", cache=cache)
    started = time.perf_counter()
    plan = scheduler.schedule_many(pods)
    elapsed = time.perf_counter() - started
    return elapsed, [d.node for d in plan.decisions]


# -- the reference: a plain per-node loop ----------------------------------------------


@dataclass
class RefNode:
    name: str
    cluster: int
    free_cpu: int
    free_mem: int
    used_cpu: int
    used_mem: int
    alloc_cpu: int
    alloc_mem: int
    tainted: bool  # carries a NoSchedule/NoExecute taint no pod here tolerates


def reference_schedule(nodes: list[Node], pods: list[PlacementRequest]) -> list[str | None]:
    """kube-scheduler's default filters and scores, one node at a time, in plain Python.

    NodeResourcesFit + TaintToleration filters; LeastAllocated (×1), BalancedAllocation
    (×1) and ServiceSpread (×2, SelectorSpread's formula) scores; the first best node wins.
    """
    clusters = sorted({n.cluster for n in nodes})
    ref = []
    for node in nodes:
        alloc = node.allocatable_or_capacity
        ref.append(
            RefNode(
                node.name,
                clusters.index(node.cluster),
                alloc.cpu_m,
                alloc.memory_mib,
                0,
                0,
                alloc.cpu_m,
                alloc.memory_mib,
                any(
                    t.effect in (TaintEffect.NO_SCHEDULE, TaintEffect.NO_EXECUTE)
                    for t in node.taints
                ),
            )
        )
    counts: dict[str, list[int]] = {}
    cluster_counts: dict[str, list[int]] = {}
    zone_weighting = 2.0 / 3.0
    out: list[str | None] = []
    for pod in pods:
        cpu, mem = pod.cpu_m, pod.memory_mib
        node_counts = counts.get(pod.service)
        spread = bool(pod.service) and node_counts is not None and max(node_counts) > 0
        if spread:
            assert node_counts is not None
            top = max(node_counts)
            per_cluster = cluster_counts[pod.service]
            top_cluster = max(per_cluster)
        best, best_score = -1, -math.inf
        for i, n in enumerate(ref):
            if n.tainted or n.free_cpu < cpu or n.free_mem < mem:
                continue
            least = (
                max(n.free_cpu - cpu, 0) * 100 // max(n.alloc_cpu, 1)
                + max(n.free_mem - mem, 0) * 100 // max(n.alloc_mem, 1)
            ) // 2
            share_cpu = min((n.used_cpu + cpu) / max(n.alloc_cpu, 1), 1.0)
            share_mem = min((n.used_mem + mem) / max(n.alloc_mem, 1), 1.0)
            balanced = math.floor((1.0 - abs(share_cpu - share_mem) / 2) * 100.0)
            score = float(least) + float(balanced)
            if spread:
                node_score = (top - node_counts[i]) * (100 / top) * (1.0 - zone_weighting)
                node_score += (top_cluster - per_cluster[n.cluster]) * (
                    100 * zone_weighting / top_cluster
                )
                score += math.floor(node_score) * 2
            if score > best_score:
                best, best_score = i, score
        if best < 0:
            out.append(None)
            continue
        chosen = ref[best]
        chosen.free_cpu -= cpu
        chosen.free_mem -= mem
        chosen.used_cpu += cpu
        chosen.used_mem += mem
        if pod.service:
            counts.setdefault(pod.service, [0] * len(ref))[best] += 1
            cluster_counts.setdefault(pod.service, [0] * len(clusters))[chosen.cluster] += 1
        out.append(chosen.name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1000,5000,10000", help="comma-separated node counts")
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--reference-pods", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many timed runs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    results = []
    for count in (int(x) for x in args.nodes.split(",")):
        nodes = generate_nodes(count, clusters=10, seed=args.seed)
        for workload in ("basic", "services"):
            pods = make_pods(args.pods, with_services=workload == "services")
            print(f"[{count} nodes, {workload}] harmonia ...", file=sys.stderr, flush=True)
            runs = [run_harmonia(nodes, pods, cache=True) for _ in range(args.repeat)]
            seconds = min(r[0] for r in runs)
            placements = runs[0][1]
            sample = pods[: args.reference_pods]
            print(f"[{count} nodes, {workload}] without cache ...", file=sys.stderr, flush=True)
            nocache_seconds, nocache = run_harmonia(
                nodes, pods[: max(len(sample), 2000)], cache=False
            )
            print(f"[{count} nodes, {workload}] reference loop ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            reference = reference_schedule(nodes, sample)
            reference_seconds = time.perf_counter() - started
            identical = (
                placements[: len(sample)] == reference and nocache[: len(sample)] == reference
            )
            results.append(
                {
                    "nodes": count,
                    "workload": workload,
                    "pods": len(pods),
                    "scheduled": sum(p is not None for p in placements),
                    "harmonia_pods_per_s": round(len(pods) / seconds),
                    "harmonia_us_per_pod": round(seconds / len(pods) * 1e6, 1),
                    "no_cache_pods_per_s": round(len(nocache) / nocache_seconds),
                    "reference_pods": len(sample),
                    "reference_pods_per_s": round(len(sample) / reference_seconds, 1),
                    "speedup_vs_reference": round(
                        (len(pods) / seconds) / (len(sample) / reference_seconds), 1
                    ),
                    "identical_to_reference": identical,
                }
            )
    at_target = [r for r in results if r["nodes"] == TARGET_NODES and r["workload"] == "basic"]
    report = {
        "benchmark": "bench_schedule",
        "harmonia": __version__,
        "policy": "default",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.processor() or platform.machine(),
        },
        "results": results,
        "target": {
            "nodes": TARGET_NODES,
            "workload": "basic",
            "pods_per_s": TARGET_PODS_PER_S,
            "met": bool(at_target)
            and all(
                r["harmonia_pods_per_s"] >= TARGET_PODS_PER_S and r["identical_to_reference"]
                for r in at_target
            ),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
