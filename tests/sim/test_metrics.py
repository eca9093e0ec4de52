"""Metrics: percentiles, the latency histogram and the result folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from harmonia.sim import SimResult, write_result
from harmonia.sim.metrics import LatencyHistogram, Samples
from tests.sim.helpers import borg_task, make_infra, merge, run

REQUIRED = (
    "tasks.submitted",
    "tasks.scheduled",
    "tasks.finished",
    "tasks.failed",
    "tasks.evicted",
    "tasks.pending_at_end",
    "scheduling_delay_s.p50",
    "scheduling_delay_s.p99",
    "utilization.cpu_mean",
    "utilization.memory_mean",
    "wall_seconds",
)


def test_samples_summary() -> None:
    samples = Samples()
    assert samples.summary()["p99"] == 0.0
    for value in range(1, 101):
        samples.add(float(value))
    summary = samples.summary()
    assert summary["count"] == 100 and summary["max"] == 100.0
    assert summary["p50"] == pytest.approx(50.5)  # linear interpolation
    assert summary["p99"] == pytest.approx(99.01)


def test_latency_histogram_percentiles_within_bin_width() -> None:
    histogram = LatencyHistogram()
    values = np.array([1.0, 10.0, 100.0])
    part = histogram.add(values, np.array([50.0, 45.0, 5.0]))
    assert part.count == 100.0
    assert histogram.percentile(50) == pytest.approx(1.0, rel=0.024)
    assert histogram.percentile(95) == pytest.approx(10.0, rel=0.024)
    assert histogram.percentile(99) == pytest.approx(100.0, rel=0.024)
    assert histogram.summary()["mean"] == pytest.approx((50 + 450 + 500) / 100)
    histogram.add(np.array([1000.0]), np.array([100.0]))
    assert histogram.percentile(99) == pytest.approx(1000.0, rel=0.024)
    assert histogram.max == 1000.0


def test_result_folder_has_the_required_metrics_and_a_row_per_step(tmp_path: Path) -> None:
    events = merge(borg_task("a.0", submit=0, schedule=0, end=600, cpu=1000))
    result = run(make_infra(2), events, step_s=60)
    for key in REQUIRED:
        result.get(key)  # raises KeyError when missing
    write_result(result, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in REQUIRED:
        value = metrics
        for part in key.split("."):
            value = value[part]
        assert isinstance(value, int | float)
    with (tmp_path / "timeseries.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["time_s"]) for r in rows] == [60.0 * k for k in range(1, 11)]
    assert rows[0]["running"] == "1" and rows[-1]["running"] == "0"
    assert float(rows[0]["cpu_util"]) == pytest.approx(1000 / 8000)


def test_non_finite_values_are_written_as_null(tmp_path: Path) -> None:
    write_result(SimResult({"x": float("nan"), "y": [float("inf")]}, []), tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"x": None, "y": [None]}
