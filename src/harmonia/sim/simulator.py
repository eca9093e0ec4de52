"""Trace replay: task events through a scheduling policy on simulated infrastructure.

:func:`simulate` is the entry point (the CLI, the benchmarks and the tests call it, or
:func:`harmonia.sim.run_scenario` which builds its inputs from a scenario). It drives one
:class:`~harmonia.sched.Scheduler` over a copy of the infrastructure's ``ClusterState``
with the policy given by name, exactly as the control plane would.

Task lives
    A SUBMIT event starts a *task life*. Its request is built from the event (see
    :class:`~harmonia.sim.scenario.RequestConfig`: CPU and memory rounded up to quanta
    and raised to minimums; a job with Borg's "different machines" restriction becomes
    a service with a node anti-affinity constraint). Tasks with equal requests share one
    interned ``PlacementRequest`` whose id names the shape, not the task. The policy
    tries at once; a task that fits nowhere waits in the pending queue; one that can
    never fit (larger than every node) is *rejected* and counts as failed. A trace may
    resubmit a task after its terminal event (Borg does after evictions and failures):
    that is a new life, even while the simulator still runs or queues the previous one.
    A SUBMIT for a task whose current life has seen no terminal event is ignored
    (``events.ignored``).

Run time
    - If the event states a duration (Alibaba, Azure), the task runs that long from its
      simulated start and then finishes.
    - Otherwise (Borg) the trace's own SCHEDULE and terminal event (FINISH, FAIL, KILL,
      EVICT, LOST) give ``duration = terminal - trace schedule`` (``- submit`` without a
      SCHEDULE). When the terminal event arrives and the simulated task started at
      ``s``, it ends at ``max(now, s + duration)``: a task the simulator started late
      still runs as long as it ran in the trace, and ends no earlier than the trace
      ended it. Its outcome is the terminal's kind.
    - A terminal event for a *pending* task: FINISH and FAIL describe the task's own
      work, so the task stays pending, now with a known duration, and runs that long
      once placed. KILL, LOST and EVICT come from outside: the task leaves the queue at
      once (KILL/LOST count as failed, EVICT as evicted).
    - UPDATE of a pending task changes its request; of a running task it is ignored
      (requests are fixed once placed) and counted.

Counting (``metrics["tasks"]``), exact for every run::

    submitted == finished + failed + evicted + pending_at_end + running_at_end

``finished``: ended by FINISH (or its stated duration). ``failed``: ended by FAIL, KILL,
LOST or rejected. ``evicted``: ended by the trace's EVICT, or by a node failure when
failures do not requeue. ``scheduled``: lives placed at least once. ``evictions``
counts tasks evicted by node failures; with ``requeue`` (the default) such a task goes
back to the queue and its life goes on, so it is counted once, at its final outcome.

Pending queue and retries
    Pending tasks are grouped by request (same shape, service, QoS, priority; FIFO within
    a group). A new task whose group is not empty joins its tail without a decision: the
    group's head does not fit, so neither does it. When capacity frees on node ``i``
    (a task ends or is evicted, or ``i`` recovers), only groups whose request fits
    ``i``'s free amounts can have become placeable — every other node is unchanged
    since they last failed — so only those are retried, each from its head until the
    first task that no longer fits ``i``. The groups are kept sorted by CPU so this
    costs a bisection plus the candidate groups, never a decision per pending task.
    This relies on the policy's feasibility depending on the node's own row (resources,
    health, taints, the service's instances on it), as with every built-in policy.

    A refused decision is the scheduler's most expensive answer (it explains itself),
    so a new task skips the decision when it certainly fits nowhere: when it is larger
    than an upper bound of the largest free CPU and memory (raised on every release,
    made exact after each refusal), or, while tasks are pending and a misfit was seen
    lately, when no placeable node has room (:class:`~harmonia.sim.capacity.Capacity`
    answers from a memo per request shape, exact because the simulator reports every
    release and recovery to it). Every policy is assumed to enforce resource fit (all
    built-in ones do).

Same-time order
    Task ends, then node recoveries, then node failures, then trace events (in trace
    order), then the time-step sample. Randomness (failures, LC requests, the policy's
    own generator) comes from generators seeded from ``seed``: the same inputs give the
    same metrics.

Time
    Simulated seconds. The run starts at the first trace event (rounded down to a
    step) and ends at ``horizon_s``, or — without one — when the trace is exhausted and
    every running task with a known end has ended, at most ``drain_s`` later. Wall
    time is read only for ``wall_seconds`` and the policy's decision time
    (``time.perf_counter``).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from harmonia.model import HarmoniaError, PlacementRequest, QoSClass
from harmonia.sched import ClusterState, Code, Decision, scheduler_for
from harmonia.sched.state import CPU, MEMORY
from harmonia.sim.capacity import STORAGE, Capacity
from harmonia.sim.edge import EdgeWorkload, vivaldi_knowledge
from harmonia.sim.engine import Engine
from harmonia.sim.infra import Infrastructure
from harmonia.sim.lc import LCModel
from harmonia.sim.metrics import SimResult
from harmonia.sim.pending import PendingQueue
from harmonia.sim.recording import DECISIONS, ENDED, SCHEDULED, SUBMITTED, Recorder
from harmonia.sim.requests import RequestBook, RequestKey
from harmonia.sim.scenario import SimConfig
from harmonia.sim.tasks import DONE, PENDING, RUNNING, TaskLife, waiting
from harmonia.traces.events import EventKind, TaskEvent

# Event kinds and their priorities at equal times (lower runs first).
_END, _RECOVER, _FAIL, _TRACE, _STEP, _ARRIVE, _REMOVE = range(7)
_PRIORITY = {_END: 0, _RECOVER: 1, _FAIL: 2, _TRACE: 3, _STEP: 9, _ARRIVE: 3, _REMOVE: 3}

_PROGRESS_EVERY = 20_000  # trace events between progress reports
PRESSURE_WINDOW = 2_000  # admissions after a misfit during which fit is checked first

ProgressFn = Callable[[float], None]
GroupKey = RequestKey


def simulate(
    infra: Infrastructure,
    events: Iterable[TaskEvent],
    *,
    policy: str = "default",
    config: SimConfig | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> SimResult:
    """Replay ``events`` (sorted by time) on ``infra`` with the policy named ``policy``.

    ``infra`` is not changed (the run works on a copy of its state), so one
    infrastructure serves several runs. ``progress``, if given, is called with the
    simulated time now and then (every 20,000 trace events) and once at the end.
    """
    return Simulation(infra, policy, config=config or SimConfig(), seed=seed).run(
        events, progress=progress
    )


class Simulation:
    """The state of one run; :func:`simulate` creates one and calls :meth:`run`."""

    def __init__(
        self, infra: Infrastructure, policy: str, *, config: SimConfig, seed: int = 0
    ) -> None:
        self.infra = infra
        self.config = config
        self.seed = seed
        self.state = infra.state.copy()
        # spawn(4): the first three streams are those of runs before edge services.
        streams = np.random.SeedSequence(seed).spawn(4)
        self.extra_metrics: dict[str, Any] = {}
        if config.rtt_knowledge == "vivaldi":
            # The policy sees estimates; bounds are still checked against infra's truth.
            self.extra_metrics["rtt_estimate"] = vivaldi_knowledge(
                infra, self.state, config.vivaldi_probes, seed
            )
        # A refused placement only needs to be known, not explained (the task waits).
        self.scheduler = scheduler_for(self.state, policy, seed=seed, explain_failures=False)
        self.policy = self.scheduler.profile.name
        self.failure_rng = np.random.default_rng(streams[0])
        self.lc_model = (
            LCModel(infra, config.lc, np.random.default_rng(streams[1]))
            if config.lc.enabled
            else None
        )
        self.tasks: dict[str, TaskLife] = {}
        self.recorder = Recorder(infra, self.state, self.lc_model)
        self.edge = (
            EdgeWorkload(
                infra,
                self.state,
                self.scheduler,
                config.services,
                policy=self.policy,
                rng=np.random.default_rng(streams[3]),
                recorder=self.recorder,
                freed=self._edge_freed,
            )
            if config.services is not None
            else None
        )
        # Aliases of the recorder's counters, read on every event.
        self.counts = self.recorder.counts
        self.events = self.recorder.events
        self._step_counts = self.recorder.step
        self.running = 0
        self.timed_running = 0  # running tasks with a scheduled end
        self.draining = False
        self.service_instances: dict[str, int] = {}  # running instances per service
        self.pending: PendingQueue[TaskLife] = PendingQueue(waiting)
        self.requests = RequestBook(config.requests)
        self.capacity = Capacity(self.state, infra.open & self.state.schedulable)
        self.placeable = self.capacity.placeable  # the capacity's own mask, not a copy
        self.node_tasks: list[set[TaskLife]] | None = (
            [set() for _ in range(len(infra))] if config.failures.enabled else None
        )
        self._trace_dispatch: dict[EventKind, Callable[[float, TaskEvent], None]] = {
            EventKind.SUBMIT: self._on_submit,
            EventKind.SCHEDULE: self._on_trace_schedule,
            EventKind.UPDATE: self._on_update,
            **{kind: self._on_terminal for kind in EventKind if kind.terminal},
        }
        self._admitted = 0  # admissions (first tries and requeues)
        self._last_misfit = -PRESSURE_WINDOW  # admission count at the last misfit
        self._progress: ProgressFn | None = None
        self._next_progress = _PROGRESS_EVERY

    # -- the run --------------------------------------------------------------------------

    def run(self, events: Iterable[TaskEvent], *, progress: ProgressFn | None = None) -> SimResult:
        # NOTE: the cyclic garbage collector is paused during the run: the simulation
        # creates no reference cycles, and the collector's passes over hundreds of
        # thousands of live tasks cost about a tenth of the run time.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(events, progress)
        finally:
            if collecting:
                gc.enable()

    def _run(self, events: Iterable[TaskEvent], progress: ProgressFn | None) -> SimResult:
        started = time.perf_counter()
        self._progress = progress
        config = self.config
        iterator = iter(events)
        first = next(iterator, None)
        edge = self.edge
        if first is not None and edge is not None and edge.planner is not None:
            raise HarmoniaError(
                f"policy {self.policy!r} with a trace and services: its failover planner "
                "would track trace tasks the simulator releases itself; run them apart"
            )
        step = config.step_s
        start = math.floor(first.time_s / step) * step if first is not None else 0.0
        engine = Engine(start)
        self.engine = engine
        self.recorder.last_sample_t = start
        engine.register(_END, self._on_end)
        engine.register(_RECOVER, self._on_recover)
        engine.register(_FAIL, self._on_fail)
        engine.register(_TRACE, self._on_trace)
        engine.register(_STEP, self._on_step)
        engine.schedule(start + step, _PRIORITY[_STEP], _STEP)
        if edge is not None:
            edge.start(engine, start, _ARRIVE, _REMOVE, _PRIORITY[_ARRIVE])
        if config.failures.enabled:
            first_failures = start + self.failure_rng.exponential(
                config.failures.mtbf_s, len(self.infra)
            )
            for node, at in enumerate(first_failures.tolist()):
                engine.schedule(at, _PRIORITY[_FAIL], _FAIL, node)
        source = _timed(first, iterator)
        horizon = config.horizon_s
        until = math.inf if horizon is None else horizon
        engine.run(until, source=source, source_kind=_TRACE, source_priority=_PRIORITY[_TRACE])
        trace_end = engine.now
        if horizon is not None:
            engine.run(horizon)  # the trace ended early: the system runs on to the horizon
        elif self.timed_running > 0:
            # Drain: run until every running task with a known end has ended (the end
            # handler stops the engine when the last one does), at most drain_s more.
            self.draining = True
            engine.run(trace_end + config.drain_s)
        end = engine.now
        self._sample(end, final=True)
        wall = time.perf_counter() - started
        if progress is not None:
            progress(end)
        metrics = self.recorder.metrics(
            policy=self.policy,
            seed=self.seed,
            step_s=config.step_s,
            pending=self.pending.count,
            running=self.running,
            times=(start, end, trace_end),
            wall=wall,
            processed=engine.processed,
        )
        metrics.update(self.extra_metrics)
        if edge is not None:
            metrics["edge"] = edge.metrics()
        return SimResult(metrics, self.recorder.rows)

    # -- trace events ---------------------------------------------------------------------

    def _on_trace(self, now: float, ev: TaskEvent) -> None:
        events = self.events
        events.trace += 1
        if ev.time_s < now:
            events.out_of_order += 1
        self._trace_dispatch[ev.kind](now, ev)
        if events.trace >= self._next_progress and self._progress is not None:
            self._next_progress += _PROGRESS_EVERY
            self._progress(now)

    def _on_submit(self, now: float, ev: TaskEvent) -> None:
        key = ev.task
        current = self.tasks.get(key)
        if current is not None and not current.resolved:
            self.events.ignored += 1
            return
        # A resubmission after the trace ended the previous life starts a new one; the
        # old life, if still running or pending here, goes on under its own object.
        group = self.requests.key_of(ev, self._in_use)
        request, vector = self.requests[group]
        task = TaskLife(key, group, request, vector, now)
        task.duration = ev.duration_s
        if ev.qos_class is QoSClass.LC and self.lc_model is not None:
            task.lc = ev.job or key
        self.tasks[key] = task
        self.counts.submitted += 1
        self._step_counts[SUBMITTED] += 1
        self._admit(task, now)

    def _on_trace_schedule(self, now: float, ev: TaskEvent) -> None:
        task = self.tasks.get(ev.task)
        if task is None:
            self.events.orphan += 1
            return
        task.trace_start = now

    def _on_terminal(self, now: float, ev: TaskEvent) -> None:
        task = self.tasks.get(ev.task)
        if task is None:
            self.events.orphan += 1
            return
        kind = ev.kind
        task.outcome = kind
        task.resolved = True
        if task.state == RUNNING:
            if task.end_t is not None:
                return  # a stated duration already fixed the end; only the outcome changes
            if task.duration is None:
                began = task.trace_start if task.trace_start is not None else task.submit_t
                task.duration = max(0.0, now - began)
            end = max(now, task.start_t + task.duration)
            if end <= now:
                self._end_running(task, now)
            else:
                self._schedule_end(task, end)
        elif kind is EventKind.FINISH or kind is EventKind.FAIL:
            if task.duration is None:
                began = task.trace_start if task.trace_start is not None else task.submit_t
                task.duration = max(0.0, now - began)
        else:  # KILL, LOST or EVICT of a pending task: it leaves the queue now
            task.state = DONE
            self.pending.forget()
            self._count_outcome(task)

    def _on_update(self, now: float, ev: TaskEvent) -> None:
        task = self.tasks.get(ev.task)
        if task is None:
            self.events.orphan += 1
            return
        if task.state != PENDING:
            self.counts.updates_ignored += 1
            return
        if ev.cpu_m == 0 and ev.memory_mib == 0:
            return  # the update carries no requests
        group = self.requests.key_of(ev, self._in_use, service=task.group[3])
        if group == task.group:
            return
        # The old queue entry is skipped lazily: its group no longer matches the task's.
        task.group = group
        task.request, task.vector = self.requests[group]
        self.pending.forget()
        self._admit(task, now)

    # -- internal events ------------------------------------------------------------------

    def _on_end(self, now: float, payload: tuple[TaskLife, int]) -> None:
        task, run = payload
        if task.state != RUNNING or task.run != run:
            return  # stale: the task was evicted or ended otherwise since
        self._end_running(task, now)
        self._stop_when_drained()

    def _stop_when_drained(self) -> None:
        if self.draining and self.timed_running == 0:
            self.engine.stop()

    def _on_fail(self, now: float, node: int) -> None:
        config = self.config.failures
        state = self.state
        self.recorder.node_failures += 1
        self.capacity.set_placeable(node, False)
        if self.edge is not None:
            self.edge.node_failed(node, now)  # marks the node down first (the planner's order)
        if state.healthy[node]:
            self.scheduler.set_healthy(state.names[node], False)
        recover_at = now + float(self.failure_rng.exponential(config.mttr_s))
        self.engine.schedule(recover_at, _PRIORITY[_RECOVER], _RECOVER, node)
        assert self.node_tasks is not None
        victims = sorted(self.node_tasks[node], key=lambda t: (t.start_t, t.key))
        for task in victims:
            self._stop_running(task)
            self.counts.evictions += 1
            if config.requeue:
                self.counts.requeued += 1
                task.state = PENDING
                self._admit(task, now)
            else:
                task.state = DONE
                task.outcome = EventKind.EVICT
                self._count_outcome(task)
        self._stop_when_drained()

    def _on_recover(self, now: float, node: int) -> None:
        state = self.state
        self.recorder.node_recoveries += 1
        self.scheduler.set_healthy(state.names[node], True)
        # Becoming placeable counts as growth: it raises the free bound.
        self.capacity.set_placeable(node, bool(self.infra.open[node] and state.schedulable[node]))
        next_failure = now + float(self.failure_rng.exponential(self.config.failures.mtbf_s))
        self.engine.schedule(next_failure, _PRIORITY[_FAIL], _FAIL, node)
        self._freed(node, now)
        if self.edge is not None:
            self.edge.retry(now)

    def _edge_freed(self, node: int, now: float) -> None:
        """An edge instance released ``node``'s capacity: trace tasks may fit there now."""
        self.capacity.grew(node)
        self._freed(node, now)

    def _on_step(self, now: float, _: Any) -> None:
        self._sample(now, final=False)
        self.engine.schedule(now + self.config.step_s, _PRIORITY[_STEP], _STEP)

    def _sample(self, now: float, *, final: bool) -> None:
        self.recorder.sample(now, pending=self.pending.count, running=self.running, final=final)

    # -- placing --------------------------------------------------------------------------

    def _in_use(self) -> set[GroupKey]:
        """Request keys of live tasks and pending groups (kept when pruning)."""
        return {task.group for task in self.tasks.values()} | set(self.pending.keys())

    def _admit(self, task: TaskLife, now: float) -> None:
        """Place ``task`` now or queue it (as pending)."""
        group = task.group
        pending = self.pending
        if pending.join(task, group):
            return  # its group's head fits nowhere, so neither does it
        cpu, mem = group[0], group[1]
        capacity = self.capacity
        bound = capacity.bound
        self._admitted += 1
        # A refused decision costs the scheduler a full explanation (about three times a
        # placement, ~30 times a numpy fit check at 12,500 nodes). Skip the decision when
        # the request certainly fits nowhere: larger than the free-amount bound, or —
        # under pressure (tasks pending and a misfit among the last PRESSURE_WINDOW
        # admissions) — no placeable node has room.
        fits_no_node_now = cpu > bound[0] or mem > bound[1]
        if (
            not fits_no_node_now
            and pending.count
            and self._admitted - self._last_misfit < PRESSURE_WINDOW
            and not capacity.fits_somewhere(cpu, mem, group[2])
        ):
            fits_no_node_now = True
        if fits_no_node_now and self._resolvable(group):
            self._last_misfit = self._admitted
            pending.push(task, group)
            return
        decision = self._decide(task.request)
        if decision.node is not None:
            self._start(task, self.state.index[decision.node], now)
        elif decision.code is Code.UNRESOLVABLE:
            task.state = DONE
            self.counts.rejected += 1
            task.outcome = EventKind.FAIL
            self._count_outcome(task)
        else:
            self._last_misfit = self._admitted
            capacity.exact_bound()
            pending.push(task, group)

    def _decide(self, request: PlacementRequest) -> Decision:
        """The policy's decision for ``request`` (placed in the state if it fits), timed."""
        started = time.perf_counter()
        decision = self.scheduler.schedule(request)
        recorder = self.recorder
        recorder.decision_seconds += time.perf_counter() - started
        recorder.decisions += 1
        self._step_counts[DECISIONS] += 1
        return decision

    def _resolvable(self, key: GroupKey) -> bool:
        """Whether the largest node could hold the request (else the policy refuses it as
        unresolvable, which the decision in :meth:`_admit` then records)."""
        largest = self.state.max_allocatable
        return bool(key[0] <= largest[CPU] and key[1] <= largest[MEMORY]) and (
            key[2] <= largest[STORAGE]
        )

    def _start(self, task: TaskLife, node: int, now: float) -> None:
        task.state = RUNNING
        task.node = node
        task.start_t = now
        task.run += 1
        counts = self.counts
        counts.placements += 1
        if not task.placed:
            task.placed = True
            counts.scheduled += 1
            self._step_counts[SCHEDULED] += 1
            self.recorder.delays.add(now - task.submit_t)
        self.running += 1
        if self.node_tasks is not None:
            self.node_tasks[node].add(task)
        service = task.request.service
        if service:
            self.service_instances[service] = self.service_instances.get(service, 0) + 1
        if task.lc is not None and self.lc_model is not None:
            self.lc_model.add(task.lc, task, node)
        if task.duration is not None and task.end_t is None:
            # Known run time: a stated duration, or a FINISH/FAIL seen while pending.
            self._schedule_end(task, now + task.duration)

    def _schedule_end(self, task: TaskLife, end: float) -> None:
        task.end_t = end
        self.timed_running += 1
        self.engine.schedule(end, _PRIORITY[_END], _END, (task, task.run))

    def _stop_running(self, task: TaskLife) -> int:
        """Release ``task``'s node and forget it there; returns the node."""
        node = task.node
        self.scheduler.release(node, task.request, task.vector)
        self.capacity.grew(node)
        self.running -= 1
        if task.end_t is not None:
            task.end_t = None
            self.timed_running -= 1
        if self.node_tasks is not None:
            self.node_tasks[node].discard(task)
        if task.lc is not None and self.lc_model is not None:
            self.lc_model.remove(task.lc, task)
        service = task.request.service
        if service:
            left = self.service_instances[service] - 1
            if left:
                self.service_instances[service] = left
            else:
                del self.service_instances[service]
                _forget_idle_service(self.state, service)
        task.node = -1
        return node

    def _end_running(self, task: TaskLife, now: float) -> None:
        node = self._stop_running(task)
        task.state = DONE
        self._count_outcome(task)
        self._freed(node, now)

    def _count_outcome(self, task: TaskLife) -> None:
        """Book an ended life by its outcome and forget it."""
        counts = self.counts
        kind = task.outcome
        if kind is EventKind.FINISH:
            counts.finished += 1
        elif kind is EventKind.EVICT:
            counts.evicted += 1
        else:
            counts.failed += 1
            if kind is EventKind.KILL or kind is EventKind.LOST:
                counts.killed += 1
        self._step_counts[ENDED] += 1
        if self.tasks.get(task.key) is task:
            del self.tasks[task.key]

    def _freed(self, node: int, now: float) -> None:
        """Capacity grew on ``node``: retry the pending groups that may fit it now."""
        pending = self.pending
        if not pending.count or not self.placeable[node]:
            return
        free = self.state.free
        for key in pending.candidates(free.item(node, CPU), free.item(node, MEMORY)):
            self._drain(key, node, now)
            if not pending.count:
                break

    def _drain(self, key: GroupKey, node: int, now: float) -> None:
        """Place the group's tasks from its head while its request fits ``node``."""
        free = self.state.free
        cpu, mem, disk, service = key[0], key[1], key[2], key[3]
        while (task := self.pending.head(key)) is not None:
            if free.item(node, CPU) < cpu or free.item(node, MEMORY) < mem:
                break
            if disk and free.item(node, STORAGE) < disk:
                break
            if service and self.state.counts_of(service)[node] >= 1:
                break  # the node already runs an instance of this job
            decision = self._decide(task.request)
            if decision.node is None:
                break
            self.pending.pop_head(key)
            self._start(task, self.state.index[decision.node], now)


def _timed(first: TaskEvent | None, rest: Iterator[TaskEvent]) -> Iterator[tuple[float, TaskEvent]]:
    """The trace as the engine's source: ``(time, event)`` pairs."""
    if first is None:
        return
    yield first.time_s, first
    for ev in rest:
        yield ev.time_s, ev


def _forget_idle_service(state: ClusterState, service: str) -> None:
    """Drop a service's per-node count vectors once its last instance is gone.

    ``ClusterState`` keeps one float64 vector per node count per service forever; over a
    trace with hundreds of thousands of jobs that is gigabytes. With no instance left
    the vectors are all zero and ``counts_of`` answers the same without them; the
    state's cached maximum for the service is then absent (the release of a node
    holding the maximum drops it), so nothing stale remains.
    """
    state.service_counts.pop(service, None)
    state.service_cluster_counts.pop(service, None)
