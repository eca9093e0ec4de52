"""Streaming reader of the Azure Functions 2019 trace: invocations per minute, durations
and memory, expanded into one FUNCTION event per invocation.

The simulator gets it through :func:`harmonia.traces.reader_for` (``azure2019``).
Format: Azure Public Dataset, ``AzureFunctionsDataset2019.md``, from Shahrad et al.,
"Serverless in the Wild", USENIX ATC'20. One day ``dNN`` is three CSV files with a header:

- ``invocations_per_function_md.anon.dNN.csv``: HashOwner, HashApp, HashFunction,
  Trigger, then columns ``1`` … ``1440``, the invocations in each minute of the day;
- ``function_durations_percentiles.anon.dNN.csv``: HashOwner, HashApp, HashFunction,
  Average, Count, Minimum, Maximum, percentile_Average_{0,1,25,50,75,99,100}, in ms;
- ``app_memory_percentiles.anon.dNN.csv``: HashOwner, HashApp, SampleCount,
  AverageAllocatedMb, AverageAllocatedMb_pct{1,5,25,50,75,95,99,100}.

Events. Each invocation is a SUBMIT of QoS FUNCTION at ``(day - 1) × 86400 + (minute -
1) × 60 + offset`` seconds, ``task = f"{HashFunction}.{n}"`` (``n`` counts the function's
invocations), ``job = HashApp``. The offset spreads a minute's ``c`` invocations of a
function evenly, ``(k + 0.5) × 60 / c`` (``spread="even"``), or uniformly at random
(``spread="uniform"``, seeded). ``duration_s`` is the function's Average
(``duration="average"``) or drawn per invocation from its percentiles, linear between
them (``duration="sampled"``, seeded). Memory is the app's AverageAllocatedMb (taken as
MiB), CPU by AWS Lambda's rule (:mod:`harmonia.traces.mapping`). A function or app with
no durations / memory row gets ``default_duration_s`` / ``default_memory_mib`` and counts
in ``missing_metadata``; a function never invoked counts as ``ignored``.

Memory. The invocations file has one row per function, not per time, so time order needs
the whole day's counts. The reader reads the file once and keeps, per invoked function,
its names and only its non-zero minutes: 10 bytes per non-zero (function, minute) cell
(int16 minute, int32 function, int32 count) plus a stable sort's 8-byte index while
ordering them, and about 400 bytes of names and metadata per function. It then walks the
day minute by minute, materializing one minute's invocations at a time. The durations and
memory files (one row per function / app) are loaded into dicts. For a day of the real
trace (tens of thousands of functions, most idle most minutes) this is tens of MB; the
worst case, every cell non-zero, is 18 bytes × 1440 per function.

A folder is read as all its ``invocations_per_function_md*`` days in name order, each
with its same-day durations and memory files; explicit ``durations`` / ``memory`` paths
apply to a single invocations file.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from harmonia.model import QoSClass
from harmonia.traces.events import EventKind, TaskEvent, TraceError
from harmonia.traces.mapping import DEFAULT_MAPPING, ResourceMapping
from harmonia.traces.source import (
    BadField,
    LineErrors,
    ReadStats,
    in_time_order,
    input_files,
    new_event,
    open_text,
    parse_fraction,
)

INVOCATIONS_PREFIX = "invocations_per_function_md"
DURATIONS_PREFIX = "function_durations_percentiles"
MEMORY_PREFIX = "app_memory_percentiles"
#: The percentile columns of the durations file and the quantiles they stand for.
DURATION_PERCENTILES = (0, 1, 25, 50, 75, 99, 100)
MINUTES_PER_DAY = 1440
_QUANTILES = np.array(DURATION_PERCENTILES, dtype=np.float64) / 100.0
_DAY = re.compile(r"\.d(\d+)\.")

Spread = Literal["even", "uniform"]
DurationMode = Literal["average", "sampled"]


def read_azure2019(
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    mapping: ResourceMapping = DEFAULT_MAPPING,
    durations: str | os.PathLike[str] | None = None,
    memory: str | os.PathLike[str] | None = None,
    spread: Spread = "even",
    duration: DurationMode = "average",
    seed: int = 0,
    default_duration_s: float = 1.0,
    default_memory_mib: int = 128,
) -> Iterator[TaskEvent]:
    """Events of an invocations file (with its durations and memory files) or a folder.

    Without ``durations`` / ``memory``, the same-day files next to the invocations file
    are used when present.
    """
    stats = stats if stats is not None else ReadStats()
    options = _Options(
        mapping=mapping,
        spread=spread,
        duration=duration,
        rng=np.random.default_rng(seed),
        default_duration_s=default_duration_s,
        default_memory_mib=default_memory_mib,
    )
    items = _days(Path(path), durations, memory, skip_bad_lines, stats, options)
    return in_time_order(items, window_s=0.0, skip_bad_lines=skip_bad_lines, stats=stats)


@dataclass
class _Options:
    mapping: ResourceMapping
    spread: Spread
    duration: DurationMode
    rng: np.random.Generator
    default_duration_s: float
    default_memory_mib: int


@dataclass
class _Day:
    """The invoked functions of one day and their non-zero (minute, count) cells."""

    names: list[str] = field(default_factory=list)  # HashFunction
    apps: list[str] = field(default_factory=list)  # HashApp
    keys: list[tuple[str, str, str]] = field(default_factory=list)  # owner, app, function
    minutes: list[np.ndarray] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)


def _days(
    path: Path,
    durations: str | os.PathLike[str] | None,
    memory: str | os.PathLike[str] | None,
    skip: bool,
    stats: ReadStats,
    options: _Options,
) -> Iterator[tuple[TaskEvent, str, int]]:
    files = input_files(path, lambda name: name.startswith(INVOCATIONS_PREFIX))
    for file in files:
        day_match = _DAY.search(file.name)
        day = int(day_match.group(1)) if day_match else 1
        durations_file = Path(durations) if durations else _sibling(file, DURATIONS_PREFIX)
        memory_file = Path(memory) if memory else _sibling(file, MEMORY_PREFIX)
        function_durations = _load_durations(durations_file, skip, stats) if durations_file else {}
        app_memory = _load_memory(memory_file, skip, stats) if memory_file else {}
        invoked = _load_invocations(file, skip, stats)
        yield from _expand(
            invoked, (day - 1) * 86400.0, str(file), function_durations, app_memory, stats, options
        )


def _sibling(invocations: Path, prefix: str) -> Path | None:
    suffix = invocations.name[len(INVOCATIONS_PREFIX) :]
    candidate = invocations.with_name(prefix + suffix)
    return candidate if candidate.is_file() else None


def _header(rows: Iterator[list[str]], source: str, required: tuple[str, ...]) -> list[str]:
    header = next(rows, None)
    if header is None:
        raise TraceError(source, 1, "empty file; expected a header row")
    names = [name.strip() for name in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise TraceError(source, 1, f"header lacks column(s) {', '.join(missing)}")
    return names


def _load_durations(
    path: Path, skip: bool, stats: ReadStats
) -> dict[tuple[str, str, str], tuple[float, tuple[float, ...]]]:
    """(owner, app, function) -> (average s, percentiles s)."""
    percentile_columns = tuple(f"percentile_Average_{p}" for p in DURATION_PERCENTILES)
    required = ("HashOwner", "HashApp", "HashFunction", "Average", *percentile_columns)
    source = str(path)
    errors = LineErrors(source, skip, stats)
    table: dict[tuple[str, str, str], tuple[float, tuple[float, ...]]] = {}
    with open_text(path) as text:
        rows = csv.reader(text)
        names = _header(rows, source, required)
        where = [names.index(name) for name in required]
        for row in rows:
            if not row:
                continue
            stats.lines += 1
            if len(row) != len(names):
                errors.bad(rows.line_num, f"expected {len(names)} columns, got {len(row)}")
                continue
            owner, app, function, *numbers = (row[i] for i in where)
            try:
                values = [
                    parse_fraction(text, column) / 1000.0
                    for text, column in zip(numbers, required[3:], strict=True)
                ]
            except BadField as error:
                errors.bad(rows.line_num, str(error))
                continue
            table[owner, app, function] = (values[0], tuple(values[1:]))
    return table


def _load_memory(path: Path, skip: bool, stats: ReadStats) -> dict[tuple[str, str], float]:
    """(owner, app) -> average allocated MiB."""
    required = ("HashOwner", "HashApp", "AverageAllocatedMb")
    source = str(path)
    errors = LineErrors(source, skip, stats)
    table: dict[tuple[str, str], float] = {}
    with open_text(path) as text:
        rows = csv.reader(text)
        names = _header(rows, source, required)
        owner_at, app_at, memory_at = (names.index(name) for name in required)
        for row in rows:
            if not row:
                continue
            stats.lines += 1
            if len(row) != len(names):
                errors.bad(rows.line_num, f"expected {len(names)} columns, got {len(row)}")
                continue
            try:
                table[row[owner_at], row[app_at]] = parse_fraction(
                    row[memory_at], "AverageAllocatedMb"
                )
            except BadField as error:
                errors.bad(rows.line_num, str(error))
    return table


def _load_invocations(path: Path, skip: bool, stats: ReadStats) -> _Day:
    source = str(path)
    errors = LineErrors(source, skip, stats)
    day = _Day()
    with open_text(path) as text:
        header_line = text.readline()
        names = _header(
            csv.reader([header_line]), source, ("HashOwner", "HashApp", "HashFunction", "1")
        )
        first = names.index("1")
        minutes = len(names) - first
        if names[first:] != [str(m) for m in range(1, minutes + 1)] or minutes > 1440:
            raise TraceError(source, 1, "minute columns must be 1, 2, … up to 1440, last")
        owner_at, app_at, function_at = (
            names.index(name) for name in ("HashOwner", "HashApp", "HashFunction")
        )
        for line_number, line in enumerate(text, 2):
            if not line.strip():
                continue
            stats.lines += 1
            fields = line.rstrip("\r\n").split(",", first)
            if len(fields) != first + 1:
                errors.bad(line_number, f"expected {len(names)} columns, got {len(fields)}")
                continue
            try:
                counts = _counts(fields[first], minutes, first, stats)
            except BadField as error:
                errors.bad(line_number, str(error))
                continue
            active = np.flatnonzero(counts)
            if active.size == 0:
                stats.ignored += 1
                continue
            meta = [value.strip('"') for value in fields[:first]]
            day.keys.append((meta[owner_at], meta[app_at], meta[function_at]))
            day.names.append(meta[function_at])
            day.apps.append(meta[app_at])
            day.minutes.append(active.astype(np.int16))
            day.counts.append(counts[active].astype(np.int32))
    return day


def _counts(text: str, minutes: int, first: int, stats: ReadStats) -> np.ndarray:
    """The per-minute counts of one row; a fast path for well-formed rows."""
    # NOTE: numpy's text parser is ~5x faster than csv + int() on 1440 cells; any doubt
    # (a short row, an empty or odd cell) falls back to the exact cell-by-cell check.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            counts = np.fromstring(text, dtype=np.int64, sep=",")
        if counts.size == minutes and counts.min() >= 0 and counts.max() < 2**31:
            return counts
    except (ValueError, DeprecationWarning):
        pass
    cells = next(csv.reader([text]))
    if len(cells) != minutes:
        raise BadField(f"expected {first + minutes} columns, got {first + len(cells)}")
    values = np.zeros(minutes, dtype=np.int64)
    for minute, cell in enumerate(cells, 1):
        if not cell:
            stats.empty_fields += 1
            continue
        try:
            value = int(cell)
        except ValueError:
            raise BadField(f"column {minute}: expected an integer, got {cell!r}") from None
        if not 0 <= value < 2**31:
            raise BadField(f"column {minute}: expected 0 <= count < 2^31, got {value}")
        values[minute - 1] = value
    return values


def _expand(
    day: _Day,
    offset_s: float,
    source: str,
    function_durations: dict[tuple[str, str, str], tuple[float, tuple[float, ...]]],
    app_memory: dict[tuple[str, str], float],
    stats: ReadStats,
    options: _Options,
) -> Iterator[tuple[TaskEvent, str, int]]:
    functions = len(day.names)
    if functions == 0:
        return
    average = np.empty(functions)
    percentiles = np.empty((functions, len(DURATION_PERCENTILES)))
    memory_mib = np.empty(functions, dtype=np.int64)
    cpu_m = np.empty(functions, dtype=np.int64)
    for f, (owner, app, function) in enumerate(day.keys):
        known = function_durations.get((owner, app, function))
        if known is None:
            stats.missing_metadata += 1
            average[f] = options.default_duration_s
            percentiles[f] = options.default_duration_s
        else:
            average[f], percentiles[f] = known
        allocated = app_memory.get((owner, app))
        if allocated is None:
            stats.missing_metadata += 1
            memory_mib[f] = options.default_memory_mib
        else:
            memory_mib[f] = max(1, int(allocated + 0.5)) if allocated > 0 else 0
        cpu_m[f] = options.mapping.function_cpu(int(memory_mib[f]))
    minute = np.concatenate(day.minutes)
    cell_function = np.concatenate(
        [np.full(m.size, f, dtype=np.int32) for f, m in enumerate(day.minutes)]
    )
    count = np.concatenate(day.counts)
    day.minutes.clear()
    day.counts.clear()
    order = np.argsort(minute, kind="stable")
    minute, cell_function, count = minute[order], cell_function[order], count[order]
    del order
    bounds = np.flatnonzero(np.diff(minute)) + 1
    invoked = np.zeros(functions, dtype=np.int64)  # invocations numbered so far
    names, apps = day.names, day.apps
    memory_list, cpu_list = memory_mib.tolist(), cpu_m.tolist()
    submit, qos = EventKind.SUBMIT, QoSClass.FUNCTION
    for start, stop in zip(
        np.concatenate([[0], bounds]).tolist(),
        np.concatenate([bounds, [minute.size]]).tolist(),
        strict=True,
    ):
        cells_f, cells_c = cell_function[start:stop], count[start:stop].astype(np.int64)
        total = int(cells_c.sum())
        which = np.repeat(cells_f, cells_c)
        first_of = np.repeat(np.cumsum(cells_c) - cells_c, cells_c)
        k = np.arange(total) - first_of  # index of the invocation within its function
        if options.spread == "even":
            within = (k + 0.5) * 60.0 / np.repeat(cells_c, cells_c)
        else:
            within = options.rng.random(total) * 60.0
        ordered = np.argsort(within, kind="stable")
        which, k, within = which[ordered], k[ordered], within[ordered]
        number = invoked[which] + k
        np.add.at(invoked, cells_f, cells_c)
        if options.duration == "average":
            run = average[which]
        else:
            run = _sample(percentiles[which], options.rng.random(total))
        base = offset_s + float(minute[start]) * 60.0
        line = int(minute[start]) + 1  # the minute's column, for messages
        for f, n, t, d in zip(
            which.tolist(), number.tolist(), within.tolist(), run.tolist(), strict=True
        ):
            event = new_event(
                base + t,
                submit,
                f"{names[f]}.{n}",
                apps[f],
                qos,
                0,
                cpu_list[f],
                memory_list[f],
                0,
                d,
                False,
            )
            yield event, source, line


def _sample(percentiles: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse CDF, linear between percentile points: one draw per row of ``percentiles``."""
    segment = np.clip(np.searchsorted(_QUANTILES, u, side="right") - 1, 0, len(_QUANTILES) - 2)
    low_q, high_q = _QUANTILES[segment], _QUANTILES[segment + 1]
    rows = np.arange(len(u))
    low, high = percentiles[rows, segment], percentiles[rows, segment + 1]
    return np.asarray(low + (u - low_q) / (high_q - low_q) * (high - low))
