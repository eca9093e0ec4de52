"""Loading and checking profiles, rules and batches (hand-made fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmonia.model import InputError
from harmonia.sched.interference.data import (
    load_batches,
    load_profile,
    load_rules,
    make_profile,
    save_profile,
)

ALLOC = np.array([[1, 0, 0], [2, 0, 0], [1, 1, 0], [0, 2, 1]])
RPS = np.array(
    [[1.0, np.nan, np.nan], [0.9, np.nan, np.nan], [0.8, 0.7, np.nan], [np.nan, 0.5, 1.2]]
)
NAMES = ("a", "b", "c")


def test_profile_round_trips_through_npz_and_csv(tmp_path: Path) -> None:
    profile = make_profile(ALLOC, RPS, NAMES)
    for name in ("p.npz", "p.csv"):
        save_profile(profile, tmp_path / name)
        back = load_profile(tmp_path / name)
        assert back.app_names == NAMES
        np.testing.assert_array_equal(back.alloc, ALLOC)
        np.testing.assert_allclose(back.per_container, RPS, equal_nan=True)
    # node throughput = sum of per-container throughput x containers
    np.testing.assert_allclose(profile.node_throughput, [1.0, 1.8, 1.5, 2.2])


def test_metis_style_npz_without_names(tmp_path: Path) -> None:
    alloc = np.zeros((2, 7), dtype=np.int64)
    alloc[0, 0] = 1
    alloc[1, 6] = 3
    rps = np.where(alloc > 0, 0.5, np.nan)
    np.savez(tmp_path / "m.npz", alloc=alloc, rps=rps, rt_50=rps)
    profile = load_profile(tmp_path / "m.npz")
    assert profile.app_names[0] == "redis" and profile.app_names[6] == "isr"
    assert len(profile) == 2


def test_csv_header_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("alloc_a,rps_b\n1,1.0\n")
    with pytest.raises(InputError, match="header"):
        load_profile(path)
    path.write_text("alloc_a,rps_a\nx,1.0\n")
    with pytest.raises(InputError, match="line 2"):
        load_profile(path)


@pytest.mark.parametrize(
    ("alloc", "rps", "field"),
    [
        ([[-1, 1, 0]], [[1.0, 1.0, np.nan]], r"alloc\[0\]"),
        ([[0, 0, 0]], [[np.nan] * 3], r"alloc\[0\]"),
        ([[5, 4, 0]], [[1.0, 1.0, np.nan]], "exceed capacity 8"),
        ([[1, 1, 0]], [[1.0, np.nan, np.nan]], r"rps\[0\]\[1\]"),
        ([[1, 1, 0]], [[1.0, -0.1, np.nan]], r"rps\[0\]\[1\]"),
    ],
)
def test_bad_profiles_name_the_field(alloc: object, rps: object, field: str) -> None:
    with pytest.raises(InputError, match=field):
        make_profile(np.array(alloc), np.array(rps), NAMES)


def test_profile_shape_mismatch_and_missing_keys(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="rps"):
        make_profile(ALLOC, RPS[:, :2], NAMES)
    np.savez(tmp_path / "x.npz", alloc=ALLOC)
    with pytest.raises(InputError, match="rps: missing"):
        load_profile(tmp_path / "x.npz")
    with pytest.raises(InputError, match="cannot read"):
        load_profile(tmp_path / "absent.npz")


def test_rules_are_zero_based(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text("app_s,app_c,less_or_lager,threshold\n1,1,0,2\n2,1,1,1\n")
    rules = load_rules(path)
    assert [(r.app_s, r.app_c, r.kind, r.threshold) for r in rules] == [
        (0, 0, "at_most", 2),
        (1, 0, "at_least", 1),
    ]
    path.write_text("app_s,app_c,less_or_lager,threshold\n8,1,2,9\n")
    with pytest.raises(InputError) as info:
        load_rules(path)
    message = str(info.value)
    assert "app_s: must be 1..7" in message
    assert "less_or_lager" in message and "threshold" in message


def test_batches(tmp_path: Path) -> None:
    rows = np.array([[1, 2, 3, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 5]])
    np.savez(tmp_path / "b.npz", batch_set=rows)
    np.testing.assert_array_equal(load_batches(tmp_path / "b.npz"), rows)
    np.savez(tmp_path / "neg.npz", batch_set=-rows)
    with pytest.raises(InputError, match=r"batch_set\[0\]"):
        load_batches(tmp_path / "neg.npz")
    np.savez(tmp_path / "shape.npz", batch_set=rows[:, :3])
    with pytest.raises(InputError, match="shape"):
        load_batches(tmp_path / "shape.npz")
    np.savez(tmp_path / "frac.npz", batch_set=rows + 0.5)
    with pytest.raises(InputError, match="whole numbers"):
        load_batches(tmp_path / "frac.npz")
