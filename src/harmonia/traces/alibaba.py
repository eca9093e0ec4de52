"""Streaming readers of Alibaba's cluster-trace-v2018: ``batch_task`` and
``container_meta``.

The simulator gets these through :func:`harmonia.traces.reader_for` (``alibaba2018``).
Format: github.com/alibaba/clusterdata, ``cluster-trace-v2018/trace_2018.md``; both
tables are headerless CSV with times in seconds from the start of the 8-day trace.

- ``batch_task``: task_name, instance_num, job_name, task_type, status, start_time,
  end_time, plan_cpu (100 = 1 core), plan_mem (0..100, normalized to the largest
  machine). A task whose status is ``Terminated`` and whose times are present gives one
  SUBMIT per instance at ``start_time`` with ``duration_s = end_time - start_time``, QoS
  BE, task id ``f"{job_name}.{task_name}.{i}"``. Other statuses (Failed, Running,
  Waiting, Cancelled, Interrupted …) and rows without times count as ``ignored``: the
  trace does not say how long they ran. An ``end_time`` before ``start_time`` is a bad
  line.
- ``container_meta``: container_id, machine_id, time_stamp, app_du, status,
  cpu_request (100 = 1 core), cpu_limit, mem_size (0..100). Containers are the
  long-running online services: one SUBMIT per container at the time stamp of its first
  row in file order, QoS LC, job = app_du, no duration (they run to the end of the
  replay). Later rows of a seen container (status updates) count as ``duplicates``; the
  set of seen ids is the reader's only state (about 100 bytes per container, some 10 MB
  for the full trace).

Neither table is sorted by time (``batch_task`` is grouped by job), so events pass a
bounded reorder buffer (``reorder_window_s``, default 3600 s; see
:func:`harmonia.traces.source.in_time_order`): disorder within the window comes out
sorted; an event older than one already yielded is an error, or with
``skip_bad_lines`` dropped and counted in ``out_of_order``. Memory is the events of one
window. A folder holding both tables reads both, merged in time order.
"""

from __future__ import annotations

import csv
import heapq
import os
from collections.abc import Iterator
from pathlib import Path

from harmonia.model import QoSClass
from harmonia.traces.events import EventKind, TaskEvent, TraceError
from harmonia.traces.mapping import DEFAULT_MAPPING, ResourceMapping, scale
from harmonia.traces.source import (
    BadField,
    LineErrors,
    ReadStats,
    in_time_order,
    input_files,
    new_event,
    open_text,
    parse_fraction,
    parse_int,
)

BATCH_TASK_COLUMNS = (
    "task_name",
    "instance_num",
    "job_name",
    "task_type",
    "status",
    "start_time",
    "end_time",
    "plan_cpu",
    "plan_mem",
)
CONTAINER_META_COLUMNS = (
    "container_id",
    "machine_id",
    "time_stamp",
    "app_du",
    "status",
    "cpu_request",
    "cpu_limit",
    "mem_size",
)
_TABLES = ("batch_task", "container_meta")
DEFAULT_REORDER_WINDOW_S = 3600.0
# Alibaba CPU is in hundredths of a core: 1 unit = 10 millicores.
_MILLICORES_PER_UNIT = 10


def _table_files(name: str) -> bool:
    return name.endswith((".csv", ".csv.gz"))


def read_alibaba2018(
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    mapping: ResourceMapping = DEFAULT_MAPPING,
    reorder_window_s: float = DEFAULT_REORDER_WINDOW_S,
) -> Iterator[TaskEvent]:
    """Events of a ``batch_task`` or ``container_meta`` file, or a folder of both.

    A file is told apart by its name, else by its first line's column count (9 or 8).
    """
    stats = stats if stats is not None else ReadStats()

    def read(table: str, file: Path) -> Iterator[TaskEvent]:
        reader = read_container_meta if table == "container_meta" else read_batch_task
        return reader(
            file,
            skip_bad_lines=skip_bad_lines,
            stats=stats,
            mapping=mapping,
            reorder_window_s=reorder_window_s,
        )

    root = Path(path)
    if not root.is_dir():
        return read(_table(root), root)
    files = input_files(root, _table_files)
    streams = [read(table, f) for table in _TABLES for f in files if f.name.startswith(table)]
    if not streams:
        raise TraceError(str(root), 0, "folder holds no batch_task or container_meta file")
    return heapq.merge(*streams, key=lambda event: event.time_s)


def _table(path: Path) -> str:
    if "container_meta" in path.name:
        return "container_meta"
    if "batch_task" in path.name:
        return "batch_task"
    with open_text(path) as text:
        first = next(csv.reader(text), [])
    if len(first) == len(CONTAINER_META_COLUMNS):
        return "container_meta"
    if len(first) == len(BATCH_TASK_COLUMNS):
        return "batch_task"
    raise TraceError(
        str(path), 1, f"neither batch_task (9 columns) nor container_meta (8): {len(first)}"
    )


def read_batch_task(
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    mapping: ResourceMapping = DEFAULT_MAPPING,
    reorder_window_s: float = DEFAULT_REORDER_WINDOW_S,
) -> Iterator[TaskEvent]:
    """One SUBMIT per instance of each terminated task (see module doc)."""
    stats = stats if stats is not None else ReadStats()
    items = _batch_items(Path(path), skip_bad_lines, stats, mapping)
    return in_time_order(
        items, window_s=reorder_window_s, skip_bad_lines=skip_bad_lines, stats=stats
    )


def _batch_items(
    path: Path, skip: bool, stats: ReadStats, mapping: ResourceMapping
) -> Iterator[tuple[TaskEvent, str, int]]:
    source = str(path)
    errors = LineErrors(source, skip, stats)
    with open_text(path) as text:
        rows = csv.reader(text)
        for row in rows:
            if not row:
                continue
            stats.lines += 1
            line = rows.line_num
            if len(row) != len(BATCH_TASK_COLUMNS):
                errors.bad(line, f"expected {len(BATCH_TASK_COLUMNS)} columns, got {len(row)}")
                continue
            task, count_text, job, _type, status, start_text, end_text, cpu, memory = row
            if status != "Terminated" or not start_text or not end_text:
                stats.ignored += 1
                continue
            try:
                count = parse_int(count_text, "instance_num")
                start = parse_int(start_text, "start_time")
                end = parse_int(end_text, "end_time")
                if not task or not job:
                    raise BadField(f"column {'task_name' if not task else 'job_name'}: is empty")
                if count < 0:
                    raise BadField(f"column instance_num: expected >= 0, got {count}")
                if start < 0:
                    raise BadField(f"column start_time: expected >= 0, got {start}")
                if end < start:
                    raise BadField(f"column end_time: {end} is before start_time {start}")
                cpu_m = scale(parse_fraction(cpu, "plan_cpu"), _MILLICORES_PER_UNIT) if cpu else 0
                memory_mib = (
                    mapping.memory(parse_fraction(memory, "plan_mem") / 100) if memory else 0
                )
            except BadField as error:
                errors.bad(line, str(error))
                continue
            stats.empty_fields += (not cpu) + (not memory)
            if count == 0:
                stats.ignored += 1
                continue
            duration = float(end - start)
            for instance in range(count):
                event = new_event(
                    float(start),
                    EventKind.SUBMIT,
                    f"{job}.{task}.{instance}",
                    job,
                    QoSClass.BE,
                    0,
                    cpu_m,
                    memory_mib,
                    0,
                    duration,
                    False,
                )
                yield event, source, line


def read_container_meta(
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    mapping: ResourceMapping = DEFAULT_MAPPING,
    reorder_window_s: float = DEFAULT_REORDER_WINDOW_S,
) -> Iterator[TaskEvent]:
    """One LC SUBMIT per container, at its first row (see module doc)."""
    stats = stats if stats is not None else ReadStats()
    items = _container_items(Path(path), skip_bad_lines, stats, mapping)
    return in_time_order(
        items, window_s=reorder_window_s, skip_bad_lines=skip_bad_lines, stats=stats
    )


def _container_items(
    path: Path, skip: bool, stats: ReadStats, mapping: ResourceMapping
) -> Iterator[tuple[TaskEvent, str, int]]:
    source = str(path)
    errors = LineErrors(source, skip, stats)
    seen: set[str] = set()
    with open_text(path) as text:
        rows = csv.reader(text)
        for row in rows:
            if not row:
                continue
            stats.lines += 1
            line = rows.line_num
            if len(row) != len(CONTAINER_META_COLUMNS):
                errors.bad(line, f"expected {len(CONTAINER_META_COLUMNS)} columns, got {len(row)}")
                continue
            container, _machine, time_text, app, _status, cpu, _limit, memory = row
            if container in seen:
                stats.duplicates += 1
                continue
            try:
                if not container:
                    raise BadField("column container_id: is empty")
                time_s = parse_int(time_text, "time_stamp")
                if time_s < 0:
                    raise BadField(f"column time_stamp: expected >= 0, got {time_s}")
                cpu_m = (
                    scale(parse_fraction(cpu, "cpu_request"), _MILLICORES_PER_UNIT) if cpu else 0
                )
                memory_mib = (
                    mapping.memory(parse_fraction(memory, "mem_size") / 100) if memory else 0
                )
            except BadField as error:
                errors.bad(line, str(error))
                continue
            seen.add(container)
            stats.empty_fields += (not cpu) + (not memory)
            event = new_event(
                float(time_s),
                EventKind.SUBMIT,
                container,
                app,
                QoSClass.LC,
                0,
                cpu_m,
                memory_mib,
                0,
                None,
                False,
            )
            yield event, source, line
