"""``harmonia traces generate``, ``simulate`` and ``compare`` end to end on small inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harmonia.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "task_events.csv.gz"
    result = runner.invoke(
        app,
        [
            "traces",
            "generate",
            "--format",
            "borg2011",
            "--tasks",
            "600",
            "--seed",
            "3",
            "--horizon",
            "7200",
            "--out",
            str(path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 600 tasks" in result.stdout
    return path


def scenario_file(folder: Path, trace: Path, **fields: object) -> Path:
    data: dict[str, object] = {
        "name": "small",
        "seed": 5,
        "topology": {"nodes": 60, "clusters": 3},
        "trace": {"path": trace.name, "format": "borg2011"},  # relative to the scenario
        "lc": {"enabled": False},
    }
    data.update(fields)
    path = folder / "scenario.yaml"
    (folder / trace.name).write_bytes(trace.read_bytes())
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_simulate_from_flags_writes_metrics_timeseries_and_report(
    trace: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--trace",
            str(trace),
            "--trace-format",
            "borg2011",
            "--nodes",
            "50",
            "--clusters",
            "2",
            "--policy",
            "binpack",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    tasks = metrics["tasks"]
    assert tasks["submitted"] == 600
    # conservation: every submitted task ends in exactly one outcome
    assert tasks["submitted"] == (
        tasks["finished"]
        + tasks["failed"]
        + tasks["evicted"]
        + tasks["pending_at_end"]
        + tasks["running_at_end"]
    )
    for key in ("p50", "p99"):
        assert metrics["scheduling_delay_s"][key] >= 0
    assert 0 < metrics["utilization"]["cpu_mean"] <= 1
    assert metrics["scenario"]["policy"] == "binpack"
    header = (out / "timeseries.csv").read_text().splitlines()[0].split(",")
    assert {"time_s", "pending", "running", "cpu_util", "memory_util"} <= set(header)
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 4
    assert "tasks submitted" in report


def test_scenario_file_with_flag_override(trace: Path, tmp_path: Path) -> None:
    path = scenario_file(tmp_path, trace)
    out = tmp_path / "out"
    result = runner.invoke(app, ["simulate", str(path), "--policy", "spread", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["scenario"]["policy"] == "spread"
    assert metrics["scenario"]["nodes"] == 60


def test_compare_ranks_binpack_below_spread_in_nodes_used(trace: Path, tmp_path: Path) -> None:
    path = scenario_file(tmp_path, trace)
    out = tmp_path / "cmp"
    result = runner.invoke(
        app,
        ["compare", str(path), "--policies", "binpack,spread", "--jobs", "2", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    both = json.loads((out / "comparison.json").read_text())
    assert both["binpack"]["nodes"]["used_mean"] < both["spread"]["nodes"]["used_mean"]
    assert (out / "binpack" / "metrics.json").exists() and (
        out / "spread" / "metrics.json"
    ).exists()
    report = (out / "report.html").read_text()
    assert "<th>binpack</th><th>spread</th>" in report


def test_bad_scenario_field_names_its_path(trace: Path, tmp_path: Path) -> None:
    path = scenario_file(tmp_path, trace, failures={"enabled": True, "mtbf_s": 0})
    result = runner.invoke(app, ["simulate", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "failures.mtbf_s" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_policy_in_compare_is_an_input_error(trace: Path, tmp_path: Path) -> None:
    path = scenario_file(tmp_path, trace)
    result = runner.invoke(app, ["compare", str(path), "--policies", "default,nope"])
    assert result.exit_code == 2
    assert "unknown policy 'nope'" in result.stderr


def test_simulate_needs_a_trace() -> None:
    result = runner.invoke(app, ["simulate", "--nodes", "10"])
    assert result.exit_code == 2
    assert "trace" in result.stderr


def test_malformed_trace_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("600000000,,1,0,,0,u,0,0,0.01,0.01,0,0\nnot,a,valid,line\n", encoding="utf-8")
    args = ["simulate", "--trace", str(bad), "--trace-format", "borg2011", "--nodes", "5"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "bad.csv" in result.stderr and "line 2" in result.stderr
    skipped = runner.invoke(app, [*args, "--skip-bad-lines", "--out", str(tmp_path / "o2")])
    assert skipped.exit_code == 0, skipped.output
    metrics = json.loads((tmp_path / "o2" / "metrics.json").read_text())
    assert metrics["trace_read"]["skipped_bad_lines"] == 1
