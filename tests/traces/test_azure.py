"""Azure Functions 2019 reader: per-minute counts expanded into invocations."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harmonia.model import QoSClass
from harmonia.traces import EventKind, ReadStats, TraceError, read_azure2019

FOLDER = Path(__file__).parents[1] / "fixtures" / "traces" / "azure"
INVOCATIONS = FOLDER / "invocations_per_function_md.anon.d01.csv"
APP_1 = "5eb7e725e6bac43f2a906437aa7be080081de786a7d12f7b9649be47b69d6ca0"
APP_2 = "80d6ae0197c2a3be4ec46d171996105891dedf626ea3040f2dd2bf00e63c436e"
FUNCTION_1 = "06e57d456c9e86e77c1b3d9c5f6992e603b0af26639ffb6a63a0001f144c6973"
FUNCTION_2 = "f0cb5bdc739c52a84f2771a89ba8eae5d17fb4c802ebb634d019f40569fd1a49"


def test_invocations_are_spread_evenly_within_their_minute() -> None:
    stats = ReadStats()
    events = list(read_azure2019(INVOCATIONS, stats=stats))
    # function 1: 2 in minute 1 at (k + 0.5) x 60 / 2 = 15, 45 s; 1 in minute 3 at 150 s.
    # function 2: 1 in minute 1 at 30 s; 3 in minute 1440 at 86340 + 10, 30, 50 s.
    assert [(e.time_s, e.task) for e in events] == [
        (15.0, f"{FUNCTION_1}.0"),
        (30.0, f"{FUNCTION_2}.0"),
        (45.0, f"{FUNCTION_1}.1"),
        (150.0, f"{FUNCTION_1}.2"),
        (86350.0, f"{FUNCTION_2}.1"),
        (86370.0, f"{FUNCTION_2}.2"),
        (86390.0, f"{FUNCTION_2}.3"),
    ]
    assert {(e.kind, e.qos_class) for e in events} == {(EventKind.SUBMIT, QoSClass.FUNCTION)}
    one, two = events[0], events[1]
    # function 1: Average 2500 ms; app 1: 170 MB -> 170 MiB, 170 x 1000 / 1769 = 96.1 -> 96 m
    assert (one.job, one.duration_s, one.memory_mib, one.cpu_m) == (APP_1, 2.5, 170, 96)
    # function 2 and app 2 have no rows: defaults 1 s and 128 MiB (72 m)
    assert (two.job, two.duration_s, two.memory_mib, two.cpu_m) == (APP_2, 1.0, 128, 72)
    assert stats.missing_metadata == 2
    assert stats.ignored == 1  # function 3 is never invoked
    assert stats.lines == 5  # 3 invocation rows, 1 durations row, 1 memory row
    assert stats.events == 7


def test_sampled_durations_lie_within_the_percentiles_and_follow_the_seed() -> None:
    def durations(seed: int) -> list[float]:
        events = read_azure2019(INVOCATIONS, duration="sampled", seed=seed)
        return [e.duration_s or 0.0 for e in events if e.task.startswith(FUNCTION_1)]

    drawn = durations(7)
    assert len(drawn) == 3
    assert all(1.0 <= d <= 4.0 for d in drawn)  # percentile_Average_0 .. _100, in s
    assert drawn == durations(7)
    assert drawn != durations(8)


def test_uniform_spread_keeps_each_invocation_in_its_minute() -> None:
    events = list(read_azure2019(INVOCATIONS, spread="uniform", seed=3))
    minutes = [int(e.time_s // 60) for e in events]
    assert minutes == [0, 0, 0, 2, 1439, 1439, 1439]
    assert [e.time_s for e in events] == sorted(e.time_s for e in events)


def test_day_number_in_the_file_name_offsets_times(tmp_path: Path) -> None:
    for source in FOLDER.iterdir():
        shutil.copy(source, tmp_path / source.name.replace(".d01.", ".d02."))
    shutil.copytree(FOLDER, tmp_path, dirs_exist_ok=True)
    events = list(read_azure2019(tmp_path))
    assert len(events) == 14
    assert events[7].time_s == 86400.0 + 15.0
    assert events[7].task == f"{FUNCTION_1}.0"  # numbering restarts per day file
    assert events[7].duration_s == 2.5  # the d02 durations file was found


def test_explicit_metadata_files_override_discovery(tmp_path: Path) -> None:
    lonely = tmp_path / INVOCATIONS.name
    shutil.copy(INVOCATIONS, lonely)
    stats = ReadStats()
    assert {e.duration_s for e in read_azure2019(lonely, stats=stats)} == {1.0}
    assert stats.missing_metadata == 4  # both functions, both apps
    durations = FOLDER / "function_durations_percentiles.anon.d01.csv"
    events = list(read_azure2019(lonely, durations=durations))
    assert {e.duration_s for e in events} == {2.5, 1.0}


def test_bad_count_names_line_and_minute_column(tmp_path: Path) -> None:
    path = tmp_path / INVOCATIONS.name
    lines = INVOCATIONS.read_text().splitlines(keepends=True)
    cells = lines[2].split(",")
    cells[4 + 9] = "ten"  # minute column "10"
    lines[2] = ",".join(cells)
    path.write_text("".join(lines))
    with pytest.raises(TraceError, match="line 3: column 10: expected an integer, got 'ten'"):
        list(read_azure2019(path))
    stats = ReadStats()
    assert len(list(read_azure2019(path, skip_bad_lines=True, stats=stats))) == 3
    assert stats.skipped_bad_lines == 1


def test_short_row_and_bad_header_are_refused(tmp_path: Path) -> None:
    path = tmp_path / INVOCATIONS.name
    lines = INVOCATIONS.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1].rsplit(",", 5)[0] + "\n")
    with pytest.raises(TraceError, match="line 2: expected 1444 columns, got 1439"):
        list(read_azure2019(path))
    path.write_text("HashOwner,HashApp,HashFunction,Trigger,1,3\n")
    with pytest.raises(TraceError, match="line 1: minute columns must be 1, 2"):
        list(read_azure2019(path))
    path.write_text("HashOwner,HashApp,Trigger,1,2\n")
    with pytest.raises(TraceError, match="header lacks column\\(s\\) HashFunction"):
        list(read_azure2019(path))
