"""Synthetic Borg traces: a 2011 ``task_events`` CSV (plain or gzip) or a 2019
``instance_events`` export (CSV with header, or JSON lines), written by
:func:`harmonia.traces.synthetic.generate` for tests, demos and benchmarks.

The workload (see :mod:`harmonia.traces.synth_common` for sizes and durations):

- Jobs arrive by the chosen arrival process (:mod:`harmonia.traces.arrivals`); all tasks
  of a job are submitted together and share its request, priority and scheduling class.
  60% of jobs have one task, the rest a lognormal size (median 4.5, capped at 1000).
- QoS: jobs are taken LC in random order until ``lc_fraction`` of the tasks is reached.
  Three in four LC jobs are LC by priority (2011: 9–11, 2019: 120, 200, 360), the others
  by a latency-sensitive scheduling class (2–3) at a non-production priority; BE jobs
  have priorities 0–8 (2011) or 0–119 (2019) and scheduling class 0–1. Reading the trace
  with the rules of :mod:`harmonia.traces.mapping` gives back exactly these classes.
- Lifecycle: SUBMIT, then SCHEDULE after an exponential delay (mean 0.5 s LC, 5 s BE),
  then after the task's duration one terminal event: FINISH 60%, KILL 22%, FAIL 12%,
  EVICT 5%, LOST 1% (the order of the shares seen in the 2011 trace: most tasks finish,
  kills come next; Reiss et al., SoCC'12). 0.5% of tasks are never scheduled and are
  killed while pending (mean 30 min). 2019 adds ENABLE at the submit time (its reader
  ignores it). Each task has one life: no resubmission.
- The trace window is ``[0, horizon_s)``: events after it are not written, as in the real
  traces (tasks still running at the end have no terminal event). Given ``events``
  instead of ``tasks``, the task count is estimated, then the trace is cut after the
  exact number of events the reader will yield, so its window ends a little earlier.

Speed: everything is drawn in numpy arrays and the lines are formatted from per-task
strings and written 65,536 at a time; no event object is built. One million 2011 events
take about 2 s plain and 3.5 s gzipped on a 2-core machine, at a peak of about 230 MB
(the sorted event arrays and the per-task strings).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmonia.traces.arrivals import arrival_times
from harmonia.traces.events import EventKind
from harmonia.traces.synth_common import (
    CHUNK,
    SyntheticTrace,
    Workload,
    durations,
    fraction_text,
    normalized_requests,
    open_output,
    pick,
    pick_by_size,
)

# Internal event codes are the 2011 event types; ENABLE exists only in 2019.
SUBMIT, SCHEDULE, EVICT, FAIL, FINISH, KILL, LOST, ENABLE = 0, 1, 2, 3, 4, 5, 6, 9
TERMINAL_SHARES = {FINISH: 0.60, KILL: 0.22, FAIL: 0.12, EVICT: 0.05, LOST: 0.01}
NEVER_SCHEDULED = 0.005
_KIND_OF = {
    SUBMIT: EventKind.SUBMIT,
    SCHEDULE: EventKind.SCHEDULE,
    EVICT: EventKind.EVICT,
    FAIL: EventKind.FAIL,
    FINISH: EventKind.FINISH,
    KILL: EventKind.KILL,
    LOST: EventKind.LOST,
}
_RANK = np.zeros(10, dtype=np.int8)  # order of same-time events of one task
_RANK[[ENABLE, SCHEDULE, EVICT, FAIL, FINISH, KILL, LOST]] = [1, 2, 3, 3, 3, 3, 3]
_TYPE_2019 = np.zeros(10, dtype=np.int64)
_TYPE_2019[[SUBMIT, ENABLE, SCHEDULE, EVICT, FAIL, FINISH, KILL, LOST]] = [0, 2, 3, 4, 5, 6, 7, 8]

# (priority weights, scheduling class weights) per QoS and trace year; see module doc.
_BE_PRIORITY = {
    2011: {0: 0.45, 1: 0.10, 2: 0.10, 4: 0.25, 5: 0.04, 6: 0.03, 8: 0.03},
    2019: {0: 0.45, 25: 0.10, 99: 0.05, 110: 0.15, 115: 0.10, 116: 0.10, 119: 0.05},
}
_LC_PRIORITY = {2011: {9: 0.80, 10: 0.13, 11: 0.07}, 2019: {200: 0.70, 360: 0.20, 120: 0.10}}
_BE_CLASS = {0: 0.6, 1: 0.4}
_LC_CLASS_BY_PRIORITY = {0: 0.1, 1: 0.4, 2: 0.35, 3: 0.15}
_LC_CLASS = {2: 0.7, 3: 0.3}
_USERS = 256


@dataclass
class _Trace:
    """Tasks (indexed by row) and their events sorted by time, within the window."""

    job_of: np.ndarray
    index: np.ndarray
    lc_job: np.ndarray
    job_ids: np.ndarray
    priority: np.ndarray  # per job
    scheduling_class: np.ndarray
    cpu: np.ndarray
    memory: np.ndarray
    disk: np.ndarray
    spread: np.ndarray
    user: np.ndarray
    machine_ids: np.ndarray
    machine: np.ndarray  # per task
    time_us: np.ndarray  # per event, from here on
    kind: np.ndarray
    row: np.ndarray


def write_borg2011(path: Path, workload: Workload) -> SyntheticTrace:
    trace = _sample_exact(workload, 2011)
    with open_output(path, workload.compress) as out:
        job_tail = [
            f"{u},{c},{p},{cp},{m},{d},{s}"
            for u, c, p, cp, m, d, s in zip(
                _user_names(trace.user),
                trace.scheduling_class.tolist(),
                trace.priority.tolist(),
                fraction_text(trace.cpu),
                fraction_text(trace.memory),
                fraction_text(trace.disk),
                trace.spread.astype(np.int8).tolist(),
                strict=True,
            )
        ]
        head = [
            f"{j},{i}"
            for j, i in zip(trace.job_ids[trace.job_of].tolist(), trace.index.tolist(), strict=True)
        ]
        tail = [job_tail[j] for j in trace.job_of.tolist()]
        machines = [str(m) for m in trace.machine_ids.tolist()] + [""]
        event_machine = _event_machine(trace)
        # NOTE: one f-string per line over pre-built per-task parts; this is the hot loop.
        for start in range(0, len(trace.time_us), CHUNK):
            part = slice(start, start + CHUNK)
            lines = [
                f"{t},,{head[r]},{machines[m]},{k},{tail[r]}\n"
                for t, r, m, k in zip(
                    trace.time_us[part].tolist(),
                    trace.row[part].tolist(),
                    event_machine[part].tolist(),
                    trace.kind[part].tolist(),
                    strict=True,
                )
            ]
            out.write("".join(lines))
    return _summary("borg2011", path, trace, lines=len(trace.time_us))


def write_borg2019(path: Path, workload: Workload, *, jsonl: bool) -> SyntheticTrace:
    trace = _sample_exact(workload, 2019)
    cpu, memory = fraction_text(trace.cpu), fraction_text(trace.memory)
    job_ids = trace.job_ids[trace.job_of].tolist()
    classes = trace.scheduling_class[trace.job_of].tolist()
    priorities = trace.priority[trace.job_of].tolist()
    jobs = trace.job_of.tolist()
    indexes = trace.index.tolist()
    if jsonl:
        head = [
            f'"collection_id":"{c}","instance_index":"{i}","priority":"{p}",'
            f'"scheduling_class":"{s}"'
            for c, i, p, s in zip(job_ids, indexes, priorities, classes, strict=True)
        ]
        tail = [f',"resource_request":{{"cpus":{cpu[j]},"memory":{memory[j]}}}' for j in jobs]
        machines = [f',"machine_id":"{m}"' for m in trace.machine_ids.tolist()] + [""]
        pattern = '{{"time":"{}","type":"{}",{}{}{}}}\n'
    else:
        head = [
            f"{c},{p},{s},{i}"
            for c, i, p, s in zip(job_ids, indexes, priorities, classes, strict=True)
        ]
        tail = [f",{cpu[j]},{memory[j]}" for j in jobs]
        machines = [f",{m}" for m in trace.machine_ids.tolist()] + [","]
        pattern = "{},{},{}{}{}\n"
    event_machine = _event_machine(trace)
    types = _TYPE_2019[trace.kind]
    with open_output(path, workload.compress) as out:
        if not jsonl:
            out.write(
                "time,type,collection_id,priority,scheduling_class,instance_index,"
                "machine_id,resource_request.cpus,resource_request.memory\n"
            )
        form = pattern.format
        for start in range(0, len(trace.time_us), CHUNK):
            part = slice(start, start + CHUNK)
            lines = [
                form(t, k, head[r], machines[m], tail[r])
                for t, k, r, m in zip(
                    trace.time_us[part].tolist(),
                    types[part].tolist(),
                    trace.row[part].tolist(),
                    event_machine[part].tolist(),
                    strict=True,
                )
            ]
            out.write("".join(lines))
    return _summary("borg2019", path, trace, lines=len(trace.time_us))


def _event_machine(trace: _Trace) -> np.ndarray:
    """Index into the machine names per event; the last ("") for events off any machine."""
    scheduled = np.zeros(len(trace.machine), dtype=bool)
    scheduled[trace.row[trace.kind == SCHEDULE]] = True
    off_machine = (trace.kind == SUBMIT) | (trace.kind == ENABLE) | ~scheduled[trace.row]
    return np.where(off_machine, len(trace.machine_ids), trace.machine[trace.row])


def _summary(name: str, path: Path, trace: _Trace, *, lines: int) -> SyntheticTrace:
    visible = trace.kind != ENABLE
    codes, counts = np.unique(trace.kind[visible], return_counts=True)
    submitted = trace.row[trace.kind == SUBMIT]
    return SyntheticTrace(
        format=name,
        paths=(path,),
        tasks=len(submitted),
        events=int(visible.sum()),
        lines=lines,
        lc_tasks=int(trace.lc_job[trace.job_of[submitted]].sum()),
        kinds={_KIND_OF[c].value: n for c, n in zip(codes.tolist(), counts.tolist(), strict=True)},
    )


def _sample_exact(workload: Workload, year: int) -> _Trace:
    """The trace for ``workload.tasks`` tasks, or cut at exactly ``workload.events``."""
    if workload.events is None:
        return _sample(workload, int(workload.tasks or 0), year)
    wanted = workload.events
    tasks = math.ceil(wanted / 3)
    while True:
        trace = _sample(workload, tasks, year)
        visible = np.cumsum(trace.kind != ENABLE)
        have = int(visible[-1]) if len(visible) else 0
        if have >= wanted:
            cut = int(np.searchsorted(visible, wanted)) + 1 if wanted else 0
            trace.time_us, trace.kind, trace.row = (
                trace.time_us[:cut],
                trace.kind[:cut],
                trace.row[:cut],
            )
            return trace
        tasks = math.ceil(tasks * wanted / max(have, 1) * 1.02) + 1


def _sample(workload: Workload, tasks: int, year: int) -> _Trace:
    rng = np.random.default_rng(workload.seed)
    sizes = _job_sizes(rng, tasks)
    jobs = len(sizes)
    job_time_us = (arrival_times(rng, jobs, workload.horizon_s, workload.arrival) * 1e6).astype(
        np.int64
    )
    lc_job = pick_by_size(rng, sizes, workload.lc_fraction)
    priority, scheduling_class = _classes(rng, lc_job, year)
    cpu, memory, disk = normalized_requests(rng, jobs)
    spread = rng.random(jobs) < 0.1
    user = rng.integers(0, _USERS, jobs)
    job_ids = _unique_ids(rng, jobs, 6_000_000_000 if year == 2011 else 400_000_000_000)
    machine_ids = rng.integers(1_000_000, 6_500_000_000, workload.machines)

    job_of = np.repeat(np.arange(jobs), sizes)
    index = np.arange(tasks) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    lc = lc_job[job_of]
    submit = job_time_us[job_of]
    delay = (rng.exponential(np.where(lc, 0.5, 5.0)) * 1e6).astype(np.int64) + 1
    run_us = (durations(rng, lc, workload) * 1e6).astype(np.int64)
    never = rng.random(tasks) < NEVER_SCHEDULED
    end_kind = pick(rng, TERMINAL_SHARES, tasks)
    end_kind[never] = KILL
    pending_kill = (rng.exponential(1800.0, tasks) * 1e6).astype(np.int64) + 1
    machine = rng.integers(0, workload.machines, tasks)

    rows = np.arange(tasks)
    scheduled = rows[~never]
    schedule_at = submit[scheduled] + delay[scheduled]
    end_at = np.where(never, submit + pending_kill, 0)
    end_at[scheduled] = schedule_at + run_us[scheduled]
    parts_time = [submit, schedule_at, end_at]
    parts_kind = [np.full(tasks, SUBMIT), np.full(len(scheduled), SCHEDULE), end_kind]
    parts_row = [rows, scheduled, rows]
    if year == 2019:
        parts_time.append(submit)
        parts_kind.append(np.full(tasks, ENABLE))
        parts_row.append(rows)
    time_us = np.concatenate(parts_time)
    kind = np.concatenate(parts_kind).astype(np.int8)
    row = np.concatenate(parts_row)
    keep = time_us < int(workload.horizon_s * 1e6)
    time_us, kind, row = time_us[keep], kind[keep], row[keep]
    order = np.lexsort((row, _RANK[kind], time_us))
    return _Trace(
        job_of=job_of,
        index=index,
        lc_job=lc_job,
        job_ids=job_ids,
        priority=priority,
        scheduling_class=scheduling_class,
        cpu=cpu,
        memory=memory,
        disk=disk,
        spread=spread,
        user=user,
        machine_ids=machine_ids,
        machine=machine,
        time_us=time_us[order],
        kind=kind[order],
        row=row[order],
    )


def _job_sizes(rng: np.random.Generator, tasks: int) -> np.ndarray:
    """Job sizes adding up to exactly ``tasks`` (see module doc)."""
    if tasks == 0:
        return np.zeros(0, dtype=np.int64)
    batch = math.ceil(tasks / 3) + 16
    sizes = np.zeros(0, dtype=np.int64)
    while sizes.sum() < tasks:
        many = np.minimum(np.ceil(rng.lognormal(1.5, 1.2, batch)), 1000).astype(np.int64)
        drawn = np.where(rng.random(batch) < 0.6, 1, many)
        sizes = np.concatenate([sizes, drawn])
    total = np.cumsum(sizes)
    jobs = int(np.searchsorted(total, tasks)) + 1
    sizes = sizes[:jobs].copy()
    sizes[-1] -= int(total[jobs - 1]) - tasks
    return sizes


def _classes(rng: np.random.Generator, lc: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Priority and scheduling class per job, LC or BE by the mapping's rule."""
    jobs = len(lc)
    be_priority = pick(rng, _BE_PRIORITY[year], jobs)
    lc_priority = pick(rng, _LC_PRIORITY[year], jobs)
    by_priority = rng.random(jobs) < 0.75
    priority = np.where(lc & by_priority, lc_priority, be_priority)
    scheduling_class = np.where(
        lc,
        np.where(
            by_priority,
            pick(rng, _LC_CLASS_BY_PRIORITY, jobs),
            pick(rng, _LC_CLASS, jobs),
        ),
        pick(rng, _BE_CLASS, jobs),
    )
    return priority, scheduling_class


def _unique_ids(rng: np.random.Generator, count: int, high: int) -> np.ndarray:
    """``count`` distinct ids in ``[high // 1000, high)``, in random order."""
    low = high // 1000
    ids = np.unique(rng.integers(low, high, count + count // 8 + 8))
    while len(ids) < count:
        ids = np.unique(np.concatenate([ids, rng.integers(low, high, count)]))
    return np.asarray(rng.permutation(ids)[:count])


def _user_names(user: np.ndarray) -> list[str]:
    """Base64 of a fixed 32-byte hash per user index, like the trace's hashed users."""
    pool = [base64.b64encode(np.random.default_rng(u).bytes(32)).decode() for u in range(_USERS)]
    return [pool[u] for u in user.tolist()]
