"""Harmonia's simulator: replays public cluster traces through any registered policy on
simulated edge-cloud infrastructure of up to tens of thousands of nodes.

- :mod:`~harmonia.sim.engine`: the discrete-event engine (one heap, deterministic);
- :mod:`~harmonia.sim.infra`: nodes, their ``ClusterState``, user areas and RTTs;
- :mod:`~harmonia.sim.scenario`: the scenario document and the run's knobs;
- :mod:`~harmonia.sim.simulator`: task semantics, the pending queue, node failures;
- :mod:`~harmonia.sim.lc`: requests to latency-critical services and their SLO;
- :mod:`~harmonia.sim.metrics`: what a run measures and the result folder it writes;
- :mod:`~harmonia.sim.runner`: a scenario from files to result.

Called by the CLI (``harmonia simulate``, ``harmonia compare``) and the benchmarks.
Simulated time only: nothing here sleeps or opens a socket.
"""

from harmonia.sim.engine import Engine, EngineError
from harmonia.sim.infra import RTT_MATRIX_LIMIT, Areas, Infrastructure, load_infrastructure
from harmonia.sim.lc import LCModel
from harmonia.sim.metrics import SimResult, write_result
from harmonia.sim.runner import build_infrastructure, run_scenario
from harmonia.sim.scenario import (
    TRACE_FORMATS,
    FailureConfig,
    LCConfig,
    RequestConfig,
    Scenario,
    SimConfig,
    TopologyConfig,
    TraceConfig,
    load_scenario,
    load_scenario_text,
    parse_scenario,
)
from harmonia.sim.simulator import Simulation, simulate

__all__ = [
    "RTT_MATRIX_LIMIT",
    "TRACE_FORMATS",
    "Areas",
    "Engine",
    "EngineError",
    "FailureConfig",
    "Infrastructure",
    "LCConfig",
    "LCModel",
    "RequestConfig",
    "Scenario",
    "SimConfig",
    "SimResult",
    "Simulation",
    "TopologyConfig",
    "TraceConfig",
    "build_infrastructure",
    "load_infrastructure",
    "load_scenario",
    "load_scenario_text",
    "parse_scenario",
    "run_scenario",
    "simulate",
    "write_result",
]
