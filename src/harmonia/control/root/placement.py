"""The root's view of its clusters for the scheduling core, and its reservations.

The root owns no placement logic: it builds a :class:`~harmonia.sched.ClusterState` over
every node of every active cluster and asks :func:`harmonia.sched.scheduler_for` (policy
``rom`` by default, Oakestra's resource-only root matching, or ``ldp``) for a node; the
node's cluster is the root's choice, and the cluster manager then picks the node itself.

What the view counts as used, per node:

- what the cluster's last report says is taken (allocatable − free), and
- every placement the root made since, not yet reflected in a report (*pending*): a
  placement stays pending until a report of its cluster lists the instance (the cluster
  then counts it in ``free``), the placement is cancelled, or it grows stale.

So two quick deploys never over-commit a cluster even when no report came in between
(Oakestra's root reserves nothing between decisions; Bartolomeo et al., USENIX ATC'23).
The view is rebuilt lazily, at the next decision after a report changed it; between
rebuilds each decision's reservation stays in the scheduler's state.

Node names are unique in a :class:`ClusterState`; a node whose name another cluster also
uses is entered as ``<name>.<cluster>`` (names unique across clusters, the usual case,
stay as they are, so ``direct`` constraints naming nodes keep working).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harmonia.control.protocol import NodeReport
from harmonia.model import RESOURCE_NAMES, PlacementRequest
from harmonia.sched import ClusterState, DelegatingScheduler, Scheduler, StateError, scheduler_for

Clock = Callable[[], float]

PENDING_STALE_S = 60.0
"""A placement no report listed within this long is dropped from the view: the cluster
lost it or failed to place it, and the root's report handling re-places it."""


@dataclass(frozen=True)
class Choice:
    cluster_id: str
    node: str  # the node's name in its cluster


@dataclass(frozen=True)
class Refusal:
    reasons: list[str]


@dataclass
class _Pending:
    cluster_id: str
    node: str  # name in the cluster
    request: PlacementRequest
    since: float


@dataclass
class _Cluster:
    name: str
    nodes: list[NodeReport]


@dataclass
class _Built:
    state: ClusterState
    scheduler: Scheduler | DelegatingScheduler
    view_name: dict[tuple[str, str], str] = field(default_factory=dict)  # (cluster, node)
    origin: dict[str, tuple[str, str]] = field(default_factory=dict)  # view name -> key


class SchedulingView:
    """Every active cluster's nodes, what is used on them, and the scheduler over them."""

    def __init__(self, policy: str, *, clock: Clock | None = None) -> None:
        self.policy = policy
        self._clock = clock or time.monotonic
        self._clusters: dict[str, _Cluster] = {}
        self._pending: dict[str, _Pending] = {}
        self._built: _Built | None = None

    # -- what the clusters said -------------------------------------------------------

    def set_cluster(self, cluster_id: str, name: str, nodes: list[NodeReport]) -> None:
        """A cluster's current nodes (from a report, or from the store at start).

        When only usage and health changed (the usual report), the state is updated row
        by row; a new, gone or changed node rebuilds it at the next decision (building a
        delegating scheduler costs tens of milliseconds, and clusters report on every
        change of an instance).
        """
        before = self._clusters.get(cluster_id)
        self._clusters[cluster_id] = _Cluster(name, nodes)
        built = self._built
        if built is None:
            return
        if (
            before is None
            or before.name != name
            or [r.node for r in before.nodes] != [r.node for r in nodes]
        ):
            self._built = None
            return
        try:
            for old, new in zip(before.nodes, nodes, strict=True):
                view_name = built.view_name[(cluster_id, new.node.name)]
                index = built.state.index[view_name]
                delta = [n - o for n, o in zip(_used(new), _used(old), strict=True)]
                more = [max(d, 0) for d in delta]
                less = [max(-d, 0) for d in delta]
                if any(more):
                    built.state.reserve(index, _amounts(more))
                if any(less):
                    built.state.release(index, _amounts(less))
                if old.healthy != new.healthy:
                    built.scheduler.set_healthy(view_name, new.healthy)
        except StateError:
            self._built = None  # cannot happen while the rows hold what was reported

    def remove_cluster(self, cluster_id: str) -> None:
        """A lost cluster: its nodes and its pending placements leave the view."""
        self._clusters.pop(cluster_id, None)
        for instance_id in [i for i, p in self._pending.items() if p.cluster_id == cluster_id]:
            del self._pending[instance_id]
        self._built = None

    def settle(self, cluster_id: str, reported: Iterable[str]) -> None:
        """A report of ``cluster_id`` listed ``reported``: those placements are in its
        ``free`` now, no longer pending."""
        for instance_id in reported:
            pending = self._pending.get(instance_id)
            if pending is not None and pending.cluster_id == cluster_id:
                self.cancel(instance_id)

    def expire(self, older_than_s: float = PENDING_STALE_S) -> None:
        limit = self._clock() - older_than_s
        stale = [i for i, p in self._pending.items() if p.since < limit]
        for instance_id in stale:
            self.cancel(instance_id)

    # -- decisions ------------------------------------------------------------------------

    def choose(
        self, request: PlacementRequest, exclude: set[str] | None = None
    ) -> Choice | Refusal:
        """Pick a cluster for ``request`` (``request.id`` is the instance id) and reserve
        it there until :meth:`settle` or :meth:`cancel`. Clusters in ``exclude`` (ids)
        are not considered: they refused this instance already."""
        self.cancel(request.id)
        built = self._build()
        if built is None:
            return Refusal(["no active cluster has nodes"])
        excluded = exclude or set()
        if not set(self._clusters) - excluded:
            return Refusal(["every active cluster refused this instance"])
        cordoned = [
            view_name
            for view_name, (cluster_id, _) in built.origin.items()
            if cluster_id in excluded and not built.state.cordoned[built.state.index[view_name]]
        ]
        try:
            for view_name in cordoned:
                built.scheduler.set_cordoned(view_name, True)
            decision = built.scheduler.schedule(request)
        finally:
            for view_name in cordoned:
                built.scheduler.set_cordoned(view_name, False)
        if decision.node is None:
            return Refusal(list(decision.reasons) or ["no cluster fits"])
        cluster_id, node = built.origin[decision.node]
        self._pending[request.id] = _Pending(cluster_id, node, request, self._clock())
        return Choice(cluster_id, node)

    def confirm(self, instance_id: str, node: str | None) -> None:
        """The cluster took the instance, on ``node`` when it said so: move the
        reservation there when the cluster chose another node than the root's pick."""
        pending = self._pending.get(instance_id)
        if pending is None or node is None or node == pending.node:
            return
        built = self._built
        if built is not None and (pending.cluster_id, node) in built.view_name:
            self._release(built, pending)
            pending.node = node
            index = built.state.index[built.view_name[(pending.cluster_id, node)]]
            built.state.reserve(index, pending.request)  # the scheduler syncs from the log
        else:
            pending.node = node

    def cancel(self, instance_id: str) -> None:
        """Drop the reservation of ``instance_id`` (refused, deleted, or re-placed)."""
        pending = self._pending.pop(instance_id, None)
        if pending is not None and self._built is not None:
            self._release(self._built, pending)

    def pending(self) -> dict[str, str]:
        """Instance id → cluster id of the placements not yet reported."""
        return {i: p.cluster_id for i, p in self._pending.items()}

    # -- building ---------------------------------------------------------------------

    def _release(self, built: _Built, pending: _Pending) -> None:
        view_name = built.view_name.get((pending.cluster_id, pending.node))
        if view_name is None:
            return
        try:
            built.scheduler.release(built.state.index[view_name], pending.request)
        except StateError:
            # The state no longer holds it (it cannot, by construction, but a wrong count
            # must not stop a deletion): rebuild from the reports and what is pending.
            self._built = None

    def _build(self) -> _Built | None:
        if self._built is not None:
            return self._built
        nodes = []
        used = []
        healthy = []
        keys = []
        seen: dict[str, int] = {}
        for cluster in self._clusters.values():
            for report in cluster.nodes:
                seen[report.node.name] = seen.get(report.node.name, 0) + 1
        for cluster_id, cluster in sorted(self._clusters.items(), key=lambda kv: kv[1].name):
            for report in cluster.nodes:
                name = report.node.name
                view_name = name if seen[name] == 1 else f"{name}.{cluster.name}"
                nodes.append(
                    report.node.model_copy(update={"name": view_name, "cluster": cluster.name})
                )
                used.append(_used(report))
                healthy.append(report.healthy)
                keys.append((cluster_id, name, view_name))
        if not nodes:
            return None
        state = ClusterState(nodes)
        for index, amounts in enumerate(used):
            if any(amounts):
                state.reserve(index, _amounts(amounts))
            if not healthy[index]:
                state.set_healthy(state.names[index], False)
        view_names = {(cluster_id, name): view_name for cluster_id, name, view_name in keys}
        for pending in self._pending.values():
            pending_at = view_names.get((pending.cluster_id, pending.node))
            if pending_at is not None:
                state.reserve(state.index[pending_at], pending.request)
        built = _Built(state, scheduler_for(state, self.policy), view_names)
        built.origin = {view_name: key for key, view_name in view_names.items()}
        self._built = built
        return built


def _used(report: NodeReport) -> list[int]:
    """What the cluster counts as taken on a node: allocatable − free, per resource."""
    allocatable = report.node.allocatable_or_capacity.as_tuple()
    return [max(a - f, 0) for a, f in zip(allocatable, report.free.as_tuple(), strict=True)]


def _amounts(amounts: list[int]) -> PlacementRequest:
    """Reported usage as a request of no service, so no instance is counted for it."""
    return PlacementRequest(id="reported", **dict(zip(RESOURCE_NAMES, amounts, strict=True)))


__all__ = ["PENDING_STALE_S", "Choice", "Refusal", "SchedulingView"]
