"""Synthetic Azure Functions 2019 trace: per day ``dNN``, the invocations, durations and
memory files of the Azure Public Dataset, written by
:func:`harmonia.traces.synthetic.generate`.

``tasks`` is the exact number of invocations over ``horizon_s`` (one file set per started
day). The shape follows Shahrad et al. (ATC'20) qualitatively:

- ``functions`` functions (default ``clamp(tasks // 100, 1, 5000)``) in apps of 1–5
  (geometric), apps in owners of 1–3; popularity is lognormal with σ = 2, so a few
  functions get most invocations and most are rarely invoked;
- invocation times follow the arrival process; each is given to a function by
  popularity and counted in its minute;
- triggers: http 55%, timer 15%, queue 10%, event 7%, storage 5%, orchestration 5%,
  others 3%;
- each function's durations are lognormal with a per-function median (itself lognormal
  around 0.8 s, σ = 1.5) and σ in [0.3, 1.2]; the file gives that distribution's mean
  and its 0.1% (as the 0th), 1, 25, 50, 75, 99 and 99.9% (as the 100th) points, in ms;
- each app's average allocated memory is lognormal around 150 MB (σ = 0.6, 16–4096 MB).

Only functions invoked on a day, and their apps, appear in that day's files.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harmonia.traces.arrivals import DAY_S, arrival_times
from harmonia.traces.azure import DURATION_PERCENTILES, MINUTES_PER_DAY
from harmonia.traces.synth_common import (
    SyntheticTrace,
    Workload,
    open_output,
    with_suffix,
)

TRIGGERS = {
    "http": 0.55,
    "timer": 0.15,
    "queue": 0.10,
    "event": 0.07,
    "storage": 0.05,
    "orchestration": 0.05,
    "others": 0.03,
}
# Standard normal points of the percentile columns; 0 and 100 stand for 0.1% and 99.9%.
_Z = np.array([-3.090, -2.326, -0.674, 0.0, 0.674, 2.326, 3.090])
_MEMORY_PERCENTILES = (1, 5, 25, 50, 75, 95, 99, 100)
_MEMORY_FACTORS = np.array([0.6, 0.7, 0.85, 1.0, 1.1, 1.3, 1.5, 1.8])


def write_azure2019(folder: Path, workload: Workload) -> SyntheticTrace:
    rng = np.random.default_rng(workload.seed)
    total = workload.size
    functions = workload.functions or min(max(total // 100, 1), 5000)
    app_sizes = _sizes(rng, functions, 0.5, 5)
    app_of = np.repeat(np.arange(len(app_sizes)), app_sizes)
    owner_sizes = _sizes(rng, len(app_sizes), 0.6, 3)
    owner_of_app = np.repeat(np.arange(len(owner_sizes)), owner_sizes)
    function_names = _hashes(rng, functions)
    app_names = _hashes(rng, len(app_sizes))
    owner_names = _hashes(rng, len(owner_sizes))
    popularity = rng.lognormal(0.0, 2.0, functions)
    trigger_names = list(TRIGGERS)
    trigger_weights = np.array(list(TRIGGERS.values()))
    trigger = rng.choice(len(trigger_names), functions, p=trigger_weights / trigger_weights.sum())
    median_ms = rng.lognormal(math.log(800.0), 1.5, functions)
    sigma = rng.uniform(0.3, 1.2, functions)
    app_memory = np.clip(rng.lognormal(math.log(150.0), 0.6, len(app_sizes)), 16.0, 4096.0)
    samples = rng.integers(100, 100_000, len(app_sizes))

    times = arrival_times(rng, total, workload.horizon_s, workload.arrival)
    function_of = rng.choice(functions, total, p=popularity / popularity.sum())
    minute_of = np.floor(times / 60.0).astype(np.int64)
    days = max(1, math.ceil(workload.horizon_s / DAY_S))
    paths: list[Path] = []
    lines = 0
    for day in range(days):
        in_day = minute_of // MINUTES_PER_DAY == day
        cells = function_of[in_day] * MINUTES_PER_DAY + minute_of[in_day] % MINUTES_PER_DAY
        counts = np.bincount(cells, minlength=functions * MINUTES_PER_DAY).reshape(
            functions, MINUTES_PER_DAY
        )
        per_function = counts.sum(axis=1)
        invoked = np.flatnonzero(per_function)
        suffix = f".anon.d{day + 1:02d}.csv"
        names = [
            with_suffix(folder / f"{prefix}{suffix}", workload.compress)
            for prefix in (
                "invocations_per_function_md",
                "function_durations_percentiles",
                "app_memory_percentiles",
            )
        ]
        paths += names
        with open_output(names[0], workload.compress) as out:
            out.write("HashOwner,HashApp,HashFunction,Trigger,")
            out.write(",".join(str(m) for m in range(1, MINUTES_PER_DAY + 1)) + "\n")
            for f in invoked.tolist():
                a = app_of[f]
                out.write(
                    f"{owner_names[owner_of_app[a]]},{app_names[a]},{function_names[f]},"
                    f"{trigger_names[trigger[f]]},"
                )
                out.write(",".join(map(str, counts[f].tolist())) + "\n")
        with open_output(names[1], workload.compress) as out:
            columns = ",".join(f"percentile_Average_{p}" for p in DURATION_PERCENTILES)
            out.write(f"HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,{columns}\n")
            for f in invoked.tolist():
                a = app_of[f]
                mu, s = math.log(median_ms[f]), sigma[f]
                points = [max(0, round(math.exp(mu + s * z))) for z in _Z.tolist()]
                average = round(math.exp(mu + s * s / 2))
                out.write(
                    f"{owner_names[owner_of_app[a]]},{app_names[a]},{function_names[f]},"
                    f"{average},{per_function[f]},{points[0]},{points[-1]},"
                    + ",".join(map(str, points))
                    + "\n"
                )
        with open_output(names[2], workload.compress) as out:
            columns = ",".join(f"AverageAllocatedMb_pct{p}" for p in _MEMORY_PERCENTILES)
            out.write(f"HashOwner,HashApp,SampleCount,AverageAllocatedMb,{columns}\n")
            for a in np.unique(app_of[invoked]).tolist():
                average_mb = round(float(app_memory[a]))
                points = np.round(app_memory[a] * _MEMORY_FACTORS).astype(np.int64).tolist()
                out.write(
                    f"{owner_names[owner_of_app[a]]},{app_names[a]},{samples[a]},{average_mb},"
                    + ",".join(map(str, points))
                    + "\n"
                )
        lines += len(invoked) * 2 + len(np.unique(app_of[invoked]))
    return SyntheticTrace(
        format="azure2019",
        paths=tuple(paths),
        tasks=total,
        events=total,
        lines=lines,
        lc_tasks=0,
        kinds={"submit": total} if total else {},
    )


def _sizes(rng: np.random.Generator, total: int, p: float, cap: int) -> np.ndarray:
    """Group sizes (geometric, at most ``cap``) adding up to exactly ``total``."""
    sizes = np.minimum(rng.geometric(p, total), cap)
    covered = np.cumsum(sizes)
    groups = int(np.searchsorted(covered, total)) + 1
    sizes = sizes[:groups].copy()
    sizes[-1] -= int(covered[groups - 1]) - total
    return sizes


def _hashes(rng: np.random.Generator, count: int) -> list[str]:
    """Distinct 64-hex-digit names, like the dataset's SHA-256 hashes."""
    raw = rng.bytes(32 * count)
    return [raw[32 * i : 32 * (i + 1)].hex() for i in range(count)]
