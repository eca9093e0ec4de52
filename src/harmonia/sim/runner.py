"""A scenario from start to result: build the infrastructure, stream the trace, simulate.

``harmonia simulate`` and ``harmonia compare`` call :func:`run_scenario` (compare once
per policy, in separate processes); tests call :func:`simulate` directly with events
they build.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import asdict
from typing import Any

from harmonia.model import HarmoniaError
from harmonia.sim.infra import Infrastructure, load_infrastructure
from harmonia.sim.metrics import SimResult
from harmonia.sim.scenario import Scenario
from harmonia.sim.simulator import ProgressFn, simulate
from harmonia.traces.events import TaskEvent
from harmonia.traces.prefetch import read_trace
from harmonia.traces.source import ReadStats


def build_infrastructure(scenario: Scenario) -> Infrastructure:
    """The scenario's nodes: generated (seeded by the scenario) or read from its files."""
    topology = scenario.topology
    if topology.nodes_file is not None:
        return load_infrastructure(
            topology.nodes_file,
            rtt_file=topology.rtt_file,
            rtt_index=topology.rtt_index,
            seed=scenario.seed,
        )
    if topology.cluster_sizes is not None:
        return Infrastructure.generate_sized(topology.cluster_sizes, seed=scenario.seed)
    if topology.nodes is None:  # the scenario's validator makes this unreachable
        raise HarmoniaError("topology needs nodes or nodes_file")
    return Infrastructure.generate(topology.nodes, topology.clusters, seed=scenario.seed)


def run_scenario(
    scenario: Scenario,
    *,
    policy: str | None = None,
    infra: Infrastructure | None = None,
    progress: ProgressFn | None = None,
) -> SimResult:
    """Run ``scenario`` (with ``policy`` instead of its own, if given).

    Adds to the metrics ``scenario`` (name, policy, trace, format), ``trace_read`` (the
    reader's counters: lines, skipped bad lines, ...) and ``setup_seconds`` (building the
    infrastructure, not part of ``wall_seconds``).
    """
    stats = ReadStats()
    trace = scenario.trace
    # A large trace is parsed by a child process on another core (see read_trace), which
    # starts up while the infrastructure is built. Without a trace (edge services only)
    # the event stream is empty.
    events: Generator[TaskEvent, None, None] = (
        read_trace(trace.format, trace.path, skip_bad_lines=trace.skip_bad_lines, stats=stats)
        if trace is not None
        else _no_events()
    )
    try:
        started = time.perf_counter()
        infra = infra if infra is not None else build_infrastructure(scenario)
        setup = time.perf_counter() - started
        name = policy or scenario.policy
        result = simulate(
            infra,
            events,
            policy=name,
            config=scenario.sim_config(),
            seed=scenario.seed,
            progress=progress,
        )
    finally:
        # A horizon can end the replay before the trace: stop the reader now, and only
        # then are its counters final.
        events.close()
    read: dict[str, Any] = asdict(stats)
    result.metrics["scenario"] = {
        "name": scenario.name,
        "policy": name,
        "trace": str(trace.path) if trace is not None else None,
        "format": trace.format if trace is not None else None,
        "nodes": len(infra),
        "clusters": infra.state.num_clusters,
    }
    result.metrics["trace_read"] = read
    result.metrics["setup_seconds"] = setup
    return result


def _no_events() -> Generator[TaskEvent, None, None]:
    """An empty event stream (a scenario of edge services only)."""
    yield from ()
