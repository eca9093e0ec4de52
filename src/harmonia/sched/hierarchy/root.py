"""Root policies: which clusters may take a request, best first, from the cluster rows.

After Oakestra's two root schedulers (Bartolomeo et al., "Oakestra: A Lightweight
Hierarchical Orchestration Framework for Edge Computing", USENIX ATC'23), with what its
implementation gets wrong fixed:

- ``rom`` (resource-only matching). Oakestra keeps the clusters whose *summed* free CPU
  and memory cover the request and takes the first in its list. Here a cluster qualifies
  when its largest free schedulable node could hold each requested resource
  (:meth:`~harmonia.sched.hierarchy.rows.ClusterRows.could_fit`; every resource, not
  only CPU and memory, each read from its own column), and the qualifying clusters are
  ranked by a score: Kubernetes' LeastAllocated over the cluster's schedulable nodes, so
  load spreads over clusters the way the ``default`` policy spreads it over nodes. Ties go
  to the lower cluster index (cluster names sorted).
- ``ldp`` (latency- and distance-aware placement). Oakestra scores clusters by the
  distance to the user, computed in degrees and compared with kilometres. Here a cluster
  qualifies only when at least one of its nodes is schedulable, has room for the request
  and meets every geo and latency bound — the per-node masks of the ``Geo`` and
  ``Latency`` plugins (the same code the node level runs, kilometres and milliseconds),
  reduced per cluster. Qualifying clusters are ranked by the closest node they offer
  (:data:`RootView.proximity`, 0..100, higher is closer), then by LeastAllocated. A
  request without a location bound ranks clusters with a cloud node that could hold it
  first, as the node-level ``CloudFirst`` score does.

A root policy only scores clusters (``-inf`` where one does not qualify);
:class:`~harmonia.sched.hierarchy.delegating.DelegatingScheduler` builds the
:class:`RootView`, asks the clusters best first (ties to the lower index) and explains
refusals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from harmonia.sched.framework import Plugin
from harmonia.sched.hierarchy.rows import CLOUD, ClusterRows
from harmonia.sched.plugins import Direct, Geo, Latency
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray


@dataclass
class RootView:
    """What the root knows of one request besides the cluster rows.

    ``node_mask``: per node, schedulable, with room for the request and passing every
    filter the root evaluates per node (``None`` when none applies to the request: the
    rows alone then decide). ``proximity``: per node, how close it is to the request's
    location bounds, 0..100, meaningful where ``node_mask`` holds (``None`` without such
    a bound, or for ``rom``).
    """

    vector: IntArray
    amounts: list[int]
    requested: tuple[int, ...]
    node_mask: BoolArray | None = None
    proximity: FloatArray | None = None


class RootPolicy(Protocol):
    """Ranks the clusters that may take a request."""

    name: str
    #: Node-level plugins whose filters the root evaluates over all nodes, when the request
    #: carries a constraint they enforce (their masks are reduced per cluster).
    filter_types: tuple[type[Plugin], ...]
    #: Whether the root wants :data:`RootView.proximity` computed.
    wants_proximity: bool

    def rank(self, rows: ClusterRows, state: ClusterState, view: RootView) -> FloatArray:
        """A score per cluster, higher is better, ``-inf`` where the cluster does not
        qualify; among equal scores the lower index is better (``argmax`` order)."""
        ...


@dataclass
class _Ranked:
    """``rom``'s cluster scores for one request shape, current up to ``seen`` in the
    rows' :attr:`~harmonia.sched.hierarchy.rows.ClusterRows.touched` log of ``version``."""

    scores: FloatArray
    version: int
    seen: int


class Rom:
    """Resource-only matching: clusters whose largest free node could hold the request,
    least allocated first.

    The scores of a request without a ``Direct`` bound depend only on its shape and the
    cluster rows, so they are kept per shape and only the clusters whose row changed
    since are scored again, one by one (with the vector path's operations: the same
    values). A placement changes one cluster's row, so a decision rescores about one
    cluster rather than computing four vectors over all of them.
    """

    name = "rom"
    filter_types: tuple[type[Plugin], ...] = (Direct,)
    wants_proximity = False

    def __init__(self) -> None:
        self._ranked: dict[bytes, _Ranked] = {}

    def rank(self, rows: ClusterRows, state: ClusterState, view: RootView) -> FloatArray:
        if view.node_mask is not None:
            ok = rows.any_per_cluster(view.node_mask)
            scored: FloatArray = np.where(ok, rows.least_allocated(view.amounts), -np.inf)
            return scored
        key = view.vector.tobytes()
        entry = self._ranked.get(key)
        touched = rows.touched
        if (
            entry is None
            or entry.version != rows.version
            or len(touched) - entry.seen > RESCORED_LIMIT
        ):
            ok = rows.could_fit(view.vector, view.requested)
            scores: FloatArray = np.where(ok, rows.least_allocated(view.amounts), -np.inf)
            if len(self._ranked) >= SHAPES_KEPT:
                self._ranked.clear()
            self._ranked[key] = _Ranked(scores, rows.version, len(touched))
            return scores.copy()  # the caller uses its copy up
        if len(touched) > entry.seen:
            amounts, requested, scores = view.amounts, view.requested, entry.scores
            for c in set(touched[entry.seen :]):
                scores[c] = (
                    rows.least_allocated_one(c, amounts)
                    if rows.could_fit_one(c, amounts, requested)
                    else -np.inf
                )
            entry.seen = len(touched)
        return entry.scores.copy()


class Ldp:
    """Latency- and distance-aware placement: clusters with a node within every bound,
    closest first, then least allocated."""

    name = "ldp"
    filter_types: tuple[type[Plugin], ...] = (Direct, Geo, Latency)
    wants_proximity = True

    def rank(self, rows: ClusterRows, state: ClusterState, view: RootView) -> FloatArray:
        mask = view.node_mask
        if mask is None:
            ok = rows.could_fit(view.vector, view.requested)
            primary = rows.could_fit_cloud(view.vector, view.requested).astype(np.float64)
        elif view.proximity is not None:
            # -1 where a node does not qualify: a cluster qualifies when its best is >= 0.
            best = rows.max_per_cluster(np.where(mask, view.proximity, -1.0))
            ok = best >= 0.0
            # Whole points of closeness: a cluster whose best node is a fraction of a
            # point closer does not outrank a much emptier one.
            primary = np.floor(best)
        else:
            ok = rows.any_per_cluster(mask)
            primary = rows.any_per_cluster(mask & (state.role == CLOUD)).astype(np.float64)
        # LeastAllocated is within 0..100 for a qualifying cluster: the primary key scaled
        # by 1000 orders by it first, then by the share, in one vector.
        score = primary * 1000.0
        score += rows.least_allocated(view.amounts)
        ranked: FloatArray = np.where(ok, score, -np.inf)
        return ranked


#: Request shapes whose ``rom`` scores are kept (100 clusters: 800 bytes each).
SHAPES_KEPT = 4096
#: Past this many changed clusters a shape's scores are computed again as vectors.
RESCORED_LIMIT = 16

ROOT_POLICIES: dict[str, type[Rom] | type[Ldp]] = {"rom": Rom, "ldp": Ldp}


__all__ = ["ROOT_POLICIES", "Ldp", "Rom", "RootPolicy", "RootView"]
