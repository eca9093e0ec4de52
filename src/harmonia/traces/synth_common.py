"""What the synthetic format writers share: the workload knobs, the summary a generation
returns, deterministic (optionally gzip) output, and the request-size and duration
distributions.

Called by :mod:`harmonia.traces.synthetic` and the writers
:mod:`~harmonia.traces.synth_borg`, :mod:`~harmonia.traces.synth_alibaba` and
:mod:`~harmonia.traces.synth_azure`.

Distributions (all from one seeded ``numpy.random.Generator``):

- Request sizes, normalized to the largest machine as in Google's traces: most tasks are
  small. CPU is lognormal with median 0.03 and σ = 0.8 (about 70% of tasks between 0.01
  and 0.1), clipped to [0.0005, 0.5]; memory is the CPU request times a lognormal factor
  (median 1, σ = 0.6), clipped to [0.0001, 0.5]; disk lognormal with median 0.0004,
  clipped to [0.00001, 0.05]. Values are rounded to 5 decimals as the 2011 trace prints
  them. One request per job: Borg tasks of a job are identical.
- Durations are lognormal (heavy-tailed): best-effort median ``be_median_s`` (600 s),
  σ = ``be_sigma`` (1.5); latency-critical median ``lc_median_s`` (4 h), σ = ``lc_sigma``
  (1.0); at least 1 s.
"""

from __future__ import annotations

import gzip
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from harmonia.model.errors import FieldError, InputError
from harmonia.traces.arrivals import ARRIVAL_PROCESSES

#: Events are formatted and written this many at a time.
CHUNK = 65536


@dataclass(frozen=True)
class Workload:
    """What to generate. Give ``tasks`` (tasks, containers or invocations) or ``events``
    (the exact number of events the format's reader will yield), not both."""

    tasks: int | None = None
    events: int | None = None
    seed: int = 0
    arrival: str = "poisson"
    lc_fraction: float = 0.2
    horizon_s: float = 86400.0
    compress: bool = False  # gzip the output files
    be_median_s: float = 600.0
    be_sigma: float = 1.5
    lc_median_s: float = 4 * 3600.0
    lc_sigma: float = 1.0
    machines: int = 12583  # machine ids in the Borg and Alibaba files
    functions: int | None = None  # Azure: default clamp(tasks // 100, 1, 5000)

    def __post_init__(self) -> None:
        errors = []
        if (self.tasks is None) == (self.events is None):
            errors.append(FieldError("tasks", "give exactly one of tasks and events"))
        for name in ("tasks", "events"):
            value = getattr(self, name)
            if value is not None and value < 0:
                errors.append(FieldError(name, f"must be >= 0, got {value}"))
        if self.arrival not in ARRIVAL_PROCESSES:
            known = ", ".join(ARRIVAL_PROCESSES)
            errors.append(FieldError("arrival", f"unknown {self.arrival!r}; known: {known}"))
        if not 0.0 <= self.lc_fraction <= 1.0:
            errors.append(FieldError("lc_fraction", f"must be in [0, 1], got {self.lc_fraction}"))
        for name in ("horizon_s", "be_median_s", "lc_median_s", "machines"):
            if not getattr(self, name) > 0:
                errors.append(FieldError(name, f"must be > 0, got {getattr(self, name)}"))
        for name in ("be_sigma", "lc_sigma"):
            if not getattr(self, name) >= 0:
                errors.append(FieldError(name, f"must be >= 0, got {getattr(self, name)}"))
        if self.functions is not None and self.functions < 1:
            errors.append(FieldError("functions", f"must be >= 1, got {self.functions}"))
        if errors:
            raise InputError(errors, "synthetic workload")

    @property
    def size(self) -> int:
        return int(self.tasks if self.tasks is not None else self.events or 0)


@dataclass(frozen=True)
class SyntheticTrace:
    """What a generation wrote: ``events`` is what the format's reader will yield."""

    format: str
    paths: tuple[Path, ...]
    tasks: int  # distinct tasks (containers, invocations) the reader yields
    events: int
    lines: int  # data lines written, headers not included
    lc_tasks: int
    kinds: dict[str, int] = field(default_factory=dict)  # events per EventKind value


def open_output(path: Path, compress: bool) -> IO[str]:
    """A text file for writing; gzip (level 1: fast, ~15% larger than level 6) with no
    time stamp or name, so output is byte-identical for the same input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = open(path, "wb")  # noqa: SIM115 - returned wrapped, closed by the caller
    if not compress:
        return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
    zipped = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1)
    return _ClosingText(zipped, raw)


class _ClosingText(io.TextIOWrapper):
    """Closes the underlying raw file after the gzip stream (GzipFile leaves it open)."""

    def __init__(self, zipped: gzip.GzipFile, raw: IO[bytes]) -> None:
        super().__init__(zipped, encoding="utf-8", newline="\n")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def with_suffix(path: Path, compress: bool) -> Path:
    """``path`` with ``.gz`` appended when compressing (and not already there)."""
    if compress and path.suffix != ".gz":
        return path.with_name(path.name + ".gz")
    return path


def normalized_requests(
    rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CPU, memory and disk requests in 0..1 of the largest machine (see module doc)."""
    cpu = np.clip(rng.lognormal(math.log(0.03), 0.8, count), 0.0005, 0.5)
    memory = np.clip(cpu * rng.lognormal(0.0, 0.6, count), 0.0001, 0.5)
    disk = np.clip(rng.lognormal(math.log(0.0004), 1.0, count), 0.00001, 0.05)
    return np.round(cpu, 5), np.round(memory, 5), np.round(disk, 5)


def durations(rng: np.random.Generator, lc: np.ndarray, workload: Workload) -> np.ndarray:
    """Run times in seconds, lognormal per QoS class (see module doc)."""
    normal = rng.standard_normal(len(lc))
    median = np.where(lc, workload.lc_median_s, workload.be_median_s)
    sigma = np.where(lc, workload.lc_sigma, workload.be_sigma)
    return np.asarray(np.maximum(median * np.exp(sigma * normal), 1.0))


def fraction_text(values: np.ndarray) -> list[str]:
    """Normalized values as the traces print them: up to 5 decimals, no exponent."""
    return [f"{v:.5f}".rstrip("0").rstrip(".") for v in values.tolist()]


def pick(rng: np.random.Generator, choices: dict[int, float], count: int) -> np.ndarray:
    """``count`` draws from ``{value: weight}``."""
    values = np.fromiter(choices.keys(), dtype=np.int64)
    weights = np.fromiter(choices.values(), dtype=np.float64)
    return np.asarray(values[rng.choice(len(values), size=count, p=weights / weights.sum())])


def pick_by_size(rng: np.random.Generator, sizes: np.ndarray, share: float) -> np.ndarray:
    """A boolean mask over groups (jobs, apps) whose ``sizes`` add up to about ``share``
    of the total: groups taken in random order until the share is reached, so the task
    share lands within one group of the target."""
    order = rng.permutation(len(sizes))
    covered = np.cumsum(sizes[order])
    target = share * float(covered[-1]) if len(covered) else 0.0
    taken = np.searchsorted(covered, target, side="left") + (1 if share > 0 else 0)
    # take the group that crosses the target only when that lands closer to it
    if 0 < taken <= len(order) and covered[taken - 1] - target > target - (
        covered[taken - 2] if taken >= 2 else 0
    ):
        taken -= 1
    mask = np.zeros(len(sizes), dtype=bool)
    mask[order[:taken]] = True
    return mask
