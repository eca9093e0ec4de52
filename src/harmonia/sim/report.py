"""HTML reports of simulation runs: key metrics and matplotlib plots over time.

:func:`write_report` takes one run or several (the same scenario under several
policies, from ``harmonia compare``) and writes a single self-contained HTML file:
a table of the headline metrics side by side, then plots whose lines are the runs.
Plots are rendered with matplotlib's Agg backend and embedded as PNG, so the file opens
in any browser without a server. Called by the CLI after :func:`harmonia.sim.simulate`.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to memory

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# The metrics a reader looks at first, in order: dotted paths into metrics.json.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("tasks.submitted", "tasks submitted"),
    ("tasks.scheduled", "tasks scheduled"),
    ("tasks.finished", "tasks finished"),
    ("tasks.failed", "tasks failed"),
    ("tasks.evicted", "tasks evicted"),
    ("tasks.pending_at_end", "pending at end"),
    ("tasks.running_at_end", "running at end"),
    ("scheduling_delay_s.p50", "scheduling delay p50 (s)"),
    ("scheduling_delay_s.p99", "scheduling delay p99 (s)"),
    ("utilization.cpu_mean", "CPU utilization, mean"),
    ("utilization.memory_mean", "memory utilization, mean"),
    ("nodes.used_mean", "nodes used, mean"),
    ("nodes.used_max", "nodes used, max"),
    ("lc.latency_ms.p50", "LC latency p50 (ms)"),
    ("lc.latency_ms.p99", "LC latency p99 (ms)"),
    ("lc.slo_violation_rate", "LC SLO violation rate"),
    ("edge.success_rate", "edge: instances placed / requested"),
    ("edge.bounded_success_rate", "edge: bounded instances placed / requested"),
    ("edge.refused_unresolvable", "edge: instances refused as unresolvable"),
    ("edge.violations.at_placement", "edge: bound violations at placement"),
    ("edge.violations.after_failures", "edge: bounds broken after failures"),
    ("edge.bounds_unmet", "edge: placements breaking dropped bounds"),
    ("edge.rtt_to_users_ms.p50", "edge: RTT to users p50 (ms)"),
    ("edge.rtt_to_users_ms.p99", "edge: RTT to users p99 (ms)"),
    ("edge.reservation.cpu_share_of_allocatable_mean", "edge: failover reservation, CPU share"),
    ("edge.recovery.affected", "edge: instances hit by node failures"),
    ("edge.recovery.within_bound_rate", "edge: hit instances back within bound"),
    ("edge.recovery.time_s.p50", "edge: time to recover p50 (s)"),
    ("edge.recovery.time_s.max", "edge: time to recover max (s)"),
    ("rtt_estimate.p50", "Vivaldi RTT relative error p50"),
    ("rtt_estimate.p99", "Vivaldi RTT relative error p99"),
    ("rtt_estimate.mean_abs_ms", "Vivaldi RTT mean absolute error (ms)"),
    ("policy.decision_us_mean", "decision time, mean (µs)"),
    ("wall_seconds", "wall time (s)"),
)

COLOURS = ("#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d5a97", "#30638e")


@dataclass(frozen=True)
class Run:
    """One run to report: a label (usually the policy), its metrics and time series."""

    label: str
    metrics: dict[str, Any]
    timeseries: Sequence[dict[str, float | int]]


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    columns: Callable[[Sequence[str]], list[str]]  # which time-series columns it plots
    percent: bool = False


def _named(*names: str) -> Callable[[Sequence[str]], list[str]]:
    return lambda available: [n for n in names if n in available]


def _prefixed(prefix: str) -> Callable[[Sequence[str]], list[str]]:
    return lambda available: sorted(n for n in available if n.startswith(prefix))


PANELS: tuple[Panel, ...] = (
    Panel(
        "CPU and memory allocated", "share of allocatable", _named("cpu_util", "memory_util"), True
    ),
    Panel("CPU allocated by node class", "share of the class", _prefixed("cpu_util."), True),
    Panel("Tasks", "tasks", _named("pending", "running")),
    Panel("Nodes in use", "nodes", _named("nodes_used", "nodes_healthy")),
    Panel("Scheduling per step", "per step", _named("submitted", "scheduled", "decisions")),
    Panel("LC request latency", "ms", _named("lc_p50_ms", "lc_p99_ms")),
    Panel("LC requests per step", "requests", _named("lc_requests", "lc_slo_violations")),
)


def write_report(runs: Sequence[Run], path: Path, *, title: str) -> Path:
    """Write the HTML report of ``runs`` to ``path`` and return it."""
    if not runs:
        raise ValueError("a report needs at least one run")
    sections = [_metrics_table(runs)]
    for panel in PANELS:
        figure = _panel_figure(panel, runs)
        if figure is not None:
            sections.append(
                f"<h2>{html.escape(panel.title)}</h2>\n<img alt='{html.escape(panel.title)}' "
                f"src='data:image/png;base64,{_png(figure)}'>"
            )
    labels = ", ".join(html.escape(r.label) for r in runs)
    body = "\n".join(sections)
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3rem .8rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
.best {{ font-weight: bold; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Runs: {labels}</p>
{body}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


def _metrics_table(runs: Sequence[Run]) -> str:
    header = "".join(f"<th>{html.escape(r.label)}</th>" for r in runs)
    rows = []
    for dotted, label in HEADLINE:
        values = [lookup(r.metrics, dotted) for r in runs]
        if all(v is None for v in values):
            continue
        cells = "".join(f"<td>{_format(v)}</td>" for v in values)
        rows.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    return (
        f"<h2>Metrics</h2>\n<table><tr><th>metric</th>{header}</tr>\n"
        + "\n".join(rows)
        + "</table>"
    )


def _panel_figure(panel: Panel, runs: Sequence[Run]) -> Figure | None:
    available = sorted({key for r in runs for row in r.timeseries[:1] for key in row})
    columns = panel.columns(available)
    if not columns or not any(r.timeseries for r in runs):
        return None
    several = len(runs) > 1
    if several and len(columns) > 2:
        return _small_multiples(panel, runs, columns)
    figure, axes = plt.subplots(figsize=(10, 3.6), layout="constrained")
    # With several runs, each run keeps one colour and columns differ by line style.
    styles = ("-", "--", ":", "-.")
    for r, run in enumerate(runs):
        times = [row.get("time_s", 0.0) / 3600.0 for row in run.timeseries]
        for c, column in enumerate(columns[:12]):
            values = [float(row.get(column, float("nan"))) for row in run.timeseries]
            if panel.percent:
                values = [v * 100.0 for v in values]
            colour = COLOURS[(r if several else c) % len(COLOURS)]
            style = styles[c % len(styles)] if several else "-"
            name = column if not several else f"{run.label}: {column}"
            axes.plot(times, values, style, color=colour, linewidth=1.3, label=name)
    _decorate(axes, panel)
    return figure


def _small_multiples(panel: Panel, runs: Sequence[Run], columns: list[str]) -> Figure:
    """One plot per run, stacked on shared axes: many columns times several runs in one
    plot would be a tangle of lines. Colours stand for columns, the same in every plot."""
    figure, grid = plt.subplots(
        len(runs),
        1,
        figsize=(10, 2.4 * len(runs) + 0.6),
        layout="constrained",
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for r, run in enumerate(runs):
        axes = grid[r][0]
        times = [row.get("time_s", 0.0) / 3600.0 for row in run.timeseries]
        for c, column in enumerate(columns[:12]):
            values = [float(row.get(column, float("nan"))) for row in run.timeseries]
            if panel.percent:
                values = [v * 100.0 for v in values]
            axes.plot(times, values, color=COLOURS[c % len(COLOURS)], linewidth=1.2, label=column)
        axes.set_title(run.label, loc="left", fontsize=10)
        _decorate(axes, panel, legend=r == 0)
        if r < len(runs) - 1:
            axes.set_xlabel("")
    return figure


def _decorate(axes: Axes, panel: Panel, *, legend: bool = True) -> None:
    axes.set_xlabel("simulated time (h)")
    axes.set_ylabel(f"{panel.ylabel} (%)" if panel.percent else panel.ylabel)
    axes.grid(True, alpha=0.3)
    if legend:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def lookup(metrics: dict[str, Any], dotted: str) -> Any:
    """``metrics["a"]["b"]`` for ``"a.b"``; None when any part is missing."""
    value: Any = metrics
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))
