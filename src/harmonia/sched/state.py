"""``ClusterState``: the cluster as numpy columns, the storage every policy works on.

Capacity, allocatable, allocated and free amounts are ``(nodes, resources)`` int64 arrays
in column-major order, so one resource over all nodes is a contiguous vector; role,
cluster, health and coordinates are per-node vectors; labels are coded per key so any
selector becomes a boolean mask; taints are masks per distinct taint; instance counts
per service are float64 vectors (whole numbers; float so scores need no conversion).
Reserving and releasing change one row in place. RTTs between nodes come from an
:class:`~harmonia.sched.rtt.RttSource` (:attr:`ClusterState.rtt`), and named user areas
(:class:`Area`, :attr:`ClusterState.areas`) are the reference points of latency
constraints with an ``area``.

Built by the simulator, the control plane's cluster manager and the Kubernetes adapter
from their node lists; read and updated by :mod:`harmonia.sched.scheduler` and the plugins.
Node objects are rebuilt from the columns on demand (:meth:`ClusterState.node`).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from harmonia.model import (
    RESOURCE_NAMES,
    GeoPoint,
    HarmoniaError,
    Node,
    NodeRole,
    PlacementRequest,
    Resources,
    Taint,
)
from harmonia.sched.rtt import MatrixRtt, RttSource

NUM_RESOURCES = len(RESOURCE_NAMES)
CHANGE_LOG_LIMIT = 1 << 14
CPU, MEMORY = RESOURCE_NAMES.index("cpu_m"), RESOURCE_NAMES.index("memory_mib")
RESOURCE_UNITS: tuple[str, ...] = ("m", "Mi", "", "Mi", "kbps", "kbps")
ROLE_CODES: dict[NodeRole, int] = {NodeRole.EDGE: 0, NodeRole.CLOUD: 1}

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class NodeRow(NamedTuple):
    """One node's amounts as Python numbers, for row-local plugins' scalar path.

    ``free`` and ``allocated`` are the state's own lists, which reserve and release
    update in place: read them, never write them, and do not keep them as a snapshot.
    """

    node: int
    free: list[int]
    allocated: list[int]
    allocatable: list[int]
    divisor: list[int]  # allocatable with 0 replaced by 1
    schedulable: bool
    taints: tuple[Taint, ...]


class StateError(HarmoniaError):
    """An operation names a node that does not exist or would break the state's invariants."""


@dataclass
class LabelColumn:
    """One label key over all nodes: ``codes[i]`` is the code of node i's value, -1 if absent."""

    codes: npt.NDArray[np.int32]
    values: dict[str, int] = field(default_factory=dict)

    def equals(self, value: str) -> BoolArray:
        code = self.values.get(value)
        if code is None:
            return np.zeros(self.codes.shape[0], dtype=bool)
        mask: BoolArray = self.codes == code
        return mask

    def isin(self, values: Iterable[str]) -> BoolArray:
        codes = [self.values[v] for v in values if v in self.values]
        if not codes:
            return np.zeros(self.codes.shape[0], dtype=bool)
        return np.isin(self.codes, codes)

    def exists(self) -> BoolArray:
        return self.codes >= 0


@dataclass(frozen=True)
class Area:
    """A named user area: the points where its users are (Oakestra's latency ``area``).

    A latency constraint with ``area`` holds on a node when the estimated RTT from *every*
    point is within the threshold (see :mod:`harmonia.sched.plugins.latency`), so an area
    of one point is a user location and a city can be given by a few of its districts.
    """

    name: str
    points: tuple[GeoPoint, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise StateError("an area needs a name")
        if not self.points:
            raise StateError(f"area {self.name!r} needs at least one point")


def request_amounts(request: PlacementRequest) -> list[int]:
    """The request's amounts in :data:`RESOURCE_NAMES` order."""
    # NOTE: read the fields directly; building a Resources model costs more than the
    # rest of the fit filter on a 1,000-node state.
    return [
        request.cpu_m,
        request.memory_mib,
        request.gpu,
        request.storage_mib,
        request.bandwidth_in_kbps,
        request.bandwidth_out_kbps,
    ]


def request_vector(request: PlacementRequest) -> IntArray:
    """The request's amounts as an int64 vector in :data:`RESOURCE_NAMES` order."""
    return np.array(request_amounts(request), dtype=np.int64)


class ClusterState:
    """Columns describing every node of one scheduling domain (a cluster or all clusters)."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        names = [node.name for node in nodes]
        self.names: list[str] = names
        self.index: dict[str, int] = {name: i for i, name in enumerate(names)}
        if len(self.index) != len(names):
            dup = next(name for name, count in Counter(names).items() if count > 1)
            raise StateError(f"duplicate node name {dup!r}")
        n = len(nodes)
        self.capacity: IntArray = np.asfortranarray(
            np.array([node.capacity.as_tuple() for node in nodes], dtype=np.int64).reshape(
                n, NUM_RESOURCES
            )
        )
        self.allocatable: IntArray = np.asfortranarray(
            np.array(
                [node.allocatable_or_capacity.as_tuple() for node in nodes], dtype=np.int64
            ).reshape(n, NUM_RESOURCES)
        )
        # Divisor for per-node shares; a zero allocatable scores as "nothing left".
        self.allocatable_nonzero: IntArray = np.maximum(self.allocatable, 1)
        self.allocated: IntArray = np.zeros((n, NUM_RESOURCES), dtype=np.int64, order="F")
        # NOTE: free = allocatable - allocated is kept as its own column, updated on every
        # reserve/release, because the fit filter reads it on every decision.
        self.free: IntArray = self.allocatable.copy(order="F")
        # NOTE: float64 mirrors of the amounts the vectorized scores read. Scoring a new
        # request shape converts whole int64 columns otherwise, a third of its cost at
        # 12,500 nodes. Amounts stay below 2**53, so every mirror value is exact and the
        # scores equal those computed from the int64 columns. The mirrors follow the
        # change log lazily (see free_f): reserve and release, far more frequent than new
        # shapes, do not pay for them.
        self._free_f: FloatArray = self.free.astype(np.float64, order="F")
        self._allocated_f: FloatArray = np.zeros((n, NUM_RESOURCES), dtype=np.float64, order="F")
        self._mirror_epoch = 0
        self._mirror_seen = 0
        self.allocatable_f: FloatArray = self.allocatable.astype(np.float64, order="F")
        self.divisor_f: FloatArray = self.allocatable_nonzero.astype(np.float64, order="F")
        # Allocatable amounts never change after construction; the scalar rows of
        # row() share these lists rather than convert the strided rows each time.
        self._allocatable_rows: list[list[int]] = self.allocatable.tolist()
        self._divisor_rows: list[list[int]] = self.allocatable_nonzero.tolist()
        #: The largest allocatable amount of any node, per resource (as Python ints in
        #: ``max_allocatable_amounts`` for scalar checks).
        self.max_allocatable: IntArray = (
            self.allocatable.max(axis=0) if n else np.zeros(NUM_RESOURCES, dtype=np.int64)
        )
        self.max_allocatable_amounts: list[int] = self.max_allocatable.tolist()
        self.role = np.array([ROLE_CODES[node.role] for node in nodes], dtype=np.int8)
        self.cluster_names: list[str] = sorted({node.cluster for node in nodes})
        cluster_codes = {name: i for i, name in enumerate(self.cluster_names)}
        self.cluster_id = np.array([cluster_codes[node.cluster] for node in nodes], dtype=np.intp)
        # Node lists usually come grouped by cluster; then a per-cluster vector expands to
        # nodes with np.repeat over the blocks, cheaper than a gather through cluster_id.
        starts = np.flatnonzero(np.diff(self.cluster_id, prepend=-1)) if n else np.zeros(0, int)
        self._block_cluster = self.cluster_id[starts]
        self._block_sizes = np.diff(np.append(starts, n))
        self.clusters_contiguous = len(starts) == len(self.cluster_names)
        self.node_class: list[str] = [node.node_class for node in nodes]
        self.healthy = np.ones(n, dtype=bool)
        self.cordoned = np.array([node.unschedulable for node in nodes], dtype=bool)
        self.lat = np.array(
            [node.location.lat if node.location else np.nan for node in nodes], dtype=np.float64
        )
        self.long = np.array(
            [node.location.long if node.location else np.nan for node in nodes], dtype=np.float64
        )
        self.labels: dict[str, LabelColumn] = {}
        self._node_labels: list[dict[str, str]] = []
        for i, node in enumerate(nodes):
            self._node_labels.append(dict(node.labels))
            for key, value in node.labels.items():
                column = self.labels.get(key)
                if column is None:
                    column = LabelColumn(np.full(n, -1, dtype=np.int32))
                    self.labels[key] = column
                column.codes[i] = column.values.setdefault(value, len(column.values))
        self.taints: dict[Taint, BoolArray] = {}
        self._node_taints: list[tuple[Taint, ...]] = [node.taints for node in nodes]
        for i, node in enumerate(nodes):
            for taint in node.taints:
                if taint not in self.taints:
                    self.taints[taint] = np.zeros(n, dtype=bool)
                self.taints[taint][i] = True
        self.service_counts: dict[str, FloatArray] = {}
        self.service_cluster_counts: dict[str, FloatArray] = {}
        # Maxima of the two above per service; missing means "recompute when asked".
        self._top: dict[str, float] = {}
        self._cluster_top: dict[str, float] = {}
        # Per service, since the epoch began: the nodes it newly runs on (count 0 -> 1),
        # in order, and how often a node stopped running it (1 -> 0). Consumers that
        # follow where a service runs read these instead of scanning the change log.
        self._hosts_added: dict[str, list[int]] = {}
        self._hosts_lost: dict[str, int] = {}
        # RTTs between nodes in state order. ``rtt`` is what plugins read; ``rtt_ms`` is
        # the same numbers as a matrix when the source is one (None for coordinates,
        # which avoid n² memory), kept for hosts that read the matrix directly.
        self.rtt: RttSource | None = None
        self.rtt_ms: npt.NDArray[np.float32] | None = None
        # Named user areas, the references of latency constraints with an ``area``.
        self.areas: dict[str, Area] = {}
        # Rows changed since the last epoch, for incremental re-scoring (see Scheduler).
        # The log is dropped and the epoch bumped when it grows past CHANGE_LOG_LIMIT.
        self.changes: list[int] = []
        self.epoch = 0
        self._rows: dict[int, NodeRow] = {}
        # The free and allocated rows as Python lists, which reserve and release update
        # in place: a NodeRow holds them, so it stays current through placements and is
        # built again only when the node's health or cordon changes.
        self._free_rows: list[list[int]] = self.free.tolist()
        self._allocated_rows: list[list[int]] = self.allocated.tolist()
        self._cluster_of: list[int] = self.cluster_id.tolist()
        self._refresh_schedulable()

    # -- shape and derived columns -------------------------------------------------

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_clusters(self) -> int:
        return len(self.cluster_names)

    def _refresh_schedulable(self) -> None:
        self.schedulable: BoolArray = self.healthy & ~self.cordoned

    def node_index(self, name: str) -> int:
        try:
            return self.index[name]
        except KeyError:
            raise StateError(f"unknown node {name!r}") from None

    def label_mask(self, key: str, value: str) -> BoolArray:
        column = self.labels.get(key)
        if column is None:
            return np.zeros(len(self), dtype=bool)
        return column.equals(value)

    def cluster_mask(self, cluster: str) -> BoolArray:
        if cluster not in self.cluster_names:
            return np.zeros(len(self), dtype=bool)
        mask: BoolArray = self.cluster_id == self.cluster_names.index(cluster)
        return mask

    def counts_of(self, service: str) -> FloatArray:
        """Instances of ``service`` per node (a shared zero vector when it has none)."""
        counts = self.service_counts.get(service)
        if counts is None:
            return np.zeros(len(self), dtype=np.float64)
        return counts

    def cluster_counts_of(self, service: str) -> FloatArray:
        """Instances of ``service`` per cluster (indexed like :attr:`cluster_names`)."""
        counts = self.service_cluster_counts.get(service)
        if counts is None:
            return np.zeros(self.num_clusters, dtype=np.float64)
        return counts

    def max_count_of(self, service: str) -> float:
        """Most instances of ``service`` on any one node (kept up to date incrementally)."""
        top = self._top.get(service)
        if top is None:
            top = float(self.counts_of(service).max(initial=0.0))
            self._top[service] = top
        return top

    def max_cluster_count_of(self, service: str) -> float:
        """Most instances of ``service`` in any one cluster."""
        top = self._cluster_top.get(service)
        if top is None:
            top = float(self.cluster_counts_of(service).max(initial=0.0))
            self._cluster_top[service] = top
        return top

    def per_node(self, per_cluster: FloatArray) -> FloatArray:
        """Expand a vector indexed by cluster to one indexed by node."""
        if self.clusters_contiguous:
            return np.repeat(per_cluster[self._block_cluster], self._block_sizes)
        expanded: FloatArray = per_cluster[self.cluster_id]
        return expanded

    def utilization(self) -> FloatArray:
        """Allocated share of allocatable per resource over the whole state (0..1)."""
        total = self.allocatable.sum(axis=0)
        used = self.allocated.sum(axis=0)
        share: FloatArray = np.divide(used, total, out=np.zeros(NUM_RESOURCES), where=total > 0)
        return share

    @property
    def free_f(self) -> FloatArray:
        """:attr:`free` as float64 (exact), up to date with every reserve and release."""
        self._sync_mirrors()
        return self._free_f

    @property
    def allocated_f(self) -> FloatArray:
        """:attr:`allocated` as float64 (exact), up to date with every reserve and release."""
        self._sync_mirrors()
        return self._allocated_f

    def _sync_mirrors(self) -> None:
        epoch, changes = self.epoch, self.changes
        end = len(changes)
        if self._mirror_epoch != epoch:
            # The log was dropped since the last sync: copy everything (rare).
            self._free_f[:] = self.free
            self._allocated_f[:] = self.allocated
        elif self._mirror_seen < end:
            # One index array for the four gathers and scatters (a list is converted by
            # each of them).
            rows = np.array(changes[self._mirror_seen : end], dtype=np.intp)
            self._free_f[rows] = self.free[rows]
            self._allocated_f[rows] = self.allocated[rows]
        else:
            return
        self._mirror_epoch = epoch
        self._mirror_seen = end

    # -- mutation ------------------------------------------------------------------

    def _changed(self, node: int) -> None:
        """Log a change of ``node`` that its NodeRow does not follow (health, cordon)."""
        self._rows.pop(node, None)
        self._log(node)

    def _log(self, node: int) -> None:
        if len(self.changes) >= CHANGE_LOG_LIMIT:
            self._new_epoch()
        self.changes.append(node)

    def _new_epoch(self) -> None:
        self.changes = []
        self._hosts_added = {}
        self._hosts_lost = {}
        self.epoch += 1

    def invalidate(self) -> None:
        """Tell incremental consumers that more than single rows changed."""
        self._rows.clear()
        self._free_rows = self.free.tolist()
        self._allocated_rows = self.allocated.tolist()
        self._new_epoch()

    def hosts_added(self, service: str) -> list[int]:
        """The nodes on which ``service`` went from no instance to one since the epoch
        began, in order (the live list: read it, never write it). A node appears again
        only after it lost the service, which :meth:`hosts_lost` counts."""
        return self._hosts_added.get(service, _NO_HOSTS)

    def hosts_lost(self, service: str) -> int:
        """How often a node stopped running ``service`` since the epoch began."""
        return self._hosts_lost.get(service, 0)

    def reserve(
        self,
        node: int,
        request: PlacementRequest,
        vector: IntArray | None = None,
        *,
        requested: tuple[int, ...] | None = None,
    ) -> None:
        """Account ``request`` on node ``node`` (an index), in place.

        ``vector`` and ``requested`` (its non-zero columns) save recomputing them when
        the caller has them already.
        """
        vec = request_vector(request) if vector is None else vector
        free_row, allocated_row = self._free_rows[node], self._allocated_rows[node]
        if requested is None:
            self.allocated[node] += vec
            self.free[node] -= vec
            free_row[:] = self.free[node].tolist()
            allocated_row[:] = self.allocated[node].tolist()
        else:
            # NOTE: per-column scalar updates; a row of a column-major array is strided
            # and a whole-row update costs more than the few requested columns. The new
            # amounts come from the Python rows (equal to the arrays' rows): an array
            # element's read-modify-write costs twice a plain write.
            allocated, free = self.allocated, self.free
            amounts = vec.tolist()
            for r in requested:
                amount = amounts[r]
                allocated[node, r] = allocated_row[r] = allocated_row[r] + amount
                free[node, r] = free_row[r] = free_row[r] - amount
        service = request.service
        if service:
            counts = self.service_counts.get(service)
            if counts is None:
                counts = np.zeros(len(self), dtype=np.float64)
                self.service_counts[service] = counts
            per_cluster = self.service_cluster_counts.get(service)
            if per_cluster is None:
                per_cluster = np.zeros(self.num_clusters, dtype=np.float64)
                self.service_cluster_counts[service] = per_cluster
            cluster = self._cluster_of[node]
            # NOTE: item() and a plain write, cheaper than an element's += and re-read.
            on_node = counts.item(node) + 1.0
            counts[node] = on_node
            if on_node == 1.0:
                added = self._hosts_added.get(service)
                if added is None:
                    self._hosts_added[service] = [node]
                else:
                    added.append(node)
            in_cluster = per_cluster.item(cluster) + 1.0
            per_cluster[cluster] = in_cluster
            _raise_max(self._top, service, on_node)
            _raise_max(self._cluster_top, service, in_cluster)
        self._log(node)  # its NodeRow holds the rows just updated

    def release(self, node: int, request: PlacementRequest, vector: IntArray | None = None) -> None:
        """Undo :meth:`reserve` of ``request`` on ``node``."""
        amounts = request_amounts(request) if vector is None else vector.tolist()
        requested = [r for r, amount in enumerate(amounts) if amount]
        allocated, free = self.allocated, self.free
        free_row, allocated_row = self._free_rows[node], self._allocated_rows[node]
        # Check everything before changing anything, so a refused release changes nothing.
        # NOTE: per-column scalar work on the Python rows, as in reserve.
        for r in requested:
            if allocated_row[r] < amounts[r]:
                raise StateError(
                    f"release of {request.id!r} on {self.names[node]!r} exceeds what is allocated"
                )
        service = request.service
        counts = self.service_counts.get(service) if service else None
        on_node = counts.item(node) if counts is not None else 0.0
        if service and on_node <= 0:
            raise StateError(f"no instance of {service!r} on {self.names[node]!r}")
        for r in requested:
            amount = amounts[r]
            allocated[node, r] = allocated_row[r] = allocated_row[r] - amount
            free[node, r] = free_row[r] = free_row[r] + amount
        if counts is not None:
            per_cluster = self.service_cluster_counts[service]
            cluster = self._cluster_of[node]
            in_cluster = per_cluster.item(cluster)
            # A maximum that may have dropped is forgotten and recomputed when next asked.
            if on_node >= self._top.get(service, 0.0):
                self._top.pop(service, None)
            if in_cluster >= self._cluster_top.get(service, 0.0):
                self._cluster_top.pop(service, None)
            counts[node] = on_node - 1.0
            per_cluster[cluster] = in_cluster - 1.0
            if on_node <= 1.0:
                self._hosts_lost[service] = self._hosts_lost.get(service, 0) + 1
        self._log(node)  # its NodeRow holds the rows just updated

    def set_healthy(self, name: str, healthy: bool) -> None:
        index = self.node_index(name)
        self.healthy[index] = healthy
        self._refresh_schedulable()
        self._changed(index)

    def set_cordoned(self, name: str, cordoned: bool) -> None:
        index = self.node_index(name)
        self.cordoned[index] = cordoned
        self._refresh_schedulable()
        self._changed(index)

    def attach_rtt(self, names: Sequence[str], rtt_ms: npt.ArrayLike) -> None:
        """Attach an RTT matrix whose rows are ``names`` (any order, all nodes present)."""
        matrix = np.asarray(rtt_ms, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(names):
            raise StateError(f"RTT matrix must be {len(names)}x{len(names)}, got {matrix.shape}")
        position = {name: i for i, name in enumerate(names)}
        missing = [name for name in self.names if name not in position]
        if missing:
            raise StateError(f"RTT matrix lacks nodes: {', '.join(missing[:5])}")
        order = np.array([position[name] for name in self.names], dtype=np.int64)
        self.rtt_ms = np.ascontiguousarray(matrix[np.ix_(order, order)])
        self.rtt = MatrixRtt(self.names, self.rtt_ms, validate=False)

    def attach_rtt_source(self, source: RttSource) -> None:
        """Attach any RTT source (a matrix or network coordinates) covering every node;
        it is reordered to state order. ``rtt_ms`` is its matrix when it has one."""
        missing = [name for name in self.names if name not in source]
        if missing:
            raise StateError(f"RTT source lacks nodes: {', '.join(missing[:5])}")
        aligned = source.reorder(self.names)
        self.rtt = aligned
        self.rtt_ms = aligned.matrix if isinstance(aligned, MatrixRtt) else None

    def add_area(self, area: Area) -> None:
        """Define (or redefine) the user area ``area.name``."""
        self.areas[area.name] = area

    def copy(self) -> ClusterState:
        """An independent copy for what-if decisions (preemption, hierarchical dry runs)."""
        clone = copy.copy(self)
        clone.allocated = self.allocated.copy(order="F")
        clone.free = self.free.copy(order="F")
        clone._free_f = self.free_f.copy(order="F")  # brought up to date by the property
        clone._allocated_f = self.allocated_f.copy(order="F")
        clone._mirror_epoch = clone._mirror_seen = 0
        clone.healthy = self.healthy.copy()
        clone.cordoned = self.cordoned.copy()
        clone.changes = []
        clone.epoch = 0
        clone._rows = {}
        clone._free_rows = [row[:] for row in self._free_rows]
        clone._allocated_rows = [row[:] for row in self._allocated_rows]
        clone.service_counts = {k: v.copy() for k, v in self.service_counts.items()}
        clone._top = dict(self._top)
        clone._cluster_top = dict(self._cluster_top)
        clone._hosts_added = {}
        clone._hosts_lost = {}
        clone.service_cluster_counts = {k: v.copy() for k, v in self.service_cluster_counts.items()}
        clone.areas = dict(self.areas)
        clone._refresh_schedulable()
        return clone

    # -- views -----------------------------------------------------------------------

    def node(self, index: int) -> Node:
        """A :class:`Node` view of row ``index`` (built on demand, not stored)."""
        location = None
        if not np.isnan(self.lat[index]):
            location = GeoPoint(lat=float(self.lat[index]), long=float(self.long[index]))
        return Node(
            name=self.names[index],
            cluster=self.cluster_names[int(self.cluster_id[index])],
            role=NodeRole.EDGE if self.role[index] == 0 else NodeRole.CLOUD,
            node_class=self.node_class[index],
            labels=dict(self._node_labels[index]),
            taints=self._node_taints[index],
            capacity=Resources.from_tuple(self.capacity[index].tolist()),
            allocatable=Resources.from_tuple(self.allocatable[index].tolist()),
            location=location,
            unschedulable=bool(self.cordoned[index]),
        )

    def row(self, index: int) -> NodeRow:
        """Row ``index`` as Python numbers (see :class:`NodeRow`), memoized until the
        node's health or cordon changes (its amounts follow every placement)."""
        row = self._rows.get(index)
        if row is None:
            row = NodeRow(
                index,
                self._free_rows[index],
                self._allocated_rows[index],
                self._allocatable_rows[index],
                self._divisor_rows[index],
                bool(self.schedulable[index]),
                self._node_taints[index],
            )
            if len(self._rows) > 4096:
                self._rows.clear()
            self._rows[index] = row
        return row

    def node_labels(self, index: int) -> dict[str, str]:
        return dict(self._node_labels[index])

    def node_taints(self, index: int) -> tuple[Taint, ...]:
        return self._node_taints[index]


_NO_HOSTS: list[int] = []


def _raise_max(maxima: dict[str, float], service: str, value: float) -> None:
    top = maxima.get(service)
    if top is not None and value > top:
        maxima[service] = value
