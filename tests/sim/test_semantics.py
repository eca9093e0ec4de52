"""Task semantics: placement, pending queue and retries, run times, outcomes, counting."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import QoSClass
from harmonia.sim.scenario import RequestConfig
from harmonia.traces import EventKind, TaskEvent
from tests.builders import make_node
from tests.sim.helpers import (
    TERMINALS,
    borg_task,
    conserved,
    failures,
    make_infra,
    merge,
    run,
)


def test_borg_task_ends_at_its_trace_terminal_time() -> None:
    # Scheduled in the trace at 10, finished at 110: runs 100 s from its simulated start
    # (at submit, 0, since the node is free): ends at max(110, 0 + 100) = 110.
    result = run(make_infra(1), borg_task("a.0", submit=0, schedule=10, end=110))
    tasks = result.metrics["tasks"]
    assert (tasks["submitted"], tasks["scheduled"], tasks["finished"]) == (1, 1, 1)
    assert result.metrics["time"]["end_s"] == 110.0


def test_pending_task_runs_when_capacity_frees_and_keeps_its_duration() -> None:
    # One node of 4 cores; two 3-core tasks. b waits until a ends at 100; its trace says
    # it ran 50 s (schedule 0, finish 50), so it runs 100..150.
    infra = make_infra(1)
    events = merge(
        borg_task("a.0", submit=0, schedule=0, end=100, cpu=3000),
        borg_task("b.0", submit=0, schedule=0, end=50, cpu=3000),
    )
    result = run(infra, events, step_s=10)
    assert result.metrics["tasks"]["finished"] == 2
    assert result.metrics["time"]["end_s"] == 150.0
    delays = result.metrics["scheduling_delay_s"]
    assert delays["count"] == 2 and delays["max"] == 100.0
    pending = {row["time_s"]: row["pending"] for row in result.timeseries}
    assert pending[90.0] == 1 and pending[110.0] == 0


def test_late_start_still_ends_no_earlier_than_the_trace() -> None:
    # b starts at 100 (after a) but its terminal arrives at 300 with duration 300 - 0:
    # end = max(300, 100 + 300) = 400.
    events = merge(
        borg_task("a.0", submit=0, schedule=0, end=100, cpu=3000),
        borg_task("b.0", submit=0, schedule=0, end=300, cpu=3000),
    )
    result = run(make_infra(1), events)
    assert result.metrics["time"]["end_s"] == 400.0


def test_stated_durations_alibaba_style() -> None:
    events = merge(
        borg_task("x.0", submit=0, duration=30.0, cpu=3000),
        borg_task("y.0", submit=5, duration=20.0, cpu=3000),
    )
    result = run(make_infra(1), events)
    tasks = result.metrics["tasks"]
    assert tasks["finished"] == 2 and tasks["running_at_end"] == 0
    # y waits for x (ends 30), then runs 20 s.
    assert result.metrics["time"]["end_s"] == 50.0
    assert result.metrics["scheduling_delay_s"]["max"] == 25.0


def test_terminal_kinds_count_as_their_outcomes() -> None:
    events = merge(
        *[
            borg_task(f"t{i}.0", submit=0, schedule=0, end=10 + i, kind=kind, cpu=100)
            for i, kind in enumerate(TERMINALS)
        ]
    )
    tasks = run(make_infra(2), events).metrics["tasks"]
    assert tasks["finished"] == 1
    assert tasks["failed"] == 3  # FAIL, KILL, LOST
    assert tasks["killed"] == 2
    assert tasks["evicted"] == 1


def test_a_resubmitted_task_starts_a_new_life() -> None:
    # b blocks the node until 10, so a starts at 10; the trace evicts a at 30 after 30 s
    # of running, so here a runs until 10 + 30 = 40. The trace resubmits a at 30 (a new
    # life, pending until the old one leaves at 40) and it runs 19 s: 40..59.
    events = merge(
        borg_task("b.0", submit=0, schedule=0, end=10, cpu=3000),
        borg_task("a.0", submit=0, schedule=0, end=30, kind=EventKind.EVICT, cpu=3000),
        borg_task("a.0", submit=30, schedule=31, end=50, cpu=3000),
    )
    result = run(make_infra(1), events)
    tasks = result.metrics["tasks"]
    assert (tasks["submitted"], tasks["finished"], tasks["evicted"]) == (3, 2, 1)
    assert result.metrics["time"]["end_s"] == 59.0
    assert result.metrics["events"]["ignored"] == 0
    assert conserved(result)


def test_a_second_submit_of_a_live_task_is_ignored() -> None:
    events = merge(
        borg_task("a.0", submit=0, schedule=0, end=10),
        [borg_task("a.0", submit=5)[0]],
    )
    result = run(make_infra(1), events)
    assert result.metrics["tasks"]["submitted"] == 1
    assert result.metrics["events"]["ignored"] == 1


def test_kill_of_a_pending_task_removes_it_from_the_queue() -> None:
    events = merge(
        borg_task("a.0", submit=0, schedule=0, end=1000, cpu=4000),
        borg_task("b.0", submit=0, end=50, kind=EventKind.KILL, cpu=4000),
    )
    result = run(make_infra(1), events)
    tasks = result.metrics["tasks"]
    assert tasks["failed"] == 1 and tasks["killed"] == 1 and tasks["scheduled"] == 1
    assert tasks["pending_at_end"] == 0
    assert conserved(result)


def test_tasks_still_pending_or_running_at_the_end_are_counted_so() -> None:
    events = merge(
        borg_task("a.0", submit=0, schedule=0, cpu=3000),  # never ends in the trace
        borg_task("b.0", submit=1, cpu=3000),  # never fits
    )
    tasks = run(make_infra(1), events).metrics["tasks"]
    assert tasks["running_at_end"] == 1 and tasks["pending_at_end"] == 1


def test_a_request_larger_than_every_node_is_rejected_as_failed() -> None:
    result = run(make_infra(2), borg_task("huge.0", submit=0, cpu=64000))
    tasks = result.metrics["tasks"]
    assert tasks["rejected"] == 1 and tasks["failed"] == 1 and tasks["pending_at_end"] == 0


def test_update_of_a_pending_task_changes_its_request() -> None:
    events = merge(
        borg_task("a.0", submit=0, schedule=0, cpu=3000),
        borg_task("b.0", submit=0, cpu=3000),
        [TaskEvent(5.0, EventKind.UPDATE, "b.0", job="b", cpu_m=500, memory_mib=512)],
    )
    result = run(make_infra(1), events)
    assert result.metrics["tasks"]["running_at_end"] == 2
    assert result.metrics["scheduling_delay_s"]["max"] == 5.0


def test_different_machines_restriction_is_hard_by_default() -> None:
    spread = [borg_task(f"j.{i}", submit=0, schedule=0, cpu=100, spread=True) for i in range(3)]
    tasks = run(make_infra(2), merge(*spread)).metrics["tasks"]
    assert tasks["running_at_end"] == 2 and tasks["pending_at_end"] == 1
    soft = run(make_infra(2), merge(*spread), requests=RequestConfig(spread_job="soft"))
    assert soft.metrics["tasks"]["running_at_end"] == 3


def test_pending_spread_task_starts_when_its_sibling_leaves_a_node() -> None:
    events = merge(
        borg_task("j.0", submit=0, schedule=0, end=100, cpu=100, spread=True),
        borg_task("j.1", submit=0, schedule=0, cpu=100, spread=True),
        borg_task("j.2", submit=0, schedule=0, cpu=100, spread=True),
    )
    result = run(make_infra(2), events)
    tasks = result.metrics["tasks"]
    assert tasks["running_at_end"] == 2 and tasks["finished"] == 1
    assert result.metrics["scheduling_delay_s"]["max"] == 100.0


def test_zero_requests_get_the_documented_minimum() -> None:
    # With the defaults (10m, 16 MiB minimum) 400 empty tasks fill a 4-core node.
    events = merge(*[borg_task(f"z{i}.0", submit=0, cpu=0, mem=0) for i in range(401)])
    result = run(
        make_infra([make_node("n0", cpu=4000, mem=100_000)]), events, requests=RequestConfig()
    )
    tasks = result.metrics["tasks"]
    assert tasks["running_at_end"] == 400 and tasks["pending_at_end"] == 1


def test_quantization_rounds_requests_up() -> None:
    # 1001m rounds up to 1010m: three fit on a 4000m node with 970m left, not a fourth.
    events = merge(*[borg_task(f"q{i}.0", submit=0, cpu=1001, mem=1) for i in range(4)])
    node = make_node("n0", cpu=4000, mem=100_000)
    quantized = run(make_infra([node]), events, requests=RequestConfig())
    assert quantized.metrics["tasks"]["running_at_end"] == 3
    exact = run(make_infra([node]), events)
    assert exact.metrics["tasks"]["running_at_end"] == 3  # 4 × 1001 > 4000 either way
    assert quantized.metrics["utilization"]["cpu_max"] == pytest.approx(3030 / 4000)


def random_workload(seed: int, tasks: int = 300) -> list[TaskEvent]:
    rng = np.random.default_rng(seed)
    lists = []
    for i in range(tasks):
        submit = float(rng.uniform(0, 3000))
        kind = TERMINALS[int(rng.integers(len(TERMINALS)))]
        has_end = rng.random() < 0.8
        lists.append(
            borg_task(
                f"job{i % 40}.{i}",
                submit=submit,
                schedule=submit + float(rng.uniform(0, 5)),
                end=submit + float(rng.exponential(600)) + 5 if has_end else None,
                kind=kind,
                cpu=int(rng.integers(100, 3500)),
                mem=int(rng.integers(64, 6000)),
                qos=QoSClass.LC if rng.random() < 0.3 else QoSClass.BE,
                spread=bool(rng.random() < 0.2),
                duration=float(rng.exponential(300)) if rng.random() < 0.2 else None,
            )
        )
    return merge(*lists)


@pytest.mark.parametrize("requeue", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_are_conserved_under_node_failures(seed: int, requeue: bool) -> None:
    infra = make_infra(8)
    result = run(
        infra,
        random_workload(seed),
        seed=seed,
        failures=failures(mtbf_s=900, mttr_s=300, requeue=requeue),
    )
    tasks = result.metrics["tasks"]
    assert result.metrics["nodes"]["failures"] > 0
    assert tasks["evictions"] > 0
    assert conserved(result), tasks
    assert tasks["scheduled"] <= tasks["submitted"]
    if requeue:
        # every placement after the first of a life follows a requeue
        assert tasks["scheduled"] <= tasks["placements"] <= tasks["scheduled"] + tasks["requeued"]
        assert tasks["requeued"] == tasks["evictions"]
    else:
        assert tasks["placements"] == tasks["scheduled"]
        assert tasks["requeued"] == 0
        assert tasks["evicted"] >= tasks["evictions"]


def test_node_failure_evicts_and_requeues_onto_a_healthy_node() -> None:
    # Two nodes, one long task; the node it runs on fails almost surely within the run.
    infra = make_infra(2)
    events = merge(borg_task("a.0", submit=0, schedule=0, end=100_000, cpu=3000))
    result = run(infra, events, failures=failures(mtbf_s=5_000, mttr_s=100_000), seed=4)
    tasks = result.metrics["tasks"]
    assert tasks["evictions"] >= 1 and tasks["requeued"] == tasks["evictions"]
    assert tasks["placements"] >= 2
    assert conserved(result)


def test_utilization_is_measured_per_resource_and_node_class() -> None:
    nodes = [
        make_node("small", cpu=4000, mem=4096, node_class="rpi4"),
        make_node("big", cpu=16000, mem=65536, node_class="edge-server"),
    ]
    # 2000m, 2048 MiB fits both; the default policy prefers the emptier big node.
    result = run(make_infra(nodes), borg_task("a.0", submit=0, schedule=0, cpu=2000, mem=2048))
    util = result.metrics["utilization"]
    assert util["cpu_mean"] == pytest.approx(2000 / 20000)
    assert util["by_class"]["edge-server"]["cpu_mean"] == pytest.approx(2000 / 16000)
    assert util["by_class"]["rpi4"]["cpu_mean"] == 0.0
    row = result.timeseries[-1]
    assert row["cpu_util.edge-server"] == pytest.approx(0.125)
    assert row["memory_util"] == pytest.approx(2048 / (4096 + 65536))


def test_interned_requests_are_pruned_without_changing_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harmonia.sim import requests

    workload = random_workload(5, tasks=200)
    expected = run(make_infra(8), workload).metrics["tasks"]
    monkeypatch.setattr(requests, "INTERNED_LIMIT", 8)
    pruned = run(make_infra(8), workload)
    assert pruned.metrics["tasks"] == expected
    assert conserved(pruned)


def test_horizon_stops_the_run_and_leaves_the_rest_of_the_trace_unread() -> None:
    events = merge(
        borg_task("a.0", submit=0, schedule=0, end=500),
        borg_task("b.0", submit=200, schedule=200, end=300),
    )
    result = run(make_infra(2), events, horizon_s=100.0, step_s=50)
    tasks = result.metrics["tasks"]
    assert tasks["submitted"] == 1 and tasks["running_at_end"] == 1
    assert result.metrics["time"]["end_s"] == 100.0
    assert [row["time_s"] for row in result.timeseries] == [50.0, 100.0]
    # a horizon past the trace's end keeps the system running until it
    longer = run(make_infra(2), events, horizon_s=1000.0, step_s=50)
    assert longer.metrics["time"]["end_s"] == 1000.0
    assert longer.metrics["tasks"]["finished"] == 2


def test_drain_is_capped() -> None:
    # The trace ends at 10 with a task that has a stated run time of 10,000 s.
    events = merge(borg_task("a.0", submit=0, duration=10_000.0), borg_task("b.0", submit=10))
    result = run(make_infra(2), events, drain_s=600.0)
    assert result.metrics["time"]["end_s"] == 610.0
    assert result.metrics["tasks"]["running_at_end"] == 2


def test_progress_reports_simulated_time() -> None:
    from harmonia.sim import simulate
    from tests.sim.helpers import config, synthetic_events

    seen: list[float] = []
    simulate(
        make_infra(50),
        synthetic_events(45_000, seed=1, rate_per_s=1.0),
        config=config(),
        progress=seen.append,
    )
    assert len(seen) >= 3  # every 20,000 trace events and once at the end
    assert seen == sorted(seen) and seen[-1] > 0
