"""Synthetic traces in each public format, so that tests, demos and benchmarks need no
download: :func:`generate` is the one entry point (the CLI, the benchmarks and the tests
call it).

The formats are those the readers take (:data:`harmonia.traces.registry.FORMATS`); the
workload knobs are :class:`~harmonia.traces.synth_common.Workload`'s: size (``tasks``,
or ``events``: exactly that many events for the reader), arrival process
(:mod:`harmonia.traces.arrivals`), share of LC tasks, horizon and durations. The
per-format writers document their layouts:

- ``borg2011``: :mod:`harmonia.traces.synth_borg` (one CSV, gzip when asked);
- ``borg2019``: :mod:`harmonia.traces.synth_borg` (CSV, or JSON lines when ``out`` ends
  in ``.json`` / ``.jsonl``);
- ``alibaba2018``: :mod:`harmonia.traces.synth_alibaba` (a folder with both tables);
- ``azure2019``: :mod:`harmonia.traces.synth_azure` (a folder with three files per day).

The same arguments give byte-identical files (gzip included: no time stamp, no name).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from harmonia.model.errors import FieldError, InputError
from harmonia.traces.synth_alibaba import write_alibaba2018
from harmonia.traces.synth_azure import write_azure2019
from harmonia.traces.synth_borg import write_borg2011, write_borg2019
from harmonia.traces.synth_common import SyntheticTrace, Workload

_JSON_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


def _borg2011(out: Path, workload: Workload) -> SyntheticTrace:
    return write_borg2011(_file(out, "part-00000-of-00001.csv", workload), workload)


def _borg2019(out: Path, workload: Workload) -> SyntheticTrace:
    path = _file(out, "instance_events.csv", workload)
    return write_borg2019(path, workload, jsonl=path.name.endswith(_JSON_SUFFIXES))


GENERATORS: dict[str, Callable[[Path, Workload], SyntheticTrace]] = {
    "borg2011": _borg2011,
    "borg2019": _borg2019,
    "alibaba2018": write_alibaba2018,
    "azure2019": write_azure2019,
}


def generate(
    format: str,
    out: str | os.PathLike[str],
    *,
    tasks: int | None = None,
    events: int | None = None,
    seed: int = 0,
    arrival: str = "poisson",
    lc_fraction: float = 0.2,
    horizon_s: float = 86400.0,
    compress: bool | None = None,
    be_median_s: float = 600.0,
    be_sigma: float = 1.5,
    lc_median_s: float = 4 * 3600.0,
    lc_sigma: float = 1.0,
    machines: int = 12583,
    functions: int | None = None,
) -> SyntheticTrace:
    """Write a synthetic trace of ``format`` to ``out`` and say what it holds.

    ``out`` is a file for the Borg formats (a folder, or a path without suffix, gets the
    default file name inside it) and a folder for the others. ``compress`` defaults to
    whether ``out`` ends in ``.gz``. The result's ``events`` is the number of events the
    format's reader yields for the written trace.
    """
    generator = GENERATORS.get(format)
    if generator is None:
        known = ", ".join(GENERATORS)
        raise InputError([FieldError("format", f"unknown trace format {format!r}; known: {known}")])
    target = Path(out)
    workload = Workload(
        tasks=tasks,
        events=events,
        seed=seed,
        arrival=arrival,
        lc_fraction=lc_fraction,
        horizon_s=horizon_s,
        compress=target.name.endswith(".gz") if compress is None else compress,
        be_median_s=be_median_s,
        be_sigma=be_sigma,
        lc_median_s=lc_median_s,
        lc_sigma=lc_sigma,
        machines=machines,
        functions=functions,
    )
    if format in ("alibaba2018", "azure2019"):
        target.mkdir(parents=True, exist_ok=True)
    return generator(target, workload)


def _file(out: Path, default_name: str, workload: Workload) -> Path:
    if out.is_dir() or not out.suffix:
        name = default_name + (".gz" if workload.compress else "")
        return out / name
    return out
