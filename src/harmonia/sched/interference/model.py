"""Per-container throughput models fitted on profiling samples, tabulated for placement.

After Metis (Wang et al., SC'20), which learns co-location interference of long-running
containers from a profiling sample of node configurations: here scikit-learn regressors
map a configuration (the containers of each of the apps on a node) and an application to
the throughput of one container of that application there, trained only on the samples
where the application is present. Two kinds, both seeded:

- ``"gbr"``: :class:`~sklearn.ensemble.HistGradientBoostingRegressor`;
- ``"forest"``: :class:`~sklearn.ensemble.RandomForestRegressor`.

A configuration that was measured is looked up exactly (the mean over its repeats); the
model fills in the rest. :func:`fit_table` evaluates this on every configuration of at
most ``capacity`` containers and returns the
:class:`~harmonia.sched.interference.table.InterferenceTable` that batch placement and the
``Interference`` score plugin read. :func:`cross_validate` reports the model's error on
configurations it has not seen, folding by configuration so that repeats of one
configuration never sit on both sides.

Two layouts (``layout=``): ``"joint"`` (default), one regressor over the counts plus a
one-hot of the application, fitted on every (sample, present application) pair; and
``"per_app"``, one regressor per application fitted on the samples where it is present.
On Metis's profile (2,008 samples, 5-fold CV grouped by configuration) the joint HistGBR
was the most accurate (per-container MAE 0.0385, RMSE 0.0748; node MAE 0.196) against
per-app HistGBR (0.0394, 0.0791; 0.202), and fits in a fifth of the time (0.36 s
against 1.8 s, one thread); the two forest layouts are on a par (MAE 0.0418 / 0.0423).
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
LAYOUTS: tuple[str, ...] = ("joint", "per_app")


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


def _one_thread() -> Any:
    """One OpenMP thread for the regressors: the profiles are small (thousands of rows),
    and on a busy host HistGradientBoosting's threads spin against other work: fitting
    on Metis's profile took 1.0-36 s with the default threads, 0.3-1.2 s with one."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    return threadpool_limits(limits=1, user_api="openmp")


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
    """Per-container throughput of every present application in a configuration.

    ``layout="joint"``: one regressor over (the counts, a one-hot of the application),
    fitted on every (sample, present application) pair; ``layout="per_app"``: one
    regressor per application over the counts, fitted on the samples where it is present
    (an application with fewer than 4 samples predicts their mean). ``predict`` gives 0
    where an application is absent and clips at 0.
    """

    def __init__(self, kind: str = "gbr", *, seed: int = 0, layout: str = "joint") -> None:
        _regressor(kind, seed)  # validates the kind before any fitting
        if layout not in LAYOUTS:
            raise InputError(
                [FieldError("layout", f"must be one of {', '.join(LAYOUTS)}, not {layout!r}")]
            )
        self.kind = kind
        self.seed = seed
        self.layout = layout
        self.joint: Any | None = None
        self.models: list[Any | None] = []
        self.fallback: FloatArray = np.zeros(0)
        self.apps = 0

    def fit(self, alloc: IntArray, per_container: FloatArray) -> ThroughputModel:
        with _one_thread():
            return self._fit(alloc, per_container)

    def _fit(self, alloc: IntArray, per_container: FloatArray) -> ThroughputModel:
        self.apps = int(alloc.shape[1])
        present = alloc > 0
        self.fallback = np.array(
            [
                float(per_container[present[:, a], a].mean()) if present[:, a].any() else 0.0
                for a in range(self.apps)
            ]
        )
        self.models = []
        self.joint = None
        if self.layout == "joint":
            rows, apps = np.nonzero(present)
            self.joint = _regressor(self.kind, self.seed)
            self.joint.fit(self._joint_features(alloc, rows, apps), per_container[rows, apps])
            return self
        features = alloc.astype(np.float64)
        for app in range(self.apps):
            rows_a = present[:, app]
            if rows_a.sum() < 4:
                self.models.append(None)  # too few samples to fit: their mean (or 0)
                continue
            model = _regressor(self.kind, self.seed)
            model.fit(features[rows_a], per_container[rows_a, app])
            self.models.append(model)
        return self

    def _joint_features(self, counts: IntArray, rows: IntArray, apps: IntArray) -> FloatArray:
        features = np.zeros((len(rows), 2 * self.apps), dtype=np.float64)
        features[:, : self.apps] = counts[rows]
        features[np.arange(len(rows)), self.apps + apps] = 1.0
        return features

    def predict(self, configs: npt.ArrayLike) -> FloatArray:
        counts = np.asarray(configs, dtype=np.int64)
        if counts.ndim != 2 or counts.shape[1] != self.apps:
            raise ValueError(f"configurations must have shape (n, {self.apps})")
        out = np.zeros(counts.shape, dtype=np.float64)
        with _one_thread():
            self._predict_into(counts, out)
        result: FloatArray = np.clip(out, 0.0, None)
        return result

    def _predict_into(self, counts: IntArray, out: FloatArray) -> None:
        if self.joint is not None:
            rows, apps = np.nonzero(counts > 0)
            if len(rows):
                out[rows, apps] = self.joint.predict(self._joint_features(counts, rows, apps))
        else:
            features = counts.astype(np.float64)
            for app, model in enumerate(self.models):
                rows_a = counts[:, app] > 0
                if not rows_a.any():
                    continue
                if model is None:
                    out[rows_a, app] = self.fallback[app]
                else:
                    out[rows_a, app] = model.predict(features[rows_a])


def fit_table(
    profile: Profile,
    *,
    kind: str = "gbr",
    capacity: int = 8,
    seed: int = 0,
    cv_folds: int = 5,
    layout: str = "joint",
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
    model = ThroughputModel(kind, seed=seed, layout=layout).fit(
        profile.alloc, profile.per_container
    )
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
        "layout": layout,
        "seed": seed,
        "samples": len(profile),
        "distinct_measured": len(means.configs),
        "samples_per_app": [int(c) for c in (profile.alloc > 0).sum(axis=0)],
        "fit_seconds": round(fit_seconds, 3),
    }
    if cv_folds:
        meta["cv"] = cross_validate(profile, kind=kind, folds=cv_folds, seed=seed, layout=layout)
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
    profile: Profile,
    *,
    kind: str = "gbr",
    folds: int = 5,
    seed: int = 0,
    layout: str = "joint",
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
        model = ThroughputModel(kind, seed=seed, layout=layout).fit(
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
        "layout": layout,
        "folds": folds,
        "grouped_by": "configuration",
        "per_container": _errors(truth[present], predicted[present]),
        "per_app": per_app,
        "node": _errors(node_truth, node_pred),
        "node_mean": round(float(node_truth.mean()), 5),
    }


__all__ = [
    "KINDS",
    "LAYOUTS",
    "MeasuredMeans",
    "ThroughputModel",
    "cross_validate",
    "fit_table",
    "measured_means",
]
