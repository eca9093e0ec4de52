"""What every trace reader shares: opening plain or gzip text, the counters a read keeps,
the expansion of a trace folder into its part files, and the bounded reorder buffer that
puts events into time order.

The readers in :mod:`harmonia.traces.borg`, :mod:`~harmonia.traces.alibaba` and
:mod:`~harmonia.traces.azure` call these; the simulator reads :class:`ReadStats` after a
run and reports it.
"""

from __future__ import annotations

import gzip
import heapq
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO

from harmonia.model import FieldError, InputError, QoSClass
from harmonia.traces.events import EventKind, TaskEvent, TraceError

GZIP_MAGIC = b"\x1f\x8b"

#: Google's traces mark "before the trace window" with time 0 and "after it" with 2^63-1.
TIME_AFTER_WINDOW = 2**63 - 1


@dataclass
class ReadStats:
    """Counters of one read; a reader adds to the instance it is given.

    - ``lines``: data lines (or rows) read, headers not included;
    - ``events``: events yielded;
    - ``skipped_bad_lines``: malformed lines skipped under ``skip_bad_lines``;
    - ``empty_fields``: optional fields that were empty and read as 0 (or a default);
    - ``out_of_order``: events older than one already yielded (beyond the reorder
      window), dropped under ``skip_bad_lines`` and an error otherwise;
    - ``before_window``: Google events at time 0 ("before the trace window"), yielded
      at time 0;
    - ``after_window``: Google events at time 2^63-1 ("after the window"), not yielded;
    - ``ignored``: well-formed rows that carry no event for the simulator (Borg 2019
      QUEUE/ENABLE, Alibaba tasks that did not terminate or lack times, Azure functions
      never invoked);
    - ``duplicates``: repeated rows of an already-seen Alibaba container;
    - ``missing_metadata``: Azure functions or apps without a durations/memory row,
      given the reader's default.
    """

    lines: int = 0
    events: int = 0
    skipped_bad_lines: int = 0
    empty_fields: int = 0
    out_of_order: int = 0
    before_window: int = 0
    after_window: int = 0
    ignored: int = 0
    duplicates: int = 0
    missing_metadata: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def read_text_file(path: str | os.PathLike[str]) -> str:
    """A whole small UTF-8 file (node lists, RTT matrices, scenarios), with every way it
    can fail turned into an :class:`InputError` naming the file."""
    source = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError([FieldError("", "file not found")], source) from None
    except IsADirectoryError:
        raise InputError([FieldError("", "is a directory, not a file")], source) from None
    except UnicodeDecodeError:
        raise InputError([FieldError("", "is not UTF-8 text")], source) from None
    except OSError as exc:
        raise InputError([FieldError("", f"cannot be read: {exc.strerror}")], source) from None


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """Open ``path`` for streaming text reads, un-gzipping it when it is gzip.

    Gzip is recognised by its magic bytes ``1f 8b`` or, for a file too short to have
    them, a ``.gz`` suffix. Text is UTF-8 with newlines kept as they are (``newline=""``,
    what :mod:`csv` wants).
    """
    with open(path, "rb") as probe:
        head = probe.read(2)
    if head == GZIP_MAGIC or (len(head) < 2 and str(path).endswith(".gz")):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def input_files(path: str | os.PathLike[str], accept: Callable[[str], bool]) -> list[Path]:
    """``path`` itself when a file; else its files whose names ``accept``, sorted by name.

    Google ships a table as numbered parts (``part-00000-of-00500.csv.gz`` …) whose names
    sort in time order; a folder reads as the parts one after the other.
    """
    root = Path(path)
    if not root.is_dir():
        if not root.exists():
            raise TraceError(str(root), 0, "no such file or folder")
        return [root]
    files = sorted(p for p in root.iterdir() if p.is_file() and accept(p.name))
    if not files:
        raise TraceError(str(root), 0, "folder holds no trace file of this format")
    return files


def in_time_order(
    items: Iterable[tuple[TaskEvent, str, int]],
    *,
    window_s: float,
    skip_bad_lines: bool,
    stats: ReadStats,
) -> Iterator[TaskEvent]:
    """Yield events of ``(event, source, line)`` items in non-decreasing time.

    With ``window_s > 0`` a heap holds events until the newest time seen is
    ``window_s`` past theirs, so input whose disorder stays within the window comes
    out sorted (ties keep input order); memory is the events of one window. An event
    older than one already yielded is out of order: a :class:`TraceError` naming its
    line, or with ``skip_bad_lines`` dropped and counted in ``stats.out_of_order``.
    With ``window_s == 0`` nothing is buffered and only that check runs.
    """
    last = -float("inf")
    if window_s <= 0:
        for event, source, line in items:
            if event.time_s < last:
                _late(event, source, line, last, window_s, skip_bad_lines, stats)
                continue
            last = event.time_s
            stats.events += 1
            yield event
        return
    heap: list[tuple[float, int, TaskEvent]] = []
    newest = -float("inf")
    sequence = 0
    for event, source, line in items:
        time_s = event.time_s
        if time_s < last:
            _late(event, source, line, last, window_s, skip_bad_lines, stats)
            continue
        heapq.heappush(heap, (time_s, sequence, event))
        sequence += 1
        if time_s > newest:
            newest = time_s
            horizon = newest - window_s
            while heap[0][0] <= horizon:
                last, _, ready = heapq.heappop(heap)
                stats.events += 1
                yield ready
    while heap:
        _, _, ready = heapq.heappop(heap)
        stats.events += 1
        yield ready


def _late(
    event: TaskEvent,
    source: str,
    line: int,
    last: float,
    window_s: float,
    skip_bad_lines: bool,
    stats: ReadStats,
) -> None:
    stats.out_of_order += 1
    if not skip_bad_lines:
        raise TraceError(
            source,
            line,
            f"time {event.time_s:g} s of task {event.task} is earlier than {last:g} s, "
            f"already passed on (reorder window {window_s:g} s); sort the trace, widen "
            "the window or skip bad lines",
        )


def _event_factory() -> Callable[
    [float, EventKind, str, str, QoSClass, int, int, int, int, float | None, bool], TaskEvent
]:
    """A constructor of :class:`TaskEvent` taking every field positionally, in order.

    NOTE: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, about 4 µs per event here, the largest single cost of reading
    a trace. With ``__slots__`` the slot descriptors can be set directly, in ~1.5 µs. The
    result is an ordinary, equal, still-frozen ``TaskEvent``; a test checks the two
    constructors agree. Without slots, or if the fields change, this falls back to the
    plain constructor.
    """
    names = [f.name for f in fields(TaskEvent)]
    expected = [
        "time_s", "kind", "task", "job", "qos_class", "priority",
        "cpu_m", "memory_mib", "disk_mib", "duration_s", "spread_job",
    ]  # fmt: skip
    if names != expected or "__slots__" not in TaskEvent.__dict__:
        return TaskEvent
    slots = [TaskEvent.__dict__[name].__set__ for name in names]
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 = slots
    new = object.__new__

    def make(
        time_s: float,
        kind: EventKind,
        task: str,
        job: str,
        qos_class: QoSClass,
        priority: int,
        cpu_m: int,
        memory_mib: int,
        disk_mib: int,
        duration_s: float | None,
        spread_job: bool,
    ) -> TaskEvent:
        event: TaskEvent = new(TaskEvent)
        s0(event, time_s)
        s1(event, kind)
        s2(event, task)
        s3(event, job)
        s4(event, qos_class)
        s5(event, priority)
        s6(event, cpu_m)
        s7(event, memory_mib)
        s8(event, disk_mib)
        s9(event, duration_s)
        s10(event, spread_job)
        return event

    return make


#: Build events with every field given positionally (see :func:`_event_factory`).
new_event = _event_factory()


class LineErrors:
    """Turns a malformed line into a :class:`TraceError` or, when skipping, a count."""

    __slots__ = ("skip", "source", "stats")

    def __init__(self, source: str, skip: bool, stats: ReadStats) -> None:
        self.source = source
        self.skip = skip
        self.stats = stats

    def bad(self, line: int, message: str) -> None:
        """Raise, or count the line as skipped; the caller then drops the line."""
        if not self.skip:
            raise TraceError(self.source, line, message)
        self.stats.skipped_bad_lines += 1


class BadField(ValueError):
    """Raised by the field parsers; the reader adds file and line."""


def parse_int(text: str, column: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadField(f"column {column}: expected an integer, got {text!r}") from None


def parse_fraction(text: str, column: str) -> float:
    """A normalized request, ``0 <= x``; the caller handles the empty field."""
    try:
        value = float(text)
    except ValueError:
        raise BadField(f"column {column}: expected a number, got {text!r}") from None
    if not value >= 0.0:  # also catches NaN
        raise BadField(f"column {column}: expected a number >= 0, got {text!r}")
    return value
