"""The throughput check runs (small here; the figures come from running it by hand)."""

from __future__ import annotations

from tests.sim.helpers import synthetic_events
from tests.sim.throughput_check import measure


def test_synthetic_events_are_time_ordered_and_mostly_complete() -> None:
    events = list(synthetic_events(3_000, seed=2))
    assert len(events) == 3_000
    times = [ev.time_s for ev in events]
    assert times == sorted(times)
    # SUBMIT, SCHEDULE, terminal per task; early in the window fewer tasks have ended
    submits = sum(ev.kind == "submit" for ev in events)
    assert len(events) / 3 < submits < len(events) / 2


def test_throughput_check_runs_small() -> None:
    report = measure(nodes=300, events=2_000, lc=True)
    assert report["events"] == 2_000
    assert report["events_per_second"] > 0
    tasks = report["tasks"]
    ends = ["finished", "failed", "evicted", "pending_at_end", "running_at_end"]
    assert tasks["submitted"] == sum(tasks[k] for k in ends)
