"""Topology: parsing the kubernetes-edge-scheduler text format, access, reordering,
haversine distances and the generated RTT matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harmonia.model import topology as topology_module
from harmonia.model.errors import HarmoniaError, InputError
from harmonia.model.generate import generate_nodes
from harmonia.model.node import GeoPoint, Node, NodeRole
from harmonia.model.resources import Resources
from harmonia.model.topology import (
    LINK_BASE_MS,
    Topology,
    UnknownNodeError,
    distance_rtt_ms,
    haversine_km,
)

MATRIX = """\
0 1.5 30
2 0 25.25
31 24 0
"""
INDEX = '{"b": 1, "a": 0, "c": 2}'

MUNICH = (48.1351, 11.5820)
BERLIN = (52.5200, 13.4050)
FRANKFURT = (50.1109, 8.6821)


def messages(exc: InputError) -> list[str]:
    return [str(e) for e in exc.errors]


def make_node(name: str, cluster: str, role: NodeRole, at: tuple[float, float] | None) -> Node:
    return Node(
        name=name,
        cluster=cluster,
        role=role,
        capacity=Resources(cpu_m=1000, memory_mib=1024),
        location=GeoPoint(lat=at[0], long=at[1]) if at else None,
    )


# -- parsing --------------------------------------------------------------------------------


def test_parse_orders_names_by_row_and_keeps_asymmetric_values() -> None:
    topo = Topology.from_matrix_text(MATRIX, INDEX)

    assert topo.names == ("a", "b", "c")
    assert topo.rtt("a", "b") == 1.5
    assert topo.rtt("b", "a") == 2.0  # measured RTTs need not be symmetric
    assert topo.rtt("b", "c") == 25.25
    assert topo.index_of("c") == 2
    assert topo.rtt_ms.dtype == np.float32
    assert len(topo) == 3 and "a" in topo and "z" not in topo


def test_parse_skips_blank_and_comment_lines() -> None:
    text = "# rtt in ms\n\n0 4\n  \n5 0\n"
    topo = Topology.from_matrix_text(text, '{"x": 0, "y": 1}')
    assert topo.rtt("x", "y") == 4.0 and topo.rtt("y", "x") == 5.0


@pytest.mark.parametrize(
    ("matrix", "index", "expected"),
    [
        ("0 1 2\n1 0\n2 1 0\n", INDEX, ["matrix line 2: expected 3 values, got 2"]),
        ("0 x 2\n1 0 1\n2 1 0\n", INDEX, ["matrix line 1: value 2 'x' is not a number"]),
        ("0 -1 2\n1 0 1\n2 1 0\n", INDEX, ["matrix line 1: value 2 is -1.0, must be >= 0"]),
        ("0 nan 2\n1 0 1\n2 1 0\n", INDEX, ["matrix line 1: value 2 is nan, must be finite"]),
        (
            "0 1 2\n1 1.5 1\n2 1 0\n",
            INDEX,
            ["matrix line 2: value 2 is 1.5, the diagonal must be 0"],
        ),
        # line numbers count the skipped comment line, as an editor does
        ("# c\n0 1 2\n1 0 1\n2 1\n", INDEX, ["matrix line 4: expected 3 values, got 2"]),
        ("\n\n", "{}", ["matrix: has no rows"]),
        (
            MATRIX,
            '{"a": 0, "b": 1, "edge-1": 7}',
            ['index["edge-1"]: row 7 out of range 0..2', "index: rows without a node name: 2"],
        ),
        (
            MATRIX,
            '{"a": 0, "b": 0, "c": 2}',
            [
                'index["b"]: row 0 is already taken by "a"',
                "index: rows without a node name: 1",
            ],
        ),
        (
            MATRIX,
            '{"a": 0, "a": 1, "c": 2}',
            [
                'index["a"]: node name appears more than once',
                "index: rows without a node name: 1",
            ],
        ),
        (
            MATRIX,
            '{"a": "0", "b": 1.0, "c": true}',
            [
                'index["a"]: row must be an integer, got "0"',
                'index["b"]: row must be an integer, got 1.0',
                'index["c"]: row must be an integer, got true',
                "index: rows without a node name: 0, 1, 2",
            ],
        ),
        (
            MATRIX,
            '{"": 0, "b": 1, "c": 2}',
            [
                'index[""]: node name must not be empty',
                "index: rows without a node name: 0",
            ],
        ),
        (MATRIX, '["a", "b", "c"]', ["index: must be a JSON object mapping node name to row"]),
    ],
)
def test_malformed_input_names_the_place(matrix: str, index: str, expected: list[str]) -> None:
    with pytest.raises(InputError) as info:
        Topology.from_matrix_text(matrix, index)
    assert messages(info.value) == expected


def test_invalid_json_is_reported_with_the_parser_message() -> None:
    with pytest.raises(InputError) as info:
        Topology.from_matrix_text(MATRIX, '{"a": 0,')
    [error] = info.value.errors
    assert error.path == "index" and error.message.startswith("is not valid JSON: ")


def test_every_problem_is_reported_at_once_with_the_source() -> None:
    with pytest.raises(InputError) as info:
        Topology.from_matrix_text("0 1 2\n1 0\n2 -3 0\n", '{"a": 0, "b": 9}', source="rtt.txt")
    assert messages(info.value) == [
        "matrix line 2: expected 3 values, got 2",
        "matrix line 3: value 2 is -3.0, must be >= 0",
        'index["b"]: row 9 out of range 0..2',
        "index: rows without a node name: 1, 2",
    ]
    assert str(info.value).startswith("rtt.txt: 4 validation errors")


def test_error_list_is_capped() -> None:
    n = 30
    matrix = "\n".join(" ".join(["0"] * (n - 1)) for _ in range(n))
    index = json.dumps({f"n{i}": i for i in range(n)})
    with pytest.raises(InputError) as info:
        Topology.from_matrix_text(matrix, index)
    assert len(info.value.errors) == 21
    assert str(info.value.errors[-1]) == "... and 10 more"


# -- writing --------------------------------------------------------------------------------


def test_text_round_trip_is_exact() -> None:
    topo = Topology.from_matrix_text(MATRIX, INDEX)
    again = Topology.from_matrix_text(topo.to_matrix_text(), topo.to_index_json())
    assert again == topo
    assert topo.to_matrix_text().splitlines()[0] == "0 1.5 30"
    assert json.loads(topo.to_index_json()) == {"a": 0, "b": 1, "c": 2}


def test_values_that_need_nine_digits_round_trip_too() -> None:
    values = np.array([[0, 1 / 3, 123456.789], [np.pi, 0, 1e-7], [2 / 3, 7, 0]], np.float32)
    topo = Topology(["a", "b", "c"], values)
    again = Topology.from_matrix_text(topo.to_matrix_text(), topo.to_index_json())
    assert np.array_equal(again.rtt_ms, values)


def test_generated_topology_round_trips_through_text() -> None:
    nodes = generate_nodes(40, clusters=3, seed=2)
    topo = Topology.generate(nodes, np.random.default_rng(2))
    again = Topology.from_matrix_text(topo.to_matrix_text(), topo.to_index_json())
    assert again == topo


# -- construction and access ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "matrix", "expected"),
    [
        (
            ["a", "b"],
            [[0, 1, 2], [1, 0, 2]],
            ["rtt_ms: must have shape (2, 2) for 2 names, got (2, 3)"],
        ),
        (["a", "b"], [[0, -1], [1, 0]], ["rtt_ms[0][1]: is -1.0, must be >= 0"]),
        (["a", "b"], [[0, np.inf], [1, 0]], ["rtt_ms[0][1]: is inf, must be finite"]),
        (["a", "b"], [[0, 1], [1, 2]], ["rtt_ms[1][1]: is 2.0, the diagonal must be 0"]),
        (["a", "a"], [[0, 1], [1, 0]], ["names[1]: 'a' repeats names[0]"]),
        (["a", ""], [[0, 1], [1, 0]], ["names[1]: must be a non-empty string"]),
    ],
)
def test_constructor_validates(
    names: list[str], matrix: list[list[float]], expected: list[str]
) -> None:
    with pytest.raises(InputError) as info:
        Topology(names, matrix)
    assert messages(info.value) == expected


def test_matrix_is_read_only_but_the_callers_array_is_not() -> None:
    values = np.zeros((2, 2), np.float32)
    topo = Topology(["a", "b"], values)
    with pytest.raises(ValueError, match="read-only"):
        topo.rtt_ms[0, 1] = 5
    values[0, 1] = 5  # the caller keeps a writable array
    assert not topo.rtt_ms.flags.writeable


def test_unknown_node_is_a_harmonia_error_and_a_key_error() -> None:
    topo = Topology.from_matrix_text(MATRIX, INDEX)
    with pytest.raises(UnknownNodeError, match="'z' is not in the topology") as info:
        topo.rtt("a", "z")
    assert isinstance(info.value, HarmoniaError) and isinstance(info.value, KeyError)


def test_reorder_selects_and_permutes_rows_and_columns() -> None:
    topo = Topology.from_matrix_text(MATRIX, INDEX)
    sub = topo.reorder(["c", "a"])
    assert sub.names == ("c", "a")
    # c→a was 31 and a→c was 30 in the original
    assert sub.rtt_ms.tolist() == [[0, 31], [30, 0]]
    assert topo.reorder(["a", "b", "c"]) is topo


def test_reorder_names_every_missing_or_repeated_node() -> None:
    topo = Topology.from_matrix_text(MATRIX, INDEX)
    with pytest.raises(InputError) as info:
        topo.reorder(["a", "x", "y"])
    assert messages(info.value) == ["nodes: 2 not in the topology: 'x', 'y'"]
    with pytest.raises(InputError) as info:
        topo.reorder(["a", "b", "a"])
    assert messages(info.value) == ["nodes: repeated: 'a'"]


# -- distances ------------------------------------------------------------------------------


def test_haversine_munich_berlin_is_about_504_km() -> None:
    km = float(haversine_km(*MUNICH, *BERLIN))
    assert km == pytest.approx(504, rel=0.01)


def test_haversine_broadcasts_and_keeps_float32() -> None:
    lat = np.array([MUNICH[0], BERLIN[0], FRANKFURT[0]], np.float32)
    lon = np.array([MUNICH[1], BERLIN[1], FRANKFURT[1]], np.float32)
    km = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    assert km.shape == (3, 3) and km.dtype == np.float32
    assert np.allclose(km, km.T) and not np.diagonal(km).any()
    assert km[0, 1] == pytest.approx(504, rel=0.01)
    # half the circumference between antipodes
    assert float(haversine_km(0.0, 0.0, 0.0, 180.0)) == pytest.approx(np.pi * 6371.0088)


def test_distance_term_is_round_trip_over_detoured_fiber() -> None:
    # 2 × 500 km × 1.5 / 200 km/ms = 7.5 ms
    assert float(distance_rtt_ms(500)) == pytest.approx(7.5)


# -- generate -------------------------------------------------------------------------------


def kinds_of(nodes: list[Node], km: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of pair kinds, following the precedence Topology.generate documents."""
    cluster = np.array([n.cluster for n in nodes])
    edge = np.array([n.role is NodeRole.EDGE for n in nodes])
    same = cluster[:, None] == cluster[None, :]
    off_diagonal = ~np.eye(len(nodes), dtype=bool)
    return {
        "site": same & (km < 1) & off_diagonal,
        "metro_in_cluster": same & (km >= 1),
        "backbone": ~same & ~edge[:, None] & ~edge[None, :],
        "edge-cloud": ~same & (edge[:, None] != edge[None, :]),
        "edge-edge": ~same & edge[:, None] & edge[None, :] & (km >= 50),
    }


@pytest.fixture(scope="module")
def generated() -> tuple[list[Node], Topology, np.ndarray]:
    nodes = generate_nodes(300, clusters=6, seed=11)  # cloud-0, edge-1..4, cloud-5
    topo = Topology.generate(nodes, np.random.default_rng(11), jitter=0.1)
    lat = np.array([n.location.lat for n in nodes if n.location])
    lon = np.array([n.location.long for n in nodes if n.location])
    km = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    return nodes, topo, km


def test_generated_matrix_is_symmetric_float32_with_zero_diagonal(
    generated: tuple[list[Node], Topology, np.ndarray],
) -> None:
    nodes, topo, _ = generated
    m = topo.rtt_ms
    assert topo.names == tuple(n.name for n in nodes)
    assert m.dtype == np.float32 and m.shape == (300, 300)
    assert np.array_equal(m, m.T)
    assert not np.diagonal(m).any()
    assert (m[~np.eye(300, dtype=bool)] > 0).all()


def test_generated_rtts_fall_in_their_link_bands(
    generated: tuple[list[Node], Topology, np.ndarray],
) -> None:
    nodes, topo, km = generated
    m = topo.rtt_ms.astype(np.float64)
    dist = distance_rtt_ms(km)
    kinds = kinds_of(nodes, km)
    bands = {
        "site": LINK_BASE_MS["site"],
        "metro_in_cluster": LINK_BASE_MS["metro"],
        "backbone": LINK_BASE_MS["backbone"],
        "edge-cloud": LINK_BASE_MS["edge-cloud"],
        "edge-edge": LINK_BASE_MS["edge-edge"],
    }
    for kind, (low, high) in bands.items():
        mask = kinds[kind]
        assert mask.any(), kind
        lower = (low + dist[mask]) * 0.9 - 0.002  # jitter 10%, rounding to 1 µs
        upper = (high + dist[mask]) * 1.1 + 0.002
        assert (m[mask] >= lower).all() and (m[mask] <= upper).all(), kind


def test_edge_nodes_of_one_cluster_are_within_20_ms(
    generated: tuple[list[Node], Topology, np.ndarray],
) -> None:
    nodes, topo, _ = generated
    edge1 = [i for i, n in enumerate(nodes) if n.cluster == "edge-1"]
    block = topo.rtt_ms[np.ix_(edge1, edge1)]
    assert len(edge1) == 50 and block.max() < 20


def test_edge_to_cloud_is_slower_than_within_a_cluster(
    generated: tuple[list[Node], Topology, np.ndarray],
) -> None:
    nodes, topo, _ = generated
    # edge-1 is Munich, cloud-0 Frankfurt (~300 km): 30..60 ms base + ~4.5 ms distance
    munich = [i for i, n in enumerate(nodes) if n.cluster == "edge-1"]
    frankfurt = [i for i, n in enumerate(nodes) if n.cluster == "cloud-0"]
    block = topo.rtt_ms[np.ix_(munich, frankfurt)]
    assert block.min() >= 30 * 0.9 and block.max() <= (60 + 5) * 1.1


def test_distance_term_matches_haversine(monkeypatch: pytest.MonkeyPatch) -> None:
    # Zero-width bands and no jitter leave rtt = base + distance term, so the inlined
    # distance of generate() can be checked against haversine_km.
    monkeypatch.setattr(
        topology_module, "LINK_BASE_MS", {kind: (1.0, 1.0) for kind in LINK_BASE_MS}
    )
    cities = [MUNICH, BERLIN, FRANKFURT, (-33.8688, 151.2093), (40.7128, -74.0060)]
    nodes = [make_node(f"n{i}", f"c{i}", NodeRole.EDGE, at) for i, at in enumerate(cities)]
    topo = Topology.generate(nodes, np.random.default_rng(0), jitter=0.0)
    lat = np.array([c[0] for c in cities])
    lon = np.array([c[1] for c in cities])
    expected = 1.0 + distance_rtt_ms(haversine_km(lat[:, None], lon[:, None], lat, lon))
    np.fill_diagonal(expected, 0)
    assert np.allclose(topo.rtt_ms, expected, rtol=1e-5, atol=2e-3)


def test_generate_is_deterministic_for_a_seed_across_block_boundaries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topology_module, "_BLOCK_ELEMENTS", 512)  # many small blocks
    nodes = generate_nodes(300, clusters=4, seed=3)
    a = Topology.generate(nodes, np.random.default_rng(5))
    b = Topology.generate(nodes, np.random.default_rng(5))
    c = Topology.generate(nodes, np.random.default_rng(6))
    assert a == b and a != c
    assert np.array_equal(a.rtt_ms, a.rtt_ms.T) and not np.diagonal(a.rtt_ms).any()


def test_nodes_without_location_sit_at_their_clusters_centre() -> None:
    nodes = [
        make_node("a", "x", NodeRole.CLOUD, FRANKFURT),
        make_node("b", "x", NodeRole.CLOUD, None),
        make_node("c", "y", NodeRole.CLOUD, None),
    ]
    topo = Topology.generate(nodes, np.random.default_rng(0), jitter=0.0)
    site_low, site_high = LINK_BASE_MS["site"]
    assert site_low <= topo.rtt("a", "b") <= site_high  # same cluster, same place
    assert topo.rtt("a", "c") <= LINK_BASE_MS["backbone"][1]  # c falls back to all nodes' mean


def test_generate_rejects_bad_jitter_and_repeated_names() -> None:
    node = make_node("a", "x", NodeRole.EDGE, MUNICH)
    with pytest.raises(InputError, match=r"jitter: must be in \[0, 1\), got 1.5"):
        Topology.generate([node], np.random.default_rng(0), jitter=1.5)
    with pytest.raises(InputError, match="names\\[1\\]: 'a' repeats names\\[0\\]"):
        Topology.generate([node, node], np.random.default_rng(0))


def test_generate_handles_no_nodes() -> None:
    topo = Topology.generate([], np.random.default_rng(0))
    assert len(topo) == 0 and topo.rtt_ms.shape == (0, 0)
    assert topo.to_matrix_text() == ""
