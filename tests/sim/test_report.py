"""HTML reports: headline table, one image per panel with data, small multiples in comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmonia.sim.report import PANELS, Run, _panel_figure, lookup, write_report


def _series(scale: float) -> list[dict[str, float | int]]:
    return [
        {
            "time_s": 60.0 * i,
            "cpu_util": 0.1 * scale,
            "memory_util": 0.2 * scale,
            "cpu_util.rpi4": 0.3 * scale,
            "cpu_util.edge-server": 0.4 * scale,
            "cpu_util.cloud-server": 0.5 * scale,
            "pending": i,
            "running": 10 - i,
        }
        for i in range(10)
    ]


def _run(label: str, scale: float) -> Run:
    metrics = {"tasks": {"submitted": 1234, "scheduled": 1200}, "wall_seconds": 1.5}
    return Run(label, metrics, _series(scale))


def test_one_run_reports_its_metrics_and_a_plot_per_panel_with_data(tmp_path: Path) -> None:
    path = write_report([_run("default", 1.0)], tmp_path / "r.html", title="t <x>")

    text = path.read_text()
    assert "<title>t &lt;x&gt;</title>" in text
    assert "<td>tasks submitted</td><td>1,234</td>" in text
    assert "tasks evicted" not in text  # a metric no run has is left out
    # allocated, by node class, tasks; the others have no columns in this series
    assert text.count("data:image/png;base64,") == 3


def test_comparison_puts_runs_side_by_side(tmp_path: Path) -> None:
    runs = [_run("default", 1.0), _run("binpack", 1.5)]
    text = write_report(runs, tmp_path / "r.html", title="cmp").read_text()

    assert "<th>default</th><th>binpack</th>" in text
    assert "<td>wall time (s)</td><td>1.500</td><td>1.500</td>" in text


def test_many_columns_in_a_comparison_become_one_plot_per_run() -> None:
    by_class = next(p for p in PANELS if p.title == "CPU allocated by node class")
    runs = [_run("default", 1.0), _run("binpack", 1.5), _run("spread", 0.5)]

    figure = _panel_figure(by_class, runs)
    assert figure is not None
    assert [a.get_title(loc="left") for a in figure.axes] == ["default", "binpack", "spread"]
    assert all(len(a.lines) == 3 for a in figure.axes)  # one line per node class
    single = _panel_figure(by_class, runs[:1])
    assert single is not None and len(single.axes) == 1


def test_a_report_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one run"):
        write_report([], tmp_path / "r.html", title="empty")


def test_lookup_follows_dotted_paths() -> None:
    metrics = {"a": {"b": {"c": 3}}, "x": 1}
    assert lookup(metrics, "a.b.c") == 3
    assert lookup(metrics, "a.missing") is None
    assert lookup(metrics, "x.y") is None
