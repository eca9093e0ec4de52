"""Synthetic infrastructure: node lists and clusters that simulations and benchmarks use."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from harmonia.model.errors import InputError
from harmonia.model.generate import (
    CITIES,
    GPU_TAINT,
    NODE_CLASSES,
    generate_clusters,
    generate_nodes,
    generate_nodes_from,
    system_reserved,
)
from harmonia.model.node import Node, NodeRole
from harmonia.model.topology import haversine_km

NAME = re.compile(r"^c(\d+)-(edge|cloud)-(\d{4,})$")


@pytest.fixture(scope="module")
def six_clusters() -> list[Node]:
    return generate_nodes(600, clusters=6, seed=4)


def test_count_and_unique_well_formed_names(six_clusters: list[Node]) -> None:
    assert len(six_clusters) == 600
    assert len({n.name for n in six_clusters}) == 600
    for node in six_clusters:
        match = NAME.match(node.name)
        assert match, node.name
        cluster_index, role, _ = match.groups()
        assert role == node.role.value
        assert node.cluster.endswith(f"-{cluster_index}")


def test_same_seed_same_list_other_seed_other_list() -> None:
    assert generate_nodes(120, clusters=3, seed=9) == generate_nodes(120, clusters=3, seed=9)
    assert generate_nodes(120, clusters=3, seed=9) != generate_nodes(120, clusters=3, seed=10)


def test_rng_variant_matches_the_seeded_one() -> None:
    from_rng = generate_nodes_from(np.random.default_rng(9), 120, clusters=3)
    assert from_rng == generate_nodes(120, clusters=3, seed=9)


def test_clusters_alternate_one_cloud_in_five_and_split_nodes_evenly(
    six_clusters: list[Node],
) -> None:
    per_cluster = Counter(n.cluster for n in six_clusters)
    expected = ["cloud-0", "edge-1", "edge-2", "edge-3", "edge-4", "cloud-5"]
    assert sorted(per_cluster) == sorted(expected)
    assert set(per_cluster.values()) == {100}
    assert [c.name for c in generate_clusters(6)] == expected
    for node in six_clusters:
        assert node.role.value == node.cluster.split("-")[0]


def test_both_roles_and_every_class_appear(six_clusters: list[Node]) -> None:
    assert {n.role for n in six_clusters} == {NodeRole.EDGE, NodeRole.CLOUD}
    assert {n.node_class for n in six_clusters} == {c.name for c in NODE_CLASSES}


def test_uneven_split_gives_the_remainder_to_the_first_clusters() -> None:
    counts = Counter(n.cluster for n in generate_nodes(11, clusters=3, seed=0))
    assert counts == {"cloud-0": 4, "edge-1": 4, "edge-2": 3}


def test_one_cluster_is_a_single_mixed_cluster() -> None:
    nodes = generate_nodes(200, seed=1)
    assert {n.cluster for n in nodes} == {"cluster-0"}
    roles = Counter(n.role for n in nodes)
    assert roles[NodeRole.EDGE] > roles[NodeRole.CLOUD] > 0  # about 4 edge to 1 cloud
    [cluster] = generate_clusters(1)
    assert cluster.name == "cluster-0" and cluster.location is not None


def test_allocatable_is_capacity_less_system_reservations(six_clusters: list[Node]) -> None:
    for node in six_clusters:
        cap, alloc = node.capacity, node.allocatable
        assert alloc is not None and alloc.fits_in(cap)
        cpu_reserved, memory_reserved = system_reserved(cap.cpu_m, cap.memory_mib)
        assert alloc.cpu_m == cap.cpu_m - cpu_reserved < cap.cpu_m
        assert alloc.memory_mib == cap.memory_mib - memory_reserved < cap.memory_mib
        assert alloc.storage_mib == cap.storage_mib * 9 // 10
        assert alloc.gpu == cap.gpu


@pytest.mark.parametrize(
    ("cpu_m", "memory_mib", "expected"),
    [
        # cpu 6% of 1000 + 1% of 1000 + 0.5% of 2000 = 60 + 10 + 10 = 80
        # memory 25% of 4096 = 1024, + 100 eviction = 1124
        (4000, 4096, (80, 1124)),
        # cpu 80 + 0.25% of 92000 = 310; memory 1024 + 819.2 + 819.2 + 6% of 114688
        # (6881.28) + 2% of 262144 (5242.88) = 14786.56 -> 14787, + 100 = 14887
        (96000, 393216, (310, 14887)),
        # half a core: 6% of 500 = 30; 1 GiB: 25% = 256, + 100
        (500, 1024, (30, 356)),
    ],
)
def test_system_reserved_follows_gke_tiers(
    cpu_m: int, memory_mib: int, expected: tuple[int, int]
) -> None:
    assert system_reserved(cpu_m, memory_mib) == expected


def test_hardware_classes_have_realistic_shapes(six_clusters: list[Node]) -> None:
    for node in six_clusters:
        cap = node.capacity
        if node.node_class == "rpi4":
            assert (cap.cpu_m, cap.gpu) == (4000, 0) and cap.memory_mib in (4096, 8192)
            assert cap.storage_mib in (32 * 1024, 64 * 1024)
            assert cap.bandwidth_in_kbps == 1_000_000
        elif node.node_class.startswith("jetson"):
            assert cap.gpu == 1 and 4000 <= cap.cpu_m <= 6000 and cap.memory_mib <= 8192
        elif node.node_class == "edge-server":
            assert 8000 <= cap.cpu_m <= 16000 and 16 * 1024 <= cap.memory_mib <= 32 * 1024
        elif node.node_class == "cloud-server":
            assert 32000 <= cap.cpu_m <= 96000 and cap.memory_mib == cap.cpu_m * 4096 // 1000
            assert cap.gpu == 0
        else:
            assert node.node_class == "cloud-gpu-server" and cap.gpu in (4, 8)


def test_labels_describe_the_node(six_clusters: list[Node]) -> None:
    for node in six_clusters:
        labels = node.labels
        assert labels["kubernetes.io/hostname"] == node.name
        assert labels["topology.kubernetes.io/zone"] == node.cluster
        assert labels["harmonia.io/node-class"] == node.node_class
        assert labels["harmonia.io/role"] == node.role.value
        assert labels["harmonia.io/gpu"] == ("true" if node.capacity.gpu else "false")
        assert ("nvidia.com/gpu.product" in labels) == (node.capacity.gpu > 0)
        arm = node.node_class in ("rpi4", "jetson-nano", "jetson-xavier-nx")
        assert labels["kubernetes.io/arch"] == ("arm64" if arm else "amd64")


def test_only_cloud_gpu_servers_are_tainted(six_clusters: list[Node]) -> None:
    for node in six_clusters:
        expected = (GPU_TAINT,) if node.node_class == "cloud-gpu-server" else ()
        assert node.taints == expected
    tainted = sum(1 for n in six_clusters if n.taints)
    assert 0 < tainted < len(six_clusters) // 10


def test_nodes_lie_around_their_cluster_centre(six_clusters: list[Node]) -> None:
    centres = {c.name: c.location for c in generate_clusters(6)}
    for node in six_clusters:
        centre = centres[node.cluster]
        assert node.location is not None and centre is not None
        km = float(haversine_km(centre.lat, centre.long, node.location.lat, node.location.long))
        limit = 20.0 if node.role is NodeRole.EDGE else 0.2
        assert km <= limit * 1.01, (node.name, km)


def test_clusters_sit_at_real_cities_and_reused_cities_are_shifted() -> None:
    clusters = generate_clusters(50)  # 10 cloud clusters, but only 8 data-centre cities
    by_name = {c.name: c for c in clusters}
    frankfurt = next(c for c in CITIES if c.name == "frankfurt")
    first, reused = by_name["cloud-0"].location, by_name["cloud-40"].location
    assert first is not None and reused is not None
    assert (first.lat, first.long) == (frankfurt.lat, frankfurt.long)
    km = float(haversine_km(first.lat, first.long, reused.lat, reused.long))
    assert km == pytest.approx(15, rel=0.02)
    assert "frankfurt" in by_name["cloud-40"].description
    assert len({(c.location.lat, c.location.long) for c in clusters if c.location}) == 50


@pytest.mark.parametrize(
    ("count", "clusters", "message"),
    [
        (2, 3, "count: must be >= clusters (3), got 2"),
        (5, 0, "clusters: must be >= 1, got 0"),
    ],
)
def test_impossible_counts_are_input_errors(count: int, clusters: int, message: str) -> None:
    with pytest.raises(InputError) as info:
        generate_nodes(count, clusters=clusters)
    assert [str(e) for e in info.value.errors] == [message]
