"""Synthetic Alibaba cluster-trace-v2018 tables: ``batch_task.csv`` and
``container_meta.csv``, written by :func:`harmonia.traces.synthetic.generate`.

``tasks`` counts what the reader yields: batch task instances plus containers, of which
``lc_fraction`` are containers (the online services, LC).

- Batch jobs arrive by the arrival process; a job is a chain of 1–5 tasks named as in
  the trace (``M1``, ``R2_1``, ``R3_2`` …), each with 1 instance (half of them) or a
  lognormal number (median 8, at most 500). A task starts up to 30 min after its job's
  arrival and runs a lognormal duration (:mod:`harmonia.traces.synth_common`). Rows are
  written job by job, so start times are out of order by up to 30 min, within the
  reader's default one-hour reorder window, as in the real table. ``plan_cpu`` is 50–600
  (hundredths of a core), ``plan_mem`` lognormal around 0.4 (percent of the largest
  machine). About 4% of extra rows are ``Failed`` or ``Running`` tasks, which the reader
  ignores.
- Containers arrive by the same process; each has 1–3 rows (its start and later status
  rows at later times, which the reader counts as duplicates), ``cpu_request`` 100–800,
  ``cpu_limit`` equal or double, ``mem_size`` lognormal around 3 (percent). Rows are
  sorted by time stamp.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harmonia.traces.arrivals import arrival_times
from harmonia.traces.synth_common import (
    CHUNK,
    SyntheticTrace,
    Workload,
    durations,
    open_output,
    pick,
    with_suffix,
)

OFFSET_MAX_S = 1800.0
_PLAN_CPU = {50: 0.15, 100: 0.45, 200: 0.15, 300: 0.1, 400: 0.1, 600: 0.05}
_CONTAINER_CPU = {100: 0.2, 200: 0.3, 400: 0.35, 800: 0.15}
_IGNORED_STATUS = ("Failed", "Running")


def write_alibaba2018(folder: Path, workload: Workload) -> SyntheticTrace:
    rng = np.random.default_rng(workload.seed)
    total = workload.size
    containers = round(total * workload.lc_fraction)
    instances = total - containers
    batch_path = with_suffix(folder / "batch_task.csv", workload.compress)
    container_path = with_suffix(folder / "container_meta.csv", workload.compress)
    batch_lines = _write_batch(batch_path, rng, instances, workload)
    container_lines = _write_containers(container_path, rng, containers, workload)
    return SyntheticTrace(
        format="alibaba2018",
        paths=(batch_path, container_path),
        tasks=total,
        events=total,
        lines=batch_lines + container_lines,
        lc_tasks=containers,
        kinds={"submit": total} if total else {},
    )


def _write_batch(path: Path, rng: np.random.Generator, instances: int, workload: Workload) -> int:
    # Tasks: instance counts adding up to exactly ``instances``.
    counts = np.zeros(0, dtype=np.int64)
    while counts.sum() < instances:
        batch = math.ceil(instances / 4) + 16
        many = np.minimum(np.ceil(rng.lognormal(math.log(8), 1.0, batch)), 500)
        counts = np.concatenate([counts, np.where(rng.random(batch) < 0.5, 1, many)])
    counts = counts.astype(np.int64)
    if instances:
        total = np.cumsum(counts)
        tasks = int(np.searchsorted(total, instances)) + 1
        counts = counts[:tasks]
        counts[-1] -= int(total[tasks - 1]) - instances
    else:
        counts = counts[:0]
    tasks = len(counts)
    # Jobs: chains of 1-5 consecutive tasks.
    chain = rng.integers(1, 6, tasks)
    job_of = np.repeat(np.arange(tasks), chain)[:tasks]
    job_of = np.unique(job_of, return_inverse=True)[1]
    jobs = int(job_of.max()) + 1 if tasks else 0
    first_of_job = np.searchsorted(job_of, np.arange(jobs))
    position = np.arange(tasks) - first_of_job[job_of] + 1
    arrival = arrival_times(rng, jobs, workload.horizon_s, workload.arrival)
    start = np.floor(arrival[job_of] + rng.random(tasks) * OFFSET_MAX_S).astype(np.int64)
    run = np.round(durations(rng, np.zeros(tasks, dtype=bool), workload)).astype(np.int64)
    plan_cpu = pick(rng, _PLAN_CPU, tasks)
    plan_mem = np.round(np.clip(rng.lognormal(math.log(0.4), 0.8, tasks), 0.01, 20.0), 2)
    task_type = rng.integers(1, 13, tasks)
    # Extra rows the reader ignores, one per 25 tasks, right after a random task.
    extra = rng.random(tasks) < 0.04
    lines = 0
    with open_output(path, workload.compress) as out:
        rows: list[str] = []
        for t, (j, p, n, s, r, c, m, k, x) in enumerate(
            zip(
                job_of.tolist(),
                position.tolist(),
                counts.tolist(),
                start.tolist(),
                run.tolist(),
                plan_cpu.tolist(),
                plan_mem.tolist(),
                task_type.tolist(),
                extra.tolist(),
                strict=True,
            )
        ):
            name = "M1" if p == 1 else f"R{p}_{p - 1}"
            rows.append(f"{name},{n},j_{j + 1},{k},Terminated,{s},{s + r},{c},{m}\n")
            if x:
                status = _IGNORED_STATUS[t % 2]
                end = s + r if status == "Failed" else 0
                rows.append(f"J{p}_x,{n},j_{j + 1},{k},{status},{s},{end},{c},{m}\n")
            if len(rows) >= CHUNK:
                lines += len(rows)
                out.write("".join(rows))
                rows.clear()
        lines += len(rows)
        out.write("".join(rows))
    return lines


def _write_containers(
    path: Path, rng: np.random.Generator, containers: int, workload: Workload
) -> int:
    arrival = np.floor(arrival_times(rng, containers, workload.horizon_s, workload.arrival))
    repeats = rng.integers(1, 4, containers)
    owner = np.repeat(np.arange(containers), repeats)
    first = np.repeat(np.cumsum(repeats) - repeats, repeats)
    later = np.arange(len(owner)) != first
    stamp = arrival[owner].astype(np.int64)
    room = workload.horizon_s - arrival[owner]
    stamp[later] += np.floor(rng.random(int(later.sum())) * room[later]).astype(np.int64) + 1
    # repeated rows must come after the first row: rank first rows ahead at equal stamps
    order = np.lexsort((later, stamp))
    cpu = pick(rng, _CONTAINER_CPU, containers)
    limit = cpu * rng.integers(1, 3, containers)
    memory = np.round(np.clip(rng.lognormal(math.log(3.0), 0.5, containers), 0.1, 50.0), 2)
    machine = rng.integers(1, workload.machines + 1, containers)
    app = rng.integers(1, max(2, containers // 4) + 1, containers)
    tail = [
        f"started,{c},{lim},{m}\n"
        for c, lim, m in zip(cpu.tolist(), limit.tolist(), memory.tolist(), strict=True)
    ]
    machines = [f"m_{m}" for m in machine.tolist()]
    apps = [f"app_{a}" for a in app.tolist()]
    with open_output(path, workload.compress) as out:
        for start in range(0, len(order), CHUNK):
            part = order[start : start + CHUNK]
            out.write(
                "".join(
                    f"c_{o + 1},{machines[o]},{s},{apps[o]},{tail[o]}"
                    for o, s in zip(owner[part].tolist(), stamp[part].tolist(), strict=True)
                )
            )
    return len(order)
