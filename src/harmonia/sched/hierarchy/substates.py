"""The clusters' sub-states of a delegating scheduler, kept identical to the global state.

Each cluster has its own :class:`~harmonia.sched.state.ClusterState` holding its nodes in
global order (``members[c]`` maps local → global indices, :attr:`SubStates.local` global →
local), so its :class:`~harmonia.sched.scheduler.Scheduler` decides over those nodes only.
The global state stays the one hosts read for metrics; the sub-states follow it:

- through the host-facing mutators (:meth:`SubStates.release`, :meth:`~SubStates.set_healthy`,
  :meth:`~SubStates.set_cordoned`), which change both at once, in O(1);
- from the global state's change log, for changes a host made to it directly: before the
  next decision each changed row is copied (its amounts, health and per-service instance
  counts, through the sub-state's own ``reserve``/``release``/``set_*`` so the sub-state's
  change log and caches see it; O(services) per row); after an epoch change every row is
  compared. A host that forgets the mutators thus still never over-commits.

The sub-states also share the global ``areas`` dict and carry the global RTT source
reordered to their nodes (``rtt.reorder`` through ``attach_rtt_source``), replaced
whenever a host attaches a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmonia.model import PlacementRequest
from harmonia.sched.hierarchy.rows import IndexArray
from harmonia.sched.scheduler import Scheduler
from harmonia.sched.state import ClusterState, IntArray


@dataclass
class ClusterScope:
    """One cluster: its sub-state, its scheduler and its nodes' global indices."""

    index: int
    name: str
    members: IndexArray
    state: ClusterState
    scheduler: Scheduler


class SubStates:
    """Keeps every cluster's sub-state equal to its rows of ``state``."""

    def __init__(self, state: ClusterState, clusters: list[ClusterScope]) -> None:
        self.state = state
        self.clusters = clusters
        self.local: IndexArray = np.zeros(len(state), dtype=np.intp)
        for scope in clusters:
            self.local[scope.members] = np.arange(scope.members.size, dtype=np.intp)
        self._cluster_of: list[int] = state.cluster_id.tolist()
        self._areas: object = None
        self._rtt: object = None
        self._service_requests: dict[str, PlacementRequest] = {}
        self._mark = (-1, 0)  # (epoch, change-log length) after the last change mirrored
        self.share_references()
        self.resync_all()

    def release(self, node: int, request: PlacementRequest, vector: IntArray | None = None) -> None:
        """Undo the placement of ``request`` on node ``node`` (a global index), in the
        global state and the node's sub-state. A refused release changes neither."""
        self.sync()
        self.state.release(node, request, vector)  # raises before changing anything
        scope = self.clusters[self._cluster_of[node]]
        scope.state.release(int(self.local[node]), request, vector)
        self.mark()

    def set_healthy(self, name: str, healthy: bool) -> None:
        """Mark node ``name`` up or down, in the global state and its sub-state."""
        self.sync()
        node = self.state.node_index(name)
        self.state.set_healthy(name, healthy)
        self.clusters[self._cluster_of[node]].state.set_healthy(name, healthy)
        self.mark()

    def set_cordoned(self, name: str, cordoned: bool) -> None:
        """Cordon or uncordon node ``name``, in the global state and its sub-state."""
        self.sync()
        node = self.state.node_index(name)
        self.state.set_cordoned(name, cordoned)
        self.clusters[self._cluster_of[node]].state.set_cordoned(name, cordoned)
        self.mark()

    def mark(self) -> None:
        """Record that the global change log holds nothing we have not mirrored."""
        self._mark = (self.state.epoch, len(self.state.changes))

    def sync(self) -> None:
        """Copy changes made to the global state directly (not through this scheduler's
        mutators) into the sub-states. Runs before every decision and mutation; call it to
        read the sub-states in between."""
        self.share_references()
        state = self.state
        epoch, seen = self._mark
        changes = state.changes
        if state.epoch == epoch and len(changes) == seen:
            return
        if state.epoch == epoch and len(changes) > seen:
            for node in sorted(set(changes[seen:])):
                self._sync_row(node)
        else:
            self.resync_all()
        self.mark()

    def share_references(self) -> None:
        """Point the sub-states at the global areas and (reordered) RTT source, again
        whenever a host attached new ones."""
        state = self.state
        if state.areas is not self._areas:
            for scope in self.clusters:
                scope.state.areas = state.areas
            self._areas = state.areas
        if state.rtt is not self._rtt:
            for scope in self.clusters:
                if state.rtt is None:
                    scope.state.rtt, scope.state.rtt_ms = None, None
                else:
                    scope.state.attach_rtt_source(state.rtt)
            self._rtt = state.rtt

    def resync_all(self) -> None:
        """Compare every row of every cluster and copy those that differ."""
        state = self.state
        for scope in self.clusters:
            sub, members = scope.state, scope.members
            differ = (state.allocated[members] != sub.allocated).any(axis=1)
            differ |= state.healthy[members] != sub.healthy
            differ |= state.cordoned[members] != sub.cordoned
            for service, counts in state.service_counts.items():
                differ |= counts[members] != sub.counts_of(service)
            for local in np.flatnonzero(differ).tolist():
                self._sync_row(int(members[local]))
        self.mark()

    def _sync_row(self, node: int) -> None:
        """Make row ``node`` of its sub-state equal to the global row, through the
        sub-state's own reserve/release/set_* so its change log sees the change."""
        state = self.state
        sub = self.clusters[self._cluster_of[node]].state
        local = int(self.local[node])
        name = state.names[node]
        if bool(sub.healthy[local]) != bool(state.healthy[node]):
            sub.set_healthy(name, bool(state.healthy[node]))
        if bool(sub.cordoned[local]) != bool(state.cordoned[node]):
            sub.set_cordoned(name, bool(state.cordoned[node]))
        delta = state.allocated[node] - sub.allocated[local]
        if delta.any():
            more, less = np.maximum(delta, 0), np.maximum(-delta, 0)
            if more.any():
                sub.reserve(local, self._sync_request(""), more)
            if less.any():
                sub.release(local, self._sync_request(""), less)
        zero = np.zeros_like(delta)
        for service, counts in state.service_counts.items():
            gap = int(counts[node]) - int(sub.counts_of(service)[local])
            request = self._sync_request(service)
            for _ in range(abs(gap)):
                if gap > 0:
                    sub.reserve(local, request, zero)
                else:
                    sub.release(local, request, zero)

    def _sync_request(self, service: str) -> PlacementRequest:
        request = self._service_requests.get(service)
        if request is None:
            request = PlacementRequest(id="harmonia-sync", service=service)
            self._service_requests[service] = request
        return request


__all__ = ["ClusterScope", "SubStates"]
