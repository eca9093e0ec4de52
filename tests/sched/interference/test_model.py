"""Throughput models on a small synthetic profile with known interference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmonia.model import InputError
from harmonia.sched.interference.data import FloatArray, IntArray, Profile, make_profile
from harmonia.sched.interference.model import (
    ThroughputModel,
    cross_validate,
    fit_table,
    measured_means,
)
from harmonia.sched.interference.table import InterferenceTable


def _truth(alloc: IntArray) -> FloatArray:
    """Per-container throughput of 3 apps: each loses 8% per other container, app 1
    gains 30% beside at least one app-0 container (affinity)."""
    total = alloc.sum(axis=1, keepdims=True)
    base = 1.0 - 0.08 * (total - 1)
    boost = np.ones_like(base) * np.array([[1.0, 1.0, 1.0]])
    boost[:, 1] += 0.3 * (alloc[:, 0] > 0)
    return np.where(alloc > 0, base * boost, np.nan)


def _profile(repeats: int = 2, capacity: int = 4) -> Profile:
    rng = np.random.default_rng(1)
    grid = np.array(
        [
            (a, b, c)
            for a in range(capacity + 1)
            for b in range(capacity + 1)
            for c in range(capacity + 1)
            if 0 < a + b + c <= capacity
        ]
    )
    alloc = np.repeat(grid, repeats, axis=0)
    rps = _truth(alloc) + rng.normal(0, 0.01, alloc.shape)
    return make_profile(alloc, rps, ("x", "y", "z"), capacity=capacity)


def test_measured_means_average_repeats() -> None:
    profile = make_profile(
        [[1, 0], [1, 0], [1, 1]], [[1.0, np.nan], [0.8, np.nan], [0.5, 0.4]], ("a", "b")
    )
    means = measured_means(profile)
    np.testing.assert_array_equal(means.configs, [[1, 0], [1, 1]])
    np.testing.assert_allclose(means.per_container, [[0.9, np.nan], [0.5, 0.4]])
    np.testing.assert_array_equal(means.repeats, [2, 1])


@pytest.mark.parametrize("layout", ["joint", "per_app"])
@pytest.mark.parametrize("kind", ["gbr", "forest"])
def test_model_learns_interference(kind: str, layout: str) -> None:
    profile = _profile()
    model = ThroughputModel(kind, seed=0, layout=layout).fit(profile.alloc, profile.per_container)
    probe = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 2]])
    predicted = model.predict(probe)
    truth = np.nan_to_num(_truth(probe))
    np.testing.assert_allclose(predicted, truth, atol=0.08)
    assert predicted[0, 1] == 0.0  # absent apps predict nothing
    assert predicted[2, 1] > predicted[1, 1] + 0.1  # the affinity is learned


def test_fit_table_uses_measurements_and_predicts_the_rest() -> None:
    full = _profile(capacity=4)
    held_out = (full.alloc == [1, 1, 1]).all(axis=1)
    profile = make_profile(
        full.alloc[~held_out], full.per_container[~held_out], full.app_names, capacity=4
    )
    table = fit_table(profile, kind="forest", capacity=4, cv_folds=3)
    assert table.capacity == 4 and len(table.configs) == 35
    row = int(table.index([1, 0, 0]))
    assert table.measured[row]
    expected = measured_means(profile).per_container
    solo = (measured_means(profile).configs == [1, 0, 0]).all(axis=1)
    assert table.per_container[row, 0] == pytest.approx(float(expected[solo][0, 0]))
    unseen = int(table.index([1, 1, 1]))
    assert not table.measured[unseen]
    np.testing.assert_allclose(
        table.per_container[unseen], _truth(np.array([[1, 1, 1]]))[0], atol=0.1
    )
    assert table.per_container[int(table.index([0, 0, 0]))].sum() == 0.0
    assert (table.per_container >= 0).all()
    assert table.meta["kind"] == "forest" and table.meta["samples"] == len(profile)
    assert table.meta["layout"] == "joint"
    assert 0.0 < table.meta["cv"]["per_container"]["mae"] < 0.1


def test_table_round_trips(tmp_path: Path) -> None:
    table = fit_table(_profile(), kind="gbr", capacity=4, cv_folds=0)
    table.save(tmp_path / "t.npz")
    back = InterferenceTable.load(tmp_path / "t.npz")
    np.testing.assert_allclose(back.node_throughput, table.node_throughput)
    assert back.meta["kind"] == "gbr"


def test_cross_validation_groups_repeats() -> None:
    profile = _profile(repeats=3)
    report = cross_validate(profile, kind="forest", folds=4)
    assert report["per_container"]["n"] == int((profile.alloc > 0).sum())
    assert set(report["per_app"]) == {"x", "y", "z"}
    # unseen configurations of a smooth truth: small but non-zero error
    assert 0.0 < report["per_container"]["mae"] < 0.1
    assert report["node"]["rmse"] >= report["node"]["mae"] > 0.0


def test_bad_arguments() -> None:
    profile = _profile()
    with pytest.raises(InputError, match="kind"):
        fit_table(profile, kind="svm", capacity=4)
    with pytest.raises(InputError, match="exceed 3"):
        fit_table(profile, capacity=3)
    with pytest.raises(InputError, match="folds"):
        cross_validate(profile, folds=1)
    with pytest.raises(InputError, match="layout"):
        ThroughputModel("gbr", layout="stacked")
