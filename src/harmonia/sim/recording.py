"""What one simulation run measures as it goes, and the metrics it reports at the end.

:class:`Recorder` belongs to :class:`harmonia.sim.simulator.Simulation`: the simulation
counts task lives, events and decisions into it while it runs, calls :meth:`Recorder.sample`
once per time step (a time-series row: queue sizes, the step's counts, utilization and
the LC model's step) and :meth:`Recorder.metrics` once at the end. The counters'
definitions are in the simulator's docstring.
"""

from __future__ import annotations

import resource
from typing import Any

from harmonia.sched import ClusterState
from harmonia.sim.infra import Infrastructure
from harmonia.sim.lc import LCModel
from harmonia.sim.metrics import EventCounters, Samples, TaskCounters
from harmonia.sim.usage import UsageRecorder

# Positions in Recorder.step: counts since the last sample.
SUBMITTED, SCHEDULED, DECISIONS, ENDED = range(4)


class Recorder:
    """Counters, scheduling delays and time-series rows of one run."""

    def __init__(
        self, infra: Infrastructure, state: ClusterState, lc_model: LCModel | None
    ) -> None:
        self.counts = TaskCounters()
        self.events = EventCounters()
        self.delays = Samples()
        self.rows: list[dict[str, float | int]] = []
        self.usage = UsageRecorder(infra, state)
        self.lc_model = lc_model
        # Counts since the last sample, indexed by SUBMITTED, SCHEDULED, DECISIONS, ENDED;
        # reset in place, so the simulation may hold on to the list.
        self.step = [0, 0, 0, 0]
        self.decisions = 0
        self.decision_seconds = 0.0
        self.node_failures = 0
        self.node_recoveries = 0
        self.last_sample_t = 0.0

    def sample(self, now: float, *, pending: int, running: int, final: bool) -> None:
        """Append the time-series row for ``now`` (a final sample at the time of the last
        row adds none)."""
        rows = self.rows
        if final and rows and rows[-1]["time_s"] >= now:
            return
        step = self.step
        row: dict[str, float | int] = {
            "time_s": now,
            "pending": pending,
            "running": running,
            "submitted": step[SUBMITTED],
            "scheduled": step[SCHEDULED],
            "ended": step[ENDED],
            "decisions": step[DECISIONS],
        }
        step[:] = (0, 0, 0, 0)
        row.update(self.usage.sample())
        if self.lc_model is not None:
            row.update(self.lc_model.step(now - self.last_sample_t))
        self.last_sample_t = now
        rows.append(row)

    def metrics(
        self,
        *,
        policy: str,
        seed: int,
        step_s: float,
        pending: int,
        running: int,
        times: tuple[float, float, float],
        wall: float,
        processed: int,
    ) -> dict[str, Any]:
        """The run's metrics; ``times`` is (start, end, trace end) in simulated seconds."""
        start, end, trace_end = times
        self.events.processed = processed
        decisions, seconds = self.decisions, self.decision_seconds
        metrics: dict[str, Any] = {
            "tasks": self.counts.as_metrics(pending, running),
            "scheduling_delay_s": self.delays.summary(),
            "utilization": self.usage.utilization(),
            "nodes": {
                **self.usage.nodes(),
                "failures": self.node_failures,
                "recoveries": self.node_recoveries,
            },
            "policy": {
                "name": policy,
                "decisions": decisions,
                "decision_seconds": seconds,
                "decision_us_mean": seconds / decisions * 1e6 if decisions else 0.0,
            },
            "events": self.events.as_metrics(wall),
            "time": {
                "start_s": start,
                "end_s": end,
                "trace_end_s": trace_end,
                "steps": len(self.rows),
                "step_s": step_s,
            },
            "seed": seed,
            "wall_seconds": wall,
            "peak_rss_mib": _peak_rss_mib(),
        }
        if self.lc_model is not None:
            metrics["lc"] = self.lc_model.summary()
        return metrics


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS); this is the process's peak so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
