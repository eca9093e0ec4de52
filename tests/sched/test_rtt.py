"""RTT sources: matrix and coordinate rows, radius queries against a brute-force loop,
reordering to a state's node order, and the static-file loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmonia.model import InputError
from harmonia.model.topology import Topology
from harmonia.sched.rtt import CoordinateRtt, MatrixRtt, RttSource, load_rtt

# -- fixtures ---------------------------------------------------------------------------


def plane(n: int, seed: int = 0, size: float = 100.0) -> tuple[list[str], np.ndarray]:
    """``n`` named points in a square; the "true" RTT is their Euclidean distance."""
    rng = np.random.default_rng(seed)
    return [f"n{i}" for i in range(n)], rng.random((n, 2)) * size


def distance_matrix(points: np.ndarray) -> np.ndarray:
    return np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1))


def coordinate_source(n: int = 60, seed: int = 0) -> CoordinateRtt:
    rng = np.random.default_rng(seed)
    names = [f"n{i}" for i in range(n)]
    return CoordinateRtt(names, rng.normal(0, 20, (n, 3)), rng.random(n) * 3)


def matrix_source(n: int = 60, seed: int = 0) -> MatrixRtt:
    names, points = plane(n, seed)
    return MatrixRtt(names, distance_matrix(points))


def brute_within(source: RttSource, i: int, radius: float) -> list[bool]:
    return [float(np.float32(source.rtt(i, j))) <= np.float32(radius) for j in range(len(source))]


# -- rows and radius queries -------------------------------------------------------------


@pytest.mark.parametrize("make", [matrix_source, coordinate_source])
def test_within_equals_a_brute_force_loop(make: object) -> None:
    assert callable(make)
    source: RttSource = make()
    for i in (0, 7, 59):
        for radius in (0.0, 5.0, 25.0, 40.5, 1e9, -1.0):
            assert source.within(i, radius).tolist() == brute_within(source, i, radius)


def test_within_all_is_the_intersection_of_radius_queries() -> None:
    source = matrix_source()
    expected = source.within(3, 40.0) & source.within(9, 40.0) & source.within(12, 40.0)
    assert source.within_all([3, 9, 12], 40.0).tolist() == expected.tolist()
    assert source.within_all([], 1.0).all()


def test_coordinate_rows_are_symmetric_with_zero_diagonal_and_match_the_model() -> None:
    source = coordinate_source()
    matrix = source.to_matrix()
    assert np.array_equal(matrix, matrix.T)  # exactly, not approximately
    assert not np.diagonal(matrix).any()
    x, h = source.coords.astype(np.float64), source.heights.astype(np.float64)
    assert source.rtt(4, 11) == pytest.approx(np.linalg.norm(x[4] - x[11]) + h[4] + h[11], 1e-5)
    assert np.array_equal(source.rows([11, 4]), matrix[[11, 4]])
    assert np.array_equal(source.row(4), matrix[4])


def test_coordinates_must_be_finite_with_non_negative_heights() -> None:
    with pytest.raises(InputError) as info:
        CoordinateRtt(["a", "b"], [[0, np.nan], [1, 1]], [0, -1])
    assert {e.path for e in info.value.errors} == {"coords", "heights"}


def test_reorder_follows_state_order_keeps_values_and_names_missing_nodes() -> None:
    for source in (matrix_source(5), coordinate_source(5)):
        reordered = source.reorder(["n3", "n0", "n4"])
        assert reordered.names == ("n3", "n0", "n4")
        assert reordered.rtt(0, 1) == pytest.approx(source.rtt(3, 0))
        assert reordered.rtt(2, 0) == pytest.approx(source.rtt(4, 3))
        assert source.reorder(source.names) is source
        with pytest.raises(InputError, match="2 not in the RTT source: 'x', 'y'"):
            source.reorder(["n0", "x", "y"])
        with pytest.raises(InputError, match="repeated: 'n1'"):
            source.reorder(["n1", "n1"])


def test_matrix_source_rejects_bad_matrices_naming_the_cell() -> None:
    with pytest.raises(InputError) as info:
        MatrixRtt(["a", "b"], [[0, -3], [1, 2]])
    assert [e.path for e in info.value.errors] == ["matrix[0][1]", "matrix[1][1]"]
    with pytest.raises(InputError, match="must be 3 × 3"):
        MatrixRtt(["a", "b", "c"], np.zeros((2, 2)))


def test_matrix_source_wraps_topology_and_state_without_copying() -> None:
    topology = Topology(["a", "b"], [[0, 4], [5, 0]])
    source = MatrixRtt.from_topology(topology)
    assert source.rtt(1, 0) == 5.0
    assert np.shares_memory(source.matrix, topology.rtt_ms)


def test_load_rtt_reads_static_files_and_names_the_unreadable_file(tmp_path: Path) -> None:
    matrix, index = tmp_path / "rtt.txt", tmp_path / "index.json"
    matrix.write_text("0 2.5\n3 0\n")
    index.write_text('{"edge-1": 1, "cloud-0": 0}')
    source = load_rtt(matrix, index)
    assert source.names == ("cloud-0", "edge-1")
    assert source.rtt(source.index_of("edge-1"), 0) == 3.0

    with pytest.raises(InputError) as info:
        load_rtt(matrix, tmp_path / "missing.json")
    assert info.value.errors[0].path == str(tmp_path / "missing.json")

    matrix.write_text("0 2.5\n3\n")
    with pytest.raises(InputError, match="matrix line 2"):
        load_rtt(matrix, index)
