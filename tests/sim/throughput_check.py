"""Throughput of the simulator on synthetic Borg-like task events; prints JSON.

Not a timed unit test (``test_throughput_check.py`` only runs it small). By hand::

    .venv/bin/python -m tests.sim.throughput_check --nodes 12500 --events 1000000
    .venv/bin/python -m tests.sim.throughput_check --nodes 12500 --trace t.csv

Events come from :func:`tests.sim.helpers.synthetic_events` (generated lazily, so the
figures include generating them) or, with ``--trace``, from a trace file through its
reader (``--format``, default borg2011), so they include parsing.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harmonia.sim import Infrastructure, SimConfig, simulate
from harmonia.sim.scenario import LCConfig
from harmonia.traces import TaskEvent
from harmonia.traces.registry import reader_for
from tests.sim.helpers import synthetic_events


def measure(
    *,
    nodes: int,
    events: int,
    clusters: int | None = None,
    policy: str = "default",
    lc: bool = False,
    trace: Path | None = None,
    trace_format: str = "borg2011",
    seed: int = 1,
) -> dict[str, Any]:
    started = time.perf_counter()
    infra = Infrastructure.generate(nodes, clusters or max(1, nodes // 250), seed=seed)
    setup = time.perf_counter() - started
    stream: Iterable[TaskEvent]
    if trace is not None:
        stream = reader_for(trace_format)(trace)
    else:
        stream = synthetic_events(events, seed=seed, rate_per_s=4.0 * nodes / 12_500)
    config = SimConfig(lc=LCConfig(enabled=lc))
    result = simulate(infra, stream, policy=policy, config=config, seed=seed)
    metrics = result.metrics
    wall = metrics["wall_seconds"]
    return {
        "nodes": nodes,
        "clusters": infra.state.num_clusters,
        "policy": policy,
        "lc": lc,
        "source": str(trace) if trace else "synthetic_events",
        "events": metrics["events"]["trace"],
        "wall_seconds": round(wall, 3),
        "events_per_second": round(metrics["events"]["trace"] / wall, 1) if wall else 0.0,
        "setup_seconds": round(setup, 3),
        "decisions": metrics["policy"]["decisions"],
        "decision_seconds": round(metrics["policy"]["decision_seconds"], 3),
        "decision_us_mean": round(metrics["policy"]["decision_us_mean"], 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "tasks": metrics["tasks"],
        "python": sys.version.split()[0],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=12_500)
    parser.add_argument("--clusters", type=int, default=None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--policy", default="default")
    parser.add_argument("--lc", action="store_true", help="model LC requests too")
    parser.add_argument("--trace", type=Path, default=None)
    parser.add_argument("--format", default="borg2011")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    report = measure(
        nodes=args.nodes,
        events=args.events,
        clusters=args.clusters,
        policy=args.policy,
        lc=args.lc,
        trace=args.trace,
        trace_format=args.format,
        seed=args.seed,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
