"""Streaming readers of Google's Borg traces: the 2011 ``task_events`` table and the 2019
``instance_events`` table.

The simulator gets these through :func:`harmonia.traces.reader_for` (``borg2011``,
``borg2019``); each yields :class:`~harmonia.traces.events.TaskEvent` one line at a time,
never holding the file.

Formats:

- 2011: "Google cluster-usage traces: format + schema" (ClusterData2011_2, Reiss, Wilkes
  and Hellerstein, 2011). ``task_events`` is headerless CSV, 13 columns: time (µs),
  missing info, job ID, task index, machine ID, event type (0 SUBMIT, 1 SCHEDULE,
  2 EVICT, 3 FAIL, 4 FINISH, 5 KILL, 6 LOST, 7 UPDATE_PENDING, 8 UPDATE_RUNNING), user,
  scheduling class (0–3), priority (0–11), CPU, memory and disk requests (normalized to
  the largest machine, may be empty) and the different-machines restriction (0/1, may be
  empty). It ships as ``part-NNNNN-of-00500.csv.gz`` files in time order; pass the
  folder to read them one after the other.
- 2019: "Google cluster-usage traces v3" (Wilkes et al., 2020; Tirmazi et al.,
  EuroSys'20). ``instance_events`` exported from BigQuery either as CSV with a header
  (any column order; ``resource_request.cpus`` or ``resource_request_cpus``) or as JSON
  lines with a nested ``resource_request: {cpus, memory}`` (BigQuery writes INT64 values
  as strings; both are accepted). Event types: 0 SUBMIT, 1 QUEUE, 2 ENABLE, 3 SCHEDULE,
  4 EVICT, 5 FAIL, 6 FINISH, 7 KILL, 8 LOST, 9 UPDATE_PENDING, 10 UPDATE_RUNNING, as
  numbers or names. QUEUE and ENABLE only move a task between Borg's internal queues;
  they yield no event and count as ``ignored``.

Special times (both traces): time 0 means the event happened before the trace window;
such events are yielded at time 0 (the task exists when the replay starts) and counted in
``ReadStats.before_window``. Time 2^63-1 means after the window; those events are not
yielded (they are outside any replay of the window) and count as ``after_window``. Other
times become seconds (µs / 10^6), not shifted: the 2011 trace's window opens at 600 s.

The task id is ``f"{job}.{index}"`` (``collection_id.instance_index`` for 2019), the job
the job / collection id. Requests and QoS class follow :mod:`harmonia.traces.mapping`.

Events must come in time order (the published tables are sorted); an event earlier than
the previous one is an error, or with ``skip_bad_lines`` dropped and counted. For an
unsorted export (BigQuery does not sort without ``ORDER BY time``) pass
``reorder_window_s`` at least as large as the disorder.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

from harmonia.model import QoSClass
from harmonia.traces.events import EventKind, TaskEvent, TraceError
from harmonia.traces.mapping import DEFAULT_MAPPING, ResourceMapping
from harmonia.traces.source import (
    TIME_AFTER_WINDOW,
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

BORG2011_COLUMNS = (
    "time",
    "missing info",
    "job ID",
    "task index",
    "machine ID",
    "event type",
    "user",
    "scheduling class",
    "priority",
    "CPU request",
    "memory request",
    "disk space request",
    "different machines restriction",
)
_KINDS_2011: dict[str, EventKind] = {
    "0": EventKind.SUBMIT,
    "1": EventKind.SCHEDULE,
    "2": EventKind.EVICT,
    "3": EventKind.FAIL,
    "4": EventKind.FINISH,
    "5": EventKind.KILL,
    "6": EventKind.LOST,
    "7": EventKind.UPDATE,
    "8": EventKind.UPDATE,
}
#: 2019 event types in code order; None: no event for the simulator (QUEUE, ENABLE).
BORG2019_TYPES: tuple[tuple[str, EventKind | None], ...] = (
    ("SUBMIT", EventKind.SUBMIT),
    ("QUEUE", None),
    ("ENABLE", None),
    ("SCHEDULE", EventKind.SCHEDULE),
    ("EVICT", EventKind.EVICT),
    ("FAIL", EventKind.FAIL),
    ("FINISH", EventKind.FINISH),
    ("KILL", EventKind.KILL),
    ("LOST", EventKind.LOST),
    ("UPDATE_PENDING", EventKind.UPDATE),
    ("UPDATE_RUNNING", EventKind.UPDATE),
)
_KINDS_2019: dict[str, EventKind | None] = {
    **{str(code): kind for code, (_, kind) in enumerate(BORG2019_TYPES)},
    **{name: kind for name, kind in BORG2019_TYPES},
}
# Accepted spellings of each 2019 field, for CSV headers and JSON keys.
_ALIASES_2019: dict[str, tuple[str, ...]] = {
    "time": ("time",),
    "type": ("type",),
    "collection_id": ("collection_id",),
    "instance_index": ("instance_index",),
    "priority": ("priority",),
    "scheduling_class": ("scheduling_class",),
    "cpus": ("resource_request.cpus", "resource_request_cpus", "cpus"),
    "memory": ("resource_request.memory", "resource_request_memory", "memory"),
}
_REQUIRED_2019 = ("time", "type", "collection_id", "instance_index")


def _is_csv(name: str) -> bool:
    return name.endswith((".csv", ".csv.gz"))


def _is_2019(name: str) -> bool:
    return name.endswith((".csv", ".json", ".jsonl", ".csv.gz", ".json.gz", ".jsonl.gz"))


def read_borg2011(
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    mapping: ResourceMapping = DEFAULT_MAPPING,
    reorder_window_s: float = 0.0,
) -> Iterator[TaskEvent]:
    """Events of a 2011 ``task_events`` file (plain or gzip) or folder of parts."""
    stats = stats if stats is not None else ReadStats()
    items = _borg2011_items(path, skip_bad_lines, stats, mapping)
    return in_time_order(
        items, window_s=reorder_window_s, skip_bad_lines=skip_bad_lines, stats=stats
    )


def _borg2011_items(
    path: str | os.PathLike[str], skip: bool, stats: ReadStats, mapping: ResourceMapping
) -> Iterator[tuple[TaskEvent, str, int]]:
    # NOTE: this loop runs once per trace line, so it is written for speed. A line splits
    # into its first six fields and its "tail" (user, scheduling class, priority,
    # requests, restriction) as one string; the tasks of a job repeat the same tail, so
    # what it converts to is memoized by the tail text. No csv module: the 2011 files
    # have no quoting. A line the fast path does not fully recognise goes through
    # _borg2011_parse, which checks every field and names the column at fault.
    tails: dict[str, _Tail] = {}
    kinds = _KINDS_2011
    for file in input_files(path, _is_csv):
        source = str(file)
        errors = LineErrors(source, skip, stats)
        lines = 0
        try:
            with open_text(file) as text:
                for lines, raw in enumerate(text, 1):
                    parts = raw.split(",", 6)
                    kind = kinds.get(parts[5]) if len(parts) == 7 else None
                    tail = tails.get(parts[-1])
                    if (
                        kind is None
                        or tail is None
                        or not parts[0].isdecimal()
                        or not parts[2].isdecimal()
                        or not parts[3].isdecimal()
                    ):
                        row = raw.rstrip("\r\n").split(",")
                        if len(row) != 13:
                            if not raw.strip():
                                stats.lines -= 1  # a blank line is not a line of the trace
                            else:
                                errors.bad(lines, f"expected 13 columns, got {len(row)}")
                            continue
                        try:
                            kind, tail = _borg2011_parse(row, mapping)
                        except BadField as error:
                            errors.bad(lines, str(error))
                            continue
                        if len(tails) >= _MEMO_SIZE:
                            tails.clear()
                        tails[parts[-1]] = tail
                    time_us = int(parts[0])
                    if time_us == 0:
                        stats.before_window += 1
                    elif time_us == TIME_AFTER_WINDOW:
                        stats.after_window += 1
                        continue
                    stats.empty_fields += tail[6]
                    job = parts[2]
                    event = new_event(
                        time_us / 1e6,
                        kind,
                        f"{job}.{parts[3]}",
                        job,
                        tail[1],
                        tail[0],
                        tail[2],
                        tail[3],
                        tail[4],
                        None,
                        tail[5],
                    )
                    yield event, source, lines
        finally:
            stats.lines += lines


# What a 2011 line's tail converts to: priority, QoS class, cpu_m, memory_mib, disk_mib,
# different-machines restriction, empty fields.
_Tail = tuple[int, QoSClass, int, int, int, bool, int]


_MEMO_SIZE = 1 << 16


def _borg2011_parse(row: list[str], mapping: ResourceMapping) -> tuple[EventKind, _Tail]:
    """Every field of a 2011 line checked; a :class:`BadField` names the column at fault."""
    time_us = parse_int(row[0], "1 (time)")
    if time_us < 0:
        raise BadField(f"column 1 (time): expected >= 0, got {time_us}")
    for column, name in ((2, "3 (job ID)"), (3, "4 (task index)")):
        if parse_int(row[column], name) < 0:
            raise BadField(f"column {name}: expected >= 0, got {row[column]!r}")
    kind = _KINDS_2011.get(row[5])
    if kind is None:
        raise BadField(f"column 6 (event type): expected 0-8, got {row[5]!r}")
    klass, priority = row[7], row[8]
    priority_value = parse_int(priority, "9 (priority)") if priority else 0
    class_value = parse_int(klass, "8 (scheduling class)") if klass else 0
    if not 0 <= priority_value <= 11:
        raise BadField(f"column 9 (priority): expected 0-11, got {priority_value}")
    if not 0 <= class_value <= 3:
        raise BadField(f"column 8 (scheduling class): expected 0-3, got {class_value}")
    cpu, memory, disk, spread = row[9], row[10], row[11], row[12]
    if spread not in ("", "0", "1"):
        raise BadField(
            f"column 13 (different machines restriction): expected 0 or 1, got {spread!r}"
        )
    return kind, (
        priority_value,
        mapping.qos_borg2011(priority_value, class_value),
        mapping.cpu(parse_fraction(cpu, "10 (CPU request)")) if cpu else 0,
        mapping.memory(parse_fraction(memory, "11 (memory request)")) if memory else 0,
        mapping.disk(parse_fraction(disk, "12 (disk space request)")) if disk else 0,
        spread == "1",
        sum(not text for text in (priority, klass, cpu, memory, disk, spread)),
    )


def read_borg2019(
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    mapping: ResourceMapping = DEFAULT_MAPPING,
    reorder_window_s: float = 0.0,
) -> Iterator[TaskEvent]:
    """Events of a 2019 ``instance_events`` export: CSV with a header, or JSON lines.

    Each file is told apart by its first character (``{`` for JSON lines).
    """
    stats = stats if stats is not None else ReadStats()
    items = _borg2019_items(path, skip_bad_lines, stats, mapping)
    return in_time_order(
        items, window_s=reorder_window_s, skip_bad_lines=skip_bad_lines, stats=stats
    )


# The 2019 fields a reader needs, in the order of the raw tuples below.
_FIELDS_2019 = (
    "time",
    "type",
    "collection_id",
    "instance_index",
    "priority",
    "scheduling_class",
    "cpus",
    "memory",
)


def _borg2019_items(
    path: str | os.PathLike[str], skip: bool, stats: ReadStats, mapping: ResourceMapping
) -> Iterator[tuple[TaskEvent, str, int]]:
    # NOTE: as for 2011, a memoized fast path for the common line; anything it does not
    # recognise goes through _borg2019_parse, which checks every field.
    classes: dict[tuple[str, str, str], tuple[EventKind | None, int, QoSClass, int]] = {}
    requests: dict[tuple[str, str], tuple[int, int, int]] = {}
    for file in input_files(path, _is_2019):
        source = str(file)
        errors = LineErrors(source, skip, stats)
        with open_text(file) as text:
            first = text.readline()
            lines = itertools.chain([first], text)
            if first.lstrip().startswith("{"):
                records = _json_records(lines, errors, stats)
            else:
                records = _csv_records(lines, source, errors, stats)
            for line, raw in records:
                time_text, kind_text, job, index, priority, klass, cpus, memory = raw
                known = classes.get((kind_text, priority, klass))
                request = requests.get((cpus, memory))
                if (
                    known is None
                    or request is None
                    or not time_text.isdecimal()
                    or not job.isdecimal()
                    or not index.isdecimal()
                ):
                    try:
                        known, request = _borg2019_parse(raw, mapping)
                    except BadField as error:
                        errors.bad(line, str(error))
                        continue
                    classes[kind_text, priority, klass] = known
                    if len(requests) >= _MEMO_SIZE:
                        requests.clear()
                    requests[cpus, memory] = request
                kind = known[0]
                if kind is None:
                    stats.ignored += 1
                    continue
                time_us = int(time_text)
                if time_us == 0:
                    stats.before_window += 1
                elif time_us == TIME_AFTER_WINDOW:
                    stats.after_window += 1
                    continue
                stats.empty_fields += known[3] + request[2]
                event = new_event(
                    time_us / 1e6,
                    kind,
                    f"{job}.{index}",
                    job,
                    known[2],
                    known[1],
                    request[0],
                    request[1],
                    0,
                    None,
                    False,
                )
                yield event, source, line


def _csv_records(
    lines: Iterator[str], source: str, errors: LineErrors, stats: ReadStats
) -> Iterator[tuple[int, tuple[str, ...]]]:
    rows = csv.reader(lines)
    header = next(rows, None)
    if header is None:
        return
    names = [name.strip().lower() for name in header]
    where: dict[str, int] = {}
    for name, aliases in _ALIASES_2019.items():
        for alias in aliases:
            if alias in names:
                where[name] = names.index(alias)
                break
    missing = [name for name in _REQUIRED_2019 if name not in where]
    if missing:
        raise TraceError(source, 1, f"header lacks column(s) {', '.join(missing)}")
    width = len(names)
    # absent optional columns read from an always-empty extra cell
    picks = [where.get(name, width) for name in _FIELDS_2019]
    for row in rows:
        if not row:
            continue
        stats.lines += 1
        if len(row) != width:
            errors.bad(rows.line_num, f"expected {width} columns, got {len(row)}")
            continue
        row.append("")
        yield rows.line_num, tuple([row[i] for i in picks])


def _json_records(
    lines: Iterator[str], errors: LineErrors, stats: ReadStats
) -> Iterator[tuple[int, tuple[str, ...]]]:
    for line, text in enumerate(lines, 1):
        if not text.strip():
            continue
        stats.lines += 1
        try:
            record = json.loads(text)
        except ValueError as error:
            errors.bad(line, f"not valid JSON: {error}")
            continue
        if not isinstance(record, dict):
            errors.bad(line, "expected a JSON object")
            continue
        get = record.get
        request = get("resource_request")
        if isinstance(request, dict):
            cpus, memory = request.get("cpus"), request.get("memory")
        else:
            cpus = get("resource_request.cpus", get("resource_request_cpus", get("cpus")))
            memory = get("resource_request.memory", get("resource_request_memory", get("memory")))
        values = (
            get("time"),
            get("type"),
            get("collection_id"),
            get("instance_index"),
            get("priority"),
            get("scheduling_class"),
            cpus,
            memory,
        )
        yield line, tuple([v if type(v) is str else _json_text(v) for v in values])


def _json_text(value: Any) -> str:
    """A JSON value as the text a CSV cell would hold; "" for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"  # rejected by the number parsers
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _borg2019_parse(
    raw: tuple[str, ...], mapping: ResourceMapping
) -> tuple[tuple[EventKind | None, int, QoSClass, int], tuple[int, int, int]]:
    """Every field of a 2019 record checked; a :class:`BadField` names the field at fault.

    Returns (kind or None for QUEUE/ENABLE, priority, QoS class, empty fields among
    priority and scheduling class) and (cpu_m, memory_mib, empty request fields).
    """
    time_text, kind_text, job, index, priority, klass, cpus, memory = (v.strip() for v in raw)
    for name, text in (("time", time_text), ("collection_id", job), ("instance_index", index)):
        if not text:
            raise BadField(f"column {name}: is required")
        if parse_int(text, name) < 0:
            raise BadField(f"column {name}: expected >= 0, got {text!r}")
    kind_key = kind_text.upper()
    if kind_key not in _KINDS_2019:
        raise BadField(f"column type: expected 0-10 or an event name, got {kind_text!r}")
    priority_value = parse_int(priority, "priority") if priority else 0
    class_value = parse_int(klass, "scheduling_class") if klass else 0
    if priority_value < 0:
        raise BadField(f"column priority: expected >= 0, got {priority_value}")
    if not 0 <= class_value <= 3:
        raise BadField(f"column scheduling_class: expected 0-3, got {class_value}")
    cpu_m = mapping.cpu(parse_fraction(cpus, "resource_request.cpus")) if cpus else 0
    memory_mib = mapping.memory(parse_fraction(memory, "resource_request.memory")) if memory else 0
    return (
        (
            _KINDS_2019[kind_key],
            priority_value,
            mapping.qos_borg2019(priority_value, class_value),
            (not priority) + (not klass),
        ),
        (cpu_m, memory_mib, (not cpus) + (not memory)),
    )
