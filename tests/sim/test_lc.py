"""LC requests: routing, M/M/1 queueing, latency percentiles and SLO violations.

The setup is small enough to compute by hand: users of the only area reach nodes through
the gateway ``n0`` (at the cluster's centre) with 2 ms access latency, and the RTT matrix
puts ``n1`` 10 ms and ``n2`` 40 ms from ``n0``. Service time 5 ms: μ = 200 requests/s.
"""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import Cluster, GeoPoint, QoSClass, Topology
from harmonia.sim import Infrastructure
from harmonia.sim.lc import LCModel
from harmonia.sim.scenario import LCConfig
from tests.builders import make_node
from tests.sim.helpers import borg_task, merge, run

SERVICE_MS = 5.0
MU = 1000.0 / SERVICE_MS


def setup(far_node: bool = False) -> Infrastructure:
    nodes = [
        make_node("n0", cpu=100, location=(50.0, 8.0)),  # the gateway; too small for tasks
        make_node("n1", cpu=1000, location=(50.0, 8.1)),
    ]
    matrix = [[0.0, 10.0], [10.0, 0.0]]
    if far_node:
        nodes.append(make_node("n2", cpu=1000, location=(50.0, 9.0)))
        matrix = [[0.0, 10.0, 40.0], [10.0, 0.0, 45.0], [40.0, 45.0, 0.0]]
    names = [node.name for node in nodes]
    return Infrastructure.from_nodes(
        nodes,
        clusters=[Cluster(name="c0", location=GeoPoint(lat=50.0, long=8.0))],
        topology=Topology(names, np.array(matrix)),
    )


def lc(rate: float, slo_ms: float) -> LCConfig:
    return LCConfig(
        requests_per_s=rate,
        service_time_ms=SERVICE_MS,
        slo_ms=slo_ms,
        users_per_area=1,
        area_radius_km=0.0,
    )


def sojourn(requests: float, dt: float = 60.0) -> float:
    """M/M/1 time in system in ms at ``requests`` per ``dt`` seconds."""
    rho = min(requests / dt / MU, 0.99)
    return SERVICE_MS / (1.0 - rho)


def lc_service(tasks: int = 1, end: float = 600.0) -> list:
    return merge(
        *[
            borg_task(f"web.{i}", submit=0, schedule=0, end=end, cpu=1000, qos=QoSClass.LC)
            for i in range(tasks)
        ]
    )


def test_latency_is_rtt_plus_queueing_and_service() -> None:
    # ~100 requests/s → ρ ≈ 0.5 → W ≈ 10 ms; latency ≈ 2 + 10 + 10 = 22 ms > 20 ms SLO.
    result = run(setup(), lc_service(), lc=lc(100.0, slo_ms=20.0))
    rows = [row for row in result.timeseries if row["lc_requests"]]
    assert len(rows) == 9  # steps at 60..540 see the instance; it ends at 600
    counts = np.array([row["lc_requests"] for row in rows], dtype=float)
    latencies = 12.0 + np.array([sojourn(n) for n in counts])
    summary = result.metrics["lc"]
    assert summary["requests"] == int(counts.sum())
    assert summary["latency_ms"]["mean"] == pytest.approx(
        float((counts * latencies).sum() / counts.sum())
    )
    assert summary["slo_violations"] == summary["requests"]
    assert summary["slo_violation_rate"] == 1.0
    for row, latency in zip(rows, latencies.tolist(), strict=True):
        assert row["lc_p50_ms"] == pytest.approx(latency, rel=0.024)
        assert row["lc_slo_violations"] == row["lc_requests"]


def test_no_violations_under_a_looser_slo() -> None:
    result = run(setup(), lc_service(), lc=lc(100.0, slo_ms=30.0))
    assert result.metrics["lc"]["requests"] > 0
    assert result.metrics["lc"]["slo_violations"] == 0
    assert result.metrics["lc"]["latency_ms"]["p99"] == pytest.approx(22.0, rel=0.05)


def test_requests_go_to_the_instance_with_the_lowest_expected_latency() -> None:
    # Two instances: n1 (12 ms from users) and n2 (42 ms). At 190 requests/s the near one
    # saturates in the first step (W ≈ 100 ms), so the next step prefers the far one
    # (42 + 5 < 12 + 100), and then the near one again.
    result = run(setup(far_node=True), lc_service(tasks=2), lc=lc(190.0, slo_ms=1000.0))
    rows = [row for row in result.timeseries if row["lc_requests"]]
    first, second, third = rows[:3]
    assert first["lc_p50_ms"] == pytest.approx(12.0 + sojourn(first["lc_requests"]), rel=0.024)
    assert second["lc_p50_ms"] == pytest.approx(42.0 + sojourn(second["lc_requests"]), rel=0.024)
    assert third["lc_p50_ms"] == pytest.approx(12.0 + sojourn(third["lc_requests"]), rel=0.024)


def test_best_effort_tasks_receive_no_requests() -> None:
    events = borg_task("batch.0", submit=0, schedule=0, end=600, cpu=1000)
    result = run(setup(), events, lc=lc(100.0, slo_ms=20.0))
    assert result.metrics["lc"]["requests"] == 0
    assert result.metrics["lc"]["slo_violation_rate"] == 0.0


def test_many_services_are_sampled_per_step() -> None:
    nodes = [make_node(f"n{i}", cpu=64000, mem=262144, location=(50.0, 8.0)) for i in range(4)]
    infra = Infrastructure.from_nodes(nodes)
    events = merge(
        *[
            borg_task(f"s{i}.0", submit=0, schedule=0, end=300, cpu=100, qos=QoSClass.LC)
            for i in range(40)
        ]
    )
    config = LCConfig(requests_per_s=10.0, max_services=8)
    result = run(infra, events, lc=config)
    rows = [row for row in result.timeseries if row["lc_requests"]]
    # 8 of the 40 services per 60 s step at 10/s: about 4,800 requests per step
    assert all(3_000 < row["lc_requests"] < 7_000 for row in rows)
    assert result.metrics["lc"]["steps_sampled"] == len(rows)


def test_sampling_draws_from_exactly_the_running_services_through_churn() -> None:
    # The step samples from a mask of running service ids kept by add and remove; it
    # must match the services with instances as they empty and come back (new ids).
    infra = Infrastructure.from_nodes([make_node("n0", location=(50.0, 8.0))])
    model = LCModel(infra, LCConfig(max_services=2), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    live: list[tuple[str, int]] = []
    for key in range(400):
        if live and rng.random() < 0.45:
            service, instance = live.pop(int(rng.integers(len(live))))
            model.remove(service, instance)
        else:
            service = f"s{int(rng.integers(80))}"
            model.add(service, key, 0)
            live.append((service, key))
        running = np.flatnonzero(model._service_running).tolist()
        assert running == sorted(model._service_sizes)
        assert len(running) == len({service for service, _ in live})
        model.step(60.0)
    assert model.services_sampled > 0
