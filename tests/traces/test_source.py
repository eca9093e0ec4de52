"""Opening traces, the reorder buffer and the event constructor the readers share."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from harmonia.model import QoSClass
from harmonia.traces import EventKind, ReadStats, TaskEvent, TraceError, open_text
from harmonia.traces.source import in_time_order, input_files, new_event


def _event(time_s: float, task: str = "t") -> TaskEvent:
    return TaskEvent(time_s=time_s, kind=EventKind.SUBMIT, task=task)


def test_open_text_reads_plain_and_gzip_alike(tmp_path: Path) -> None:
    text = "a,b\nc,d\n"
    plain = tmp_path / "plain.csv"
    plain.write_text(text)
    zipped = tmp_path / "zipped.csv.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    disguised = tmp_path / "no-suffix.csv"  # gzip found by magic bytes, not by name
    disguised.write_bytes(gzip.compress(text.encode()))
    for path in (plain, zipped, disguised):
        with open_text(path) as handle:
            assert handle.read() == text


def test_open_text_keeps_line_endings_for_csv(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(b"a\r\nb\r\n")
    with open_text(path) as handle:
        assert list(handle) == ["a\r\n", "b\r\n"]


def test_empty_gz_file_is_read_as_gzip_by_its_suffix(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv.gz"
    path.write_bytes(b"")
    with open_text(path) as handle:
        assert handle.read() == ""


def test_input_files_lists_a_folder_sorted_and_rejects_missing_paths(tmp_path: Path) -> None:
    for name in ("part-00001-of-00002.csv.gz", "part-00000-of-00002.csv.gz", "README"):
        (tmp_path / name).write_text("")
    files = input_files(tmp_path, lambda name: name.endswith(".csv.gz"))
    assert [f.name for f in files] == ["part-00000-of-00002.csv.gz", "part-00001-of-00002.csv.gz"]
    with pytest.raises(TraceError, match="no such file"):
        input_files(tmp_path / "missing.csv", lambda name: True)
    with pytest.raises(TraceError, match="holds no trace file"):
        input_files(tmp_path, lambda name: name.endswith(".json"))


def _items(times: list[float]) -> list[tuple[TaskEvent, str, int]]:
    return [(_event(t, f"t{i}"), "trace.csv", i + 1) for i, t in enumerate(times)]


def test_reorder_window_sorts_disorder_within_it_and_keeps_ties_in_input_order() -> None:
    stats = ReadStats()
    times = [10.0, 5.0, 12.0, 10.0, 30.0, 25.0, 100.0]
    out = list(in_time_order(_items(times), window_s=20.0, skip_bad_lines=False, stats=stats))
    assert [e.time_s for e in out] == sorted(times)
    assert [e.task for e in out if e.time_s == 10.0] == ["t0", "t3"]
    assert stats.events == 7
    assert stats.out_of_order == 0


def test_event_older_than_the_window_is_an_error_naming_the_line() -> None:
    # 100 pushes 10 out (100 - 20 > 10); 50 can still follow 10, but 5 cannot
    times = [10.0, 100.0, 50.0, 5.0]
    events = in_time_order(_items(times), window_s=20.0, skip_bad_lines=False, stats=ReadStats())
    with pytest.raises(TraceError) as caught:
        list(events)
    assert caught.value.source == "trace.csv"
    assert caught.value.line == 4
    assert "earlier than 10 s" in str(caught.value)


def test_skipping_drops_and_counts_late_events() -> None:
    stats = ReadStats()
    times = [10.0, 100.0, 5.0, 50.0]
    events = in_time_order(_items(times), window_s=20.0, skip_bad_lines=True, stats=stats)
    assert [e.time_s for e in events] == [10.0, 50.0, 100.0]
    assert stats.out_of_order == 1
    assert stats.events == 3


def test_without_a_window_any_step_back_is_late() -> None:
    stats = ReadStats()
    events = in_time_order(
        _items([1.0, 2.0, 1.5, 2.0]), window_s=0, skip_bad_lines=True, stats=stats
    )
    assert [e.time_s for e in events] == [1.0, 2.0, 2.0]
    assert stats.as_dict()["out_of_order"] == 1


def test_fast_event_constructor_matches_the_dataclass() -> None:
    args = (1.5, EventKind.FINISH, "7.3", "7", QoSClass.LC, 9, 3000, 6264, 1620, 2.0, True)
    fast = new_event(*args)
    slow = TaskEvent(*args)
    assert fast == slow
    assert type(fast) is TaskEvent
    assert hash(fast) == hash(slow)
    with pytest.raises(AttributeError):
        fast.time_s = 2.0  # type: ignore[misc]
