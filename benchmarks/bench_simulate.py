"""Replay speed of the simulator: a synthetic Borg-2011 trace through the ``default`` policy.

Two configurations, each in its own child process so its peak memory is its own:

- 1,000,000 task events on 12,500 nodes (the target: at most 60 s, peak RSS < 2 GB);
- 100,000 task events on 1,000 nodes.

The trace is written first by Harmonia's synthetic generator (``borg2011`` format,
gzip; generation time is reported apart and not counted in the replay). Prints one
JSON document on stdout; progress goes to stderr.

    python benchmarks/bench_simulate.py [--configs 1000000:12500,100000:1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 60.0
TARGET_PEAK_MB = 2048.0
CLUSTERS = 25


def child(trace: Path, nodes: int, seed: int) -> dict[str, object]:
    """Replay ``trace`` on ``nodes`` generated nodes; runs in a fresh process."""
    from harmonia.sim import parse_scenario, run_scenario

    scenario = parse_scenario(
        {
            "name": f"bench-{nodes}",
            "seed": seed,
            "policy": "default",
            "topology": {"nodes": nodes, "clusters": min(CLUSTERS, nodes)},
            "trace": {"path": str(trace), "format": "borg2011"},
        }
    )
    started = time.perf_counter()
    result = run_scenario(scenario)
    total = time.perf_counter() - started
    metrics = result.metrics
    events = metrics["events"]["trace"] if "events" in metrics else None
    return {
        "wall_seconds_total": round(total, 2),
        "wall_seconds_replay": round(float(metrics["wall_seconds"]), 2),
        "setup_seconds": round(float(metrics.get("setup_seconds", 0.0)), 2),
        "trace_events": events,
        "events_per_s": round(events / total) if events else None,
        "tasks": metrics["tasks"],
        "scheduling_delay_s": metrics["scheduling_delay_s"],
        "utilization": {k: metrics["utilization"][k] for k in ("cpu_mean", "memory_mean")},
        "decisions": metrics.get("policy", {}).get("decisions"),
        "decision_us_mean": metrics.get("policy", {}).get("decision_us_mean"),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="1000000:12500,100000:1000", help="EVENTS:NODES,...")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write traces here and keep them")
    parser.add_argument(
        "--child", nargs=3, metavar=("TRACE", "NODES", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.child:
        trace, nodes, seed = args.child
        print(json.dumps(child(Path(trace), int(nodes), int(seed))))
        return

    from harmonia.traces.synthetic import generate

    folder = args.keep or Path(tempfile.mkdtemp(prefix="harmonia-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for config in args.configs.split(","):
        events, nodes = (int(x) for x in config.split(":"))
        trace = folder / f"task_events-{events}.csv.gz"
        print(f"[{events:,} events] generating trace ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        written = generate("borg2011", trace, events=events, seed=args.seed)
        generation = time.perf_counter() - started
        print(f"[{events:,} events on {nodes:,} nodes] replaying ...", file=sys.stderr, flush=True)
        run = subprocess.run(
            [sys.executable, __file__, "--child", str(trace), str(nodes), str(args.seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(
            {
                "events_requested": events,
                "events_written": written.events,
                "tasks_written": written.tasks,
                "nodes": nodes,
                "generation_seconds": round(generation, 2),
                **measured,
            }
        )
        if args.keep is None:
            trace.unlink()
    big = [r for r in results if r["events_requested"] == 1_000_000 and r["nodes"] == 12_500]
    report = {
        "benchmark": "bench_simulate",
        "policy": "default",
        "trace_format": "borg2011",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": results,
        "target": {
            "events": 1_000_000,
            "nodes": 12_500,
            "max_seconds": TARGET_SECONDS,
            "max_peak_rss_mb": TARGET_PEAK_MB,
            "met": bool(big)
            and all(
                r["wall_seconds_total"] <= TARGET_SECONDS and r["peak_rss_mb"] < TARGET_PEAK_MB
                for r in big
            ),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
