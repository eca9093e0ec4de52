"""Google Borg readers on real-format lines: 2011 task_events and 2019 instance_events."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from harmonia.model import QoSClass
from harmonia.traces import (
    EventKind,
    ReadStats,
    ResourceMapping,
    TaskEvent,
    TraceError,
    read_borg2011,
    read_borg2019,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "traces"
TASK_EVENTS = FIXTURES / "borg2011_task_events.csv"
HEAD_ROW = "0,2,3418309,0,4155527081,0,70s3v5qRyCO/1PCdI6fVXnrW8FU/w+5CKRSa72xgcIo=,3,9,,,,\n"


def test_the_2011_head_row_with_its_empty_fields_parses(tmp_path: Path) -> None:
    path = tmp_path / "head.csv"
    path.write_text(HEAD_ROW)
    stats = ReadStats()
    (event,) = read_borg2011(path, stats=stats)
    assert event == TaskEvent(
        time_s=0.0,
        kind=EventKind.SUBMIT,
        task="3418309.0",
        job="3418309",
        qos_class=QoSClass.LC,  # priority 9: production
        priority=9,
        cpu_m=0,
        memory_mib=0,
        disk_mib=0,
        spread_job=False,
    )
    # CPU, memory, disk and different-machines restriction are empty
    assert stats.empty_fields == 4
    assert stats.before_window == 1  # time 0: before the trace window


def test_2011_fixture_gives_every_event_mapped() -> None:
    stats = ReadStats()
    events = list(read_borg2011(TASK_EVENTS, stats=stats))
    assert [(e.time_s, e.kind, e.task) for e in events] == [
        (0.0, EventKind.SUBMIT, "3418309.0"),
        (0.0, EventKind.SUBMIT, "3418309.1"),
        (600.0, EventKind.SUBMIT, "6251812952.0"),
        (600.026634, EventKind.SCHEDULE, "6251812952.0"),
        (601.284713, EventKind.SUBMIT, "6251813216.3"),
        (603.512334, EventKind.SCHEDULE, "6251813216.3"),
        (654.21189, EventKind.UPDATE, "6251812952.0"),  # 8 UPDATE_RUNNING
        (900.514006, EventKind.EVICT, "6251813216.3"),
        (1200.0, EventKind.FINISH, "6251812952.0"),
    ]  # the KILL at 2^63-1 ("after the window") is not yielded
    submit = events[2]
    # 0.03125 x 96000 = 3000 m; 0.01593 x 393216 = 6263.9 -> 6264 MiB;
    # 0.0003862 x 4194304 = 1619.8 -> 1620 MiB; priority 0, class 1: BE
    assert (submit.cpu_m, submit.memory_mib, submit.disk_mib) == (3000, 6264, 1620)
    assert (submit.qos_class, submit.priority, submit.spread_job) == (QoSClass.BE, 0, False)
    lc = events[4]  # scheduling class 2 at priority 4: latency-sensitive
    assert (lc.qos_class, lc.cpu_m, lc.spread_job) == (QoSClass.LC, 6000, True)
    assert events[6].cpu_m == 6000  # the update doubled the CPU request
    assert stats.as_dict() == {
        "lines": 10,
        "events": 9,
        "skipped_bad_lines": 0,
        "empty_fields": 8,  # 4 in each of the two head rows
        "out_of_order": 0,
        "before_window": 2,
        "after_window": 1,
        "ignored": 0,
        "duplicates": 0,
        "missing_metadata": 0,
    }


def test_gzip_and_plain_give_the_same_events(tmp_path: Path) -> None:
    zipped = tmp_path / "part-00000-of-00500.csv.gz"
    zipped.write_bytes(gzip.compress(TASK_EVENTS.read_bytes()))
    assert list(read_borg2011(zipped)) == list(read_borg2011(TASK_EVENTS))


def test_a_folder_reads_its_parts_in_name_order(tmp_path: Path) -> None:
    lines = TASK_EVENTS.read_text().splitlines(keepends=True)
    (tmp_path / "part-00001-of-00002.csv").write_text("".join(lines[5:]))
    (tmp_path / "part-00000-of-00002.csv.gz").write_bytes(
        gzip.compress("".join(lines[:5]).encode())
    )
    assert list(read_borg2011(tmp_path)) == list(read_borg2011(TASK_EVENTS))


def test_blank_lines_are_neither_events_nor_counted_lines(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text(HEAD_ROW + "\n" + HEAD_ROW.replace(",0,4155527081,", ",1,4155527081,") + "\n")
    stats = ReadStats()
    assert [e.task for e in read_borg2011(path, stats=stats)] == ["3418309.0", "3418309.1"]
    assert (stats.lines, stats.events, stats.skipped_bad_lines) == (2, 2, 0)


def test_malformed_line_names_file_line_and_column() -> None:
    path = FIXTURES / "borg2011_bad_line.csv"
    with pytest.raises(TraceError) as caught:
        list(read_borg2011(path))
    error = caught.value
    assert error.source == str(path)
    assert error.line == 2
    assert str(error).startswith(f"{path}: 1 validation error")
    assert "line 2: column 6 (event type): expected 0-8, got '9'" in str(error)


def test_skip_bad_lines_counts_what_it_skipped() -> None:
    stats = ReadStats()
    events = list(
        read_borg2011(FIXTURES / "borg2011_bad_line.csv", skip_bad_lines=True, stats=stats)
    )
    assert [e.task for e in events] == ["6251812952.0", "6251813216.3"]
    assert stats.skipped_bad_lines == 1
    assert stats.lines == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1,,2,3,,0,u,0,0,0.1,0.1,0.1\n", "expected 13 columns, got 12"),
        ("x,,2,3,,0,u,0,0,0.1,0.1,0.1,0\n", "column 1 (time): expected an integer, got 'x'"),
        ("-5,,2,3,,0,u,0,0,0.1,0.1,0.1,0\n", "column 1 (time): expected >= 0, got -5"),
        ("1,,j,3,,0,u,0,0,0.1,0.1,0.1,0\n", "column 3 (job ID): expected an integer, got 'j'"),
        ("1,,2,3,,0,u,0,12,0.1,0.1,0.1,0\n", "column 9 (priority): expected 0-11, got 12"),
        ("1,,2,3,,0,u,4,0,0.1,0.1,0.1,0\n", "column 8 (scheduling class): expected 0-3, got 4"),
        ("1,,2,3,,0,u,0,0,abc,0.1,0.1,0\n", "column 10 (CPU request): expected a number"),
        ("1,,2,3,,0,u,0,0,0.1,-0.1,0.1,0\n", "column 11 (memory request): expected a number >= 0"),
        ("1,,2,3,,0,u,0,0,0.1,0.1,0.1,2\n", "column 13 (different machines restriction)"),
    ],
)
def test_each_bad_column_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(line)
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(read_borg2011(path))


def test_out_of_order_2011_line_is_an_error_unless_skipped(tmp_path: Path) -> None:
    path = tmp_path / "unsorted.csv"
    path.write_text(
        "2000000,,1,0,,0,u,0,0,0.1,0.1,0.1,0\n"
        "1000000,,1,1,,0,u,0,0,0.1,0.1,0.1,0\n"
        "3000000,,1,2,,0,u,0,0,0.1,0.1,0.1,0\n"
    )
    with pytest.raises(TraceError, match=r"line 2: time 1 s of task 1\.1 is earlier than 2 s"):
        list(read_borg2011(path))
    stats = ReadStats()
    assert [e.task for e in read_borg2011(path, skip_bad_lines=True, stats=stats)] == ["1.0", "1.2"]
    assert stats.out_of_order == 1
    # a reorder window as large as the disorder puts the line in its place instead
    assert [e.task for e in read_borg2011(path, reorder_window_s=1.0)] == ["1.1", "1.0", "1.2"]


def test_a_custom_mapping_changes_requests_and_classes(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("1000000,,1,0,,0,u,0,10,0.5,0.25,,1\n")
    small = ResourceMapping(cpu_m=4000, memory_mib=8192, disk_mib=1000, lc_min_priority_2011=11)
    (event,) = read_borg2011(path, mapping=small)
    assert (event.cpu_m, event.memory_mib, event.qos_class) == (2000, 2048, QoSClass.BE)
    (default,) = read_borg2011(path)
    assert (default.cpu_m, default.qos_class) == (48_000, QoSClass.LC)


def test_2019_csv_header_in_any_order() -> None:
    stats = ReadStats()
    events = list(read_borg2019(FIXTURES / "borg2019_instance_events.csv", stats=stats))
    assert [(e.time_s, e.kind, e.task) for e in events] == [
        (0.0, EventKind.SUBMIT, "280592163218.12"),
        (0.0, EventKind.SCHEDULE, "280592163218.12"),
        (612.419562, EventKind.SUBMIT, "395012786214.0"),
        (612.873127, EventKind.SCHEDULE, "395012786214.0"),
        (700.0, EventKind.UPDATE, "280592163218.12"),  # 10 UPDATE_RUNNING
        (915.554012, EventKind.FINISH, "395012786214.0"),
    ]
    first = events[0]
    # priority 200 is the production tier; 0.0208 x 96000 = 1998 m; 0.00612 x 393216 = 2406
    assert (first.qos_class, first.priority, first.job) == (QoSClass.LC, 200, "280592163218")
    assert (first.cpu_m, first.memory_mib) == (1998, 2406)
    batch = events[2]  # priority 115 (best-effort batch), scheduling class 1
    assert (batch.qos_class, batch.cpu_m, batch.memory_mib) == (QoSClass.BE, 609, 525)
    assert events[5].cpu_m == 0  # empty request fields
    assert stats.ignored == 2  # ENABLE and QUEUE
    assert stats.after_window == 1
    assert stats.before_window == 2
    assert stats.empty_fields == 2
    assert stats.lines == 9


def test_2019_json_lines_with_nested_requests_strings_and_names() -> None:
    stats = ReadStats()
    events = list(read_borg2019(FIXTURES / "borg2019_instance_events.json", stats=stats))
    assert [(e.time_s, e.kind, e.task, e.qos_class) for e in events] == [
        (0.0, EventKind.SUBMIT, "280592163218.12", QoSClass.LC),
        (612.419562, EventKind.SUBMIT, "395012786214.0", QoSClass.BE),
        (612.873127, EventKind.SCHEDULE, "395012786214.0", QoSClass.BE),
        (915.554012, EventKind.FINISH, "395012786214.0", QoSClass.BE),
    ]
    assert (events[0].cpu_m, events[0].memory_mib) == (1998, 2406)
    assert (events[1].cpu_m, events[1].priority) == (0, 25)  # resource_request: null
    assert stats.ignored == 1  # "ENABLE" by name
    assert stats.empty_fields == 2


def test_2019_csv_and_json_agree_on_the_same_events(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "borg2019_instance_events.json", tmp_path / "events.jsonl")
    zipped = tmp_path / "events.jsonl.gz"
    zipped.write_bytes(gzip.compress((tmp_path / "events.jsonl").read_bytes()))
    assert list(read_borg2019(zipped)) == list(read_borg2019(tmp_path / "events.jsonl"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"time": "1", "type": "0", "collection_id": "5"}\n',
            "column instance_index: is required",
        ),
        ('{"time": "1", "type": "99", "collection_id": "5", "instance_index": 0}\n', "column type"),
        (
            '{"time": "1", "type": 0, "collection_id": "5", "instance_index": true}\n',
            "instance_index",
        ),
        ('{"time": "1", "type": 0\n', "not valid JSON"),
        ("[1, 2]\n", "expected a JSON object"),
    ],
)
def test_2019_bad_json_line_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"time": "1", "type": 0, "collection_id": "5", "instance_index": 0}\n' + text)
    with pytest.raises(TraceError, match=f"line 2: .*{message}"):
        list(read_borg2019(path))
    stats = ReadStats()
    assert len(list(read_borg2019(path, skip_bad_lines=True, stats=stats))) == 1
    assert stats.skipped_bad_lines == 1


def test_2019_csv_without_required_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("time,type,priority\n1,0,200\n")
    with pytest.raises(
        TraceError, match="header lacks column\\(s\\) collection_id, instance_index"
    ):
        list(read_borg2019(path))


def test_2019_csv_short_row_is_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("time,type,collection_id,instance_index\n1,0,5,0\n2,0,5\n")
    with pytest.raises(TraceError, match="line 3: expected 4 columns, got 3"):
        list(read_borg2019(path))
