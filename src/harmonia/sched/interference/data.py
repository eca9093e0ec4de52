"""Profiling data of co-located long-running containers, in Metis's format.

Metis (Wang et al., "Metis: Learning to Schedule Long-Running Applications in Shared
Container Clusters at Scale", SC'20, Apache-2.0 data) profiles node *configurations*: how
many containers of each of 7 applications share a node, and the normalized throughput
of one container of each application there. This module reads and checks three kinds of
file; every loader validates shapes, value ranges and per-node counts, and raises
:class:`~harmonia.model.InputError` naming the field.

**Profiles** (:func:`load_profile`, :func:`save_profile`):

- ``.npz`` as Metis ships it: ``alloc`` (n, apps) non-negative ints, the containers of
  each application on the node; ``rps`` (n, apps) floats, the throughput per container
  of each application, NaN where the application is absent. Other keys (``rt_50``,
  ``rt_99``) are ignored. Optional ``app_names`` (strings).
- ``.csv`` with a header ``alloc_<app>,…,rps_<app>,…``: one ``alloc_`` column per
  application, then one ``rps_`` column per application with the same names in the same
  order; an absent application's ``rps_`` cell is empty or ``nan``. Example::

      alloc_redis,alloc_mms,rps_redis,rps_mms
      1,0,1.0,
      2,1,0.93,0.88

**Rules** (:func:`load_rules`): Metis's ``interference_applist.csv``, columns
``app_s,app_c,less_or_lager,threshold``, applications numbered from 1; with
``less_or_lager = 0`` a container of ``app_s`` wants at most ``threshold`` containers of
``app_c`` on its node, with ``1`` at least ``threshold``. Loaded 0-based.

**Batches** (:func:`load_batches`): ``.npz`` with one 2-D array (Metis names it
``batch_set``), each row the containers of each application in one batch.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from harmonia.model import FieldError, InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Metis's seven applications, in its column order.
METIS_APPS: tuple[str, ...] = (
    "redis",
    "mms",
    "checksum",
    "ycsb-a",
    "ycsb-b",
    "scenedetect",
    "isr",
)
#: Containers per node in Metis's profiling (16 vCPU / 64 GB nodes, 2 vCPU / 8 GB each).
DEFAULT_CAPACITY = 8


@dataclass
class Profile:
    """Measured node configurations: ``alloc[i, a]`` containers of application ``a`` on
    sample ``i``'s node, ``per_container[i, a]`` the throughput of one of them (NaN where
    ``alloc[i, a] == 0``). Samples may repeat a configuration."""

    alloc: IntArray
    per_container: FloatArray
    app_names: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_profile(self.alloc, self.per_container, self.app_names, capacity=None)

    @property
    def apps(self) -> int:
        return int(self.alloc.shape[1])

    def __len__(self) -> int:
        return int(self.alloc.shape[0])

    @property
    def node_throughput(self) -> FloatArray:
        """Measured node throughput of each sample: Σ over present apps of per-container
        throughput × containers."""
        result: FloatArray = (np.nan_to_num(self.per_container) * self.alloc).sum(axis=1)
        return result


@dataclass(frozen=True)
class Rule:
    """A container of ``app_s`` wants ``at_most`` / ``at_least`` ``threshold`` containers of
    ``app_c`` on its node (0-based application indices)."""

    app_s: int
    app_c: int
    kind: Literal["at_most", "at_least"]
    threshold: int


def _check_profile(
    alloc: IntArray,
    per_container: FloatArray,
    app_names: tuple[str, ...],
    capacity: int | None,
) -> None:
    problems: list[FieldError] = []
    if alloc.ndim != 2 or alloc.shape[0] == 0 or alloc.shape[1] == 0:
        raise InputError([FieldError("alloc", f"must be a non-empty 2-D array, not {alloc.shape}")])
    n, apps = alloc.shape
    if per_container.shape != (n, apps):
        problems.append(
            FieldError("rps", f"shape {per_container.shape} differs from alloc's {(n, apps)}")
        )
    if len(app_names) != apps or len(set(app_names)) != apps:
        problems.append(FieldError("app_names", f"needs {apps} distinct names"))
    if problems:
        raise InputError(problems)
    if (alloc < 0).any():
        row = int(np.flatnonzero((alloc < 0).any(axis=1))[0])
        problems.append(FieldError(f"alloc[{row}]", "container counts must be >= 0"))
    totals = alloc.sum(axis=1)
    if (totals == 0).any():
        row = int(np.flatnonzero(totals == 0)[0])
        problems.append(FieldError(f"alloc[{row}]", "a sample needs at least one container"))
    if capacity is not None and (totals > capacity).any():
        row = int(np.flatnonzero(totals > capacity)[0])
        problems.append(
            FieldError(f"alloc[{row}]", f"{int(totals[row])} containers exceed capacity {capacity}")
        )
    present = alloc > 0
    bad = present & ~(np.isfinite(per_container) & (per_container >= 0))
    if bad.any():
        row, app = (int(x) for x in np.argwhere(bad)[0])
        problems.append(
            FieldError(
                f"rps[{row}][{app}]",
                f"throughput of present app {app_names[app]!r} must be finite and >= 0",
            )
        )
    if problems:
        raise InputError(problems)


def _as_int(array: npt.NDArray[np.generic], name: str) -> IntArray:
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        floats = array.astype(np.float64)
        if np.isfinite(floats).all() and (floats == np.round(floats)).all():
            return floats.astype(np.int64)
    raise InputError([FieldError(name, f"must hold whole numbers, not {array.dtype}")])


def make_profile(
    alloc: npt.ArrayLike,
    per_container: npt.ArrayLike,
    app_names: tuple[str, ...] | None = None,
    *,
    capacity: int | None = DEFAULT_CAPACITY,
) -> Profile:
    """A validated :class:`Profile`; per-container values of absent apps become NaN."""
    alloc_array = _as_int(np.asarray(alloc), "alloc")
    rps = np.asarray(per_container, dtype=np.float64)
    if alloc_array.ndim != 2:
        raise InputError([FieldError("alloc", f"must be 2-D, not {alloc_array.shape}")])
    names = app_names if app_names is not None else _default_names(alloc_array.shape[1])
    _check_profile(alloc_array, rps, names, capacity)
    rps = np.where(alloc_array > 0, rps, np.nan)
    return Profile(alloc_array, rps, names)


def _default_names(apps: int) -> tuple[str, ...]:
    return METIS_APPS if apps == len(METIS_APPS) else tuple(f"app{a}" for a in range(apps))


def load_profile(path: Path | str, *, capacity: int | None = DEFAULT_CAPACITY) -> Profile:
    """Read a profile from ``.npz`` or ``.csv`` (see the module doc)."""
    path = Path(path)
    source = str(path)
    try:
        if path.suffix.lower() == ".csv":
            alloc, rps, names = _read_profile_csv(path)
        else:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("alloc", "rps") if k not in data.files]
                if missing:
                    raise InputError(
                        [FieldError(k, "missing from the .npz") for k in missing], source
                    )
                alloc = _as_int(data["alloc"], "alloc")
                rps = np.asarray(data["rps"], dtype=np.float64)
                names = (
                    tuple(str(n) for n in data["app_names"])
                    if "app_names" in data.files
                    else _default_names(alloc.shape[1] if alloc.ndim == 2 else 0)
                )
        return make_profile(alloc, rps, names, capacity=capacity)
    except InputError as exc:
        raise InputError(exc.errors, source) from None
    except (OSError, ValueError) as exc:
        raise InputError([FieldError("", f"cannot read profile: {exc}")], source) from None


def _read_profile_csv(path: Path) -> tuple[IntArray, FloatArray, tuple[str, ...]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise InputError([FieldError("header", "empty file")])
    header = [h.strip() for h in rows[0]]
    alloc_cols = [h for h in header if h.startswith("alloc_")]
    rps_cols = [h for h in header if h.startswith("rps_")]
    names = tuple(h.removeprefix("alloc_") for h in alloc_cols)
    if (
        not alloc_cols
        or len(alloc_cols) + len(rps_cols) != len(header)
        or header != alloc_cols + [f"rps_{n}" for n in names]
    ):
        raise InputError(
            [FieldError("header", "must be alloc_<app>,… then rps_<app>,… for the same apps")]
        )
    apps = len(names)
    alloc = np.zeros((len(rows) - 1, apps), dtype=np.int64)
    rps = np.full((len(rows) - 1, apps), np.nan)
    for i, row in enumerate(rows[1:]):
        line = f"line {i + 2}"
        if len(row) != 2 * apps:
            raise InputError([FieldError(line, f"needs {2 * apps} cells, has {len(row)}")])
        try:
            alloc[i] = [int(cell) for cell in row[:apps]]
            rps[i] = [float(cell) if cell.strip() else np.nan for cell in row[apps:]]
        except ValueError as exc:
            raise InputError([FieldError(line, f"not a number: {exc}")]) from None
    return alloc, rps, names


def save_profile(profile: Profile, path: Path | str) -> None:
    """Write ``profile`` as ``.csv`` (by suffix) or ``.npz`` (keys ``alloc``, ``rps``,
    ``app_names``); :func:`load_profile` reads either back unchanged."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                [f"alloc_{n}" for n in profile.app_names] + [f"rps_{n}" for n in profile.app_names]
            )
            for counts, values in zip(profile.alloc, profile.per_container, strict=True):
                writer.writerow(
                    [str(int(c)) for c in counts]
                    + ["" if np.isnan(v) else repr(float(v)) for v in values]
                )
        return
    np.savez_compressed(
        path,
        alloc=profile.alloc,
        rps=profile.per_container,
        app_names=np.asarray(profile.app_names, dtype=str),
    )


def load_rules(
    path: Path | str, *, apps: int = len(METIS_APPS), capacity: int = DEFAULT_CAPACITY
) -> list[Rule]:
    """Read Metis's interference rules (``app_s,app_c,less_or_lager,threshold``, apps
    1-based) into 0-based :class:`Rule` s."""
    path = Path(path)
    source = str(path)
    expected = ["app_s", "app_c", "less_or_lager", "threshold"]
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise InputError([FieldError("", f"cannot read rules: {exc}")], source) from None
    if not rows or [h.strip() for h in rows[0]] != expected:
        raise InputError([FieldError("header", f"must be {','.join(expected)}")], source)
    rules: list[Rule] = []
    problems: list[FieldError] = []
    for i, row in enumerate(rows[1:]):
        line = f"line {i + 2}"
        if not row or not any(cell.strip() for cell in row):
            continue
        try:
            app_s, app_c, direction, threshold = (int(cell) for cell in row)
        except ValueError:
            problems.append(FieldError(line, "needs 4 integers"))
            continue
        for name, app in (("app_s", app_s), ("app_c", app_c)):
            if not 1 <= app <= apps:
                problems.append(FieldError(f"{line}.{name}", f"must be 1..{apps}, not {app}"))
        if direction not in (0, 1):
            problems.append(FieldError(f"{line}.less_or_lager", f"must be 0 or 1, not {direction}"))
        if not 0 <= threshold <= capacity:
            problems.append(
                FieldError(f"{line}.threshold", f"must be 0..{capacity}, not {threshold}")
            )
        kind: Literal["at_most", "at_least"] = "at_most" if direction == 0 else "at_least"
        rules.append(Rule(app_s - 1, app_c - 1, kind, threshold))
    if problems:
        raise InputError(problems, source)
    return rules


def load_batches(
    path: Path | str, *, apps: int = len(METIS_APPS), key: str | None = None
) -> IntArray:
    """Batches of containers, shape (rows, apps): row ``i`` holds the containers of each
    application in batch ``i``. Reads ``key`` (default ``batch_set``, or the file's only
    array)."""
    path = Path(path)
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            name = key or ("batch_set" if "batch_set" in data.files else None)
            if name is None and len(data.files) == 1:
                name = data.files[0]
            if name is None or name not in data.files:
                raise InputError(
                    [FieldError(key or "batch_set", f"missing; the file holds {data.files}")],
                    source,
                )
            raw = np.asarray(data[name])
    except (OSError, ValueError) as exc:
        raise InputError([FieldError("", f"cannot read batches: {exc}")], source) from None
    try:
        batches = _as_int(raw, name)
    except InputError as exc:
        raise InputError(exc.errors, source) from None
    if batches.ndim != 2 or batches.shape[1] != apps or batches.shape[0] == 0:
        raise InputError(
            [FieldError(name, f"must have shape (rows, {apps}), not {batches.shape}")], source
        )
    if (batches < 0).any():
        row = int(np.flatnonzero((batches < 0).any(axis=1))[0])
        raise InputError([FieldError(f"{name}[{row}]", "container counts must be >= 0")], source)
    return batches


__all__ = [
    "DEFAULT_CAPACITY",
    "METIS_APPS",
    "Profile",
    "Rule",
    "load_batches",
    "load_profile",
    "load_rules",
    "make_profile",
    "save_profile",
]
