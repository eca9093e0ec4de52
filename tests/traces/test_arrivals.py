"""Arrival processes: exact counts, the window, and the shape each process promises."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import InputError
from harmonia.traces import ARRIVAL_PROCESSES, arrival_times

DAY = 86400.0


@pytest.mark.parametrize("process", ARRIVAL_PROCESSES)
def test_exact_count_sorted_within_the_horizon(process: str) -> None:
    times = arrival_times(np.random.default_rng(1), 5000, 3600.0, process)
    assert len(times) == 5000
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= 0.0
    assert times[-1] < 3600.0


def _hourly(process: str) -> np.ndarray:
    times = arrival_times(np.random.default_rng(5), 48_000, DAY, process)
    return np.bincount((times // 3600).astype(int), minlength=24)


def test_diurnal_rate_follows_the_day_and_poisson_stays_flat() -> None:
    diurnal = _hourly("diurnal")
    # rate 1 + 0.6 cos(...): peak hour (around 14:00) vs trough (around 02:00) is ~4:1
    assert diurnal.max() / diurnal.min() > 3.0
    assert 12 <= int(np.argmax(diurnal)) <= 15
    assert int(np.argmin(diurnal)) in (0, 1, 2, 3, 23)
    poisson = _hourly("poisson")
    assert poisson.max() / poisson.min() < 1.25  # 2000 per hour, sd ~45


def _dispersion(process: str) -> float:
    """Variance / mean of counts per minute: 1 for Poisson, larger when bursty."""
    times = arrival_times(np.random.default_rng(11), 50_000, DAY, process)
    counts = np.bincount((times // 60).astype(int), minlength=1440)
    return float(counts.var() / counts.mean())


def test_bursty_counts_are_overdispersed_unlike_poisson() -> None:
    assert 0.8 < _dispersion("poisson") < 1.2
    assert _dispersion("bursty") > 5.0


def test_same_seed_same_times_and_zero_count() -> None:
    first = arrival_times(np.random.default_rng(3), 100, 60.0, "bursty")
    again = arrival_times(np.random.default_rng(3), 100, 60.0, "bursty")
    assert np.array_equal(first, again)
    assert len(arrival_times(np.random.default_rng(3), 0, 60.0, "diurnal")) == 0


def test_unknown_process_is_refused() -> None:
    with pytest.raises(InputError, match="unknown process 'weibull'; known: poisson"):
        arrival_times(np.random.default_rng(0), 10, 60.0, "weibull")
