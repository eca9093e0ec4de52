"""Builders for simulator tests: small infrastructures, task lifecycles as trace events,
and a synthetic Borg-like event stream for throughput checks.

``borg_task("t", submit=0, schedule=0, end=100)`` is one task's events the way a Borg
trace states them; ``merge`` sorts several such lists into one trace (stable, so events
of equal time keep the order they were given in).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from harmonia.model import Node, QoSClass, Topology
from harmonia.sim import Infrastructure, SimConfig, SimResult, simulate
from harmonia.sim.scenario import FailureConfig, LCConfig, RequestConfig
from harmonia.traces import EventKind, TaskEvent
from tests.builders import make_node

_KIND_CUMULATIVE = np.array([0.6, 0.85, 0.95])
TERMINALS = (EventKind.FINISH, EventKind.FAIL, EventKind.KILL, EventKind.EVICT, EventKind.LOST)


def make_infra(
    nodes: Sequence[Node] | int, *, topology: Topology | None = None, seed: int = 0
) -> Infrastructure:
    """An infrastructure over ``nodes`` (or that many 4-core, 8 GiB nodes ``n0..``)."""
    if isinstance(nodes, int):
        nodes = [make_node(f"n{i}", location=(50.0, 8.0 + i * 0.001)) for i in range(nodes)]
    return Infrastructure.from_nodes(nodes, topology=topology, seed=seed)


def config(**changes: Any) -> SimConfig:
    """A run config without LC requests and without quantization unless asked."""
    base: dict[str, Any] = {
        "lc": LCConfig(enabled=False),
        "requests": RequestConfig(quantize=False, min_cpu_m=0, min_memory_mib=0),
    }
    base.update(changes)
    return SimConfig(**base)


def borg_task(
    task: str,
    *,
    submit: float,
    schedule: float | None = None,
    end: float | None = None,
    kind: EventKind = EventKind.FINISH,
    cpu: int = 1000,
    mem: int = 1024,
    job: str = "",
    qos: QoSClass = QoSClass.BE,
    spread: bool = False,
    duration: float | None = None,
) -> list[TaskEvent]:
    """One task's life as trace events: SUBMIT, SCHEDULE (if given), terminal (if given)."""

    def event(time_s: float, what: EventKind) -> TaskEvent:
        return TaskEvent(
            time_s=time_s,
            kind=what,
            task=task,
            job=job or task.split(".")[0],
            qos_class=qos,
            cpu_m=cpu,
            memory_mib=mem,
            duration_s=duration if what is EventKind.SUBMIT else None,
            spread_job=spread,
        )

    events = [event(submit, EventKind.SUBMIT)]
    if schedule is not None:
        events.append(event(schedule, EventKind.SCHEDULE))
    if end is not None:
        events.append(event(end, kind))
    return events


def merge(*lists: Iterable[TaskEvent]) -> list[TaskEvent]:
    return sorted((ev for events in lists for ev in events), key=lambda ev: ev.time_s)


def run(
    infra: Infrastructure,
    events: Iterable[TaskEvent],
    *,
    policy: str = "default",
    seed: int = 0,
    **changes: Any,
) -> SimResult:
    return simulate(infra, events, policy=policy, config=config(**changes), seed=seed)


def conserved(result: SimResult) -> bool:
    t = result.metrics["tasks"]
    ends = t["finished"] + t["failed"] + t["evicted"] + t["pending_at_end"] + t["running_at_end"]
    return bool(t["submitted"] == ends)


def failures(mtbf_s: float, mttr_s: float, requeue: bool = True) -> FailureConfig:
    return FailureConfig(enabled=True, mtbf_s=mtbf_s, mttr_s=mttr_s, requeue=requeue)


def synthetic_events(
    count: int,
    *,
    seed: int = 0,
    rate_per_s: float = 4.0,
    lc_share: float = 0.2,
    mean_tasks_per_job: float = 4.0,
    cpu_m: tuple[float, float] = (2880.0, 0.8),
    memory_per_cpu: float = 4.0,
) -> Iterator[TaskEvent]:
    """About ``count`` Borg-2011-like events, in time order, generated lazily.

    Jobs arrive as a Poisson process of ``rate_per_s``/``mean_tasks_per_job`` per second;
    a job's tasks share one request (lognormal CPU with median and sigma ``cpu_m``,
    memory ``memory_per_cpu`` MiB per millicore times a lognormal factor); each task
    gets SUBMIT, SCHEDULE 1 s later and a terminal event after a lognormal run time
    (median 10 min BE, 4 h LC; FINISH 60%, KILL 25%, FAIL 10%, EVICT 5%), so about a
    third of the events are SUBMITs. Tasks still running when ``count`` is reached get
    no terminal event, as in a real trace window.
    """
    rng = np.random.default_rng(seed)
    pending: list[tuple[float, int, TaskEvent]] = []  # heap of future events
    emitted = 0
    now = 0.0
    job = 0
    seq = 0
    kinds = (EventKind.FINISH, EventKind.KILL, EventKind.FAIL, EventKind.EVICT)
    while emitted < count:
        now += float(rng.exponential(mean_tasks_per_job / rate_per_s))
        while pending and pending[0][0] <= now and emitted < count:
            yield heapq.heappop(pending)[2]
            emitted += 1
        size = 1 if rng.random() < 0.6 else max(1, int(rng.lognormal(math.log(4.5), 1.0)))
        lc = rng.random() < lc_share
        cpu = int(min(48000, max(10, rng.lognormal(math.log(cpu_m[0]), cpu_m[1]))))
        mem = int(min(190000, max(16, cpu * memory_per_cpu * rng.lognormal(0, 0.6) / 4)))
        qos = QoSClass.LC if lc else QoSClass.BE
        for index in range(min(size, 1000)):
            if emitted >= count:
                break
            name = f"{job}.{index}"
            base = TaskEvent(
                time_s=now,
                kind=EventKind.SUBMIT,
                task=name,
                job=str(job),
                qos_class=qos,
                priority=9 if lc else 0,
                cpu_m=cpu,
                memory_mib=mem,
            )
            yield base
            emitted += 1
            run_s = float(rng.lognormal(math.log(14400 if lc else 600), 1.0 if lc else 1.5))
            seq += 1
            heapq.heappush(pending, (now + 1.0, seq, _replace(base, now + 1.0, EventKind.SCHEDULE)))
            kind = kinds[int(np.searchsorted(_KIND_CUMULATIVE, rng.random(), side="right"))]
            seq += 1
            heapq.heappush(
                pending, (now + 1.0 + run_s, seq, _replace(base, now + 1.0 + run_s, kind))
            )
        job += 1


def _replace(event: TaskEvent, time_s: float, kind: EventKind) -> TaskEvent:
    return TaskEvent(
        time_s=time_s,
        kind=kind,
        task=event.task,
        job=event.job,
        qos_class=event.qos_class,
        priority=event.priority,
        cpu_m=event.cpu_m,
        memory_mib=event.memory_mib,
    )
