"""Scoring by allocation: LeastAllocated, MostAllocated and RequestedToCapacityRatio.

The three scoring strategies of Kubernetes' NodeResourcesFit plugin, with its integer
arithmetic so scores match kube-scheduler's. ``requested`` is what the node already
holds plus this request; ``allocatable`` is the node's allocatable amount.

Each plugin is row-local: a vectorized ``score`` over all nodes and a scalar
``score_node`` for one node that computes the same IEEE operations in the same order, so
the scheduler can refresh cached scores of the few nodes that changed (tests check that
both paths agree bit for bit).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harmonia.model import RESOURCE_NAMES
from harmonia.sched.framework import MAX_NODE_SCORE, CycleState
from harmonia.sched.state import CPU, MEMORY, BoolArray, ClusterState, FloatArray, NodeRow

DEFAULT_RESOURCES: tuple[tuple[str, int], ...] = (("cpu_m", 1), ("memory_mib", 1))
_SCORE = float(MAX_NODE_SCORE)


@dataclass(frozen=True)
class AllocationConfig:
    """Resources scored and their weights; validated when the profile is built."""

    resources: tuple[tuple[str, int], ...] = DEFAULT_RESOURCES

    def __post_init__(self) -> None:
        if not self.resources:
            raise ValueError("allocation scoring needs at least one resource")
        for name, weight in self.resources:
            if name not in RESOURCE_NAMES:
                raise ValueError(f"unknown resource {name!r}; expected one of {RESOURCE_NAMES}")
            if weight <= 0:
                raise ValueError(f"weight of {name!r} must be > 0")

    @property
    def columns(self) -> list[tuple[int, int]]:
        return [(RESOURCE_NAMES.index(name), weight) for name, weight in self.resources]

    @property
    def weight_sum(self) -> int:
        return sum(weight for _, weight in self.resources)


class LeastAllocated:
    """Prefer nodes with the most room left after placing the request (spreads load).

    Per resource ``(allocatable - requested) * 100 // allocatable`` (0 when the request
    does not fit or allocatable is 0), then the weighted mean, integer-divided. Example:
    cpu (4000-3000)*100//4000 = 25; mem (10000-5000)*100//10000 = 50; node = (25+50)//2 = 37.
    """

    name = "LeastAllocated"
    row_local = True
    fresh_scores = True  # score() returns a new array, which the caller may keep

    def __init__(self, config: AllocationConfig | None = None) -> None:
        self.config = config or AllocationConfig()
        self._columns = self.config.columns
        self._weight_sum = self.config.weight_sum
        self._default_columns = self._columns == [(CPU, 1), (MEMORY, 1)]

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        # NOTE: float64 division then floor equals Kubernetes' int64 division here: the
        # operands are exact integers below 2**53 (the state's float64 mirrors hold the
        # int64 amounts exactly) and a true quotient that is not an integer lies at least
        # 1/allocatable below the next one, far beyond rounding.
        total: FloatArray | None = None
        for col, weight in self._columns:
            left = state.free_f[:, col] - cycle.amounts[col]
            left *= _SCORE
            left /= state.divisor_f[:, col]
            np.floor(left, out=left)
            np.maximum(left, 0.0, out=left)
            if weight != 1:
                left *= weight
            total = left if total is None else np.add(total, left, out=total)
        assert total is not None
        if self._weight_sum != 1:
            _divide(total, self._weight_sum)
            np.floor(total, out=total)
        return total

    def score_node(self, row: NodeRow, cycle: CycleState) -> float:
        # Integer floor division: the exact value the vector path's float floor yields.
        free, divisor, amounts = row.free, row.divisor, cycle.amounts
        if self._default_columns:
            # NOTE: the default cpu+memory case unrolled; this runs per changed node.
            cpu = free[0] - amounts[0]
            mem = free[1] - amounts[1]
            return (
                float(
                    ((cpu * MAX_NODE_SCORE // divisor[0]) if cpu > 0 else 0)
                    + ((mem * MAX_NODE_SCORE // divisor[1]) if mem > 0 else 0)
                )
                // 2
            )
        total = 0
        for col, weight in self._columns:
            left = free[col] - amounts[col]
            if left > 0:
                total += left * MAX_NODE_SCORE // divisor[col] * weight
        return float(total // self._weight_sum)


class MostAllocated:
    """Prefer the fullest nodes that still fit (bin packing).

    Per resource ``min(requested, allocatable) * 100 // allocatable`` (0 when allocatable
    is 0), then the weighted mean, integer-divided. Example: cpu 3000*100//4000 = 75;
    mem 5000*100//10000 = 50; node = (75+50)//2 = 62.
    """

    name = "MostAllocated"
    row_local = True
    fresh_scores = True

    def __init__(self, config: AllocationConfig | None = None) -> None:
        self.config = config or AllocationConfig()
        self._columns = self.config.columns
        self._weight_sum = self.config.weight_sum

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        # NOTE: float division then floor, exact as in LeastAllocated (the float64 mirrors
        # hold the int64 amounts exactly).
        total: FloatArray | None = None
        for col, weight in self._columns:
            share = state.allocated_f[:, col] + cycle.amounts[col]
            np.minimum(share, state.allocatable_f[:, col], out=share)
            share *= _SCORE
            share /= state.divisor_f[:, col]
            np.floor(share, out=share)
            if weight != 1:
                share *= weight
            total = share if total is None else np.add(total, share, out=total)
        assert total is not None
        if self._weight_sum != 1:
            _divide(total, self._weight_sum)
            np.floor(total, out=total)
        return total

    def score_node(self, row: NodeRow, cycle: CycleState) -> float:
        allocated, allocatable, divisor, amounts = (
            row.allocated,
            row.allocatable,
            row.divisor,
            cycle.amounts,
        )
        total = 0
        for col, weight in self._columns:
            used = min(allocated[col] + amounts[col], allocatable[col])
            total += used * MAX_NODE_SCORE // divisor[col] * weight
        return float(total // self._weight_sum)


def _divide(values: FloatArray, divisor: int) -> None:
    """``values /= divisor`` in place; by a power of two as a multiplication by its
    inverse, the same IEEE result (scaling by 2**-k is exact) at half the cost."""
    if divisor & (divisor - 1) == 0:
        values *= 1.0 / divisor
    else:
        values /= divisor


@dataclass(frozen=True)
class ShapePoint:
    utilization: int  # percent, 0..100
    score: int  # 0..100


DEFAULT_SHAPE: tuple[ShapePoint, ...] = (ShapePoint(0, 0), ShapePoint(100, 100))


@dataclass(frozen=True)
class RatioConfig:
    resources: tuple[tuple[str, int], ...] = DEFAULT_RESOURCES
    shape: tuple[ShapePoint, ...] = DEFAULT_SHAPE

    def __post_init__(self) -> None:
        AllocationConfig(self.resources)  # same resource rules
        if not self.shape:
            raise ValueError("shape needs at least one point")
        xs = [p.utilization for p in self.shape]
        if any(b <= a for a, b in itertools.pairwise(xs)):
            raise ValueError("shape utilizations must increase strictly")
        for p in self.shape:
            if not (0 <= p.utilization <= 100 and 0 <= p.score <= MAX_NODE_SCORE):
                raise ValueError("shape points must lie in 0..100 × 0..100")


class RequestedToCapacityRatio:
    """Score by a piecewise-linear function of utilization after placement.

    Per resource ``u = min(requested, allocatable) * 100 // allocatable``; the score is the
    shape at ``u`` (integer interpolation, as Kubernetes' broken-linear function), then
    the weighted mean, rounded half up. With the default shape (0,0)→(100,100) this packs
    like MostAllocated; (0,100)→(100,0) spreads. Example, shape (0,0),(100,100): cpu 3000
    of 4000 → u=75 → 75; mem 5000 of 10000 → u=50 → 50; node = round((75+50)/2) = 63.
    """

    name = "RequestedToCapacityRatio"
    row_local = True

    def __init__(self, config: RatioConfig | None = None) -> None:
        self.config = config or RatioConfig()
        allocation = AllocationConfig(self.config.resources)
        self._columns = allocation.columns
        self._weight_sum = allocation.weight_sum
        # The shape evaluated at every integer utilization 0..100, so both paths look up.
        self._table = np.array(
            [_broken_linear(self.config.shape, u) for u in range(101)], dtype=np.float64
        )
        self._table_list: list[float] = self._table.tolist()

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        total = np.zeros(len(state), dtype=np.float64)
        for col, weight in self._columns:
            used = state.allocated[:, col] + cycle.vector[col]
            np.minimum(used, state.allocatable[:, col], out=used)
            utilization = used * MAX_NODE_SCORE // state.allocatable_nonzero[:, col]
            total += self._table[utilization] * weight
        return np.floor(total / self._weight_sum + 0.5)

    def score_node(self, row: NodeRow, cycle: CycleState) -> float:
        total = 0.0
        for col, weight in self._columns:
            used = min(row.allocated[col] + cycle.amounts[col], row.allocatable[col])
            total += self._table_list[used * MAX_NODE_SCORE // row.divisor[col]] * weight
        return float(math.floor(total / self._weight_sum + 0.5))


def _broken_linear(points: Sequence[ShapePoint], utilization: int) -> float:
    """Kubernetes' brokenLinearFunction: integer interpolation between shape points."""
    for i, point in enumerate(points):
        if utilization <= point.utilization:
            if i == 0:
                return float(points[0].score)
            prev = points[i - 1]
            rise = (point.score - prev.score) * (utilization - prev.utilization)
            return float(prev.score + int(rise / (point.utilization - prev.utilization)))
    return float(points[-1].score)


def shape(points: Sequence[tuple[int, int]]) -> tuple[ShapePoint, ...]:
    """Build a shape from ``(utilization, score)`` pairs."""
    return tuple(ShapePoint(u, s) for u, s in points)
