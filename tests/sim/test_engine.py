"""The event engine: order by time, then priority, then insertion; trace merging."""

from __future__ import annotations

from typing import Any

import pytest

from harmonia.sim import Engine, EngineError


def recording_engine(kinds: int = 2) -> tuple[Engine, list[tuple[float, Any]]]:
    engine = Engine()
    seen: list[tuple[float, Any]] = []
    for kind in range(kinds):
        engine.register(kind, lambda t, payload: seen.append((t, payload)))
    return engine, seen


def test_events_run_by_time_then_priority_then_insertion() -> None:
    engine, seen = recording_engine()
    engine.schedule(5.0, 1, 0, "t5-p1-first")
    engine.schedule(1.0, 9, 0, "t1-p9")
    engine.schedule(5.0, 0, 1, "t5-p0")
    engine.schedule(5.0, 1, 0, "t5-p1-second")
    engine.schedule(3.0, 0, 0, "t3")
    engine.run()
    assert [p for _, p in seen] == ["t1-p9", "t3", "t5-p0", "t5-p1-first", "t5-p1-second"]
    assert engine.now == 5.0
    assert engine.processed == 5


def test_same_inputs_same_order_every_time() -> None:
    def once() -> list[Any]:
        engine, seen = recording_engine()
        for i in range(200):
            engine.schedule(float(i % 7), i % 3, i % 2, i)
        engine.run()
        return [p for _, p in seen]

    assert once() == once()


def test_handlers_can_schedule_at_the_current_time() -> None:
    engine = Engine()
    seen: list[str] = []

    def first(t: float, payload: Any) -> None:
        seen.append("first")
        engine.schedule(t, 0, 1, None)  # same time, lower priority number: runs next

    engine.register(0, first)
    engine.register(1, lambda t, p: seen.append("follow-up"))
    engine.schedule(2.0, 5, 0)
    engine.schedule(2.0, 5, 0)
    engine.run()
    assert seen == ["first", "follow-up", "first", "follow-up"]


def test_run_until_stops_and_advances_the_clock() -> None:
    engine, seen = recording_engine()
    engine.schedule(1.0, 0, 0, "a")
    engine.schedule(10.0, 0, 0, "b")
    engine.run(until=5.0)
    assert [p for _, p in seen] == ["a"]
    assert engine.now == 5.0
    engine.run()
    assert [p for _, p in seen] == ["a", "b"]


def test_scheduling_in_the_past_or_without_handler_is_an_error() -> None:
    engine, _ = recording_engine()
    engine.schedule(3.0, 0, 0)
    engine.run()
    with pytest.raises(EngineError, match="before now"):
        engine.schedule(2.0, 0, 0)
    with pytest.raises(EngineError, match="no handler"):
        engine.schedule(4.0, 0, 7)


def test_source_items_merge_with_heap_events_by_time_and_priority() -> None:
    engine, seen = recording_engine(3)
    engine.schedule(1.0, 0, 0, "heap t1 p0")
    engine.schedule(1.0, 5, 0, "heap t1 p5")
    engine.schedule(2.0, 3, 0, "heap t2 p3 (ties the source: heap first)")
    source = iter([(1.0, "src t1"), (2.0, "src t2"), (4.0, "src t4")])
    exhausted = engine.run(source=source, source_kind=2, source_priority=3)
    assert exhausted
    assert [p for _, p in seen] == [
        "heap t1 p0",
        "src t1",
        "heap t1 p5",
        "heap t2 p3 (ties the source: heap first)",
        "src t2",
        "src t4",
    ]


def test_source_returns_after_its_last_item_and_resumes_after_until() -> None:
    engine, seen = recording_engine(2)
    engine.schedule(10.0, 0, 0, "heap t10")
    source = iter([(1.0, "a"), (6.0, "b"), (8.0, "c")])
    assert not engine.run(5.0, source=source, source_kind=1)
    assert [p for _, p in seen] == ["a"] and engine.now == 5.0
    assert engine.run(source=source, source_kind=1)  # the held item "b" is not lost
    assert [p for _, p in seen] == ["a", "b", "c"]
    assert engine.now == 8.0  # the heap event after the source's end is left
    engine.run()
    assert seen[-1] == (10.0, "heap t10")


def test_late_source_items_run_at_the_current_time() -> None:
    engine, seen = recording_engine(2)
    engine.schedule(5.0, 0, 0, "heap t5")
    engine.run(source=iter([(6.0, "x"), (5.5, "late")]), source_kind=1)
    assert seen == [(5.0, "heap t5"), (6.0, "x"), (6.0, "late")]


def test_stop_ends_the_run_after_the_current_event() -> None:
    engine = Engine()
    seen: list[int] = []

    def handler(t: float, payload: int) -> None:
        seen.append(payload)
        if payload == 2:
            engine.stop()

    engine.register(0, handler)
    for i in range(5):
        engine.schedule(float(i), 0, 0, i)
    engine.run(until=100.0)
    assert seen == [0, 1, 2]
    assert engine.now == 2.0
