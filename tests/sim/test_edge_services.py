"""Edge services in the simulator: scenario section, bounds checked against the truth,
refusals, failover recovery, metrics and determinism (harmonia.sim.edge)."""

from __future__ import annotations

from typing import Any

import pytest

from harmonia.model import InputError
from harmonia.sim import Infrastructure, SimConfig, load_scenario_text, simulate
from harmonia.sim.scenario import FailureConfig, ServicesConfig

TEMPLATES: list[dict[str, Any]] = [
    {"name": "db", "replicas": 1, "cpu_m": 1000, "memory_mib": 1024, "area_ms": 8},
    {"name": "api", "replicas": 2, "cpu_m": 500, "memory_mib": 256, "area_ms": 4,
     "near": {"db": 12}},
    {"name": "cam", "replicas": 2, "cpu_m": 500, "memory_mib": 256, "location_ms": 3,
     "geo_km": 60},
    {"name": "batch", "replicas": 1, "cpu_m": 1000, "memory_mib": 512},
]  # fmt: skip


@pytest.fixture(scope="module")
def infra() -> Infrastructure:
    return Infrastructure.generate_sized([8, 12, 10, 6], seed=5)


def run(
    infra: Infrastructure,
    policy: str,
    *,
    failures: bool = True,
    mtbf_s: float = 5000,
    seed: int = 3,
    **services: Any,
) -> dict[str, Any]:
    section = {
        "apps": 16,
        "interarrival_s": 200,
        "lifetime_s": 3000,
        "templates": TEMPLATES,
        **services,
    }
    config = SimConfig(
        horizon_s=7200,
        step_s=600,
        services=ServicesConfig.model_validate(section),
        failures=FailureConfig(enabled=failures, mtbf_s=mtbf_s, mttr_s=900),
    )
    return simulate(infra, [], policy=policy, config=config, seed=seed).metrics


def errors_of(text: str) -> dict[str, str]:
    with pytest.raises(InputError) as info:
        load_scenario_text(text, "s.yaml")
    return {e.path: e.message for e in info.value.errors}


BASE = "topology: {cluster_sizes: [4, 6]}\nhorizon_s: 600\n"


def test_services_section_parses_without_a_trace() -> None:
    text = BASE + "services: {apps: 3, templates: [{name: web, area_ms: 5, near: {}}]}\n"
    scenario = load_scenario_text(text)
    assert scenario.trace is None
    assert scenario.services is not None and scenario.services.templates[0].bounded
    assert scenario.sim_config().services == scenario.services


def test_services_errors_name_the_field() -> None:
    assert errors_of("topology: {nodes: 4}\n")["trace"] == "is required"
    later = BASE + "services: {templates: [{name: a, near: {b: 5}}, {name: b}]}\n"
    assert "templates[0].near: 'b' is not a template listed before 'a'" in str(errors_of(later))
    bad = BASE + "services: {templates: [{name: a, replicas: 0, area_ms: -1}]}\n"
    messages = errors_of(bad)
    assert any("replicas" in path for path in messages), messages
    assert any("area_ms" in path for path in messages), messages
    no_horizon = "topology: {nodes: 4}\nservices: {templates: [{name: a}]}\n"
    assert "horizon_s: required with services" in str(errors_of(no_horizon))
    sizes = "topology: {cluster_sizes: [4, 0]}\nhorizon_s: 5\nservices: {templates: [{name: a}]}\n"
    assert "cluster size must be >= 1" in str(errors_of(sizes))


@pytest.mark.parametrize("policy", ["latency", "ldp", "latency-reliable"])
def test_bounded_policies_place_within_every_bound(infra: Infrastructure, policy: str) -> None:
    edge = run(infra, policy)["edge"]
    assert edge["bounded_placed"] > 0
    assert edge["violations"]["at_placement"] == 0, edge["violations"]["examples"]
    assert edge["violations"]["after_failures"] == 0, edge["violations"]["examples"]
    assert edge["recovery"]["affected"] > 0


def test_the_check_is_independent_of_the_policy(infra: Infrastructure) -> None:
    # Given no bounds, default places where it likes; the check still judges the bounds
    # the services carry, and some of its placements break them.
    edge = run(infra, "default", failures=False, drop_bounds_for=("default",))["edge"]
    assert edge["bounds_given"] is False
    assert edge["success_rate"] == 1.0
    assert edge["bounds_unmet"] > 0
    assert edge["violations"]["at_placement"] == 0


def test_default_refuses_bounded_requests(infra: Infrastructure) -> None:
    edge = run(infra, "default", failures=False)["edge"]
    assert edge["refused_unresolvable"] == edge["bounded_requested"] > 0
    assert edge["bounded_placed"] == 0
    unbounded = edge["instances_requested"] - edge["bounded_requested"]
    assert edge["success_rate"] == pytest.approx(unbounded / edge["instances_requested"])
    assert edge["violations"]["at_placement"] == 0


def test_latency_reliable_recovers_every_hit_instance_within_bound(infra: Infrastructure) -> None:
    # Under frequent failures some instances have no reservation left (requeued); every
    # failover lands within its bounds at once.
    busy = run(infra, "latency-reliable")["edge"]["recovery"]
    assert busy["failover_within_bound"] == busy["moves"]["failover"] > 0
    # One failure at a time, as the reservations assume: every hit instance is back.
    edge = run(infra, "latency-reliable", mtbf_s=40_000)["edge"]
    recovery = edge["recovery"]
    assert recovery["moves"]["failover"] > 0
    assert recovery["recovered_within_bound"] == recovery["affected"] > 0
    assert recovery["time_s"]["max"] == 0.0
    reservation = edge["reservation"]
    assert reservation["cpu_share_of_allocatable_max"] > 0
    assert reservation["at_end"]["instances"] >= 0


def test_metrics_present_and_deterministic(infra: Infrastructure) -> None:
    first = run(infra, "latency", seed=9)
    second = run(infra, "latency", seed=9)
    assert first["edge"] == second["edge"]
    assert run(infra, "latency", seed=10)["edge"] != first["edge"]
    edge = first["edge"]
    for key in ("success_rate", "violations", "rtt_to_users_ms", "recovery", "placements"):
        assert key in edge
    assert 0 < edge["rtt_to_users_ms"]["p50"] <= edge["rtt_to_users_ms"]["p99"]


def test_vivaldi_knowledge_reports_its_error_and_is_checked_against_the_truth(
    infra: Infrastructure,
) -> None:
    section = {"apps": 8, "interarrival_s": 200, "templates": TEMPLATES}
    config = SimConfig(
        horizon_s=3600,
        services=ServicesConfig.model_validate(section),
        rtt_knowledge="vivaldi",
        vivaldi_probes=4,
    )
    metrics = simulate(infra, [], policy="latency", config=config, seed=1).metrics
    estimate = metrics["rtt_estimate"]
    assert 0 < estimate["p50"] <= estimate["p90"] <= estimate["p99"]
    assert estimate["mean_abs_ms"] > 0 and estimate["samples"] > 0
    # Only the run's copy sees the estimate: the truth the bounds are checked against stays.
    assert infra.state.rtt_ms is not None
    assert metrics["edge"]["placements"] > 0
