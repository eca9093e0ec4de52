"""Alibaba cluster-trace-v2018 readers: batch instances, containers, the reorder buffer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harmonia.model import QoSClass
from harmonia.traces import (
    EventKind,
    ReadStats,
    TraceError,
    read_alibaba2018,
    read_batch_task,
    read_container_meta,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "traces"
BATCH = FIXTURES / "alibaba_batch_task.csv"
CONTAINERS = FIXTURES / "alibaba_container_meta.csv"


def test_batch_task_gives_one_submit_per_instance_in_time_order() -> None:
    stats = ReadStats()
    events = list(read_batch_task(BATCH, stats=stats))
    assert [(e.time_s, e.task, e.duration_s) for e in events] == [
        # R2_1 starts 176 s before M1 but comes after it in the file: reordered
        (86900.0, "j_1.R2_1.0", 50.0),
        (86900.0, "j_1.R2_1.1", 50.0),
        (86900.0, "j_1.R2_1.2", 50.0),
        (87076.0, "j_1.M1.0", 10.0),
        (88000.0, "j_2.task_LTg0MTUwNTA5Mjg4MDQwNjIxODY0OQ==.0", 100.0),
        (88000.0, "j_2.task_LTg0MTUwNTA5Mjg4MDQwNjIxODY0OQ==.1", 100.0),
    ]
    assert {(e.kind, e.qos_class) for e in events} == {(EventKind.SUBMIT, QoSClass.BE)}
    m1 = events[3]
    # plan_cpu 100 = 1 core; plan_mem 0.59% of 393216 MiB = 2319.97 -> 2320 MiB
    assert (m1.job, m1.cpu_m, m1.memory_mib) == ("j_1", 1000, 2320)
    assert (events[0].cpu_m, events[0].memory_mib) == (500, 1534)  # 50 -> 0.5 core
    assert (events[4].cpu_m, events[4].memory_mib) == (0, 0)  # empty plan_cpu / plan_mem
    # Failed, Running and the row without times carry no event
    assert (stats.ignored, stats.empty_fields, stats.lines, stats.events) == (3, 2, 6, 6)


def test_disorder_beyond_the_window_is_an_error_or_counted(tmp_path: Path) -> None:
    path = tmp_path / "batch_task.csv"
    path.write_text(
        "M1,1,j_1,1,Terminated,1000,1010,100,1\n"
        "M1,1,j_2,1,Terminated,5000,5010,100,1\n"
        "M1,1,j_3,1,Terminated,900,910,100,1\n"  # 4100 s behind: beyond 3600 s
        "M1,1,j_4,1,Terminated,2000,2010,100,1\n"  # 3000 s behind: within
    )
    with pytest.raises(TraceError, match=r"line 3: time 900 s of task j_3\.M1\.0 is earlier"):
        list(read_batch_task(path))
    stats = ReadStats()
    events = read_batch_task(path, skip_bad_lines=True, stats=stats)
    assert [e.job for e in events] == ["j_1", "j_4", "j_2"]
    assert stats.out_of_order == 1
    wide = read_batch_task(path, reorder_window_s=5000)
    assert [e.job for e in wide] == ["j_3", "j_1", "j_4", "j_2"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("M1,1,j_1,1,Terminated,100,90,100,1", "column end_time: 90 is before start_time 100"),
        ("M1,x,j_1,1,Terminated,100,110,100,1", "column instance_num: expected an integer"),
        ("M1,1,j_1,1,Terminated,100,110,lots,1", "column plan_cpu: expected a number"),
        ("M1,1,j_1,1,Terminated,100,110,100", "expected 9 columns, got 8"),
    ],
)
def test_bad_batch_rows_are_named(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "batch_task.csv"
    path.write_text(row + "\n")
    with pytest.raises(TraceError, match=f"line 1: {message}"):
        list(read_batch_task(path))


def test_container_meta_gives_one_lc_submit_per_container() -> None:
    stats = ReadStats()
    events = list(read_container_meta(CONTAINERS, stats=stats))
    assert [(e.time_s, e.task, e.job) for e in events] == [
        (0.0, "c_1", "app_5052"),
        (0.0, "c_2", "app_5052"),
        (300.0, "c_3", "app_1211"),
    ]
    assert all(e.qos_class is QoSClass.LC and e.duration_s is None for e in events)
    # cpu_request 400 = 4 cores; mem_size 1.56% of 393216 = 6134.2 -> 6134 MiB
    assert (events[0].cpu_m, events[0].memory_mib) == (4000, 6134)
    assert (events[2].cpu_m, events[2].memory_mib) == (8000, 24576)  # 6.25% = 1/16
    assert stats.duplicates == 1  # c_1's later row


def test_a_folder_merges_both_tables_in_time_order(tmp_path: Path) -> None:
    shutil.copy(BATCH, tmp_path / "batch_task.csv")
    shutil.copy(CONTAINERS, tmp_path / "container_meta.csv")
    stats = ReadStats()
    events = list(read_alibaba2018(tmp_path, stats=stats))
    assert len(events) == 9
    assert [e.time_s for e in events] == sorted(e.time_s for e in events)
    assert [e.qos_class for e in events[:3]] == [QoSClass.LC] * 3
    assert stats.events == 9


def test_a_file_is_recognised_by_name_or_by_its_columns(tmp_path: Path) -> None:
    assert len(list(read_alibaba2018(CONTAINERS))) == 3
    unnamed = tmp_path / "part.csv"
    shutil.copy(CONTAINERS, unnamed)
    assert [e.task for e in read_alibaba2018(unnamed)] == ["c_1", "c_2", "c_3"]
    shutil.copy(BATCH, unnamed)
    assert len(list(read_alibaba2018(unnamed))) == 6
    unnamed.write_text("a,b,c\n")
    with pytest.raises(TraceError, match="neither batch_task"):
        list(read_alibaba2018(unnamed))
