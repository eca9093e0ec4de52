"""Simulated infrastructure: node classes, user areas and user-to-node RTTs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmonia.model import InputError, Topology
from harmonia.sim import Infrastructure, load_infrastructure
from harmonia.sim.infra import RTT_MATRIX_LIMIT
from tests.builders import make_node


def test_generated_infrastructure_is_reproducible_and_classified() -> None:
    first = Infrastructure.generate(200, 5, seed=3)
    second = Infrastructure.generate(200, 5, seed=3)
    assert [n.name for n in first.nodes] == [n.name for n in second.nodes]
    assert len(first) == 200 and first.state.num_clusters == 5
    assert set(first.class_names) <= {
        "rpi4",
        "jetson-nano",
        "jetson-xavier-nx",
        "edge-server",
        "cloud-server",
        "cloud-gpu-server",
    }
    # class_index points every node at its own class
    assert all(
        first.class_names[c] == node.node_class
        for c, node in zip(first.class_index.tolist(), first.nodes, strict=True)
    )
    # GPU cloud hosts carry a NoSchedule taint: not open to ordinary tasks
    gpu = np.array([n.node_class == "cloud-gpu-server" for n in first.nodes])
    assert not first.open[gpu].any() and first.open[~gpu].all()
    # small systems get the full node×node matrix
    assert first.state.rtt_ms is not None and first.state.rtt_ms.shape == (200, 200)


def test_large_systems_get_no_full_matrix() -> None:
    infra = Infrastructure.generate(RTT_MATRIX_LIMIT + 1, 10, seed=0)
    assert infra.topology is None and infra.state.rtt_ms is None


def test_user_rtts_follow_the_link_bands() -> None:
    infra = Infrastructure.generate(400, 10, seed=1)  # clusters 0 and 5 are cloud
    areas = infra.areas(users_per_area=3, radius_km=10.0)
    assert len(areas) == 30 and areas.count == 10
    points = np.arange(len(areas))[:, None]
    nodes = np.arange(len(infra))[None, :]
    rtt = infra.user_rtt_ms(areas, points, nodes)
    assert rtt.shape == (30, 400)
    same_cluster = infra.state.cluster_id[None, :] == areas.area[:, None]
    edge = infra.edge[None, :]
    # same-site access (metro band): 5..15 ms base, ±10% jitter, < 1 ms of distance
    local = rtt[same_cluster & edge]
    assert local.min() >= 4.5 and local.max() <= 20.0
    # far cloud nodes: edge-to-cloud band 30..60 ms plus distance, within 30..120 ms
    far_cloud = rtt[~same_cluster & ~edge]
    assert far_cloud.min() >= 27.0 and far_cloud.max() <= 132.0
    # a pair always gets the same RTT
    again = infra.user_rtt_ms(areas, points[:5], nodes[:, :7])
    assert np.array_equal(again, rtt[:5, :7])


def test_given_topology_routes_users_through_their_gateway() -> None:
    nodes = [make_node("a", location=(50.0, 8.0)), make_node("b", location=(50.0, 8.5))]
    topology = Topology(["b", "a"], np.array([[0.0, 7.0], [7.0, 0.0]]))
    infra = Infrastructure.from_nodes(nodes, topology=topology)
    assert infra.topology is not None and infra.topology.names == ("a", "b")
    areas = infra.areas(users_per_area=1, radius_km=0.0)
    gateways = infra.gateways(areas)
    rtt = infra.user_rtt_ms(areas, [0, 0], [0, 1], gateways)
    # the area centre is the mean of a and b; either is the gateway, the other 7 ms away
    assert sorted(rtt.tolist()) == [infra.access_ms, infra.access_ms + 7.0]


def test_infrastructure_from_files(tmp_path: Path) -> None:
    nodes_file = tmp_path / "nodes.yaml"
    nodes_file.write_text(
        "nodes:\n"
        "  - {name: a, cluster: c, capacity: {cpu_m: 1000, memory_mib: 1024}}\n"
        "  - {name: b, cluster: c, capacity: {cpu_m: 2000, memory_mib: 2048}}\n"
    )
    (tmp_path / "rtt.txt").write_text("0 5\n5 0\n")
    (tmp_path / "index.json").write_text('{"a": 0, "b": 1}')
    infra = load_infrastructure(
        nodes_file, rtt_file=tmp_path / "rtt.txt", rtt_index=tmp_path / "index.json"
    )
    assert len(infra) == 2 and infra.given_topology
    assert infra.state.rtt_ms is not None and infra.state.rtt_ms[0, 1] == 5.0
    (tmp_path / "index.json").write_text('{"a": 0, "x": 1}')
    with pytest.raises(InputError, match="not in the RTT matrix"):
        load_infrastructure(
            nodes_file, rtt_file=tmp_path / "rtt.txt", rtt_index=tmp_path / "index.json"
        )
    with pytest.raises(InputError, match="file not found"):
        load_infrastructure(tmp_path / "missing.yaml")
