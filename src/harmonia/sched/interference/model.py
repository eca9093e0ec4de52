"""Per-container throughput models fitted on profiling samples, tabulated for placement.

After Metis (Wang et al., SC'20), which learns co-location interference of long-running
containers from a profiling sample of node configurations: here one scikit-learn
regressor per application maps a configuration (the containers of each of the apps on a
node) to the throughput of one container of that application there, trained only on the
samples where the application is present. Two kinds, both seeded:

- ``"gbr"``: :class:`~sklearn.ensemble.HistGradientBoostingRegressor`;
- ``"forest"``: :class:`~sklearn.ensemble.RandomForestRegressor`.

A configuration that was measured is looked up exactly (the mean over its repeats); the
model fills in the rest. :func:`fit_table` evaluates this on every configuration of at
most ``capacity`` containers and returns the
:class:`~harmonia.sched.interference.table.InterferenceTable` that batch placement and the
``Interference`` score plugin read. :func:`cross_validate` reports the model's error on
configurations it has not seen, folding by configuration so that repeats of one
configuration never sit on both sides.

One model per application rather than one with the application as a feature: on
Metis's profile the per-app models were measured at least as accurate (see the issue's
closing note) and each is fitted on exactly the samples where its target exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from harmonia.model import FieldError, InputError
from harmonia.sched.interference.data import Profile
from harmonia.sched.interference.table import InterferenceTable, configurations

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ModelKind = Literal["gbr", "forest"]
KINDS: tuple[str, ...] = ("gbr", "forest")


def _regressor(kind: str, seed: int) -> Any:
    if kind == "gbr":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(
            max_iter=60, learning_rate=0.15, min_samples_leaf=5, random_state=seed
        )
    if kind == "forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=60, min_samples_leaf=2, random_state=seed, n_jobs=1
        )
    raise InputError([FieldError("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")])


def _codes(alloc: IntArray, capacity: int) -> IntArray:
    radix = (capacity + 1) ** np.arange(alloc.shape[1], dtype=np.int64)
    result: IntArray = alloc @ radix
    return result


@dataclass
class MeasuredMeans:
    """The distinct measured configurations and the mean per-container throughput over
    their repeats (NaN where an app is absent)."""

    configs: IntArray  # (m, apps)
    per_container: FloatArray  # (m, apps)
    repeats: IntArray  # (m,)


def measured_means(profile: Profile) -> MeasuredMeans:
    """Mean per-container throughput of each distinct configuration of ``profile``."""
    configs, inverse, repeats = np.unique(
        profile.alloc, axis=0, return_inverse=True, return_counts=True
    )
    inverse = inverse.reshape(-1)
    sums = np.zeros(configs.shape, dtype=np.float64)
    np.add.at(sums, inverse, np.nan_to_num(profile.per_container))
    means = sums / repeats[:, None]
    means = np.where(configs > 0, means, np.nan)
    return MeasuredMeans(configs.astype(np.int64), means, repeats.astype(np.int64))


class ThroughputModel:
    """One regressor per application: ``predict(configs)`` gives the per-container
    throughput of every present app in each configuration (0 where absent, clipped at 0)."""

    def __init__(self, kind: str = "gbr", *, seed: int = 0) -> None:
        _regressor(kind, seed)  # validates the kind before any fitting
        self.kind = kind
        self.seed = seed
        self.models: list[Any | None] = []
        self.fallback: FloatArray = np.zeros(0)
        self.apps = 0

    def fit(self, alloc: IntArray, per_container: FloatArray) -> ThroughputModel:
        self.apps = int(alloc.shape[1])
        features = alloc.astype(np.float64)
        self.models = []
        self.fallback = np.zeros(self.apps)
        for app in range(self.apps):
            rows = alloc[:, app] > 0
            if not rows.any():
                self.models.append(None)  # never profiled: predicted 0 throughput
                continue
            target = per_container[rows, app]
            self.fallback[app] = float(target.mean())
            if rows.sum() < 4:
                self.models.append(None)  # too few samples to fit: their mean
                continue
            model = _regressor(self.kind, self.seed)
            model.fit(features[rows], target)
            self.models.append(model)
        return self

    def predict(self, configs: npt.ArrayLike) -> FloatArray:
        counts = np.asarray(configs, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[1] != self.apps:
            raise ValueError(f"configurations must have shape (n, {self.apps})")
        features = counts.astype(np.float64)
        out = np.zeros(counts.shape, dtype=np.float64)
        for app, model in enumerate(self.models):
            rows = counts[:, app] > 0
            if not rows.any():
                continue
            if model is None:
                out[rows, app] = self.fallback[app]
            else:
                out[rows, app] = model.predict(features[rows])
        result: FloatArray = np.clip(out, 0.0, None)
        return result


def fit_table(
    profile: Profile,
    *,
    kind: str = "gbr",
    capacity: int = 8,
    seed: int = 0,
    cv_folds: int = 5,
) -> InterferenceTable:
    """Fit a :class:`ThroughputModel` on ``profile`` and tabulate every configuration of
    at most ``capacity`` containers; measured configurations take their measured mean.

    ``meta`` records the kind, seed, sample counts, fit seconds and, unless
    ``cv_folds`` is 0, the cross-validation error (:func:`cross_validate`).
    """
    if capacity < 1:
        raise InputError([FieldError("capacity", f"must be >= 1, not {capacity}")])
    totals = profile.alloc.sum(axis=1)
    if (totals > capacity).any():
        row = int(np.flatnonzero(totals > capacity)[0])
        raise InputError(
            [FieldError(f"alloc[{row}]", f"{int(totals[row])} containers exceed {capacity}")]
        )
    started = time.monotonic()
    model = ThroughputModel(kind, seed=seed).fit(profile.alloc, profile.per_container)
    configs = configurations(profile.apps, capacity)
    per_container = model.predict(configs)
    means = measured_means(profile)
    lookup = np.full((capacity + 1) ** profile.apps, -1, dtype=np.int64)
    lookup[_codes(configs, capacity)] = np.arange(len(configs))
    rows = lookup[_codes(means.configs, capacity)]
    per_container[rows] = np.where(means.configs > 0, means.per_container, 0.0)
    measured = np.zeros(len(configs), dtype=bool)
    measured[rows] = True
    fit_seconds = time.monotonic() - started
    meta: dict[str, Any] = {
        "source": "model",
        "kind": kind,
        "seed": seed,
        "samples": len(profile),
        "distinct_measured": len(means.configs),
        "samples_per_app": [int(c) for c in (profile.alloc > 0).sum(axis=0)],
        "fit_seconds": round(fit_seconds, 3),
    }
    if cv_folds:
        meta["cv"] = cross_validate(profile, kind=kind, folds=cv_folds, seed=seed)
    return InterferenceTable(
        configs=configs,
        per_container=np.clip(per_container, 0.0, None),
        measured=measured,
        capacity=capacity,
        app_names=profile.app_names,
        meta=meta,
    )


def _errors(truth: FloatArray, predicted: FloatArray) -> dict[str, float]:
    diff = predicted - truth
    if diff.size == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "n": 0}
    return {
        "mae": round(float(np.abs(diff).mean()), 5),
        "rmse": round(float(np.sqrt((diff**2).mean())), 5),
        "n": int(diff.size),
    }


def cross_validate(
    profile: Profile, *, kind: str = "gbr", folds: int = 5, seed: int = 0
) -> dict[str, Any]:
    """K-fold cross-validation grouped by configuration: every repeat of a configuration
    lands in the same fold, so the error is the model's on configurations it has not
    seen. Returns MAE and RMSE of per-container throughput (overall and per app) and of
    node throughput (Σ per-container × containers), over all held-out samples."""
    if folds < 2:
        raise InputError([FieldError("folds", f"must be >= 2, not {folds}")])
    codes = _codes(profile.alloc, int(profile.alloc.max()) + 1)
    groups, group_of = np.unique(codes, return_inverse=True)
    if len(groups) < folds:
        raise InputError(
            [FieldError("folds", f"{folds} folds need as many distinct configurations")]
        )
    rng = np.random.default_rng(seed)
    fold_of_group = rng.permutation(len(groups)) % folds
    fold_of = fold_of_group[group_of.reshape(-1)]
    predicted = np.zeros(profile.alloc.shape, dtype=np.float64)
    for fold in range(folds):
        test = fold_of == fold
        model = ThroughputModel(kind, seed=seed).fit(
            profile.alloc[~test], profile.per_container[~test]
        )
        predicted[test] = model.predict(profile.alloc[test])
    present = profile.alloc > 0
    truth = np.nan_to_num(profile.per_container)
    per_app = {
        name: _errors(truth[present[:, a], a], predicted[present[:, a], a])
        for a, name in enumerate(profile.app_names)
    }
    node_truth = (truth * profile.alloc).sum(axis=1)
    node_pred = (predicted * profile.alloc).sum(axis=1)
    return {
        "kind": kind,
        "folds": folds,
        "grouped_by": "configuration",
        "per_container": _errors(truth[present], predicted[present]),
        "per_app": per_app,
        "node": _errors(node_truth, node_pred),
        "node_mean": round(float(node_truth.mean()), 5),
    }


__all__ = [
    "KINDS",
    "MeasuredMeans",
    "ThroughputModel",
    "cross_validate",
    "fit_table",
    "measured_means",
]
