"""The throughput of every possible node configuration, as one dense table.

A node holds at most ``capacity`` containers of ``apps`` applications; a configuration is
the count of each application on the node. With 7 applications and capacity 8 there are
C(15, 7) = 6,435 of them, so a model's predictions can be evaluated once for all, and
placement then looks values up instead of calling the model: every policy and the score
plugin read this table. ``per_container[k, a]`` is the throughput of one container of
application ``a`` in configuration ``k`` (0 where the configuration has none);
``node_throughput[k]`` the sum over applications of per-container throughput × count;
``measured[k]`` whether configuration ``k`` was profiled (its values are then the
measurement, not a prediction).

Configurations are indexed by a mixed-radix code (``counts · radix``, radix
``(capacity+1)**a``) mapped to rows through a lookup array, so indexing a whole batch of
configurations is two numpy gathers. Tables are saved as ``.npz`` of plain arrays
(never pickles) and loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harmonia.model import FieldError, InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def configurations(apps: int, capacity: int) -> IntArray:
    """Every count vector of ``apps`` non-negative ints summing to at most ``capacity``,
    in lexicographic order; the empty node first."""
    rows = [c for c in itertools.product(range(capacity + 1), repeat=apps) if sum(c) <= capacity]
    return np.asarray(rows, dtype=np.int64).reshape(-1, apps)


@dataclass
class InterferenceTable:
    """Per-container and per-node throughput of every configuration (see module doc)."""

    configs: IntArray  # (K, apps)
    per_container: FloatArray  # (K, apps), 0 where the app is absent
    measured: BoolArray  # (K,)
    capacity: int
    app_names: tuple[str, ...]
    #: Free-form facts about how the table was made (model kind, CV error, sources).
    meta: dict[str, Any] = field(default_factory=dict)
    node_throughput: FloatArray = field(init=False)
    _radix: IntArray = field(init=False, repr=False)
    _row_of_code: IntArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        k, apps = self.configs.shape
        problems = []
        if self.per_container.shape != (k, apps):
            problems.append(FieldError("per_container", f"shape must be {(k, apps)}"))
        if self.measured.shape != (k,):
            problems.append(FieldError("measured", f"shape must be {(k,)}"))
        if len(self.app_names) != apps:
            problems.append(FieldError("app_names", f"needs {apps} names"))
        if (self.configs < 0).any() or (self.configs.sum(axis=1) > self.capacity).any():
            problems.append(FieldError("configs", f"counts must be 0..{self.capacity} in all"))
        if not np.isfinite(self.per_container).all() or (self.per_container < 0).any():
            problems.append(FieldError("per_container", "must be finite and >= 0"))
        if problems:
            raise InputError(problems, "interference table")
        self.per_container = np.where(self.configs > 0, self.per_container, 0.0)
        self.node_throughput = (self.per_container * self.configs).sum(axis=1)
        self._radix = (self.capacity + 1) ** np.arange(apps, dtype=np.int64)
        self._row_of_code = np.full((self.capacity + 1) ** apps, -1, dtype=np.int64)
        self._row_of_code[self.configs @ self._radix] = np.arange(k)

    @property
    def apps(self) -> int:
        return int(self.configs.shape[1])

    def index(self, counts: npt.ArrayLike) -> IntArray:
        """Row of each configuration in ``counts`` (shape (..., apps)); -1 for one that
        exceeds the capacity."""
        array = np.asarray(counts, dtype=np.int64)
        if array.shape[-1] != self.apps:
            raise ValueError(f"configurations need {self.apps} counts, not {array.shape[-1]}")
        bad = (array < 0).any(axis=-1) | (array.sum(axis=-1) > self.capacity)
        code = np.where(bad, 0, np.clip(array, 0, self.capacity) @ self._radix)
        rows: IntArray = np.where(bad, -1, self._row_of_code[code])
        return rows

    def throughput(self, counts: npt.ArrayLike) -> FloatArray:
        """Node throughput of each configuration in ``counts``; ``ValueError`` if one
        exceeds the capacity."""
        rows = self.index(counts)
        if (rows < 0).any():
            raise ValueError(f"a configuration holds more than {self.capacity} containers")
        result: FloatArray = self.node_throughput[rows]
        return result

    # -- files ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        import json

        np.savez_compressed(
            path,
            configs=self.configs,
            per_container=self.per_container,
            measured=self.measured,
            capacity=np.int64(self.capacity),
            app_names=np.asarray(self.app_names, dtype=str),
            meta=np.asarray(json.dumps(self.meta)),
        )

    @classmethod
    def load(cls, path: Path) -> InterferenceTable:
        import json

        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    configs=data["configs"].astype(np.int64),
                    per_container=data["per_container"].astype(np.float64),
                    measured=data["measured"].astype(bool),
                    capacity=int(data["capacity"]),
                    app_names=tuple(str(n) for n in data["app_names"]),
                    meta=json.loads(str(data["meta"])),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(
                [FieldError("", f"not an interference table: {exc}")], str(path)
            ) from exc


__all__ = ["InterferenceTable", "configurations"]
