"""Delay clusters (every pair within a bound) and a radius index built on them.

The kubernetes-edge-scheduler (SIGCOMM'19 demo) groups edge nodes into clusters whose
members are all within a delay bound of each other, so a latency requirement can be
answered per group instead of per node. :func:`delay_clusters` computes such a grouping
for any :class:`~harmonia.sched.rtt.source.RttSource`; :class:`RadiusIndex` uses it to
answer "nodes within d ms of X" for many X.

Greedy clique cover, not complete linkage: scipy is not a dependency, and complete
linkage needs the n² condensed matrix and O(n² log n) time. The greedy cover takes the
first unassigned node as a seed, keeps the unassigned nodes within the bound of it, and
repeatedly adds the candidate whose largest RTT to the members so far is smallest,
dropping candidates that no longer fit. Every pair in a cluster is within the bound in
both directions by construction. Cost: O(n · k · d) for k clusters (d = coordinate
dimensions, 1 for a matrix) plus O(size²) per cluster; no n² memory, so it works on
coordinate sources of 10,000+ nodes. Like any greedy cover it can use more clusters
than an optimum (which is NP-hard: minimum clique cover).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from harmonia.model.errors import FieldError, InputError
from harmonia.sched.rtt.source import BoolArray, FloatArray, IndexArray, RttSource

_BLOCK_ELEMENTS = 1 << 22  # RTT values per block when scanning all rows (16 MiB float32)


def _both_ways(source: RttSource, i: int, others: IndexArray) -> FloatArray:
    """max(RTT(i, o), RTT(o, i)) for each o: measured matrices need not be symmetric."""
    there = source.row_to(i, others)
    if source.symmetric:
        return there
    back = source.pair_rtts(others, np.full(others.size, i, dtype=np.intp))
    result: FloatArray = np.maximum(there, back)
    return result


def delay_clusters(source: RttSource, bound_ms: float) -> IndexArray:
    """Cluster labels 0..k−1 (in order of each cluster's first node) such that every pair
    of nodes with the same label has RTT ≤ ``bound_ms`` in both directions (float32).

    Example: RTTs a–b 2 ms, a–c 9 ms, b–c 8 ms, c–d 1 ms with bound 5 → labels
    ``[0, 0, 1, 1]``.
    """
    if not np.isfinite(bound_ms) or bound_ms < 0:
        raise InputError([FieldError("bound_ms", f"must be finite and ≥ 0, got {bound_ms}")])
    n = len(source)
    bound = np.float32(bound_ms)
    labels = np.full(n, -1, dtype=np.intp)
    unassigned = np.ones(n, dtype=bool)
    k = 0
    for seed in range(n):  # one iteration per cluster: seeds already placed are skipped
        if not unassigned[seed]:
            continue
        unassigned[seed] = False
        candidates = np.flatnonzero(unassigned)
        far = _both_ways(source, seed, candidates)  # largest RTT to the members so far
        keep = far <= bound
        candidates, far = candidates[keep], far[keep]
        members = [seed]
        while candidates.size:
            t = int(np.argmin(far))
            new = int(candidates[t])
            members.append(new)
            far[t] = np.inf  # taken: the filter below drops it (cheaper than np.delete)
            far = np.maximum(far, _both_ways(source, new, candidates))
            keep = far <= bound
            candidates, far = candidates[keep], far[keep]
        labels[members] = k
        unassigned[members] = False
        k += 1
    return labels


def cluster_diameters(source: RttSource, labels: npt.ArrayLike) -> FloatArray:
    """Largest RTT between two members of each cluster (0 for a single node): the check
    that :func:`delay_clusters` kept its bound, and a cluster's latency summary."""
    lab = np.asarray(labels, dtype=np.intp)
    _check_labels(lab, len(source))
    k = int(lab.max()) + 1 if lab.size else 0
    out = np.zeros(k, dtype=np.float32)
    order = np.argsort(lab, kind="stable")
    bounds = np.searchsorted(lab[order], np.arange(k + 1))
    for c in range(k):
        members = order[bounds[c] : bounds[c + 1]]
        if members.size > 1:
            out[c] = source.rows(members)[:, members].max()
    return out


class RadiusIndex:
    """Exact "nodes within d ms of X" answered per delay cluster.

    For each threshold in ``radii`` the index clusters the nodes with
    :func:`delay_clusters` (bound = the threshold) and stores, for every node x and
    cluster c, the smallest and largest RTT from x to c's members (n × k float32 each,
    computed in one blockwise pass over all rows). A query then classifies clusters at
    once: largest ≤ d → every member is within d (x's own cluster always is); smallest
    > d → none is; only the remaining *mixed* clusters' members are checked one by one,
    in one vectorized gather. Results equal :meth:`RttSource.within` exactly (same
    float32 values and comparison); no triangle inequality is assumed, which measured
    RTTs often break.

    A radius not among ``radii`` is answered with the clustering of the nearest one:
    still exact, only less pruning.

    Costs: building reads every RTT once (O(n²), in blocks) and keeps 8·n·k bytes per
    radius for k clusters. A query writes its n-long mask from one gather, plus one RTT
    per member of a mixed cluster. It pays off when a row is expensive (coordinates:
    O(n·d) per row) and clusters are coarse; against a matrix row, which is one
    comparison per node, it cannot win and :meth:`RttSource.within` is the faster path.
    Its other use is the cluster view itself (:meth:`labels`, :meth:`clusters_within`).
    """

    def __init__(self, source: RttSource, radii: Iterable[float]) -> None:
        radii = sorted({float(r) for r in radii})
        if not radii:
            raise InputError([FieldError("radii", "must name at least one radius")])
        self.source = source
        self.radii: tuple[float, ...] = tuple(radii)
        self._levels = [_Level.build(source, delay_clusters(source, r)) for r in radii]

    def labels(self, radius_ms: float) -> IndexArray:
        """Delay-cluster labels used for ``radius_ms`` (every pair within that radius)."""
        return self._level(radius_ms).labels

    def clusters_within(self, x: int, radius_ms: float) -> IndexArray:
        """Clusters (of :meth:`labels`) whose every member is within ``radius_ms`` of ``x``:
        groups that can host a set of replicas that must all be near ``x``."""
        level = self._level(radius_ms)
        return np.flatnonzero(level.largest[x] <= np.float32(radius_ms))

    def within(self, x: int, radius_ms: float) -> BoolArray:
        """Mask of nodes with RTT from ``x`` ≤ ``radius_ms``; equals ``source.within``."""
        mask: BoolArray = self.within_many([x], radius_ms)[0]
        return mask

    def within_many(self, xs: npt.ArrayLike, radius_ms: float) -> BoolArray:
        """(len(xs) × n) masks, one row per query node."""
        level = self._level(radius_ms)
        x = np.asarray(xs, dtype=np.intp).reshape(-1)
        d = np.float32(radius_ms)
        inside = level.largest[x] <= d  # (queries × clusters): every member within d
        mixed = (level.smallest[x] <= d) & ~inside  # some members may be within d
        mask: BoolArray = inside[:, level.labels]  # cluster lookup, one gather per query
        qs, cs = np.nonzero(mixed)
        if qs.size:
            # Members of each mixed (query, cluster), from the cluster-sorted node order.
            sizes = level.sizes[cs]
            run_start = np.repeat(level.starts[cs] - (np.cumsum(sizes) - sizes), sizes)
            nodes = level.order[run_start + np.arange(int(sizes.sum()))]
            queries = np.repeat(qs, sizes)
            mask[queries, nodes] = self.source.pair_rtts(x[queries], nodes) <= d
        return mask

    def _level(self, radius_ms: float) -> _Level:
        k = int(np.argmin([abs(r - radius_ms) for r in self.radii]))
        return self._levels[k]


class _Level:
    """One clustering with each node's smallest and largest RTT to every cluster."""

    __slots__ = ("labels", "largest", "order", "sizes", "smallest", "starts")

    def __init__(self, labels: IndexArray, smallest: FloatArray, largest: FloatArray) -> None:
        self.labels = labels
        self.smallest = smallest
        self.largest = largest
        # Nodes sorted by cluster; cluster c's members are order[starts[c]:][:sizes[c]].
        self.order = np.argsort(labels, kind="stable")
        self.sizes = np.bincount(labels, minlength=smallest.shape[1])
        self.starts = np.cumsum(self.sizes) - self.sizes

    @classmethod
    def build(cls, source: RttSource, labels: IndexArray) -> _Level:
        n = len(source)
        k = int(labels.max()) + 1 if n else 0
        order = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[order], np.arange(k))
        smallest = np.empty((n, k), dtype=np.float32)
        largest = np.empty((n, k), dtype=np.float32)
        block = max(1, _BLOCK_ELEMENTS // max(n, 1))
        for start in range(0, n, block):
            stop = min(n, start + block)
            # Columns sorted by cluster: each cluster is a contiguous run, reduced at once.
            rows = source.rows(np.arange(start, stop))[:, order]
            smallest[start:stop] = np.minimum.reduceat(rows, starts, axis=1)
            largest[start:stop] = np.maximum.reduceat(rows, starts, axis=1)
        return cls(labels, smallest, largest)


def _check_labels(labels: IndexArray, n: int) -> None:
    if labels.shape != (n,):
        raise InputError([FieldError("labels", f"must have {n} labels, got {labels.size}")])
    if n and labels.min() < 0:
        raise InputError([FieldError("labels", "must be ≥ 0")])
