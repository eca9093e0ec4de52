"""``harmonia place-batch``: the documented JSON, and clear refusals of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harmonia.sched.interference.table import InterferenceTable, configurations
from tests.cli.conftest import Invoke


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    configs = configurations(3, 4)
    x = configs.astype(float)
    per_container = (1.0 - 0.1 * (x.sum(axis=1, keepdims=True) - 1)) * (x > 0)
    per_container[:, 1] *= 1.0 - 0.2 * x[:, 0]  # b suffers beside a
    table = InterferenceTable(
        configs, np.clip(per_container, 0, None), np.ones(len(configs), bool), 4, ("a", "b", "c")
    )
    table_path = tmp_path / "table.npz"
    table.save(table_path)
    batches_path = tmp_path / "batches.npz"
    np.savez(batches_path, batch_set=np.array([[2, 2, 1], [1, 3, 2], [4, 0, 0]]))
    rules_path = tmp_path / "rules.csv"
    rules_path.write_text("app_s,app_c,less_or_lager,threshold\n2,1,0,0\n")
    return table_path, batches_path, rules_path


@pytest.mark.parametrize("policy", ["round-robin", "paragon", "medea", "interference"])
def test_writes_the_documented_json(
    cli: Invoke, files: tuple[Path, Path, Path], policy: str
) -> None:
    table, batches, rules = files
    run = cli(
        "place-batch", "--profile", table, "--batches", batches, "--rows", "0-2",
        "--nodes", 3, "--capacity", 4, "--policy", policy, "--rules", rules,
        "--time-limit", 5, "--out", "out.json",
    )  # fmt: skip
    run.assert_clean()
    assert run.code == 0, run.err
    document = json.loads(Path("out.json").read_text())
    assert [r["row"] for r in document["rows"]] == [0, 1, 2]
    expected = [[2, 2, 1], [1, 3, 2], [4, 0, 0]]
    for row, want in zip(document["rows"], expected, strict=True):
        placement = np.array(row["placement"])
        assert placement.shape == (3, 3)
        assert placement.sum(axis=0).tolist() == want
        assert (placement.sum(axis=1) <= 4).all()
        assert 0 < row["modelled_throughput"] <= 1.0
        assert row["seconds"] >= 0
        assert isinstance(row["violations"], int)
        assert row["measured_throughput"] == pytest.approx(row["modelled_throughput"])
    assert "3 batch(es) placed" in run.err


def test_interference_is_best_on_the_cli(cli: Invoke, files: tuple[Path, Path, Path]) -> None:
    table, batches, _ = files
    means = {}
    for policy in ("round-robin", "interference"):
        out = f"{policy}.json"
        run = cli(
            "place-batch", "--profile", table, "--batches", batches, "--rows", "0,1",
            "--nodes", 3, "--capacity", 4, "--policy", policy, "--out", out,
        )  # fmt: skip
        assert run.code == 0, run.err
        rows = json.loads(Path(out).read_text())["rows"]
        means[policy] = [r["modelled_throughput"] for r in rows]
    assert all(o >= r for o, r in zip(means["interference"], means["round-robin"], strict=True))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("0-9", "row 9 is past the file's 3 rows"),
        ("2-1", "ranges run from a low row"),
        ("x", "is not a row or a range"),
    ],
)
def test_rejects_bad_rows(
    cli: Invoke, files: tuple[Path, Path, Path], rows: str, message: str
) -> None:
    table, batches, _ = files
    run = cli(
        "place-batch", "--profile", table, "--batches", batches, "--rows", rows,
        "--nodes", 3, "--policy", "interference", "--capacity", 4, "--out", "o.json",
    )  # fmt: skip
    run.assert_clean()
    assert run.code == 2
    assert "--rows" in run.err and message in run.err
    assert not Path("o.json").exists()


def test_rejects_bad_files_and_options(cli: Invoke, files: tuple[Path, Path, Path]) -> None:
    table, batches, _ = files
    base = ["place-batch", "--rows", "0", "--capacity", 4, "--out", "o.json"]
    run = cli(*base, "--profile", "missing.npz", "--batches", batches, "--nodes", 3,
              "--policy", "interference")  # fmt: skip
    assert run.code == 2 and "no such file" in run.err
    run = cli(*base, "--profile", table, "--batches", batches, "--nodes", 3, "--policy", "x")
    assert run.code == 2 and "unknown policy" in run.err
    run = cli(*base, "--profile", table, "--batches", batches, "--nodes", 1,
              "--policy", "interference")  # fmt: skip
    run.assert_clean()
    assert run.code == 2 and "do not fit" in run.err
    Path("bad.npz").write_text("not a zip")
    run = cli(*base, "--profile", table, "--batches", "bad.npz", "--nodes", 3,
              "--policy", "interference")  # fmt: skip
    run.assert_clean()
    assert run.code == 2


def test_fit_interference_saves_a_table_and_reports_its_error(cli: Invoke, tmp_path: Path) -> None:
    from harmonia.sched.interference.data import make_profile, save_profile

    grid = configurations(3, 4)[1:]
    alloc = np.repeat(grid, 2, axis=0)
    per_container = np.where(alloc > 0, 1.0 - 0.1 * (alloc.sum(axis=1, keepdims=True) - 1), np.nan)
    profile = tmp_path / "profile.npz"
    save_profile(make_profile(alloc, per_container, ("a", "b", "c")), profile)
    run = cli(
        "fit-interference", "--profile", profile, "--capacity", 4, "--folds", 3,
        "--out", tmp_path / "t.npz",
    )  # fmt: skip
    assert run.code == 0, run.err
    report = json.loads(run.stdout)
    assert report["configurations"] == len(configurations(3, 4))
    assert report["measured"] == len(grid)
    assert 0 <= report["cv"]["per_container"]["mae"] < 0.15  # 34 configurations only
    table = InterferenceTable.load(tmp_path / "t.npz")
    assert table.throughput([[2, 1, 0]])[0] == pytest.approx(3 * 0.8)
    bad = cli("fit-interference", "--profile", profile, "--model", "svm", "--out", "x.npz")
    assert bad.code == 2 and "--model" in bad.err
