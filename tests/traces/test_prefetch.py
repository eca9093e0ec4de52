"""Reading a trace in a child process gives what the in-process reader gives: the same
events in the same order, the same counters, the same errors; and it leaves no process
behind.

The first stream of a session boots multiprocessing's fork server (about a second:
importing Harmonia); the children are forks of it.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import pytest

from harmonia.model import FieldError, HarmoniaError, InputError, QoSClass
from harmonia.traces import (
    FORMATS,
    EventKind,
    ReadStats,
    TaskEvent,
    TraceError,
    generate,
    reader_for,
)
from harmonia.traces import prefetch as prefetch_module
from harmonia.traces.prefetch import prefetched, read_trace

BAD_2011_LINE = "1000000,,6251,x,,0,u,0,0,0.01,0.01,0.0,0\n"  # task index "x"


def _in_process(
    format: str, path: Path, *, skip_bad_lines: bool = False
) -> tuple[list[TaskEvent], ReadStats]:
    stats = ReadStats()
    events = list(reader_for(format)(path, skip_bad_lines=skip_bad_lines, stats=stats))
    return events, stats


def _with_bad_line(tmp_path: Path, events: int = 300) -> Path:
    """A borg2011 trace with a malformed line at line 101."""
    trace = generate("borg2011", tmp_path / "clean.csv", events=events, seed=5)
    lines = trace.paths[0].read_text().splitlines(keepends=True)
    path = tmp_path / "bad.csv"
    path.write_text("".join([*lines[:100], BAD_2011_LINE, *lines[100:]]))
    return path


def _generated(folder: Path, format: str) -> Path:
    out = folder / format
    generate(format, out, events=500, seed=3)
    return out


def _live_reader_pids() -> set[int]:
    return {
        child.pid
        for child in multiprocessing.active_children()
        if child.name.startswith("harmonia-trace-reader") and child.pid is not None
    }


def _gone(pid: int) -> bool:
    """Neither running nor a zombie: the pid no longer exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_each_format_reads_the_same_through_the_child(tmp_path: Path) -> None:
    traces = [(format, _generated(tmp_path, format), False) for format in FORMATS]
    traces.append(("borg2011", _with_bad_line(tmp_path), True))
    for format, path, skip in traces:
        expected, expected_stats = _in_process(format, path, skip_bad_lines=skip)
        stats = ReadStats()
        # A small batch: several batches, counters carried across them.
        events = list(prefetched(format, path, skip_bad_lines=skip, stats=stats, batch=64))
        assert events == expected, format
        assert stats == expected_stats, format
        assert stats.events == len(expected) > 0
        assert stats.skipped_bad_lines == int(skip)
    assert not _live_reader_pids()


def test_reader_errors_come_through_at_the_same_point(tmp_path: Path) -> None:
    bad = _with_bad_line(tmp_path)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)
    got: list[TaskEvent] = []
    stats = ReadStats()
    stream = prefetched("borg2011", bad, stats=stats, batch=64)
    crashing = prefetched("borg2011", broken)

    with pytest.raises(TraceError) as through_child:
        for event in stream:
            got.append(event)
    expected: list[TaskEvent] = []
    expected_stats = ReadStats()
    with pytest.raises(TraceError) as in_process:
        for event in reader_for("borg2011")(bad, stats=expected_stats):
            expected.append(event)
    assert got == expected and len(got) == 100
    assert stats == expected_stats
    error, reference = through_child.value, in_process.value
    assert type(error) is type(reference)
    assert str(error) == str(reference)
    assert (error.source, error.line, error.errors) == (str(bad), 101, reference.errors)

    # Anything else the reader raises (here gzip's own error) names the trace.
    with pytest.raises(HarmoniaError, match=f"{broken}: reading the borg2011 trace failed"):
        list(crashing)
    assert not _live_reader_pids()


def test_closing_early_stops_the_child_and_keeps_exact_counters(tmp_path: Path) -> None:
    path = _with_bad_line(tmp_path, events=2000)
    stats = ReadStats(lines=7)  # readers add to the counters they are given
    stream = prefetched("borg2011", path, skip_bad_lines=True, stats=stats, batch=64)
    taken = [next(stream) for _ in range(150)]  # past the bad line, inside a batch
    (pid,) = _live_reader_pids()
    stream.close()
    assert _gone(pid)

    # The counters as the reader had them after yielding the last event taken, which
    # the in-process mode keeps on closing too.
    expected_stats = ReadStats(lines=7)
    reader = reader_for("borg2011")(path, skip_bad_lines=True, stats=expected_stats)
    assert taken == [next(reader) for _ in range(150)]
    assert stats == expected_stats
    assert (stats.events, stats.skipped_bad_lines) == (150, 1)
    in_process_stats = ReadStats(lines=7)
    in_process = read_trace(
        "borg2011", path, skip_bad_lines=True, stats=in_process_stats, prefetch=False
    )
    assert taken == [next(in_process) for _ in range(150)]
    in_process.close()
    assert in_process_stats == expected_stats


def test_a_dead_child_is_an_error_not_a_hang(tmp_path: Path) -> None:
    trace = generate("borg2011", tmp_path / "t.csv", events=5000, seed=4)
    stream = prefetched("borg2011", trace.paths[0], batch=16)
    next(stream)
    (pid,) = _live_reader_pids()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(HarmoniaError, match="reader process ended before the end of the trace"):
        for _ in stream:
            pass
    assert _gone(pid)


def test_read_trace_uses_the_child_only_for_large_traces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = generate("borg2011", tmp_path / "t.csv", events=200, seed=6)
    path = trace.paths[0]
    expected, expected_stats = _in_process("borg2011", path)

    stats = ReadStats()
    small = read_trace("borg2011", path, stats=stats)
    assert not _live_reader_pids()
    assert list(small) == expected and stats == expected_stats

    monkeypatch.setattr(prefetch_module, "PREFETCH_MIN_BYTES", path.stat().st_size)
    large = read_trace("borg2011", tmp_path, stats=stats)  # a folder: its files' sizes
    assert next(large) == expected[0]
    (pid,) = _live_reader_pids()
    large.close()
    assert _gone(pid)
    never_read = read_trace("borg2011", tmp_path)
    never_read.close()  # before the first event: nothing is left running either
    assert not _live_reader_pids()

    forced = read_trace("borg2011", tmp_path, prefetch=False)
    assert next(forced) == expected[0]
    assert not _live_reader_pids()
    forced.close()


def test_a_forked_process_spawns_its_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fork of a process whose fork server runs cannot use that server; nor can
    # platforms without one. Both spawn a fresh interpreter, which reads the same.
    monkeypatch.setattr(prefetch_module, "_forked", True)
    main = sys.modules["__main__"]
    if getattr(main, "__spec__", None) is None and hasattr(main, "__file__"):
        # A spawned child imports the main script, here pytest's (~0.4 s); without a
        # __file__ multiprocessing leaves it out, as for ``python -c``.
        monkeypatch.delattr(main, "__file__")
    trace = generate("borg2011", tmp_path / "t.csv", events=300, seed=7)
    expected, expected_stats = _in_process("borg2011", trace.paths[0])
    stats = ReadStats()
    stream = prefetched("borg2011", trace.paths[0], stats=stats, batch=64)
    (child,) = [
        p for p in multiprocessing.active_children() if p.name.startswith("harmonia-trace-reader")
    ]
    assert isinstance(child, multiprocessing.context.SpawnProcess)
    assert list(stream) == expected and stats == expected_stats
    assert not _live_reader_pids()


def test_the_wire_format_round_trips_every_field_value() -> None:
    events = [
        TaskEvent(
            time_s=float(i),
            kind=kind,
            task=f"{i}.0",
            job=str(i),
            qos_class=qos,
            priority=i,
            cpu_m=10 * i,
            memory_mib=20 * i,
            disk_mib=30 * i,
            duration_s=None if i % 2 else 1.5 * i,
            spread_job=bool(i % 3),
        )
        for i, (kind, qos) in enumerate(zip(EventKind, itertools.cycle(QoSClass)))
    ]
    odd = [*events, TaskEvent(time_s=9.0, kind=EventKind.KILL, task="a\nb", job="")]
    # 2011 traces carry no durations: the column then travels as a flag, not a buffer.
    undurated = [dataclasses.replace(e, duration_s=None) for e in events]
    for batch in (events, odd, events[:1], undurated):  # one event: itemgetter returns it bare
        header, body = prefetch_module._unpack(prefetch_module._encode(batch, []))
        rebuilt = prefetch_module._rebuild(header, body)
        assert rebuilt == batch
        assert [type(e.spread_job) for e in rebuilt] == [bool] * len(batch)
    header, _ = prefetch_module._unpack(prefetch_module._encode(undurated, []))
    assert header["none"] == {"duration_s": prefetch_module.ALL_MISSING}


def test_run_scenario_reports_the_same_with_the_child_even_cut_by_a_horizon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harmonia.sim import parse_scenario, run_scenario

    trace = generate("borg2011", tmp_path / "t.csv", events=1500, seed=2, horizon_s=3600)
    scenario = parse_scenario(
        {
            "name": "prefetch",
            "horizon_s": 1200,  # ends the replay about a third into the trace
            "topology": {"nodes": 20, "clusters": 2},
            "trace": {"path": str(trace.paths[0]), "format": "borg2011"},
        }
    )
    metrics = []
    for threshold in (1 << 62, 0):  # in-process, then the child
        monkeypatch.setattr(prefetch_module, "PREFETCH_MIN_BYTES", threshold)
        metrics.append(run_scenario(scenario).metrics)
        assert not _live_reader_pids()
    in_process, child = metrics
    assert 0 < child["trace_read"]["events"] < 1500
    assert child["trace_read"] == in_process["trace_read"]
    assert child["events"]["trace"] == in_process["events"]["trace"]
    assert child["tasks"] == in_process["tasks"]


def test_errors_travel_as_data_to_the_nearest_known_class() -> None:
    class Odd(InputError):  # a subclass the parent need not import
        pass

    sent = Odd([FieldError("rows[3].cpu", "must be >= 0")], "t.csv")
    sent.add_note("while reading part 2")
    header, _ = prefetch_module._unpack(prefetch_module._error_message(sent, (1, 2)))
    got = prefetch_module._rebuild_error(header["error"])

    assert type(got) is InputError
    assert str(got) == str(sent)
    assert (got.source, got.errors) == ("t.csv", sent.errors)
    assert got.__notes__ == ["while reading part 2"]
    assert header["counters"] == [1, 2]
