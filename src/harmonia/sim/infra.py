"""Simulated infrastructure: the nodes, their ``ClusterState``, node classes, user areas
and round-trip times from users to nodes.

Built by :func:`harmonia.sim.scenario.run_scenario` (and by tests and benchmarks) in one
of two ways:

- :meth:`Infrastructure.generate`: ``nodes`` heterogeneous nodes over ``clusters``
  clusters from :func:`harmonia.model.generate_nodes` (same seed, same nodes);
- :meth:`Infrastructure.from_nodes`: a node list (e.g. ``harmonia nodes generate``
  output) with an optional RTT matrix between nodes (:class:`~harmonia.model.Topology`).

RTTs. A full node×node matrix is 4·n² bytes: 16 MB at 2,000 nodes but 625 MB at 12,500,
too much for the simulator's 2 GB budget. So the full matrix of
:meth:`Topology.generate <harmonia.model.Topology.generate>` is attached to the state
only up to :data:`RTT_MATRIX_LIMIT` nodes (for latency-aware policies), and what the
simulator itself needs — the RTT from a *user* to the node that serves it — is computed
on demand, vectorized, by :meth:`Infrastructure.user_rtt_ms`.

Users live in *areas*: one per cluster, at the cluster's location (its ``Cluster``
position, else the mean position of its nodes), each with ``users_per_area`` user points
scattered within ``area_radius_km`` (seeded). A user's RTT to a node follows the link
bands of :data:`harmonia.model.topology.LINK_BASE_MS`, the same bands ``Topology.generate``
uses between nodes:

- node in the user's own cluster, or any node within ``METRO_KM`` (50 km): ``metro``
  (5–15 ms base), the access network to a nearby site;
- a cloud node farther away: ``edge-cloud`` (30–60 ms base);
- an edge node of another cluster farther away: ``edge-edge`` (20–50 ms base);

RTT = (base + :func:`~harmonia.model.topology.distance_rtt_ms`) × (1 ± jitter). The base
and the jitter are drawn from a hash of (seed, user point, node), so a pair always gets
the same RTT without storing it. Munich user to a Frankfurt cloud node (~300 km), base
45 ms, jitter factor 0.97: (45 + 300 × 2 × 1.5 / 200) × 0.97 = (45 + 4.5) × 0.97 ≈ 48 ms —
inside the 30–120 ms edge-to-cloud band.

When an RTT matrix between nodes was loaded from files, users reach nodes through their
area's *gateway* (the node of the area's cluster nearest its centre):
RTT = ``access_ms`` + matrix[gateway, node].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harmonia.model import (
    Cluster,
    FieldError,
    InputError,
    Node,
    TaintEffect,
    Topology,
    generate_clusters,
    generate_nodes,
    haversine_km,
)
from harmonia.model.documents import load_document, parse_nodes
from harmonia.model.topology import LINK_BASE_MS, METRO_KM, distance_rtt_ms
from harmonia.sched import ClusterState
from harmonia.traces.source import read_text_file

RTT_MATRIX_LIMIT = 2_000
"""Largest node count for which the full node×node RTT matrix is generated and attached."""

DEFAULT_JITTER = 0.1
_KM_PER_DEGREE = 111.32

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

# Link kinds for user -> node, indexing the tables built from LINK_BASE_MS.
_KINDS = ("metro", "edge-cloud", "edge-edge")
_LOW = np.array([LINK_BASE_MS[k][0] for k in _KINDS], dtype=np.float64)
_WIDTH = np.array([LINK_BASE_MS[k][1] for k in _KINDS], dtype=np.float64) - _LOW


@dataclass(frozen=True)
class Areas:
    """User points: ``lat``/``long`` per point, ``area`` (= cluster index) per point."""

    lat: FloatArray
    long: FloatArray
    area: IntArray
    count: int  # number of areas

    def __len__(self) -> int:
        return len(self.lat)


@dataclass
class Infrastructure:
    """Nodes, their scheduling state and what the simulator derives from them."""

    nodes: list[Node]
    state: ClusterState
    seed: int = 0
    clusters: list[Cluster] = field(default_factory=list)
    topology: Topology | None = None  # node×node RTTs, when small enough or loaded
    given_topology: bool = False  # RTTs were given (files): users reach nodes via gateways
    access_ms: float = 2.0
    jitter: float = DEFAULT_JITTER
    class_names: list[str] = field(init=False)
    class_index: IntArray = field(init=False)  # per node, into class_names
    edge: BoolArray = field(init=False)
    open: BoolArray = field(init=False)  # no NoSchedule/NoExecute taint
    lat: FloatArray = field(init=False)
    long: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        state = self.state
        names = sorted({node.node_class or "unclassified" for node in self.nodes})
        self.class_names = names
        code = {name: i for i, name in enumerate(names)}
        self.class_index = np.array(
            [code[node.node_class or "unclassified"] for node in self.nodes], dtype=np.intp
        )
        self.edge = state.role == 0
        self.open = np.array(
            [
                not any(t.effect is not TaintEffect.PREFER_NO_SCHEDULE for t in node.taints)
                for node in self.nodes
            ],
            dtype=bool,
        )
        self.lat, self.long = _filled_positions(state)

    def __len__(self) -> int:
        return len(self.nodes)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        nodes: int,
        clusters: int = 1,
        seed: int = 0,
        *,
        rtt_matrix_limit: int = RTT_MATRIX_LIMIT,
    ) -> Infrastructure:
        """``nodes`` generated nodes over ``clusters`` clusters (see :mod:`harmonia.model`)."""
        node_list = generate_nodes(nodes, clusters, seed=seed)
        return cls.from_nodes(
            node_list,
            clusters=generate_clusters(clusters),
            seed=seed,
            rtt_matrix_limit=rtt_matrix_limit,
        )

    @classmethod
    def generate_sized(
        cls, sizes: Sequence[int], seed: int = 0, *, rtt_matrix_limit: int = RTT_MATRIX_LIMIT
    ) -> Infrastructure:
        """Generated clusters of the given sizes (cluster ``k`` gets ``sizes[k]`` nodes).

        :func:`~harmonia.model.generate_nodes` splits nodes evenly, so this generates
        ``max(sizes)`` per cluster and keeps the first ``sizes[k]`` of cluster ``k``: the
        same seed gives the same nodes, and a cluster's first nodes do not depend on the
        other clusters' sizes.
        """
        k = len(sizes)
        if k == 0 or min(sizes) < 1:
            raise InputError([FieldError("topology.cluster_sizes", "sizes must be >= 1")])
        largest = max(sizes)
        generated = generate_nodes(largest * k, k, seed=seed)
        kept: list[Node] = []
        for c, size in enumerate(sizes):
            kept.extend(generated[c * largest : c * largest + size])
        return cls.from_nodes(
            kept, clusters=generate_clusters(k), seed=seed, rtt_matrix_limit=rtt_matrix_limit
        )

    @classmethod
    def from_nodes(
        cls,
        nodes: Sequence[Node],
        *,
        clusters: Sequence[Cluster] = (),
        topology: Topology | None = None,
        seed: int = 0,
        rtt_matrix_limit: int = RTT_MATRIX_LIMIT,
    ) -> Infrastructure:
        """A node list, with ``topology`` (a loaded RTT matrix) if given; otherwise the
        generated matrix is attached when there are at most ``rtt_matrix_limit`` nodes."""
        node_list = list(nodes)
        if not node_list:
            raise InputError([FieldError("nodes", "must list at least one node")])
        state = ClusterState(node_list)
        given_topology = topology is not None
        if topology is not None:
            topology = topology.reorder(state.names)
        elif len(node_list) <= rtt_matrix_limit:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7E7]))
            topology = Topology.generate(node_list, rng)
        if topology is not None:
            state.attach_rtt(topology.names, topology.rtt_ms)
        return cls(
            nodes=node_list,
            state=state,
            seed=seed,
            clusters=list(clusters),
            topology=topology,
            given_topology=given_topology,
        )

    # -- users and RTT -------------------------------------------------------------------

    def areas(self, users_per_area: int = 1, radius_km: float = 10.0) -> Areas:
        """One area per cluster; ``users_per_area`` user points within ``radius_km``."""
        state = self.state
        k = state.num_clusters
        centre_lat = np.zeros(k)
        centre_long = np.zeros(k)
        known = {c.name: c.location for c in self.clusters if c.location is not None}
        for i, name in enumerate(state.cluster_names):
            location = known.get(name)
            if location is not None:
                centre_lat[i], centre_long[i] = location.lat, location.long
            else:
                members = state.cluster_id == i
                centre_lat[i] = float(self.lat[members].mean())
                centre_long[i] = float(self.long[members].mean())
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xA2EA]))
        area = np.repeat(np.arange(k, dtype=np.intp), users_per_area)
        u = rng.random((len(area), 2))
        radius = radius_km * np.sqrt(u[:, 0])
        bearing = 2 * np.pi * u[:, 1]
        lat = centre_lat[area] + radius * np.cos(bearing) / _KM_PER_DEGREE
        long = centre_long[area] + radius * np.sin(bearing) / (
            _KM_PER_DEGREE * np.maximum(np.cos(np.radians(centre_lat[area])), 1e-6)
        )
        return Areas(np.clip(lat, -90, 90), (long + 180.0) % 360.0 - 180.0, area, k)

    def gateways(self, areas: Areas) -> IntArray:
        """Per user point, the node of its area's cluster nearest to the point."""
        out = np.empty(len(areas), dtype=np.intp)
        for p in range(len(areas)):
            members = np.flatnonzero(self.state.cluster_id == areas.area[p])
            km = haversine_km(areas.lat[p], areas.long[p], self.lat[members], self.long[members])
            out[p] = members[int(np.argmin(km))]
        return out

    def user_rtt_ms(
        self,
        areas: Areas,
        points: npt.ArrayLike,
        nodes: npt.ArrayLike,
        gateways: IntArray | None = None,
    ) -> FloatArray:
        """RTT in ms from user points ``points`` to nodes ``nodes`` (broadcast together).

        See the module docstring for the model. ``gateways`` (from :meth:`gateways`) is
        needed when the topology was given.
        """
        p = np.asarray(points, dtype=np.intp)
        n = np.asarray(nodes, dtype=np.intp)
        p, n = np.broadcast_arrays(p, n)
        if self.given_topology and self.topology is not None:
            if gateways is None:
                gateways = self.gateways(areas)
            matrix = self.topology.rtt_ms
            return self.access_ms + matrix[gateways[p], n].astype(np.float64)
        km = haversine_km(areas.lat[p], areas.long[p], self.lat[n], self.long[n])
        kind = np.where(self.edge[n], 2, 1)
        near = (km < METRO_KM) | (self.state.cluster_id[n] == areas.area[p])
        kind = np.where(near, 0, kind)
        u1, u2 = _pair_uniforms(self.seed, p, n)
        base = _LOW[kind] + _WIDTH[kind] * u1
        factor = 1.0 - self.jitter + 2.0 * self.jitter * u2
        rtt: FloatArray = (base + distance_rtt_ms(km)) * factor
        return rtt


def load_infrastructure(
    nodes_file: Path,
    *,
    rtt_file: Path | None = None,
    rtt_index: Path | None = None,
    seed: int = 0,
) -> Infrastructure:
    """Nodes from a node-list file (YAML/JSON, as ``harmonia nodes generate`` writes) and an
    optional RTT matrix (whitespace-separated, ms) with its JSON index (name -> row)."""
    nodes = parse_nodes(load_document(read_text_file(nodes_file), str(nodes_file)), str(nodes_file))
    topology = None
    if (rtt_file is None) != (rtt_index is None):
        raise InputError([FieldError("topology.rtt_index", "rtt_file and rtt_index go together")])
    if rtt_file is not None and rtt_index is not None:
        topology = Topology.from_matrix_text(
            read_text_file(rtt_file), read_text_file(rtt_index), source=f"{rtt_file} / {rtt_index}"
        )
        missing = [node.name for node in nodes.nodes if node.name not in topology]
        if missing:
            shown = ", ".join(repr(name) for name in missing[:5])
            raise InputError(
                [FieldError("index", f"{len(missing)} nodes not in the RTT matrix: {shown}")],
                str(rtt_index),
            )
    return Infrastructure.from_nodes(
        nodes.nodes, clusters=nodes.clusters, topology=topology, seed=seed
    )


def _filled_positions(state: ClusterState) -> tuple[FloatArray, FloatArray]:
    """Node positions; a node without one sits at its cluster's mean (or the overall mean)."""
    lat, long = state.lat.copy(), state.long.copy()
    missing = np.isnan(lat)
    if missing.any():
        located = ~missing
        fallback = (
            (float(lat[located].mean()), float(long[located].mean())) if located.any() else (0, 0)
        )
        for c in range(state.num_clusters):
            members = state.cluster_id == c
            known = members & located
            fill = (
                (float(lat[known].mean()), float(long[known].mean())) if known.any() else fallback
            )
            lat[members & missing], long[members & missing] = fill
    return lat, long


def _pair_uniforms(seed: int, points: IntArray, nodes: IntArray) -> tuple[FloatArray, FloatArray]:
    """Two uniforms in [0, 1) per (point, node) pair, a pure function of seed and pair.

    SplitMix64's finalizer over ``seed ⊕ point·2⁴⁰ ⊕ node``; the high and low 26 bits of
    the result give the two uniforms.
    """
    with np.errstate(over="ignore"):
        z = (
            np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
            + (points.astype(np.uint64) << np.uint64(40))
            + nodes.astype(np.uint64)
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    scale = 1.0 / (1 << 26)
    u1 = (z >> np.uint64(38)).astype(np.float64) * scale
    u2 = (z & np.uint64((1 << 26) - 1)).astype(np.float64) * scale
    return u1, u2


__all__ = [
    "RTT_MATRIX_LIMIT",
    "Areas",
    "Infrastructure",
    "load_infrastructure",
]
