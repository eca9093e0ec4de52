"""Read a trace in a child process, so that the simulating process only rebuilds events.

Why. The simulator is single-threaded and the machines it runs on have a second core.
Parsing a gzip CSV trace (un-gzip, split, convert, map, build the event) costs the
in-process readers 8–13 µs per event. :func:`prefetched` runs the normal reader
(:func:`harmonia.traces.registry.reader_for`) in a child process on that second core and
streams its events back in batches; what is left to the parent, receiving, decoding
and rebuilding the objects, is under 3 µs per event. :func:`read_trace` picks the child
or the in-process reader by the trace's size (see :data:`PREFETCH_MIN_BYTES`).

Processes. Never plain ``fork`` (the parent may hold threads and locks). The child is a
fork of multiprocessing's fork server, a single-threaded process that imports Harmonia
once, booted in the background when the stream is created; children start in ~0.1 s
instead of the ~1 s a fresh interpreter spends importing. A process forked from one
whose fork server runs cannot use it (multiprocessing fails on ``os.waitpid``), and some
platforms have none: those ``spawn`` a fresh interpreter. Either way the child imports
the main module, as multiprocessing always does: a script that reads a large trace
needs the usual ``if __name__ == "__main__":`` guard.

Wire format. One :class:`multiprocessing.connection.Connection` (an OS pipe), one message
per ``send_bytes``. Not a ``Queue``: both processes hold both ends of its pipe, so a dead
child would leave the parent waiting, not at the end of input; and its feeder thread and
lock buy nothing for one producer. Nothing is pickled: a message is data only, a 4-byte
length, a JSON header, then raw column buffers, so decoding it can build no object but
strings, numbers and the events themselves.

- ``{"tag": BATCH, "n", "marks", "sizes", "lists", "none"}`` + buffers: up to ``batch``
  events as one buffer per :class:`~harmonia.traces.events.TaskEvent` field, in field
  order. Floats and ints are little-endian float64 / int64 arrays (``numpy.frombuffer``
  then ``tolist`` gives the Python values back exactly); enum fields (``kind``,
  ``qos_class``) and ``spread_job`` one byte each, an index into a tuple of their
  members; ``task`` and ``job`` UTF-8 text joined by newlines (``sizes`` holds the byte
  counts; a value holding a newline sends that column as a JSON list in ``lists``
  instead); ``duration_s`` as float64 with the positions of ``None`` in ``none`` (or,
  when every value is ``None``, no buffer and ``none`` says ``-1``). The
  parent creates the objects and sets their slots column by column (``map`` over the
  slot descriptors, no Python frame per event), about twice as fast as calling a
  constructor per event. ``marks`` keeps the reader's counters exact inside a batch
  (see below).
- ``{"tag": END, "counters"}``: the stream ended; ``counters`` are the child's
  :class:`~harmonia.traces.source.ReadStats` as a list in field order.
- ``{"tag": ERROR, "counters", "error"}``: the reader raised a
  :class:`~harmonia.model.HarmoniaError` (a :class:`TraceError` naming file and line).
  ``error`` names the class (``TraceError``, ``InputError`` or ``HarmoniaError``, the
  nearest of them) and carries its message, field errors, source, line and notes. Sent
  after the batch holding the events before it, so the parent re-raises it at the same
  point of the stream, with the same type, message and attributes.
- ``{"tag": CRASH, "counters", "description", "traceback"}``: any other exception,
  which the parent raises as a :class:`HarmoniaError` naming the trace (the child's
  traceback as a note).

Counters. ``stats`` ends with the counters of the in-process reader: its final ones when
the stream ends or fails; when the consumer stops early (a replay's horizon), the ones
it had after yielding the last event taken, in both modes (what a reader adds only as
it is closed, such as the 2011 reader's line count of an unfinished file, is left out).
For that the child snapshots its counters after every event and sends, per batch, those
that differ from "one more line, one more event" as ``(index, counters)`` marks, from
which the parent works out the counters at any position. The caller's object is
updated at each batch boundary and exact at the end, on an error, or once closed.

Memory and shutdown. A blocking pipe bounds what is in flight: the batch the parent is
consuming, what the pipe buffers (64 KiB on Linux, about a thousand events) and the one
batch the child is blocked writing, so a trace of any size never sits in memory. The
child is several times faster than the simulation, so a deeper queue would stay full
and buy nothing. Closing the stream, an exception in the consumer, ``KeyboardInterrupt``
(the child ignores SIGINT and leaves its lifetime to the parent) or the generator's
collection terminates and joins the child. A child that dies closes the pipe, which the
parent sees as the end of input before the end message: an error, not a hang. If the
parent dies, the child's next write fails and it exits.
"""

from __future__ import annotations

import bisect
import json
import multiprocessing
import os
import signal
import struct
import sys
import traceback
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import fields
from itertools import repeat
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from operator import attrgetter, itemgetter, length_hint
from pathlib import Path
from types import MemberDescriptorType
from typing import Any, cast

import numpy as np

from harmonia.model import FieldError, HarmoniaError, InputError, QoSClass
from harmonia.traces.events import EventKind, TaskEvent, TraceError
from harmonia.traces.mapping import DEFAULT_MAPPING, ResourceMapping
from harmonia.traces.registry import reader_for
from harmonia.traces.source import ReadStats

#: :func:`read_trace` uses the child for traces of at least this much text: the size of
#: the file, or of all files under the folder, a gzip file's counted 4 times (the ratio
#: of these CSV traces). The child saves the parent ~5 µs per event; its start costs up
#: to ~1 s of waiting when the fork server must boot first (less when the caller has
#: other work meanwhile, as ``run_scenario`` builds the infrastructure), ~0.1 s after.
#: 16 MiB, ~150,000 Borg 2011 events (~108 bytes of CSV, ~27 gzipped, each), repays
#: even the boot; tests and small runs stay in one process.
PREFETCH_MIN_BYTES = 16 * 1024 * 1024
_GZIP_RATIO = 4
DEFAULT_BATCH = 4096

_BATCH, _END, _ERROR, _CRASH = range(4)
_JOIN_S = 5.0  # how long a child that was told to stop may take before it is killed

_FIELDS = tuple(f.name for f in fields(TaskEvent))
_STAT_FIELDS = tuple(f.name for f in fields(ReadStats))
_counters = attrgetter(*_STAT_FIELDS)
# The "one more line, one more event" step that needs no mark; see the module doc.
_LINES, _EVENTS = _STAT_FIELDS.index("lines"), _STAT_FIELDS.index("events")
# Fields sent as indices into these tables (a bool is an int: False 0, True 1).
_TABLES: dict[str, tuple[Any, ...]] = {
    "kind": tuple(EventKind),
    "qos_class": tuple(QoSClass),
    "spread_job": (False, True),
}
_DECODE: tuple[tuple[Any, ...] | None, ...] = tuple(_TABLES.get(name) for name in _FIELDS)
_ENCODE: tuple[dict[Any, int] | None, ...] = tuple(
    None if table is None else {member: i for i, member in enumerate(table)} for table in _DECODE
)
_GETTERS = tuple(attrgetter(name) for name in _FIELDS)
_SEPARATOR = "\n"
#: ``none`` of a float column whose every value is ``None`` (the column has no buffer).
ALL_MISSING = -1
# How each field travels (see the module doc); a field added to TaskEvent must be added
# here, or importing this module fails.
_CODECS: dict[str, str] = {
    "time_s": "f8",
    "kind": "table",
    "task": "text",
    "job": "text",
    "qos_class": "table",
    "priority": "i8",
    "cpu_m": "i8",
    "memory_mib": "i8",
    "disk_mib": "i8",
    "duration_s": "f8?",
    "spread_job": "table",
}
if set(_CODECS) != set(_FIELDS):
    raise ImportError(f"prefetch codecs {sorted(_CODECS)} do not match TaskEvent {_FIELDS}")
_CODEC = tuple(_CODECS[name] for name in _FIELDS)
_LENGTH = struct.Struct("<I")
_ERROR_TYPES: dict[str, type[HarmoniaError]] = {
    "TraceError": TraceError,
    "InputError": InputError,
    "HarmoniaError": HarmoniaError,
}


def _slot_setters() -> tuple[Any, ...] | None:
    """The ``__set__`` of each field's slot, in field order; None without slots.

    NOTE: setting the slots directly skips the frozen dataclass's ``__init__`` (and a
    ``__post_init__`` if one is ever added); that is sound because the values come from
    events the child built with the real constructor.
    """
    slots = [TaskEvent.__dict__.get(name) for name in _FIELDS]
    if not all(isinstance(slot, MemberDescriptorType) for slot in slots):
        return None
    return tuple(cast(MemberDescriptorType, slot).__set__ for slot in slots)


_SETTERS = _slot_setters()


# -- choosing ---------------------------------------------------------------------------


def read_trace(
    format: str,
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    mapping: ResourceMapping = DEFAULT_MAPPING,
    prefetch: bool | None = None,
) -> Generator[TaskEvent, None, None]:
    """The events of the trace at ``path`` in ``format``, read in a child or in-process.

    ``prefetch=None`` (the default) reads in a child process when the trace holds at
    least :data:`PREFETCH_MIN_BYTES` of text (smaller ones do not repay the child's
    start), this process may run on two or more CPUs, and it was not itself started by
    multiprocessing: pool workers (``harmonia compare`` runs one per policy, up to one
    per CPU) already keep the other cores busy, and the child spends more CPU in all
    (~13 µs per event) than it saves the parent (~5 µs). ``True`` / ``False`` force
    either way. Both give the same events in the same order, the same errors and the
    same counters in ``stats`` (see the module doc). Close the result (or run it to its
    end) to stop a child at once.
    """
    reader = reader_for(format)  # an unknown format fails here, in either mode
    stats = stats if stats is not None else ReadStats()
    if prefetch is None:
        prefetch = (
            _usable_cpus() >= 2
            and multiprocessing.parent_process() is None
            and _size_at_least(path, PREFETCH_MIN_BYTES)
        )
    if prefetch:
        return prefetched(format, path, skip_bad_lines=skip_bad_lines, stats=stats, mapping=mapping)
    events = reader(path, skip_bad_lines=skip_bad_lines, stats=stats, mapping=mapping)
    return _in_process(events, stats)


def _in_process(events: Iterator[TaskEvent], stats: ReadStats) -> Generator[TaskEvent, None, None]:
    """The reader's events, as a generator (callers close() the result in both modes).

    Closed early, the counters stay as they were after the last event taken, as they do
    in the child: what the reader adds as it is closed (the 2011 reader's count of the
    lines of a file it did not finish) is taken back.
    """
    for event in events:  # not yield from: that would close the reader first
        try:
            yield event
        except GeneratorExit:
            counters = _counters(stats)
            close = getattr(events, "close", None)
            if close is not None:
                close()
            _store(stats, (0,) * len(counters), counters)
            raise


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _size_at_least(path: str | os.PathLike[str], limit: int) -> bool:
    """Whether the file, or the files under the folder, hold at least ``limit`` bytes of
    text (see :data:`PREFETCH_MIN_BYTES`)."""
    root = Path(path)
    try:
        files = (
            (os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names)
            if root.is_dir()
            else iter([str(root)])
        )
        total = 0
        for file in files:
            total += os.stat(file).st_size * (_GZIP_RATIO if file.endswith(".gz") else 1)
            if total >= limit:
                return True
    except OSError:
        pass  # the reader reports the path
    return False


# -- parent -----------------------------------------------------------------------------


def prefetched(
    format: str,
    path: str | os.PathLike[str],
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    mapping: ResourceMapping = DEFAULT_MAPPING,
    batch: int = DEFAULT_BATCH,
) -> Generator[TaskEvent, None, None]:
    """What ``reader_for(format)(path, ...)`` yields, read by a child process.

    The child, or the fork server it will be forked from, starts now, so its start-up
    overlaps what the caller does before the first event. Errors of the reader come out at
    the same point of the stream as in-process; see the module doc for ``stats`` and for
    stopping early. Close the result, or run it to its end, to stop the child at once.
    """
    reader_for(format)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    stream = _stream(
        format,
        os.fspath(path),
        skip_bad_lines,
        stats if stats is not None else ReadStats(),
        mapping,
        batch,
    )
    # Run the generator to its first (internal) yield, so that the start-up begins now;
    # what it starts is then owned by the generator's try/finally, which close() or
    # collection runs even if the caller never asks for an event.
    next(stream)
    return cast(Generator[TaskEvent, None, None], stream)


def _stream(
    format: str,
    path: str,
    skip_bad_lines: bool,
    stats: ReadStats,
    mapping: ResourceMapping,
    batch: int,
) -> Generator[TaskEvent | None, None, None]:
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_serve,
        args=(sender, format, path, skip_bad_lines, mapping, batch),
        name=f"harmonia-trace-reader {Path(path).name}",
        daemon=True,  # killed by multiprocessing at exit should the parent skip cleanup
    )
    initial = _counters(stats)
    base = tuple(0 for _ in _STAT_FIELDS)  # the child's counters after the last batch
    marks: list[tuple[int, tuple[int, ...]]] = []
    events: list[TaskEvent] = []
    pending: Iterator[TaskEvent] = iter(events)
    finished = False
    try:
        if isinstance(context, ForkServerContext):
            # Its first start blocks until the server has imported Harmonia (~1 s); boot
            # it now, in the background, and fork the child at the first event.
            forkserver.ensure_running()
        else:
            _start(process, sender)  # returns at once; the child imports meanwhile
        yield None  # primed by prefetched()
        if process.pid is None:
            _start(process, sender)
        while True:
            message, body = _receive(receiver, process, path)
            tag = message["tag"]
            if tag == _BATCH:
                events = _rebuild(message, body)
                marks = [(position, tuple(counters)) for position, counters in message["marks"]]
                pending = iter(events)
                yield from pending
                base = _counters_at(base, marks, len(events) - 1)
                marks = []
                events = []
                _store(stats, initial, base)
                continue
            finished = True
            _store(stats, initial, tuple(message["counters"]))
            if tag == _END:
                return
            if tag == _ERROR:
                raise _rebuild_error(message["error"])
            raise _crash(format, path, message["description"], message["traceback"])
    finally:
        if not finished:
            # Stopped early (closed, or the consumer or the transport raised): the
            # counters as the in-process reader had them after the last event consumed.
            position = len(events) - length_hint(pending) - 1
            _store(stats, initial, _counters_at(base, marks, position))
        sender.close()
        _stop(process, receiver, finished)


def _start(process: BaseProcess, sender: Connection) -> None:
    try:
        process.start()
    finally:
        sender.close()  # the child holds its own copy; ours would hide its death


def _context() -> SpawnContext | ForkServerContext:
    if _forked or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports once what a child needs, a child is then a fork of it: this
    # module, and the Harmonia modules loaded here, which the child's import of the main
    # module (the ``harmonia`` command's imports the CLI, ~1 s) then finds loaded. Not
    # "__main__" itself: the server runs no user code, so it is safe to boot at any
    # time. No effect on a server already running.
    loaded = sorted(
        name
        for name in sys.modules
        if name.partition(".")[0] == "harmonia" and not name.endswith("__main__")
    )
    context.set_forkserver_preload([__name__, *loaded])
    return context


# NOTE: a process forked from one whose fork server runs inherits that server's state and
# cannot use it (multiprocessing then fails on os.waitpid of a process not its child), so
# forked processes (fork-started pool workers, harmonia compare's) spawn their readers.
_forked = False


def _after_fork() -> None:
    global _forked
    _forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _receive(
    receiver: Connection, process: BaseProcess, path: str
) -> tuple[dict[str, Any], memoryview]:
    try:
        data = receiver.recv_bytes()
    except (EOFError, OSError):
        process.join(_JOIN_S)
        raise HarmoniaError(
            f"{path}: the trace reader process ended before the end of the trace "
            f"(exit code {process.exitcode})"
        ) from None
    return _unpack(data)


def _pack(header: dict[str, Any], buffers: tuple[bytes, ...] = ()) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join((_LENGTH.pack(len(head)), head, *buffers))


def _unpack(data: bytes) -> tuple[dict[str, Any], memoryview]:
    (size,) = _LENGTH.unpack_from(data)
    end = _LENGTH.size + size
    return json.loads(data[_LENGTH.size : end]), memoryview(data)[end:]


def _rebuild(header: dict[str, Any], body: memoryview) -> list[TaskEvent]:
    """The events of a BATCH message."""
    n: int = header["n"]
    offset = 0
    decoded: list[Any] = []
    for name, codec, table in zip(_FIELDS, _CODEC, _DECODE, strict=True):
        if codec == "table":
            assert table is not None
            decoded.append(_members(table, bytes(body[offset : offset + n])))
            offset += n
        elif codec == "text":
            listed = header["lists"].get(name)
            if listed is not None:
                decoded.append(listed)
                continue
            size = header["sizes"][name]
            decoded.append(str(body[offset : offset + size], "utf-8").split(_SEPARATOR))
            offset += size
        else:
            missing = header["none"].get(name, ())
            if missing == ALL_MISSING:
                decoded.append([None] * n)
                continue
            values = np.frombuffer(body[offset : offset + 8 * n], dtype="<" + codec[:2])
            column = values.tolist()
            for position in missing:
                column[position] = None
            decoded.append(column)
            offset += 8 * n
    if _SETTERS is None:
        return list(map(TaskEvent, *decoded))
    new = object.__new__
    events: list[TaskEvent] = list(map(new, repeat(TaskEvent, n)))
    consume = deque[Any](maxlen=0).extend
    for setter, column in zip(_SETTERS, decoded, strict=True):
        consume(map(setter, events, column))
    return events


def _members(table: tuple[Any, ...], indices: bytes) -> tuple[Any, ...]:
    # One itemgetter call looks every index up in C, faster than map(table.__getitem__).
    if len(indices) == 1:
        return (table[indices[0]],)  # itemgetter of one index returns the bare item
    return cast(tuple[Any, ...], itemgetter(*indices)(table))


def _counters_at(
    base: tuple[int, ...], marks: list[tuple[int, tuple[int, ...]]], position: int
) -> tuple[int, ...]:
    """The child's counters after the event at ``position`` of a batch.

    ``base`` holds them before the batch's first event; a mark holds them after its
    event; events without a mark added one line and one event.
    """
    if position < 0:
        return base
    found = bisect.bisect_right(marks, position, key=itemgetter(0))
    start, counters = (marks[found - 1][0], marks[found - 1][1]) if found else (-1, base)
    steps = position - start
    if steps == 0:
        return counters
    out = list(counters)
    out[_LINES] += steps
    out[_EVENTS] += steps
    return tuple(out)


def _store(stats: ReadStats, initial: tuple[int, ...], child: tuple[int, ...]) -> None:
    # Readers add to the object they are given; so does this.
    for name, before, counted in zip(_STAT_FIELDS, initial, child, strict=True):
        setattr(stats, name, before + counted)


def _error_payload(exc: HarmoniaError) -> dict[str, Any]:
    """What re-raising ``exc`` in the parent takes, as data."""
    kind = next(k for k in (TraceError, InputError, HarmoniaError) if isinstance(exc, k))
    payload: dict[str, Any] = {
        "type": kind.__name__,
        "args": [str(arg) for arg in exc.args],
        "notes": list(getattr(exc, "__notes__", ())),
    }
    if isinstance(exc, InputError):
        payload["source"] = exc.source
        payload["errors"] = [[e.path, e.message] for e in exc.errors]
    if isinstance(exc, TraceError):
        payload["line"] = exc.line
    return payload


def _rebuild_error(payload: dict[str, Any]) -> HarmoniaError:
    # Attributes are set directly: TraceError's constructor does not take its message back.
    kind = _ERROR_TYPES[payload["type"]]
    error = kind.__new__(kind)
    error.args = tuple(payload["args"])
    if "errors" in payload:
        error.__dict__.update(
            errors=tuple(FieldError(path, message) for path, message in payload["errors"]),
            source=payload["source"],
        )
    if "line" in payload:
        error.__dict__["line"] = payload["line"]
    for note in payload["notes"]:
        error.add_note(note)
    return error


def _crash(format: str, path: str, description: str, trace: str) -> HarmoniaError:
    error = HarmoniaError(f"{path}: reading the {format} trace failed: {description}")
    error.add_note(f"in the trace reader process:\n{trace.rstrip()}")
    return error


def _stop(process: BaseProcess, receiver: Connection, finished: bool) -> None:
    receiver.close()
    if process.pid is None:  # never started
        return
    if not finished:
        # Still reading, or blocked writing a batch nobody will read.
        process.terminate()
    process.join(_JOIN_S)  # after its final message the child exits by itself
    if process.exitcode is None:
        process.kill()
        process.join()
    process.close()


# -- child ------------------------------------------------------------------------------


def _serve(
    sender: Connection,
    format: str,
    path: str,
    skip_bad_lines: bool,
    mapping: ResourceMapping,
    batch: int,
) -> None:
    """The child's main: read the trace and send it as batches, then one final message."""
    # Ctrl-C reaches the whole process group; the parent decides when the child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stats = ReadStats()
    batches = _batches(format, path, skip_bad_lines, mapping, stats, batch)
    try:
        with sender:
            for data in _messages(batches, stats):
                sender.send_bytes(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent stopped reading: it closed the stream, or died


def _messages(batches: Iterator[bytes], stats: ReadStats) -> Iterator[bytes]:
    """The batches, then END, ERROR or CRASH with the final counters."""
    while True:
        try:
            data = next(batches)
        except StopIteration:
            final = _pack({"tag": _END, "counters": _counters(stats)})
        except HarmoniaError as exc:
            final = _error_message(exc, _counters(stats))
        except Exception as exc:
            final = _crash_message(exc, _counters(stats))
        else:
            yield data
            continue
        yield final
        return


def _error_message(exc: HarmoniaError, counters: tuple[int, ...]) -> bytes:
    return _pack({"tag": _ERROR, "counters": counters, "error": _error_payload(exc)})


def _crash_message(exc: BaseException, counters: tuple[int, ...]) -> bytes:
    return _pack(
        {
            "tag": _CRASH,
            "counters": counters,
            "description": f"{type(exc).__name__}: {exc}",
            "traceback": "".join(traceback.format_exception(exc)),
        }
    )


def _batches(
    format: str,
    path: str,
    skip_bad_lines: bool,
    mapping: ResourceMapping,
    stats: ReadStats,
    size: int,
) -> Iterator[bytes]:
    """Encoded BATCH messages; a reader's exception comes out after the batch of the
    events before it."""
    pending: list[TaskEvent] = []
    marks: list[tuple[int, tuple[int, ...]]] = []
    # Reading the dataclass's __dict__ directly: three lookups and a C-level sum per
    # event instead of a snapshot of every counter (~1.5 µs).
    counters = vars(stats)
    values = counters.values()
    lines, events, total = counters["lines"], counters["events"], sum(values)
    try:
        reader = reader_for(format)
        for event in reader(path, skip_bad_lines=skip_bad_lines, stats=stats, mapping=mapping):
            pending.append(event)
            lines += 1
            events += 1
            total += 2
            # Counters only grow: one more line, one more event and a sum 2 higher means
            # nothing else moved; anything else is a mark.
            if counters["lines"] != lines or counters["events"] != events or sum(values) != total:
                marks.append((len(pending) - 1, _counters(stats)))
                lines, events, total = counters["lines"], counters["events"], sum(values)
            if len(pending) >= size:
                yield _encode(pending, marks)
                pending = []
                marks = []
    except Exception:  # not GeneratorExit: closing must not yield
        if pending:
            yield _encode(pending, marks)
        raise
    if pending:
        yield _encode(pending, marks)


def _encode(events: list[TaskEvent], marks: list[tuple[int, tuple[int, ...]]]) -> bytes:
    """A BATCH message of ``events`` (see the module doc)."""
    n = len(events)
    header: dict[str, Any] = {"tag": _BATCH, "n": n, "marks": marks, "sizes": {}, "lists": {}}
    nones: dict[str, list[int] | int] = {}
    buffers: list[bytes] = []
    for name, getter, codec, index in zip(_FIELDS, _GETTERS, _CODEC, _ENCODE, strict=True):
        values = list(map(getter, events))
        if codec == "table":
            assert index is not None
            buffers.append(bytes(map(index.__getitem__, values)))
        elif codec == "text":
            text = _SEPARATOR.join(values)
            if text.count(_SEPARATOR) != n - 1:  # a value holds the separator itself
                header["lists"][name] = values
                continue
            data = text.encode()
            header["sizes"][name] = len(data)
            buffers.append(data)
        else:
            if codec == "f8?":
                missing = [i for i, v in enumerate(values) if v is None]
                if len(missing) == n:
                    # NOTE: every value missing (2011 traces carry no durations): no
                    # buffer and no list of positions, which the parent would parse
                    # and walk event by event.
                    nones[name] = ALL_MISSING
                    continue
                if missing:
                    nones[name] = missing
                    values = [np.nan if v is None else v for v in values]
            buffers.append(np.array(values, dtype="<" + codec[:2]).tobytes())
    header["none"] = nones
    return _pack(header, tuple(buffers))
