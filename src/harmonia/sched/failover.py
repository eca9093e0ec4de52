"""Failover reservations: spare capacity inside every delay bound for any single node failure.

After the kubernetes-edge-scheduler (Haja et al., "Sharpening Kubernetes for the Edge",
ACM SIGCOMM'19 Posters and Demos), which keeps placeholders on other nodes so that a
delay-constrained pod whose node fails restarts at once within its delay bound, and lets
pods that cannot fail together share a placeholder. The idea is theirs; this code is not.

**What is protected.** An instance with a latency or geo bound (the ones the ``Latency``
and ``Geo`` filters constrain), and an instance of a service that such a bound names
(``delay_db: "10"`` makes every instance of ``db`` a *reference instance*: where it goes
after a failure decides whether its dependents stay within 10 ms).

**Backups and placeholders.** Each protected instance on node p gets a backup node b ≠ p
that meets its bounds as if p had failed (below) and has room. A placeholder on b holds,
for the worst single failure, everything that would move to b::

    placeholder[b] = max over p of  Σ requests of the instances on p whose backup is b

per resource. Only one node fails at a time, so instances of different primaries share b's
placeholder; that is the saving. The placeholder is reserved in the ``ClusterState`` as an
allocation of the serviceless request :data:`PLACEHOLDER`, so the fit filter keeps normal
placements out of it. A backup is chosen to raise b's placeholder least (a node whose
placeholder already covers the instance for its primary costs nothing; increases are
summed per resource as shares of the state's total allocatable), then by the lowest
RTT-to-threshold ratio over its node and service bounds (most slack), then by RTT from
the primary, then by node index. Candidates are evaluated as masks and vectors over all
nodes at once.

Worked example (``test_docstring_example_two_primaries_share_one_placeholder``). Edge
nodes e1, e2, e3 (4 cores each) within 5 ms of one another; a camera service must stay
within 10 ms of e1 (``delay_e1: "10"``). Instance a (1 core) runs on e1; e2 and e3 tie as
its backup and the lower index wins: placeholder[e2] = 1 core (the failure of e1 moves a
there). Then instance b (1 core) is placed on e3. Backing it up on e1 would raise e1's
placeholder by 1 core; on e2 it costs nothing, because the failure of e3 moves nothing
else to e2 and the core held there for e1's failure covers b as well:
placeholder[e2] = max(1, 1) = 1 core, where one dedicated reservation per instance would
cost 2. Releasing a keeps that core (b still needs it); releasing b as well frees it.

**Bounds "as if p had failed".** Node bounds (``delay_<node>``, also when that node is p:
the bound is about the place the node stands for), user locations, areas, geo bounds,
direct placement, node affinity and taints keep their meaning; the backup must be healthy
and not cordoned. A service bound (``delay_<service>``) counts the nearest instance of the
service *after* the failover: the instances not on p, plus the backups of the service's
instances on p, which move at the same time. So an instance whose reference runs next to
it on p must be backed up near that reference's backup (references get their backups
first). The instance itself never counts as its own reference. The other side: an
instance Y on another node whose bound only the service's instances on p meet would break
when p fails. The backup of each reference instance on p must therefore be within Y's
bound of Y's node too, for every such Y. Anti-affinity counts what runs after the
failover as well (the failed node's instances gone, the co-moving backups added).

**After a failure.** The moved instances take their placeholders' capacity. A consumed
placeholder protects no one else any more, so every instance that shared it, and every
instance backed up on the failed node, gets a new backup, as do the moved instances (all
scenarios are re-checked). Instances elsewhere whose bound broke anyway (a reference
without a backup went away), like instances an RTT change puts out of bound, are migrated
to the node with the most slack that has room outside the placeholders, preferring one
that keeps their own dependents within bound, or reported as stranded.

**What is tracked.** Every instance with a service (it may become a reference later: an
SLA places ``db`` before the ``api`` that names it) and every bounded one; instances with
neither are ignored. Placing one costs vector work over the nodes for its backup plus the
re-check of the few scenarios its arrival affects; failures and RTT changes re-check all
scenarios.

An instance without a feasible backup is *unprotected*: it runs normally and is counted in
:meth:`FailoverPlanner.overhead`; the planner tries again whenever its node's scenario is
re-checked (:meth:`FailoverPlanner.refresh` re-checks all).

**The API: the core returns plans, hosts apply them.** Hosts call
:meth:`~FailoverPlanner.placed` after reserving an instance in the state (the
``latency-reliable`` policy's reserve plugin does this; see
:mod:`harmonia.sched.plugins.failover`), :meth:`~FailoverPlanner.released` when it ends,
:meth:`~FailoverPlanner.node_failed` when a node fails, *instead of* releasing that node's
tracked instances (the planner moves them in the state, turning placeholder capacity into
their allocation, and returns the :class:`Move` list for the host's own records), and
:meth:`~FailoverPlanner.rtt_changed` after attaching new RTTs. Instance keys are the
host's: any hashable, unique among running instances.

The planner also watches the state's change log, so instances of referenced services
that leave a node, and backup nodes that become unhealthy or cordoned, are noticed at the
next call even when the host changed the state directly.
"""

from __future__ import annotations

import graphlib
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Literal, TypedDict

import numpy as np
import numpy.typing as npt

from harmonia.model import (
    RESOURCE_NAMES,
    AntiAffinityConstraint,
    Constraint,
    LatencyConstraint,
    PlacementRequest,
)
from harmonia.model.request import DELAY_LABEL_PREFIX
from harmonia.sched.framework import Code, CycleState, FilterPlugin, PreFilterPlugin
from harmonia.sched.plugins.direct import Direct
from harmonia.sched.plugins.geo import Geo
from harmonia.sched.plugins.latency import (
    Latency,
    LatencyConfig,
    NearestInstances,
    delay_ms,
    float32_limit,
)
from harmonia.sched.plugins.node_affinity import NodeAffinity
from harmonia.sched.plugins.taints import TaintToleration
from harmonia.sched.rtt import RttSource
from harmonia.sched.state import (
    NUM_RESOURCES,
    BoolArray,
    ClusterState,
    FloatArray,
    IntArray,
    StateError,
    request_amounts,
)

# The state's accounting entry for placeholder capacity: no service, so no instance counts.
PLACEHOLDER = PlacementRequest(id="failover-placeholder")
BOUND_KINDS = frozenset({"latency", "geo"})
# Rounds of re-checking before a scenario that does not settle is left unprotected, and
# rounds of dirty-scenario processing per call (the rest waits for the next call).
_FLUSH_ROUNDS = 8
_BLOCK = 256  # RTT rows read at once for a nearest-instance row

RttRow = npt.NDArray[np.float32]
MoveKind = Literal["failover", "requeue", "migrate", "stranded"]


@dataclass(frozen=True)
class Move:
    """What happened to one instance; already applied to the planner's state.

    ``kind``:

    - ``failover``: its node failed; it now runs on ``target``, in the capacity its
      placeholder held;
    - ``requeue``: its node failed and it had no backup; it is released from the state
      and forgotten, and the host schedules it again as it would without reservations;
    - ``migrate``: a bound no longer held where it ran (RTTs changed, or a reference went
      away with a failed node); it now runs on ``target``, which meets every bound;
    - ``stranded``: a bound no longer holds and no node that meets them has room; it stays
      on ``source`` (``target`` is None).
    """

    key: Hashable
    request: PlacementRequest
    kind: MoveKind
    source: str
    target: str | None
    reason: str


class FailoverOverhead(TypedDict):
    """What the reservations cost (:meth:`FailoverPlanner.overhead`); amounts per resource."""

    instances: int  # instances that need a reservation (bounded or referenced)
    protected: int
    unprotected: int
    placeholder_nodes: int  # nodes holding a placeholder
    reserved: dict[str, int]  # Σ placeholders
    dedicated: dict[str, int]  # Σ requests of the protected instances: one reservation each
    share_of_allocatable: dict[str, float]  # reserved / Σ allocatable
    share_of_instances: dict[str, float]  # reserved / Σ requests of the instances that need one


@dataclass(eq=False)
class _Bounds:
    """A request's bounds, parsed once per request object (hosts reuse request objects)."""

    request: PlacementRequest
    static: PlacementRequest  # the request without service references (see _parse)
    bounded: bool  # carries a latency or geo bound
    nodes: tuple[tuple[int, float], ...]  # node references: (node, threshold ms)
    services: dict[str, float]  # service references: service -> smallest threshold ms
    limits: dict[str, np.float32]  # the same as float32 limits (see float32_limit)
    anti: tuple[AntiAffinityConstraint, ...]
    vector: IntArray
    requested: tuple[int, ...]  # columns with a non-zero amount
    users: int = 0  # instances sharing this entry
    mask: BoolArray | None = None  # where the static bounds hold (see _static_mask)
    problem: str = ""  # why no node meets the static bounds, when a pre-filter refused


@dataclass(eq=False, slots=True)
class _Instance:
    key: Hashable
    bounds: _Bounds
    node: int
    backup: int = -1

    @property
    def request(self) -> PlacementRequest:
        return self.bounds.request

    @property
    def service(self) -> str:
        return self.bounds.request.service


@dataclass(eq=False, slots=True)
class _Load:
    """What the failure of one primary moves to one backup node."""

    amount: IntArray
    count: int = 0


class FailoverPlanner:
    """Backups and shared placeholders for the instances placed on ``state``.

    ``latency`` must be the configuration of the policy's ``Latency`` plugin (it sets the
    access-network RTT of user bounds). The planner's state is shared with the scheduler
    that places the instances; the planner changes it only through placeholder
    reservations and the moves it returns.
    """

    def __init__(self, state: ClusterState, *, latency: LatencyConfig | None = None) -> None:
        self.state = state
        self._config = latency or LatencyConfig()
        n = len(state)
        # Placeholder amounts reserved in the state per node (read-only for callers).
        self.placeholder: IntArray = np.zeros((n, NUM_RESOURCES), dtype=np.int64, order="F")
        self._totals: FloatArray = np.maximum(state.allocatable.sum(axis=0), 1).astype(np.float64)
        self._instances: dict[Hashable, _Instance] = {}
        self._on: dict[int, dict[Hashable, _Instance]] = {}  # primary node -> instances
        self._of_service: dict[str, dict[Hashable, _Instance]] = {}
        self._dependents: dict[str, dict[Hashable, _Instance]] = {}  # referenced service -> ...
        self._backed: dict[int, dict[Hashable, _Instance]] = {}  # backup node -> instances
        self._loads: dict[int, dict[int, _Load]] = {}  # backup -> primary -> load
        self._by_primary: dict[int, dict[int, _Load]] = {}  # primary -> backup -> load
        self._shapes: dict[int, _Bounds] = {}  # id(request) -> its bounds
        # The static filters: what a backup must pass besides health, room, service
        # bounds and anti-affinity, evaluated by the policy's own plugins.
        filters: tuple[FilterPlugin, ...] = (
            Direct(),
            Geo(),
            Latency(self._config),
            NodeAffinity(),
            TaintToleration(),
        )
        # NOTE: the pre-filter check is made once: a runtime protocol check costs more
        # than the filters themselves on a small state.
        self._filters: list[tuple[FilterPlugin, PreFilterPlugin | None]] = [
            (plugin, plugin if isinstance(plugin, PreFilterPlugin) else None) for plugin in filters
        ]
        self._nearest = NearestInstances()
        self._rng = np.random.default_rng(0)
        # Per-call caches: nearest-instance rows after removals, RTT columns.
        self._rows: dict[tuple[str, int], RttRow] = {}
        self._columns: dict[int, RttRow] = {}
        self._critical_rows: dict[tuple[str, int], list[tuple[int, np.float32]]] = {}
        # The state's change log as last seen, and per referenced service its counts then.
        self._epoch = state.epoch
        self._log_pos = len(state.changes)
        self._seen: dict[str, FloatArray] = {}
        self._dirty_nodes: set[int] = set()
        self._dirty_services: set[str] = set()

    # -- host API ---------------------------------------------------------------------------

    def placed(self, key: Hashable, request: PlacementRequest, node: int | str) -> None:
        """``request`` runs on ``node`` as instance ``key`` (already reserved in the state).

        Instances without a service and without a latency or geo bound are not tracked.
        A bounded instance, or one of a service some bound names, gets a backup now.
        """
        p = self._node(node)
        existing = self._instances.get(key)
        if existing is not None:
            raise StateError(
                f"instance {key!r} is already placed on {self.state.names[existing.node]!r}"
            )
        bounded = _bounded(request)
        if not bounded and not request.service:
            return
        self._flush()
        x = self._track(key, request, p)
        if self._needs(x):
            self._choose_backup(x)
        if bounded:
            # Where one host of a referenced service alone keeps x within its bound, that
            # host's failover must now keep x within it too.
            for service, threshold in x.bounds.services.items():
                host = self._sole_host(service, x, threshold)
                if host >= 0 and host != p:
                    self._dirty_nodes.add(host)
        self._flush()

    def released(self, key: Hashable) -> bool:
        """Instance ``key`` ended; False when the planner does not track it.

        Its share of its backup's placeholder is released at once. What its departure
        does to other instances' backups is re-checked at the next call, so this may be
        called before or after the host releases the instance in the state.
        """
        x = self._instances.get(key)
        if x is None:
            return False
        self._forget(x)
        self._dirty_nodes.add(x.node)
        if x.service in self._dependents:
            self._dirty_services.add(x.service)
        return True

    def node_failed(self, node: int | str) -> list[Move]:
        """Node ``node`` failed: move its tracked instances into their reservations.

        Marks the node unhealthy, releases every tracked instance on it and reserves each
        protected one on its backup (``failover``); unprotected ones are released only
        (``requeue``). The placeholders those moves consumed are gone, so every instance
        that shared them, and every instance backed up on the failed node, gets a new
        backup; so do the moved instances. Instances elsewhere whose bound broke because a
        reference went away are migrated (``migrate`` / ``stranded``).

        Call it *instead of* releasing the node's tracked instances; release the
        untracked ones (no service and no bound) and requeue them as usual.
        """
        p = self._node(node)
        state = self.state
        name = state.names[p]
        self._flush()
        if state.healthy[p]:
            state.set_healthy(name, False)
        moving = list(self._on.get(p, {}).values())
        plan = [(x, x.backup) for x in moving]
        for x in moving:
            self._drop_backup(x)
        # A consumed placeholder protects no one else any more: everyone sharing it, and
        # everyone backed up on the failed node, loses the backup and gets a new one below.
        consumed = sorted({b for _, b in plan if b >= 0} | {p})
        for b in consumed:
            for z in list(self._backed.get(b, {}).values()):
                self._drop_backup(z)
        for x in moving:
            self._unplace(x)
            try:
                state.release(p, x.request, x.bounds.vector)
            except StateError as exc:
                raise StateError(
                    f"node_failed({name!r}): {exc}; call node_failed before releasing the "
                    "node's tracked instances: it releases and moves them itself"
                ) from exc
        moves: list[Move] = []
        for x, b in plan:
            if b >= 0:
                state.reserve(b, x.request, x.bounds.vector)
                self._put(x, b)
                reason = f"node {name} failed; moved into its failover reservation"
                moves.append(Move(x.key, x.request, "failover", name, state.names[b], reason))
            else:
                self._forget(x)
                reason = f"node {name} failed; it had no failover reservation"
                moves.append(Move(x.key, x.request, "requeue", name, None, reason))
        self._clear_caches()
        moves += self._fix_violations(f"node {name} failed")
        self._refresh()
        return moves

    def rtt_changed(self) -> list[Move]:
        """Re-check every bound against the state's current RTT source (attach new RTTs
        with ``state.attach_rtt`` or ``attach_rtt_source`` first): instances no longer
        within a bound are migrated to a node that meets them all and has room outside
        the placeholders (``migrate``), or reported ``stranded``; then every backup is
        re-checked and re-chosen where needed."""
        self._invalidate()
        moves = self._fix_violations("RTTs changed")
        self._refresh()
        return moves

    def refresh(self) -> None:
        """Re-check every backup against the current state (areas, cordons, labels may
        have changed) and try again to protect the unprotected instances."""
        self._invalidate()
        self._refresh()

    def overhead(self) -> FailoverOverhead:
        """What the placeholders cost, absolutely and as shares."""
        self._flush()
        reserved = self.placeholder.sum(axis=0)
        allocatable = self.state.allocatable.sum(axis=0)
        needing = [x for x in self._instances.values() if self._needs(x)]
        protected = [x for x in needing if x.backup >= 0]
        used = _total(x.bounds.vector for x in needing)
        dedicated = _total(x.bounds.vector for x in protected)
        return FailoverOverhead(
            instances=len(needing),
            protected=len(protected),
            unprotected=len(needing) - len(protected),
            placeholder_nodes=int(np.count_nonzero(self.placeholder.any(axis=1))),
            reserved=_by_resource(reserved),
            dedicated=_by_resource(dedicated),
            share_of_allocatable=_shares(reserved, allocatable),
            share_of_instances=_shares(reserved, used),
        )

    def backup_of(self, key: Hashable) -> str | None:
        """The backup node of instance ``key``; None when it is unprotected or needs none."""
        self._flush()
        x = self._instance(key)
        return self.state.names[x.backup] if x.backup >= 0 else None

    def node_of(self, key: Hashable) -> str:
        """The node instance ``key`` runs on, as the planner knows it."""
        return self.state.names[self._instance(key).node]

    def unprotected(self) -> list[Hashable]:
        """Keys of the instances that need a reservation and have none."""
        self._flush()
        return [x.key for x in self._instances.values() if self._needs(x) and x.backup < 0]

    def copy(self, state: ClusterState | None = None) -> FailoverPlanner:
        """An independent planner over ``state`` (default: ``self.state.copy()``), for
        what-if questions such as "what if this node failed". ``state`` must be a copy
        of this planner's state, placeholders included."""
        self._flush()  # so the clone starts from checked backups and an empty change log
        clone = FailoverPlanner(self.state.copy() if state is None else state, latency=self._config)
        for x in self._instances.values():
            bounds = clone._track(x.key, x.request, x.node).bounds
            bounds.mask, bounds.problem = x.bounds.mask, x.bounds.problem  # masks: read-only
        for x in self._instances.values():
            if x.backup >= 0:
                clone._link(clone._instances[x.key], x.backup)
        clone.placeholder = self.placeholder.copy(order="F")
        clone._dirty_nodes.clear()
        return clone

    # -- tracking ---------------------------------------------------------------------------

    def _node(self, node: int | str) -> int:
        if isinstance(node, str):
            return self.state.node_index(node)
        if not 0 <= node < len(self.state):
            raise StateError(f"node index {node} out of range (0..{len(self.state) - 1})")
        return node

    def _instance(self, key: Hashable) -> _Instance:
        x = self._instances.get(key)
        if x is None:
            raise StateError(f"instance {key!r} is not tracked by the failover planner")
        return x

    def _needs(self, x: _Instance) -> bool:
        """Whether ``x`` needs a backup: it has a bound, or its service is referenced."""
        return x.bounds.bounded or x.service in self._dependents

    def _track(self, key: Hashable, request: PlacementRequest, node: int) -> _Instance:
        self._clear_caches()  # the dependents and hosts the caches summarize change
        x = _Instance(key, self._bounds_of(request), node)
        self._instances[key] = x
        self._on.setdefault(node, {})[key] = x
        if x.service:
            self._of_service.setdefault(x.service, {})[key] = x
        for service in x.bounds.services:
            dependents = self._dependents.get(service)
            if dependents is None:
                # Newly referenced: its instances need reservations from now on.
                dependents = self._dependents[service] = {}
                self._seen[service] = self.state.counts_of(service).copy()
                self._dirty_nodes.update(y.node for y in self._of_service.get(service, {}).values())
            dependents[key] = x
        return x

    def _forget(self, x: _Instance) -> None:
        self._clear_caches()
        self._drop_backup(x)
        del self._instances[x.key]
        self._unplace(x)
        if x.service:
            peers = self._of_service[x.service]
            del peers[x.key]
            if not peers:
                del self._of_service[x.service]
        for service in x.bounds.services:
            dependents = self._dependents[service]
            del dependents[x.key]
            if not dependents:
                # No longer referenced: unbounded instances of it give their backups up.
                del self._dependents[service]
                del self._seen[service]
                self._dirty_nodes.update(y.node for y in self._of_service.get(service, {}).values())
        bounds = x.bounds
        bounds.users -= 1
        if bounds.users == 0:
            del self._shapes[id(bounds.request)]

    def _unplace(self, x: _Instance) -> None:
        on = self._on.get(x.node)
        if on is not None and on.pop(x.key, None) is not None and not on:
            del self._on[x.node]

    def _put(self, x: _Instance, node: int) -> None:
        x.node = node
        self._on.setdefault(node, {})[x.key] = x

    def _bounds_of(self, request: PlacementRequest) -> _Bounds:
        bounds = self._shapes.get(id(request))
        if bounds is None or bounds.request is not request:
            bounds = _parse(self.state, request)
            self._shapes[id(request)] = bounds
        bounds.users += 1
        return bounds

    # -- placeholders -----------------------------------------------------------------------

    def _link(self, x: _Instance, b: int) -> None:
        """Record ``b`` as ``x``'s backup (placeholders are synced by the caller)."""
        p = x.node
        x.backup = b
        self._backed.setdefault(b, {})[x.key] = x
        loads = self._loads.setdefault(b, {})
        load = loads.get(p)
        if load is None:
            load = loads[p] = _Load(np.zeros(NUM_RESOURCES, dtype=np.int64))
            self._by_primary.setdefault(p, {})[b] = load
        load.amount += x.bounds.vector
        load.count += 1

    def _add_backup(self, x: _Instance, b: int) -> None:
        self._link(x, b)
        # Only the load of x's primary grew, so the new maximum is the old one or it.
        self._sync(b, np.maximum(self.placeholder[b], self._loads[b][x.node].amount))

    def _drop_backup(self, x: _Instance) -> None:
        b, p = x.backup, x.node
        if b < 0:
            return
        x.backup = -1
        backers = self._backed[b]
        del backers[x.key]
        if not backers:
            del self._backed[b]
        loads = self._loads[b]
        load = loads[p]
        # The maximum can only drop where this load was the maximum and shrinks.
        shrinks = bool(((load.amount == self.placeholder[b]) & (x.bounds.vector > 0)).any())
        load.amount -= x.bounds.vector
        load.count -= 1
        if load.count == 0:
            del loads[p]
            if not loads:
                del self._loads[b]
            by_primary = self._by_primary[p]
            del by_primary[b]
            if not by_primary:
                del self._by_primary[p]
        if shrinks:
            self._sync(b)

    def _sync(self, b: int, need: IntArray | None = None) -> None:
        """Make the placeholder reserved on ``b`` the largest load of any one primary
        (``need``, when the caller knows it)."""
        if need is None:
            need = np.zeros(NUM_RESOURCES, dtype=np.int64)
            for load in self._loads.get(b, {}).values():
                np.maximum(need, load.amount, out=need)
        have = self.placeholder[b]
        if np.array_equal(need, have):
            return
        down = np.maximum(have - need, 0)
        up = np.maximum(need - have, 0)
        if down.any():
            self.state.release(b, PLACEHOLDER, down)
        if up.any():
            self.state.reserve(b, PLACEHOLDER, up)
        self.placeholder[b] = need

    # -- choosing backups -------------------------------------------------------------------

    def _choose_backup(self, x: _Instance) -> None:
        """Give ``x`` the feasible backup that raises placeholders least; none if no node
        meets its bounds (as if its node had failed) with room."""
        state, p = self.state, x.node
        mask, ratio = self._failover_mask(x)
        cost = np.zeros(len(state), dtype=np.float64)
        moved = self._by_primary.get(p, {})
        for r in x.bounds.requested:
            # What the failure of p would move to each node in resource r, with x added,
            # beyond the placeholder already there: the increase, which must fit in what
            # is free. One column at a time: the columns are contiguous.
            increase = x.bounds.vector[r] - self.placeholder[:, r]
            for b, load in moved.items():
                increase[b] += load.amount[r]
            np.maximum(increase, 0, out=increase)
            mask &= increase <= state.free[:, r]
            cost += increase / self._totals[r]
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return
        # Least cost, then least ratio, then nearest the primary, then lowest index
        # (candidates are in index order): a lexicographic minimum by successive ties.
        for key in (cost, ratio, self._rtt_from(p)):
            values = key[candidates]
            candidates = candidates[values == values.min()]
            if candidates.size == 1:
                break
        self._add_backup(x, int(candidates[0]))

    def _failover_mask(
        self, x: _Instance, at: IntArray | None = None
    ) -> tuple[BoolArray, FloatArray]:
        """Where ``x`` may fail over to when its node fails (room aside): over all nodes,
        or only at the nodes ``at`` (checking a backup costs O(hosts), not O(nodes)). With
        all nodes, also ``x``'s worst RTT-to-threshold ratio over node and service bounds
        (zeros at ``at``)."""
        state, p = self.state, x.node
        if at is None:
            mask = self._static_mask(x.bounds) & state.schedulable
            mask[p] = False
            ratio = self._node_ratio(x.bounds)
        else:
            mask = self._static_mask(x.bounds)[at] & state.schedulable[at] & (at != p)
            ratio = np.zeros(at.size, dtype=np.float64)
        co_moving = self._on.get(p, {}).values()
        for service, threshold in x.bounds.services.items():
            # The service's instances on p move with x: their backups are references too.
            backups = [y.backup for y in co_moving if y.service == service and y.backup >= 0]
            if at is None:
                row = self._service_row(service, failed=p)
                if backups:
                    row = np.minimum(row, self._source().rows(backups).min(axis=0))
                np.fmax(ratio, row / threshold, out=ratio)
            else:
                row = self._reference_at(service, at, failed=p, extra=backups)
            mask &= row <= x.bounds.limits[service]
        if x.bounds.anti:
            anti = self._anti_mask(x, failed=p)
            mask &= anti if at is None else anti[at]
        if x.service in self._dependents:
            for node, limit in self._critical(x.service, failed=p):
                mask &= (self._column(node) if at is None else self._to(at, node)) <= limit
        return mask, ratio

    def _bounds_mask(
        self, x: _Instance, at: IntArray | None = None
    ) -> tuple[BoolArray, FloatArray]:
        """Where ``x``'s bounds hold now (``x`` not counted as its own reference), over all
        nodes or only at ``at``; the ratio as in :meth:`_failover_mask`."""
        if at is None:
            mask = self._static_mask(x.bounds).copy()
            ratio = self._node_ratio(x.bounds)
        else:
            mask = self._static_mask(x.bounds)[at]
            ratio = np.zeros(at.size, dtype=np.float64)
        for service, threshold in x.bounds.services.items():
            if at is None:
                row = self._service_row(service, skip=(x,))
                np.fmax(ratio, row / threshold, out=ratio)
            else:
                row = self._reference_at(service, at, skip=(x,))
            mask &= row <= x.bounds.limits[service]
        return mask, ratio

    def _node_ratio(self, bounds: _Bounds) -> FloatArray:
        ratio = np.zeros(len(self.state), dtype=np.float64)
        source = self.state.rtt
        if source is not None:
            for node, threshold in bounds.nodes:
                np.fmax(ratio, source.row(node) / threshold, out=ratio)
        return ratio

    def _static_mask(self, bounds: _Bounds) -> BoolArray:
        """Where the bounds that no failure changes hold, through the policy's plugins."""
        if bounds.mask is None:
            state = self.state
            amounts = request_amounts(bounds.static)
            cycle = CycleState(
                request=bounds.static,
                vector=bounds.vector,
                amounts=amounts,
                requested=bounds.requested,
                rng=self._rng,
            )
            mask = np.ones(len(state), dtype=bool)
            bounds.problem = ""
            for plugin, pre in self._filters:
                if pre is not None:
                    status = pre.pre_filter(state, cycle)
                    if status.code is Code.SKIP:
                        continue
                    if not status.ok:
                        mask[:] = False
                        bounds.problem = f"{plugin.name}: {'; '.join(status.reasons)}"
                        break
                mask &= plugin.filter(state, cycle)
            mask.flags.writeable = False
            bounds.mask = mask
            return mask
        return bounds.mask

    def _anti_mask(self, x: _Instance, *, failed: int = -1) -> BoolArray:
        """Anti-affinity after ``failed`` fails (its instances gone, their backups taken),
        or, with no failure, after ``x`` leaves its node."""
        state = self.state
        mask = np.ones(len(state), dtype=bool)
        for rule in x.bounds.anti:
            service = rule.service or x.service
            counts = state.counts_of(service).copy()
            if failed >= 0:
                counts[failed] = 0
                for y in self._on.get(failed, {}).values():
                    if y is not x and y.service == service and y.backup >= 0:
                        counts[y.backup] += 1
            elif service == x.service:
                counts[x.node] -= 1
            if rule.scope == "node":
                mask &= counts < rule.max_per_domain
            else:
                per_cluster = np.bincount(
                    state.cluster_id, weights=counts, minlength=state.num_clusters
                ).astype(np.float64)
                mask &= state.per_node(per_cluster) < rule.max_per_domain
        return mask

    def _critical(
        self, service: str, *, failed: int = -1, leaving: _Instance | None = None
    ) -> list[tuple[int, np.float32]]:
        """Instances referencing ``service`` that stay where they are, meet their bound
        now, and would not once ``failed`` fails (or ``leaving`` leaves its node): their
        nodes and RTT limits, which whatever replaces the lost instance must meet."""
        if leaving is None:
            cached = self._critical_rows.get((service, failed))
            if cached is None:
                cached = self._critical_rows[(service, failed)] = self._find_critical(
                    service, failed, None
                )
            return cached
        return self._find_critical(service, -1, leaving)

    def _find_critical(
        self, service: str, failed: int, leaving: _Instance | None
    ) -> list[tuple[int, np.float32]]:
        dependents = self._dependents.get(service)
        source = self.state.rtt
        counts = self.state.counts_of(service)
        lost = failed if leaving is None else leaving.node
        if not dependents or source is None or lost < 0 or counts[lost] <= 0:
            return []
        stay = [y for y in dependents.values() if y is not leaving and y.node != failed]
        nodes = np.array([y.node for y in stay], dtype=np.intp)
        limits = np.array([y.bounds.limits[service] for y in stay], dtype=np.float32)
        own = np.array([y.service == service for y in stay], dtype=bool)
        # Only a dependent that the lost instance itself keeps within bound can lose it.
        close = self._to_many(lost, nodes) <= limits
        if not close.any():
            return []
        nodes, limits, own = nodes[close], limits[close], own[close]
        hosts = np.flatnonzero(counts > 0)
        # RTT from every host to every such dependent, and how many instances each host
        # offers each dependent now (a dependent is not its own reference) and after.
        rtt = source.pair_rtts(np.repeat(hosts, nodes.size), np.tile(nodes, hosts.size))
        rtt = rtt.reshape(hosts.size, nodes.size)
        now = counts[hosts][:, None] - ((hosts[:, None] == nodes[None, :]) & own[None, :])
        after = now.copy()
        if failed >= 0:
            after[hosts == failed] = 0
        if leaving is not None:
            after[hosts == leaving.node] -= 1
        held = np.where(now > 0, rtt, np.inf).min(axis=0) <= limits
        kept = np.where(after > 0, rtt, np.inf).min(axis=0) <= limits
        return [(int(nodes[k]), limits[k]) for k in np.flatnonzero(held & ~kept).tolist()]

    def _sole_host(self, service: str, x: _Instance, threshold: float) -> int:
        """The one node running ``service`` within ``threshold`` of ``x`` (not counting
        ``x``), or -1 when there are none or several."""
        source = self.state.rtt
        if source is None:
            return -1
        counts = self.state.counts_of(service).copy()
        if service == x.service:
            counts[x.node] -= 1
        hosts = np.flatnonzero(counts > 0)
        if hosts.size == 0:
            return -1
        rtts = source.pair_rtts(hosts, np.full(hosts.size, x.node, dtype=np.intp))
        within = hosts[rtts <= float32_limit(threshold)]
        return int(within[0]) if within.size == 1 else -1

    # -- RTT rows ---------------------------------------------------------------------------

    def _source(self) -> RttSource:
        source = self.state.rtt
        if source is None:  # callers check first; a service row without RTTs is all inf
            raise StateError("the state has no RTT data")
        return source

    def _service_row(
        self, service: str, *, failed: int = -1, skip: tuple[_Instance, ...] = ()
    ) -> RttRow:
        """RTT from the nearest instance of ``service`` to every node, without the
        instances on ``failed`` and the instances ``skip`` (+inf where none is left)."""
        state = self.state
        n = len(state)
        if state.rtt is None:
            return np.full(n, np.inf, dtype=np.float32)
        counts = state.counts_of(service)
        skipped = [y.node for y in skip if y.service == service and y.node != failed]
        drop_failed = failed >= 0 and counts[failed] > 0
        if not skipped:
            if not drop_failed:
                return self._nearest.row(state, service)
            cached = self._rows.get((service, failed))
            if cached is not None:
                return cached
        hosts = counts.copy()
        if drop_failed:
            hosts[failed] = 0
        for node in skipped:
            hosts[node] -= 1
        idx = np.flatnonzero(hosts > 0)
        row = np.full(n, np.inf, dtype=np.float32)
        source = self._source()
        for start in range(0, idx.size, _BLOCK):
            np.minimum(row, source.rows(idx[start : start + _BLOCK]).min(axis=0), out=row)
        if not skipped:
            self._rows[(service, failed)] = row
        return row

    def _reference_at(
        self,
        service: str,
        at: IntArray,
        *,
        failed: int = -1,
        skip: tuple[_Instance, ...] = (),
        extra: list[int] | None = None,
    ) -> RttRow:
        """:meth:`_service_row` at the nodes ``at`` only, with the nodes ``extra`` counted
        as instances too; O(hosts × len(at))."""
        state = self.state
        source = state.rtt
        if source is None:
            return np.full(at.size, np.inf, dtype=np.float32)
        counts = state.counts_of(service)
        skipped = [y.node for y in skip if y.service == service and y.node != failed]
        if skipped or (failed >= 0 and counts[failed] > 0):
            counts = counts.copy()
            if failed >= 0:
                counts[failed] = 0
            for node in skipped:
                counts[node] -= 1
        hosts = np.flatnonzero(counts > 0)
        if extra:
            hosts = np.concatenate([hosts, np.asarray(extra, dtype=np.intp)])
        if hosts.size == 0:
            return np.full(at.size, np.inf, dtype=np.float32)
        rtt = source.pair_rtts(np.repeat(hosts, at.size), np.tile(at, hosts.size))
        nearest: RttRow = rtt.reshape(hosts.size, at.size).min(axis=0)
        return nearest

    def _to_many(self, node: int, at: IntArray) -> RttRow:
        """RTT from ``node`` to each of the nodes ``at``."""
        return self._source().pair_rtts(np.full(at.size, node, dtype=np.intp), at)

    def _to(self, at: IntArray, node: int) -> RttRow:
        """RTT from each of the nodes ``at`` to ``node``."""
        return self._source().pair_rtts(at, np.full(at.size, node, dtype=np.intp))

    def _column(self, node: int) -> RttRow:
        """RTT from every node to ``node``."""
        column = self._columns.get(node)
        if column is None:
            source = self._source()
            n = len(self.state)
            column = (
                source.row(node)
                if source.symmetric
                else source.pair_rtts(np.arange(n), np.full(n, node, dtype=np.intp))
            )
            self._columns[node] = column
        return column

    def _rtt_from(self, node: int) -> FloatArray:
        source = self.state.rtt
        if source is None:
            return np.zeros(len(self.state), dtype=np.float64)
        return source.row(node).astype(np.float64)

    # -- keeping backups valid --------------------------------------------------------------

    def _clear_caches(self) -> None:
        self._rows.clear()
        self._columns.clear()
        self._critical_rows.clear()

    def _invalidate(self) -> None:
        """Forget everything computed from RTTs, areas or labels."""
        self._clear_caches()
        for bounds in self._shapes.values():
            bounds.mask = None

    def _observe(self) -> None:
        """Mark what the state's changes since the last look may have invalidated."""
        state = self.state
        changes = state.changes
        if state.epoch != self._epoch or len(changes) < self._log_pos:
            rows = np.arange(len(state))
            self._epoch = state.epoch
        else:
            rows = np.unique(np.asarray(changes[self._log_pos :], dtype=np.intp))
        self._log_pos = len(changes)
        if rows.size == 0:
            return
        for service, seen in self._seen.items():
            now = state.counts_of(service)
            if ((seen[rows] > 0) & (now[rows] <= 0)).any():
                self._dirty_services.add(service)  # a reference left a node
            seen[rows] = now[rows]
        if self._backed:
            schedulable = state.schedulable
            for b in rows.tolist():
                backers = self._backed.get(b)
                if not backers:
                    continue
                # A backup node that went down, or (for anti-affinity) got new instances.
                everyone = not schedulable[b]
                self._dirty_nodes.update(
                    y.node for y in backers.values() if everyone or y.bounds.anti
                )

    def _flush(self) -> None:
        """Re-check the scenarios (failed nodes) that changes may have invalidated."""
        self._clear_caches()
        for _ in range(_FLUSH_ROUNDS):
            self._observe()
            for service in sorted(self._dirty_services):
                self._dirty_nodes.update(y.node for y in self._dependents.get(service, {}).values())
                self._dirty_nodes.update(y.node for y in self._of_service.get(service, {}).values())
            self._dirty_services.clear()
            if not self._dirty_nodes:
                return
            nodes = sorted(self._dirty_nodes)
            self._dirty_nodes.clear()
            for p in nodes:
                self._validate(p)

    def _refresh(self) -> None:
        self._clear_caches()
        self._observe()
        self._dirty_services.clear()
        self._dirty_nodes.update(self._on)
        self._flush()

    def _validate(self, p: int) -> None:
        """Make every backup of the failure of ``p`` valid, choosing new ones where not."""
        moving = list(self._on.get(p, {}).values())
        tried: set[Hashable] = set()
        for _ in range(len(moving) + 1):
            bad = []
            for x in moving:
                if not self._needs(x):
                    self._drop_backup(x)
                elif x.backup < 0:
                    if x.key not in tried:
                        bad.append(x)
                elif not self._backup_holds(x):
                    bad.append(x)
            if not bad:
                return
            for x in bad:
                self._drop_backup(x)
            for x in _references_first(bad):
                tried.add(x.key)
                self._choose_backup(x)
        # Did not settle (references in a cycle): what is still invalid goes unprotected.
        for x in moving:
            if x.backup >= 0 and not self._backup_holds(x):
                self._drop_backup(x)

    def _backup_holds(self, x: _Instance) -> bool:
        return bool(self._failover_mask(x, np.array([x.backup], dtype=np.intp))[0][0])

    # -- migrations -------------------------------------------------------------------------

    def _fix_violations(self, cause: str) -> list[Move]:
        """Migrate every bounded instance whose bounds no longer hold where it runs."""
        state = self.state
        moves: list[Move] = []
        stranded: set[Hashable] = set()
        for _ in range(len(self._instances) + 1):
            migrated = False
            for x in list(self._instances.values()):
                if not x.bounds.bounded or x.key in stranded:
                    continue
                if self._bounds_mask(x, np.array([x.node], dtype=np.intp))[0][0]:
                    continue
                source = state.names[x.node]
                b, why = self._migration_target(x)
                if b < 0:
                    stranded.add(x.key)
                    reason = f"{cause}; a bound no longer holds and {why}"
                    moves.append(Move(x.key, x.request, "stranded", source, None, reason))
                    continue
                self._migrate(x, b)
                reason = f"{cause}; a bound no longer held on {source}"
                moves.append(Move(x.key, x.request, "migrate", source, state.names[b], reason))
                migrated = True
            if not migrated:
                break
        return moves

    def _migration_target(self, x: _Instance) -> tuple[int, str]:
        """A node that meets ``x``'s bounds and has room outside the placeholders; one
        that keeps the instances referencing ``x``'s service within their bounds if
        there is such a node. (-1, why) when there is none."""
        state = self.state
        mask, ratio = self._bounds_mask(x)
        mask &= state.schedulable
        mask[x.node] = False
        if x.bounds.anti:
            mask &= self._anti_mask(x)
        if not mask.any():
            missing = [s for s in x.bounds.services if not state.counts_of(s).any()]
            if missing:
                return -1, f"no instance of {', '.join(map(repr, missing))} runs"
            return -1, x.bounds.problem or "no other healthy node meets them"
        for r in x.bounds.requested:
            mask &= state.free[:, r] >= x.bounds.vector[r]
        if x.service in self._dependents:
            keeps = np.ones(len(state), dtype=bool)
            for node, limit in self._critical(x.service, leaving=x):
                keeps &= self._column(node) <= limit
            if (mask & keeps).any():
                mask &= keeps
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return -1, "no node within them has room"
        return int(candidates[np.lexsort((candidates, ratio[candidates]))[0]]), ""

    def _migrate(self, x: _Instance, b: int) -> None:
        state = self.state
        old = x.node
        self._drop_backup(x)
        self._unplace(x)
        state.release(old, x.request, x.bounds.vector)
        state.reserve(b, x.request, x.bounds.vector)
        self._put(x, b)
        self._clear_caches()


# -- helpers ----------------------------------------------------------------------------------


def _bounded(request: PlacementRequest) -> bool:
    if not request.labels and not request.constraints:
        return False
    return bool(request.constraint_kinds & BOUND_KINDS)


def _parse(state: ClusterState, request: PlacementRequest) -> _Bounds:
    """Split ``request``'s bounds: references to services (whose instances move in a
    failover, so the planner evaluates them itself) and the rest, left in ``static`` for
    the policy's plugins. A name that is a node is a node (as in the Latency plugin)."""
    labels: dict[str, str] = {}
    nodes: list[tuple[int, float]] = []
    services: dict[str, float] = {}
    for label, value in request.labels.items():
        name = label[len(DELAY_LABEL_PREFIX) :] if label.startswith(DELAY_LABEL_PREFIX) else ""
        ms = delay_ms(value)
        if name and name not in state.index:
            if ms is None:
                raise StateError(
                    f"request {request.id!r}: {label}: {value!r} is not a positive number "
                    "of milliseconds"
                )
            services[name] = min(ms, services.get(name, math.inf))
            continue
        if name and ms is not None:
            nodes.append((state.index[name], ms))
        labels[label] = value  # static; the Latency plugin reports a bad value of its own
    constraints: list[Constraint] = []
    for c in request.constraints:
        if isinstance(c, LatencyConstraint) and c.target is not None:
            j = state.index.get(c.target)
            if j is None:
                services[c.target] = min(c.threshold_ms, services.get(c.target, math.inf))
                if c.location is None and c.area is None:
                    continue
                c = c.model_copy(update={"target": None})
            else:
                nodes.append((j, c.threshold_ms))
        constraints.append(c)
    static = request
    if services:
        static = request.model_copy(update={"labels": labels, "constraints": tuple(constraints)})
    vector = np.array(request_amounts(request), dtype=np.int64)
    vector.flags.writeable = False
    return _Bounds(
        request=request,
        static=static,
        bounded=_bounded(request),
        nodes=tuple(nodes),
        services=services,
        limits={service: float32_limit(ms) for service, ms in services.items()},
        anti=tuple(c for c in request.constraints if isinstance(c, AntiAffinityConstraint)),
        vector=vector,
        requested=tuple(r for r, amount in enumerate(vector.tolist()) if amount),
    )


def _references_first(instances: list[_Instance]) -> list[_Instance]:
    """``instances`` with the services others among them reference before those others,
    so a backup is chosen knowing where its co-moving references go."""
    services = {x.service for x in instances if x.service}
    graph: dict[str, set[str]] = {s: set() for s in services}
    for x in instances:
        if x.service:
            graph[x.service].update(s for s in x.bounds.services if s in services)
            graph[x.service].discard(x.service)
    try:
        rank = {s: i for i, s in enumerate(graphlib.TopologicalSorter(graph).static_order())}
    except graphlib.CycleError:
        return list(instances)
    return sorted(instances, key=lambda x: rank.get(x.service, len(rank)))


def _total(vectors: Iterable[IntArray]) -> IntArray:
    total = np.zeros(NUM_RESOURCES, dtype=np.int64)
    for vector in vectors:
        total += vector
    return total


def _by_resource(amounts: IntArray) -> dict[str, int]:
    return {name: int(a) for name, a in zip(RESOURCE_NAMES, amounts.tolist(), strict=True)}


def _shares(part: IntArray, whole: IntArray) -> dict[str, float]:
    return {
        name: (p / w if w else 0.0)
        for name, p, w in zip(RESOURCE_NAMES, part.tolist(), whole.tolist(), strict=True)
    }


__all__ = ["BOUND_KINDS", "PLACEHOLDER", "FailoverOverhead", "FailoverPlanner", "Move", "MoveKind"]
