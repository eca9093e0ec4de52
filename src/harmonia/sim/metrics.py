"""What a simulation run measures, and the result folder it writes.

:class:`TaskCounters` counts task lives (see :mod:`harmonia.sim.simulator` for the
definitions and the conservation law they obey); :class:`Samples` keeps scheduling
delays compactly (8 bytes each); :class:`LatencyHistogram` keeps LC request latencies in
bounded memory (log-spaced bins, ±2.4%); the time series is one dict per step.

:class:`SimResult` is what :func:`harmonia.sim.simulate` returns: ``metrics`` (a nested
dict, written as ``metrics.json``) and ``timeseries`` (one row per step, written as
``timeseries.csv``) by :func:`write_result`. The HTML report is built elsewhere from
these two.
"""

from __future__ import annotations

import csv
import json
import math
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

PERCENTILES = (50, 90, 99)

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class TaskCounters:
    """Counts of task lives and of what happened to them (see the simulator's docstring)."""

    submitted: int = 0
    scheduled: int = 0  # lives placed at least once
    finished: int = 0
    failed: int = 0  # FAIL, KILL, LOST, or unresolvable (``rejected``)
    evicted: int = 0  # ended by the trace's EVICT, or by a node failure without requeue
    killed: int = 0  # part of failed: KILL and LOST
    rejected: int = 0  # part of failed: no node could ever hold the request
    placements: int = 0  # every placement, re-placements after eviction included
    evictions: int = 0  # tasks evicted by node failures (a task may count several times)
    requeued: int = 0
    updates_ignored: int = 0  # UPDATE of a running task (requests fixed once placed)

    def as_metrics(self, pending: int, running: int) -> dict[str, int]:
        """The counts with ``pending_at_end`` and ``running_at_end``, outcomes first."""
        counts = asdict(self)
        outcomes = ("submitted", "scheduled", "finished", "failed", "evicted")
        return {
            **{key: counts.pop(key) for key in outcomes},
            "pending_at_end": pending,
            "running_at_end": running,
            **counts,
        }


@dataclass(slots=True)
class EventCounters:
    processed: int = 0  # engine events: trace events and internal ones
    trace: int = 0
    ignored: int = 0  # SUBMIT of a task already alive
    orphan: int = 0  # events of tasks never submitted (or already ended)
    out_of_order: int = 0  # trace events before the current time (run at the current time)

    def as_metrics(self, wall_seconds: float) -> dict[str, float | int]:
        per_second = self.trace / wall_seconds if wall_seconds > 0 else 0.0
        return {**asdict(self), "per_second": per_second}


class Samples:
    """A growing list of floats stored as 8-byte doubles (``array('d')``)."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data = array("d")

    def add(self, value: float) -> None:
        self._data.append(value)

    def __len__(self) -> int:
        return len(self._data)

    def values(self) -> FloatArray:
        return np.frombuffer(self._data, dtype=np.float64) if self._data else np.zeros(0)

    def summary(self, percentiles: Sequence[int] = PERCENTILES) -> dict[str, float | int]:
        """count, mean, max and the given percentiles (linear interpolation); 0 when empty."""
        values = self.values()
        out: dict[str, float | int] = {"count": len(values)}
        if len(values) == 0:
            out.update({"mean": 0.0, "max": 0.0, **{f"p{p}": 0.0 for p in percentiles}})
            return out
        out["mean"] = float(values.mean())
        out["max"] = float(values.max())
        qs = np.percentile(values, percentiles)
        for p, q in zip(percentiles, qs.tolist(), strict=True):
            out[f"p{p}"] = float(q)
        return out


class LatencyHistogram:
    """Weighted latency samples in log-spaced bins from 1 µs to 10⁷ ms (50 per decade).

    A percentile is the geometric centre of the bin where the cumulative weight reaches
    it (capped at the maximum), so it is within ±2.4% (half a bin, 10^(1/100)) of the
    exact value. Mean and maximum are exact. :meth:`add` returns a histogram of just the
    added samples, which the LC model uses for per-step percentiles.
    """

    LOW_MS = 1e-3
    BINS_PER_DECADE = 50
    DECADES = 10

    __slots__ = ("_counts", "count", "max", "total")

    def __init__(self) -> None:
        self._counts = np.zeros(self.BINS_PER_DECADE * self.DECADES + 2, dtype=np.float64)
        self.count = 0.0
        self.total = 0.0
        self.max = 0.0

    def add(self, latencies_ms: FloatArray, weights: FloatArray) -> LatencyHistogram:
        """Add samples ``latencies_ms`` with ``weights`` (requests); returns their own
        histogram."""
        part = LatencyHistogram()
        if len(latencies_ms) == 0:
            return part
        bins = self._bins(latencies_ms)
        part._counts = np.bincount(bins, weights=weights, minlength=len(self._counts)).astype(
            np.float64, copy=False
        )
        part.count = float(weights.sum())
        part.total = float(np.dot(latencies_ms, weights))
        if part.count > 0:
            part.max = float(latencies_ms[weights > 0].max())
        self._counts += part._counts
        self.count += part.count
        self.total += part.total
        self.max = max(self.max, part.max)
        return part

    def _bins(self, latencies_ms: FloatArray) -> npt.NDArray[np.intp]:
        scaled = np.log10(np.maximum(latencies_ms, self.LOW_MS) / self.LOW_MS)
        bins: npt.NDArray[np.intp] = np.floor(scaled * self.BINS_PER_DECADE).astype(np.intp) + 1
        np.clip(bins, 0, len(self._counts) - 1, out=bins)
        return bins

    def percentile(self, p: float) -> float:
        if self.count <= 0:
            return 0.0
        cumulative = np.cumsum(self._counts)
        index = int(np.searchsorted(cumulative, cumulative[-1] * p / 100.0, side="left"))
        centre = self.LOW_MS * 10 ** ((index - 0.5) / self.BINS_PER_DECADE)
        return float(min(centre, self.max))

    def summary(self) -> dict[str, float]:
        return {
            "mean": self.total / self.count if self.count else 0.0,
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
            "max": self.max,
        }


def weighted_percentile(values: FloatArray, weights: FloatArray, p: float) -> float:
    """The smallest value whose cumulative weight reaches ``p`` percent (0 when empty)."""
    if len(values) == 0 or float(weights.sum()) <= 0:
        return 0.0
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, cumulative[-1] * p / 100.0, side="left"))
    return float(values[order][min(index, len(values) - 1)])


@dataclass
class SimResult:
    """What one run produced: nested ``metrics`` and one ``timeseries`` row per step."""

    metrics: dict[str, Any]
    timeseries: list[dict[str, float | int]] = field(default_factory=list)

    def get(self, dotted: str) -> Any:
        """A metric by dotted path: ``result.get("tasks.submitted")``."""
        value: Any = self.metrics
        for part in dotted.split("."):
            value = value[part]
        return value


def write_result(result: SimResult, out_dir: Path) -> list[Path]:
    """Write ``metrics.json`` and ``timeseries.csv`` into ``out_dir`` (created if needed);
    returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(
        json.dumps(_finite(result.metrics), indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )
    series_path = out_dir / "timeseries.csv"
    columns: list[str] = []
    for row in result.timeseries:
        for key in row:
            if key not in columns:
                columns.append(key)
    with series_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        for row in result.timeseries:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return [metrics_path, series_path]


def _cell(value: float | int) -> str:
    if isinstance(value, float):
        return repr(round(value, 9)) if math.isfinite(value) else ""
    return str(value)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: those become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
