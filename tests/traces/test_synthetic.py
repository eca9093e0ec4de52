"""Synthetic generators round-trip through the readers: counts, order, QoS mix, shape,
determinism."""

from __future__ import annotations

import collections
import itertools
from pathlib import Path

import numpy as np
import pytest

from harmonia.model import InputError, QoSClass
from harmonia.traces import (
    EventKind,
    ReadStats,
    TaskEvent,
    generate,
    read_alibaba2018,
    read_azure2019,
    read_borg2011,
    read_borg2019,
    reader_for,
)


def _in_order(events: list[TaskEvent]) -> bool:
    return all(a.time_s <= b.time_s for a, b in itertools.pairwise(events))


def test_borg2011_round_trip(tmp_path: Path) -> None:
    trace = generate("borg2011", tmp_path / "task_events.csv", tasks=4000, seed=1, lc_fraction=0.3)
    stats = ReadStats()
    events = list(read_borg2011(trace.paths[0], stats=stats))
    submits = [e for e in events if e.kind is EventKind.SUBMIT]
    assert len(submits) == trace.tasks == 4000
    assert len(events) == trace.events == trace.lines == stats.lines
    assert dict(collections.Counter(e.kind.value for e in events)) == trace.kinds
    assert _in_order(events)
    lc = sum(e.qos_class is QoSClass.LC for e in submits)
    assert lc == trace.lc_tasks
    assert abs(lc / 4000 - 0.3) < 0.03  # LC jobs are taken until the share is reached
    assert stats.skipped_bad_lines == stats.empty_fields == stats.out_of_order == 0
    assert len({e.task for e in submits}) == 4000


def test_borg2011_lifecycle_shares_and_workload_shape(tmp_path: Path) -> None:
    trace = generate("borg2011", tmp_path / "t.csv", tasks=20_000, seed=2, horizon_s=7 * 86400)
    events = list(read_borg2011(trace.paths[0]))
    ends = collections.Counter(e.kind for e in events if e.kind.terminal)
    total = sum(ends.values())
    # FINISH 60%, KILL 22% (plus the 0.5% never scheduled), FAIL 12%, EVICT 5%, LOST 1%
    assert abs(ends[EventKind.FINISH] / total - 0.60) < 0.03
    assert abs(ends[EventKind.KILL] / total - 0.225) < 0.03
    assert abs(ends[EventKind.FAIL] / total - 0.12) < 0.02
    assert abs(ends[EventKind.EVICT] / total - 0.05) < 0.015
    submits = [e for e in events if e.kind is EventKind.SUBMIT]
    cpu = np.array([e.cpu_m for e in submits]) / 96_000  # back to normalized units
    assert 0.01 < float(np.median(cpu)) < 0.1  # most Borg tasks are small
    assert float(np.mean(cpu <= 0.1)) > 0.8
    scheduled = {e.task: e.time_s for e in events if e.kind is EventKind.SCHEDULE}
    runs = np.array([e.time_s - scheduled[e.task] for e in events if e.kind is EventKind.FINISH])
    assert float(np.mean(runs)) > 2 * float(np.median(runs))  # heavy tail


def test_events_mode_writes_exactly_that_many_events(tmp_path: Path) -> None:
    trace = generate("borg2011", tmp_path / "t.csv", events=12_345, seed=4)
    assert trace.events == trace.lines == 12_345
    assert sum(1 for _ in read_borg2011(trace.paths[0])) == 12_345
    jsonl = generate("borg2019", tmp_path / "t.jsonl", events=5000, seed=4)
    stats = ReadStats()
    assert sum(1 for _ in read_borg2019(jsonl.paths[0], stats=stats)) == 5000 == jsonl.events
    assert stats.ignored == jsonl.lines - 5000  # the ENABLE events


def test_same_seed_same_bytes_gzip_included(tmp_path: Path) -> None:
    def write(name: str, seed: int) -> bytes:
        trace = generate("borg2011", tmp_path / name, tasks=3000, seed=seed, arrival="bursty")
        return trace.paths[0].read_bytes()

    assert write("a.csv.gz", 9) == write("b.csv.gz", 9)
    assert write("a.csv.gz", 9)[:2] == b"\x1f\x8b"
    assert write("a.csv", 9) == write("b.csv", 9)
    assert write("a.csv", 9) != write("c.csv", 10)


def test_gzip_trace_reads_like_the_plain_one(tmp_path: Path) -> None:
    plain = generate("borg2011", tmp_path / "t.csv", tasks=500, seed=6)
    zipped = generate("borg2011", tmp_path / "t.csv.gz", tasks=500, seed=6)
    assert zipped.paths[0].stat().st_size < plain.paths[0].stat().st_size
    assert list(read_borg2011(zipped.paths[0])) == list(read_borg2011(plain.paths[0]))


def test_borg2019_csv_and_json_lines_hold_the_same_events(tmp_path: Path) -> None:
    csv = generate("borg2019", tmp_path / "e.csv", tasks=2000, seed=3, lc_fraction=0.5)
    jsonl = generate("borg2019", tmp_path / "e.jsonl", tasks=2000, seed=3, lc_fraction=0.5)
    from_csv = list(read_borg2019(csv.paths[0]))
    assert from_csv == list(read_borg2019(jsonl.paths[0]))
    assert len(from_csv) == csv.events
    assert _in_order(from_csv)
    submits = [e for e in from_csv if e.kind is EventKind.SUBMIT]
    lc = [e for e in submits if e.qos_class is QoSClass.LC]
    assert len(lc) == csv.lc_tasks
    assert abs(len(lc) / 2000 - 0.5) < 0.03
    # LC by the 2019 rule: production or monitoring priority, or scheduling class 2-3
    assert {e.priority for e in lc} >= {120, 200, 360}
    assert max(e.priority for e in submits if e.qos_class is QoSClass.BE) <= 119


def test_alibaba_round_trip(tmp_path: Path) -> None:
    trace = generate("alibaba2018", tmp_path / "ali", tasks=3000, seed=5, lc_fraction=0.25)
    assert [p.name for p in trace.paths] == ["batch_task.csv", "container_meta.csv"]
    stats = ReadStats()
    events = list(read_alibaba2018(tmp_path / "ali", stats=stats))
    assert len(events) == trace.events == 3000
    assert _in_order(events)  # batch rows are out of order within the reorder window
    qos = collections.Counter(e.qos_class for e in events)
    assert qos == {QoSClass.LC: 750, QoSClass.BE: 2250}
    assert all(e.duration_s is not None for e in events if e.qos_class is QoSClass.BE)
    assert stats.duplicates > 0 and stats.ignored > 0  # container updates, failed tasks
    assert stats.out_of_order == 0
    assert len({e.task for e in events}) == 3000


def test_azure_round_trip(tmp_path: Path) -> None:
    trace = generate("azure2019", tmp_path / "az", tasks=5000, seed=8, horizon_s=2 * 86400)
    assert len(trace.paths) == 6  # three files per day
    stats = ReadStats()
    events = list(read_azure2019(tmp_path / "az", stats=stats))
    assert len(events) == trace.events == 5000
    assert _in_order(events)
    assert {e.qos_class for e in events} == {QoSClass.FUNCTION}
    assert stats.missing_metadata == 0  # every invoked function has durations and memory
    assert events[-1].time_s > 86400.0  # the second day
    assert all(e.memory_mib >= 16 and e.cpu_m >= 1 for e in events)


def _dispersion(folder: Path, arrival: str) -> float:
    generate("azure2019", folder, tasks=30_000, seed=12, arrival=arrival)
    times = np.array([e.time_s for e in read_azure2019(folder)])
    counts = np.bincount((times // 60).astype(int), minlength=1440)
    return float(counts.var() / counts.mean())


def test_arrival_process_shapes_the_written_trace(tmp_path: Path) -> None:
    assert _dispersion(tmp_path / "p", "poisson") < 1.3
    assert _dispersion(tmp_path / "b", "bursty") > 5.0
    generate(
        "alibaba2018", tmp_path / "d", tasks=20_000, seed=1, lc_fraction=1.0, arrival="diurnal"
    )
    hours = np.bincount(
        [int(e.time_s // 3600) for e in read_alibaba2018(tmp_path / "d")], minlength=24
    )
    assert hours.max() / hours.min() > 3.0


@pytest.mark.parametrize("name", ["borg2011", "borg2019", "alibaba2018", "azure2019"])
@pytest.mark.parametrize("size", [0, 1])
def test_tiny_traces_round_trip(tmp_path: Path, name: str, size: int) -> None:
    trace = generate(name, tmp_path / name, events=size)
    path = trace.paths[0] if name.startswith("borg") else tmp_path / name
    events = list(reader_for(name)(path))
    assert len(events) == trace.events == size
    assert trace.tasks == size


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tasks": 10, "events": 10}, "tasks"),
        ({}, "tasks"),
        ({"tasks": 10, "lc_fraction": 1.5}, "lc_fraction"),
        ({"tasks": 10, "arrival": "weibull"}, "arrival"),
        ({"tasks": 10, "horizon_s": 0}, "horizon_s"),
    ],
)
def test_bad_workload_names_the_field(
    tmp_path: Path, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InputError) as caught:
        generate("borg2011", tmp_path / "t.csv", **kwargs)  # type: ignore[arg-type]
    assert [e.path for e in caught.value.errors] == [field]


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown trace format 'borg2015'; known: borg2011"):
        generate("borg2015", tmp_path, tasks=1)
