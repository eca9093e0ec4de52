"""Scenario documents: validation errors name the field, paths resolve, runs from files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harmonia.model import InputError
from harmonia.sim import load_scenario, load_scenario_text, run_scenario, write_result
from harmonia.traces.synthetic import generate

MINIMAL = """
name: tiny
seed: 3
topology: {nodes: 20, clusters: 2}
trace: {path: trace.csv, format: borg2011}
"""


def errors_of(text: str) -> dict[str, str]:
    with pytest.raises(InputError) as info:
        load_scenario_text(text, "scenario.yaml")
    assert info.value.source == "scenario.yaml"
    return {e.path: e.message for e in info.value.errors}


def test_minimal_scenario_gets_defaults() -> None:
    scenario = load_scenario_text(MINIMAL, "s.yaml")
    assert scenario.policy == "default" and scenario.step_s == 60.0
    assert scenario.horizon_s is None
    assert scenario.failures.enabled is False and scenario.lc.enabled is True
    assert scenario.requests.quantize is True
    config = scenario.sim_config()
    assert config.step_s == 60.0 and config.lc == scenario.lc


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ("seed: many", "seed", "must be an integer"),
        ("step_s: 0", "step_s", "must be > 0"),
        ("failures: {enabled: true, mtbf_s: -5}", "failures.mtbf_s", "must be > 0"),
        ("lc: {slo_ms: fast}", "lc.slo_ms", "must be a number"),
        ("policy: fastest", "policy", "unknown policy 'fastest'"),
        ("colour: blue", "colour", "unknown field"),
        ("requests: {spread_job: maybe}", "requests.spread_job", "must be 'hard'"),
    ],
)
def test_errors_name_the_field(change: str, path: str, message: str) -> None:
    errors = errors_of(MINIMAL + change + "\n")
    assert path in errors, errors
    assert message in errors[path]


def test_nested_errors_are_all_reported_with_paths() -> None:
    text = """
topology: {nodes: 0, clusters: 1, nodez: 3}
trace: {path: t.csv, format: borg2020, skip_bad_lines: perhaps}
"""
    errors = errors_of(text)
    assert errors["topology.nodes"] == "must be >= 1"
    assert errors["topology.nodez"] == "unknown field"
    assert errors["trace.format"].startswith("must be 'borg2011'")
    assert errors["trace.skip_bad_lines"] == "must be true or false"


def test_topology_needs_exactly_one_node_source() -> None:
    both = "topology: {nodes: 5, nodes_file: n.yaml}\ntrace: {path: t, format: azure2019}\n"
    assert "give either nodes" in errors_of(both)["topology"]
    neither = "topology: {clusters: 2}\ntrace: {path: t, format: azure2019}\n"
    assert "give either nodes" in errors_of(neither)["topology"]
    rtt = "topology: {nodes_file: n.yaml, rtt_file: m.txt}\ntrace: {path: t, format: azure2019}\n"
    assert "go together" in errors_of(rtt)["topology"]


def test_missing_sections_and_bad_documents() -> None:
    assert errors_of("name: x\n") == {"topology": "is required", "trace": "is required"}
    assert "must be an object" in errors_of("- 1\n- 2\n")[""]
    assert "invalid YAML" in errors_of("a: [\n")[""]


def test_relative_paths_resolve_against_the_scenario_folder(tmp_path: Path) -> None:
    text = """
topology: {nodes_file: nodes.yaml, rtt_file: /abs/rtt.txt, rtt_index: index.json}
trace: {path: traces/t.csv, format: borg2011}
"""
    scenario = load_scenario_text(text, "s.yaml", base_dir=tmp_path)
    assert scenario.trace.path == tmp_path / "traces" / "t.csv"
    assert scenario.topology.nodes_file == tmp_path / "nodes.yaml"
    assert scenario.topology.rtt_file == Path("/abs/rtt.txt")
    assert scenario.topology.rtt_index == tmp_path / "index.json"
    unresolved = load_scenario_text(text, "s.yaml")
    assert unresolved.trace.path == Path("traces/t.csv")


def test_json_scenarios_are_accepted() -> None:
    document = {
        "topology": {"nodes": 10},
        "trace": {"path": "t.csv", "format": "alibaba2018"},
        "failures": {"enabled": True},
    }
    scenario = load_scenario_text(json.dumps(document), "s.json")
    assert scenario.failures.enabled and scenario.topology.clusters == 1


def test_scenario_file_runs_end_to_end(tmp_path: Path) -> None:
    generate("borg2011", tmp_path / "trace.csv", tasks=200, seed=5, horizon_s=3600.0)
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(MINIMAL + "failures: {enabled: true, mtbf_s: 7200}\n")
    scenario = load_scenario(scenario_file)
    result = run_scenario(scenario)
    tasks = result.metrics["tasks"]
    assert tasks["submitted"] == 200
    assert result.metrics["scenario"]["name"] == "tiny"
    assert result.metrics["trace_read"]["events"] > 0
    written = write_result(result, tmp_path / "out")
    assert [p.name for p in written] == ["metrics.json", "timeseries.csv"]
    binpack = run_scenario(scenario, policy="binpack")
    assert binpack.metrics["policy"]["name"] == "binpack"
