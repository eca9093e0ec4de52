"""Per-step samples of the cluster's use: utilization per resource and node class, nodes
in use, and the running averages the run's metrics report.

:class:`UsageRecorder` is called by :class:`harmonia.sim.simulator.Simulation` once per
time step (and at the end); each call returns the step's columns of the time series.
Utilization is allocated over allocatable, over all nodes (failed ones included, so the
denominator stays fixed); the means are over the samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harmonia.sched import ClusterState
from harmonia.sched.state import CPU, MEMORY
from harmonia.sim.infra import Infrastructure

_RESOURCES = ((CPU, "cpu"), (MEMORY, "memory"))


class UsageRecorder:
    def __init__(self, infra: Infrastructure, state: ClusterState) -> None:
        self.infra = infra
        self.state = state
        classes = len(infra.class_names)
        self._class_allocatable = [
            np.bincount(
                infra.class_index,
                weights=state.allocatable[:, column].astype(np.float64),
                minlength=classes,
            )
            for column, _ in _RESOURCES
        ]
        self._total = [float(state.allocatable[:, column].sum()) for column, _ in _RESOURCES]
        self._sums = [0.0, 0.0]
        self._max = [0.0, 0.0]
        self._class_sums = [np.zeros(classes) for _ in _RESOURCES]
        self._used_sum = 0
        self._used_max = 0
        self.samples = 0

    def sample(self) -> dict[str, float | int]:
        """The state's use now, as time-series columns; accumulated for :meth:`summary`."""
        state, infra = self.state, self.infra
        allocated = state.allocated
        used = int(np.count_nonzero(allocated[:, CPU] | allocated[:, MEMORY]))
        row: dict[str, float | int] = {
            "nodes_used": used,
            "nodes_healthy": int(np.count_nonzero(state.healthy)),
        }
        for r, (column, label) in enumerate(_RESOURCES):
            values = allocated[:, column].astype(np.float64)
            share = float(values.sum()) / self._total[r] if self._total[r] else 0.0
            row[f"{label}_util"] = share
            self._sums[r] += share
            self._max[r] = max(self._max[r], share)
            by_class = np.bincount(
                infra.class_index, weights=values, minlength=len(infra.class_names)
            )
            denominators = self._class_allocatable[r]
            shares = np.divide(
                by_class, denominators, out=np.zeros_like(by_class), where=denominators > 0
            )
            self._class_sums[r] += shares
            for name, value in zip(infra.class_names, shares.tolist(), strict=True):
                row[f"{label}_util.{name}"] = value
        self._used_sum += used
        self._used_max = max(self._used_max, used)
        self.samples += 1
        return row

    def utilization(self) -> dict[str, Any]:
        samples = max(self.samples, 1)
        infra = self.infra
        return {
            "cpu_mean": self._sums[0] / samples,
            "memory_mean": self._sums[1] / samples,
            "cpu_max": self._max[0],
            "memory_max": self._max[1],
            "by_class": {
                name: {
                    "nodes": int(np.count_nonzero(infra.class_index == i)),
                    "cpu_mean": float(self._class_sums[0][i] / samples),
                    "memory_mean": float(self._class_sums[1][i] / samples),
                }
                for i, name in enumerate(infra.class_names)
            },
        }

    def nodes(self) -> dict[str, Any]:
        return {
            "total": len(self.infra),
            "used_mean": self._used_sum / max(self.samples, 1),
            "used_max": self._used_max,
        }
