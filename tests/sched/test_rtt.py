"""RTT sources: matrix and coordinate rows, radius queries against a brute-force loop,
reordering to a state's node order, and the static-file loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harmonia.model import InputError
from harmonia.model.topology import Topology
from harmonia.sched.rtt import (
    ZERO_TIME_MS,
    CoordinateRtt,
    MatrixRtt,
    RadiusIndex,
    RttSource,
    cluster_diameters,
    delay_clusters,
    estimation_error,
    fit_vivaldi,
    from_goldpinger,
    load_rtt,
    sample_pairs,
)
from harmonia.sched.rtt import source as source_module

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


# -- Vivaldi -------------------------------------------------------------------------------


def plane_samples(n: int, per_node: int, seed: int = 0) -> tuple[list[str], np.ndarray, tuple]:
    names, points = plane(n, seed)
    truth = distance_matrix(points)
    i, j = sample_pairs(n, per_node=per_node, seed=seed)
    return names, truth, (i, j, truth[i, j])


def test_vivaldi_fits_a_planar_metric_from_sparse_samples() -> None:
    names, truth, samples = plane_samples(120, per_node=8)
    fitted = fit_vivaldi(120, samples, names=names, dims=2, rounds=300, seed=1)

    assert fitted.names == tuple(names)
    error = estimation_error(fitted, truth)
    assert error.pairs == 120 * 119  # small n: every ordered pair, not a sample
    # points in a plane embed exactly; what remains is the sparse sampling and jitter
    assert error.p50 < 0.05
    assert error.p90 < 0.15


def test_vivaldi_is_deterministic_for_a_seed() -> None:
    names, _, samples = plane_samples(60, per_node=6)
    a = fit_vivaldi(60, samples, names=names, dims=2, rounds=50, seed=7)
    b = fit_vivaldi(60, samples, names=names, dims=2, rounds=50, seed=7)
    c = fit_vivaldi(60, samples, names=names, dims=2, rounds=50, seed=8)
    assert np.array_equal(a.coords, b.coords) and np.array_equal(a.heights, b.heights)
    assert not np.array_equal(a.coords, c.coords)


def test_vivaldi_heights_absorb_access_delay() -> None:
    # A star: every leaf 10 ms from the hub, 20 ms from every other leaf; in one
    # dimension only heights (access links) can express it.
    n = 8
    truth = np.full((n, n), 20.0)
    truth[0, :] = truth[:, 0] = 10.0
    np.fill_diagonal(truth, 0.0)
    i, j = np.triu_indices(n, 1)
    fitted = fit_vivaldi(n, (i, j, truth[i, j]), dims=1, rounds=600, seed=0)
    assert estimation_error(fitted, truth).p90 < 0.1
    assert fitted.heights[1:].mean() > 3.0  # leaves sit high, not spread along the line


def test_vivaldi_places_unmeasured_nodes_and_rejects_bad_samples() -> None:
    fitted = fit_vivaldi(3, ([0], [1], [5.0]), rounds=20)
    assert len(fitted) == 3 and np.isfinite(fitted.row(2)).all()

    with pytest.raises(InputError) as info:
        fit_vivaldi(3, ([0, 1, 2], [1, 5, 2], [5.0, -1.0, 3.0]))
    assert {e.path for e in info.value.errors} == {"samples.j[1]", "samples.rtt_ms[1]"}
    with pytest.raises(InputError, match="against itself"):
        fit_vivaldi(3, ([0, 2], [1, 2], [5.0, 3.0]))


def test_sample_pairs_are_unique_and_cover_every_node() -> None:
    i, j = sample_pairs(200, per_node=5, seed=3)
    assert (i < j).all()
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == i.size
    degree = np.bincount(np.concatenate([i, j]), minlength=200)
    assert degree.min() >= 5
    assert np.array_equal(sample_pairs(200, per_node=5, seed=3)[0], i)
    all_i, _ = sample_pairs(10, per_node=50)
    assert all_i.size == 45
    dense_i, dense_j = sample_pairs(50, per_node=20, seed=1)  # per_node² > n: other path
    assert np.bincount(np.concatenate([dense_i, dense_j]), minlength=50).min() >= 20


def test_sample_pairs_adds_probes_inside_each_group() -> None:
    groups = np.repeat([0, 1, 2, 3], 50)
    i, j = sample_pairs(200, per_node=1, seed=0, groups=groups, local=4)
    same = groups[i] == groups[j]
    assert same.sum() >= 200 * 4 * 0.8  # a few local probes coincide and are merged
    local_degree = np.bincount(np.concatenate([i[same], j[same]]), minlength=200)
    assert local_degree.min() >= 3


def test_estimation_error_samples_big_sources_and_skips_zero_truth() -> None:
    source = coordinate_source(300)
    exact = estimation_error(source, source.to_matrix(), sample=1000, seed=1)
    assert exact.pairs == 1000 and exact.p99 == 0.0 and exact.mean_abs_ms == 0.0
    doubled = CoordinateRtt(source.names, source.coords * 2, source.heights * 2)
    error = estimation_error(doubled, source, sample=1000)
    assert error.p50 == pytest.approx(1.0, rel=1e-4)
    truth = np.zeros((3, 3))
    assert estimation_error(MatrixRtt(["a", "b", "c"], truth), truth).pairs == 0


# -- Goldpinger ----------------------------------------------------------------------------


def goldpinger_result(host: str, ms: float | None, ok: bool = True) -> dict[str, object]:
    result: dict[str, object] = {
        "HostIP": host,
        "OK": ok,
        "PodIP": "100.64.0.9",
        "PingTime": "2024-05-02T10:00:00.000Z",
        "status-code": 200 if ok else 504,
        "response": {"boot_time": "2024-05-01T08:00:00.000Z"},
    }
    if ms is not None:
        result["response-time-ms"] = ms
    return result


HOSTS = {"10.0.0.1": "edge-a", "10.0.0.2": "edge-b", "10.0.0.3": "cloud-c"}


def goldpinger_document(times: dict[tuple[str, str], float | None]) -> dict[str, object]:
    """A ``/check_all`` body for pods gp-1..gp-3 on hosts 10.0.0.1..3; ``None`` = failed."""
    pods = {f"gp-{k}": f"10.0.0.{k}" for k in (1, 2, 3)}
    responses = {}
    for pod, host in pods.items():
        results = {pod: goldpinger_result(host, 0)}  # Goldpinger checks itself too
        for other, other_host in pods.items():
            if (pod, other) in times:
                ms = times[(pod, other)]
                results[other] = goldpinger_result(other_host, ms, ok=ms is not None)
        responses[pod] = {"HostIP": host, "OK": True, "response": {"podResults": results}}
    return {"responses": responses}


def test_goldpinger_full_mesh_gives_a_symmetric_matrix() -> None:
    times: dict[tuple[str, str], float | None] = {
        ("gp-1", "gp-2"): 3,
        ("gp-2", "gp-1"): 5,
        ("gp-1", "gp-3"): 40,
        ("gp-3", "gp-1"): 42,
        ("gp-2", "gp-3"): 0,  # below integer-ms resolution
    }
    imported = from_goldpinger(json.dumps(goldpinger_document(times)), HOSTS)

    assert imported.names == ("cloud-c", "edge-a", "edge-b")
    assert imported.complete and imported.failed == ()
    matrix = imported.matrix
    assert matrix is not None and imported.source() is not None
    assert matrix.matrix.tolist() == [[0, 41, ZERO_TIME_MS], [41, 0, 4], [ZERO_TIME_MS, 4, 0]]


def test_goldpinger_partial_mesh_gives_samples_and_failed_pairs() -> None:
    times: dict[tuple[str, str], float | None] = {("gp-1", "gp-2"): 3, ("gp-1", "gp-3"): None}
    document = goldpinger_document(times)
    # older versions: snake_case time, lower-case hostIP
    result = document["responses"]["gp-1"]["response"]["podResults"]["gp-2"]  # type: ignore[index]
    result["response_time_ms"] = result.pop("response-time-ms")
    imported = from_goldpinger(document)  # no host map: nodes are pod names

    assert imported.names == ("gp-1", "gp-2", "gp-3")
    assert not imported.complete and imported.matrix is None
    assert imported.samples.i.tolist() == [0] and imported.samples.rtt_ms.tolist() == [3.0]
    assert imported.failed == (("gp-1", "gp-3"),)
    assert isinstance(imported.source(rounds=10), CoordinateRtt)


def test_goldpinger_errors_name_the_json_path() -> None:
    document = goldpinger_document({("gp-1", "gp-2"): 3, ("gp-2", "gp-3"): 4})
    results = document["responses"]["gp-1"]["response"]["podResults"]  # type: ignore[index]
    results["gp-2"]["response-time-ms"] = "fast"
    document["responses"]["gp-3"]["response"] = {}  # type: ignore[index]
    document["responses"]["gp-2"]["HostIP"] = "10.9.9.9"  # type: ignore[index]

    with pytest.raises(InputError) as info:
        from_goldpinger(document, HOSTS)
    assert [str(e) for e in info.value.errors] == [
        'responses["gp-1"].response.podResults["gp-2"]["response-time-ms"]: '
        'must be a non-negative number, got "fast"',
        "responses[\"gp-2\"].HostIP: '10.9.9.9' is not in the host-to-node map",
        'responses["gp-3"].response.podResults: must be an object',
    ]
    with pytest.raises(InputError, match="responses: must be an object"):
        from_goldpinger({"hosts": []})
    with pytest.raises(InputError, match="not valid JSON"):
        from_goldpinger("{")


# -- delay clusters and the radius index ---------------------------------------------------


def brute_max_pair(matrix: np.ndarray, members: np.ndarray) -> float:
    worst = 0.0
    for a in members.tolist():
        for b in members.tolist():
            worst = max(worst, float(matrix[a, b]))
    return worst


@pytest.mark.parametrize("bound", [0.0, 8.0, 25.0, 80.0])
def test_delay_clusters_keep_every_pair_within_the_bound(bound: float) -> None:
    for source in (coordinate_source(80, seed=2), matrix_source(80, seed=2)):
        labels = delay_clusters(source, bound)
        matrix = source.to_matrix()
        assert labels.min() == 0 and set(labels.tolist()) == set(range(labels.max() + 1))
        for c in range(labels.max() + 1):
            assert brute_max_pair(matrix, np.flatnonzero(labels == c)) <= np.float32(bound)
        assert (cluster_diameters(source, labels) <= np.float32(bound)).all()


def test_delay_clusters_respect_asymmetric_rtts_and_group_close_nodes() -> None:
    matrix = np.array([[0, 2, 9, 9], [2, 0, 8, 9], [9, 8, 0, 1], [9, 9, 1, 0]], dtype=float)
    assert delay_clusters(MatrixRtt("abcd", matrix), 5).tolist() == [0, 0, 1, 1]
    matrix[0, 1] = 7  # one direction over the bound splits the pair
    assert delay_clusters(MatrixRtt("abcd", matrix), 5).tolist() == [0, 1, 2, 2]
    assert delay_clusters(MatrixRtt("abcd", matrix), 100).tolist() == [0, 0, 0, 0]


def test_radius_index_equals_within_for_cached_and_other_radii() -> None:
    for source in (coordinate_source(150, seed=4), matrix_source(150, seed=4)):
        index = RadiusIndex(source, [10.0, 30.0])
        queries = np.arange(0, 150, 7)
        for radius in (10.0, 30.0, 0.0, 17.5, 500.0):
            expected = np.stack([source.within(int(x), radius) for x in queries])
            assert np.array_equal(index.within_many(queries, radius), expected)
            assert np.array_equal(index.within(3, radius), source.within(3, radius))
        labels = index.labels(10.0)
        assert (cluster_diameters(source, labels) <= 10.0).all()
        near = index.clusters_within(5, 30.0)
        assert near.size >= 1  # node 5's own cluster at least
        for c in near.tolist():
            assert source.within(5, 30.0)[index.labels(30.0) == c].all()


def test_symmetry_is_known_for_coordinates_and_checked_for_matrices() -> None:
    assert coordinate_source(5).symmetric
    assert matrix_source(30).symmetric
    matrix = distance_matrix(plane(30)[1])
    matrix[27, 3] += 1.0  # below the diagonal, in a tile of its own when tiles are small
    assert not MatrixRtt(plane(30)[0], matrix).symmetric
    assert not source_module._is_symmetric(matrix.astype(np.float32), tile=4)
    assert source_module._is_symmetric(np.float32(matrix + matrix.T), tile=4)
