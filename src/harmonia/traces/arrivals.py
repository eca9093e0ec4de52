"""Arrival processes of the synthetic generators: when jobs, containers or invocations
arrive within a horizon.

Called by :mod:`harmonia.traces.synthetic` and its format writers. Each process draws
exactly ``count`` times in ``[0, horizon_s)``, sorted. Conditional on its count, a
(possibly inhomogeneous or doubly stochastic) Poisson process places its points
independently with density proportional to its rate ``λ(t)``; that is how all three are
drawn, vectorized:

- ``poisson``: constant rate, so the times are uniform.
- ``diurnal``: ``λ(t) = 1 + a · cos(2π (t − peak) / period)``, a day-long sinusoid with
  ``a = 0.6`` (peak-to-trough 4:1), peaking at 14:00 by default; drawn by inverting its
  integral on a grid.
- ``bursty``: a two-state Markov-modulated Poisson process (on/off): exponential "off"
  periods (mean 1800 s) at base rate alternate with exponential "on" bursts (mean 300 s)
  at ``burst_factor`` (10) times that rate. Counts per window are over-dispersed
  (variance well above the mean), unlike Poisson's variance = mean.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

from harmonia.model.errors import FieldError, InputError

ArrivalProcess = Literal["poisson", "diurnal", "bursty"]
ARRIVAL_PROCESSES: tuple[str, ...] = get_args(ArrivalProcess)
DAY_S = 86400.0


def arrival_times(
    rng: np.random.Generator,
    count: int,
    horizon_s: float,
    process: str = "poisson",
    *,
    amplitude: float = 0.6,
    period_s: float = DAY_S,
    peak_at_s: float = 14 * 3600.0,
    burst_factor: float = 10.0,
    on_mean_s: float = 300.0,
    off_mean_s: float = 1800.0,
) -> np.ndarray:
    """``count`` sorted arrival times in ``[0, horizon_s)`` from ``process``."""
    if process not in ARRIVAL_PROCESSES:
        known = ", ".join(ARRIVAL_PROCESSES)
        raise InputError([FieldError("arrival", f"unknown process {process!r}; known: {known}")])
    if count <= 0:
        return np.empty(0)
    if process == "poisson":
        times = rng.random(count) * horizon_s
    elif process == "diurnal":
        times = _diurnal(rng, count, horizon_s, amplitude, period_s, peak_at_s)
    else:
        times = _bursty(rng, count, horizon_s, burst_factor, on_mean_s, off_mean_s)
    times.sort()
    # guard the open end against rounding in the inversions
    return np.minimum(times, np.nextafter(horizon_s, 0.0))


def _diurnal(
    rng: np.random.Generator,
    count: int,
    horizon_s: float,
    amplitude: float,
    period_s: float,
    peak_at_s: float,
) -> np.ndarray:
    if not 0.0 <= amplitude < 1.0:
        raise InputError([FieldError("amplitude", f"must be in [0, 1), got {amplitude}")])
    # Λ(t) = t + a·P/2π·(sin(2π(t−peak)/P) + sin(2π·peak/P)), increasing since a < 1.
    points = int(min(1_000_000, max(4096, math.ceil(horizon_s / 30.0))))
    grid = np.linspace(0.0, horizon_s, points)
    omega = 2.0 * math.pi / period_s
    integral = grid + amplitude / omega * (
        np.sin(omega * (grid - peak_at_s)) + math.sin(omega * peak_at_s)
    )
    return np.asarray(np.interp(rng.random(count) * integral[-1], integral, grid))


def _bursty(
    rng: np.random.Generator,
    count: int,
    horizon_s: float,
    burst_factor: float,
    on_mean_s: float,
    off_mean_s: float,
) -> np.ndarray:
    # Alternating off/on periods covering the horizon, starting "off".
    pairs = max(8, math.ceil(horizon_s / (on_mean_s + off_mean_s) * 1.5))
    lengths = np.empty(0)
    while lengths.sum() < horizon_s:
        more = np.empty(2 * pairs)
        more[0::2] = rng.exponential(off_mean_s, pairs)
        more[1::2] = rng.exponential(on_mean_s, pairs)
        lengths = np.concatenate([lengths, more])
    ends = np.minimum(np.cumsum(lengths), horizon_s)
    starts = np.concatenate([[0.0], ends[:-1]])
    rates = np.where(np.arange(len(lengths)) % 2 == 1, burst_factor, 1.0)
    weights = np.cumsum(rates * (ends - starts))
    target = rng.random(count) * weights[-1]
    segment = np.minimum(np.searchsorted(weights, target, side="right"), len(weights) - 1)
    before = np.where(segment > 0, weights[segment - 1], 0.0)
    return np.asarray(starts[segment] + (target - before) / rates[segment])
