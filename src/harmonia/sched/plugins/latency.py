"""Latency: keep a request within an RTT bound of a node, a service, a user or an area.

After the kubernetes-edge-scheduler (Haja et al., "Sharpening Kubernetes for the Edge",
ACM SIGCOMM'19 Posters and Demos), whose pods carry labels ``delay_<node>: "<ms>"``, and
Oakestra's latency constraints with its latency- and distance-aware placement (LDP;
Bartolomeo et al., "Oakestra: A Lightweight Hierarchical Orchestration Framework for Edge
Computing", USENIX ATC'23). Every bound is a hard filter over all nodes at once; a score
then prefers lower RTT among the nodes that pass.

References, each with a threshold in ms; all of a request's references must hold:

- ``delay_<name>: "<ms>"`` labels and ``LatencyConstraint(target=name)``: when ``name``
  is a node, RTT(name → node) ≤ ms; otherwise ``name`` is a service and the RTT from its
  *nearest* running instance counts, ``min`` over the rows of the nodes that run it. A
  name that is both a node and a service means the node (the kubernetes-edge-scheduler's
  meaning of the label).
- ``LatencyConstraint(location=…)``: a user at a position. Its RTT is estimated from the
  great-circle distance as ``distance_rtt_ms(haversine_km(user, node)) + access_ms``: the
  fibre round trip plus the user's access network, :attr:`LatencyConfig.access_ms`,
  2 ms by default (a wired or 5G access leg; raise it for 4G, about 20-30 ms). Example:
  a node 300 km away → 2 × 300 × 1.5 / 200 + 2 = 6.5 ms.
- ``LatencyConstraint(area=…)``: a named area of :attr:`ClusterState.areas`. Oakestra
  asks for a node "within the threshold of the area"; here the estimate is taken for
  every point of the area and the *worst* counts, so every user the area stands for is
  within the bound (the centroid would let users at the area's edge exceed it).
- A constraint that gives several of target, location and area must meet each.

RTT rows are read from the reference (``state.rtt.row(ref)``, "from" in the matrix), so a
measured asymmetric matrix is read the way kubernetes-edge-scheduler reads it. A bound
compares the stored float32 RTT with the threshold exactly (against the largest float32
not above it, :func:`float32_limit`): 37.2 ms stored as float32 is 37.2000007 ms, over a
37.2 ms bound. Nodes whose RTT cannot be estimated (no coordinates) are rejected, with
that reason.

Outcomes before filtering:

- ``UNRESOLVABLE`` (no retry helps), every problem named: a delay that is not a positive
  number of ms; a name that is neither a node nor a known service; an unknown area; a
  node or service reference while the state has no RTT data.
- ``UNSCHEDULABLE`` ("no running instance of X yet", retried later): a known service
  with no running instance. Known means it has run on this state, is the request's own
  service, or belongs to the request's application (an SLA's connectivity targets are
  ``{application}.{microservice}`` keys; that sibling may just not be placed yet). The
  kubernetes-edge-scheduler leaves such a pod pending as well.

Score: per reference ``100 × (1 − rtt / threshold)``, floored at 0 (a node at the bound
scores 0, one at 0 ms scores 100), averaged over the references, rounded down. Scaling by
the threshold rather than by the feasible nodes' range keeps a node's score independent
of which other nodes fit. Example: bound 25 ms; RTTs 5, 10, 25 → 80, 60, 0; two bounds
(25 ms at 10 ms → 60; 40 ms at 30 ms → 25) → floor((60 + 25) / 2) = 42.

Speed: a node reference is one row (a view for a matrix); a service reference reads a
per-service "nearest instance" row kept up to date from the state's per-service host log
(a node newly running the service lowers it with one ``minimum``; only a node that stops
running it forces a recompute; placements of other services are never read), so
no decision reduces over all instances. User and area bounds compare haversine terms
(kept per position) with the term of the farthest distance the bound allows, so the
``asin`` that turns a term into kilometres runs only for the feasible nodes' scores and
for explanations. When no node qualifies, :meth:`Latency.summarize` gives the scheduler
the best RTT that was available for each bound that failed.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from harmonia.model import LatencyConstraint, PlacementRequest
from harmonia.model.request import DELAY_LABEL_PREFIX
from harmonia.model.topology import distance_rtt_ms
from harmonia.sched.framework import (
    MAX_NODE_SCORE,
    OK,
    SKIP,
    CycleState,
    ProfileError,
    Status,
    unresolvable,
    unschedulable,
)
from harmonia.sched.plugins.geo import DistanceCache, km_of, within_km
from harmonia.sched.rtt import RttSource
from harmonia.sched.state import Area, BoolArray, ClusterState, FloatArray, IntArray

NAME = "Latency"
DEFAULT_ACCESS_MS = 2.0
# Services whose nearest-instance rows are kept (4 bytes per node each).
NEAREST_KEPT = 256
# Host rows read at once when a nearest-instance row is rebuilt (bounds the k × n block).
NEAREST_BLOCK = 256
# Up to this many new instances are folded into a nearest-instance row one row at a time.
NEAREST_ONE_BY_ONE = 16
# Areas whose worst-point terms are kept (8 bytes per node each).
ESTIMATES_KEPT = 256
# distance_rtt_ms(1 km): the fibre round trip per kilometre of great-circle distance.
MS_PER_KM = float(distance_rtt_ms(1.0))
FLOAT32_MAX = float(np.finfo(np.float32).max)

Kind = Literal["node", "service", "location", "area"]
RttVector = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class LatencyConfig:
    """``access_ms``: access-network RTT added to distance estimates for users (≥ 0)."""

    access_ms: float = DEFAULT_ACCESS_MS

    def __post_init__(self) -> None:
        if not math.isfinite(self.access_ms) or self.access_ms < 0:
            raise ProfileError(
                f"{NAME}: access_ms must be a finite number >= 0, got {self.access_ms}"
            )


@dataclass(frozen=True)
class Reference:
    """One bound: what the RTT is measured to, and how it reads in reasons."""

    text: str  # as the user wrote it: "delay_edge-1", "latency target 'app.db'"
    kind: Kind
    name: str  # node, service or area name; "" for a location
    threshold_ms: float
    node: int = -1  # the node's index, for kind "node"
    point: tuple[float, float] = (math.nan, math.nan)  # for kind "location"
    area: Area | None = None  # for kind "area"

    def target(self) -> str:
        """What the RTT is to, for a per-node reason: ``edge-1``, ``user at (48.1, 11.6)``."""
        if self.kind == "node":
            return self.name
        if self.kind == "service":
            return f"nearest instance of {self.name!r}"
        if self.kind == "location":
            return f"user at ({self.point[0]:g}, {self.point[1]:g}) (estimated)"
        return f"area {self.name!r} (estimated, worst point)"


@dataclass
class _Resolved:
    """The cycle data: the request's references and, once filtered, their bounds."""

    refs: tuple[Reference, ...]
    bounds: list[_Bound] | None = None


@dataclass(frozen=True)
class _Bound:
    """A reference's values over all nodes and the limit they must not exceed.

    Node and service references: RTTs in ms (float32) and the largest float32 within the
    threshold, so the compare runs in float32 and is exact. Users and areas: haversine
    terms (see :class:`~harmonia.sched.plugins.geo.DistanceCache`) and the term of the
    largest distance whose estimate is within the threshold; no ``asin`` over all nodes.
    """

    values: RttVector
    limit: float | np.float32


class Latency:
    """Filter: every latency bound of the request holds. Score: lower RTT is better."""

    name = NAME
    constraint_types = ("latency",)

    def __init__(self, config: LatencyConfig | None = None) -> None:
        self.config = config or LatencyConfig()
        self._nearest = NearestInstances()
        self._estimates = _Estimates()

    # -- pre-filter: resolve every reference, report every problem -----------------------

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        request = cycle.request
        refs: list[Reference] = []
        problems: list[str] = []
        waiting: list[str] = []
        for key, value in request.labels.items():
            if not key.startswith(DELAY_LABEL_PREFIX):
                continue
            name = key[len(DELAY_LABEL_PREFIX) :]
            ms = delay_ms(value)
            if ms is None:
                problems.append(f"{key}: {value!r} is not a positive number of milliseconds")
            elif not name:
                problems.append(f"{key}: the label names no node or service")
            else:
                _resolve_name(state, request, name, ms, key, refs, problems, waiting)
        for c in request.constraints:
            if not isinstance(c, LatencyConstraint):
                continue
            if c.target is not None:
                text = f"latency target {c.target!r}"
                _resolve_name(
                    state, request, c.target, c.threshold_ms, text, refs, problems, waiting
                )
            if c.location is not None:
                point = (c.location.lat, c.location.long)
                text = f"latency location ({point[0]:g}, {point[1]:g})"
                refs.append(Reference(text, "location", "", c.threshold_ms, point=point))
            if c.area is not None:
                area = state.areas.get(c.area)
                text = f"latency area {c.area!r}"
                if area is None:
                    known = ", ".join(repr(a) for a in sorted(state.areas)) or "none defined"
                    problems.append(f"{text}: unknown area (known areas: {known})")
                else:
                    refs.append(Reference(text, "area", c.area, c.threshold_ms, area=area))
        if problems:
            return unresolvable(*problems)
        if waiting:
            return unschedulable(*waiting)
        if not refs:
            return SKIP
        cycle.data[NAME] = _Resolved(tuple(refs))
        return OK

    # -- filter ---------------------------------------------------------------------------

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        bounds = self._bounds(state, _resolved(cycle))
        mask: BoolArray = bounds[0].values <= bounds[0].limit
        for bound in bounds[1:]:
            np.logical_and(mask, bound.values <= bound.limit, out=mask)
        return mask

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        resolved = _resolved(cycle)
        bounds = self._bounds(state, resolved)
        rtts = [
            self._ms(ref, b.values[rejected]) for ref, b in zip(resolved.refs, bounds, strict=True)
        ]
        nearest = {
            ref.name: self._nearest.hosts_nearest_to(state, ref.name, rejected)
            for ref in resolved.refs
            if ref.kind == "service"
        }
        out = []
        for k in range(rejected.size):
            parts = []
            for ref, rtt in zip(resolved.refs, rtts, strict=True):
                value = float(rtt[k])
                if math.isnan(value):
                    parts.append(f"no coordinates to estimate RTT to {ref.target()}")
                elif value > ref.threshold_ms:
                    where = ref.target()
                    if ref.kind == "service":
                        where += f" ({state.names[nearest[ref.name][k]]})"
                    parts.append(f"RTT {value:.1f} ms to {where} > {ref.threshold_ms:g} ms")
            out.append("; ".join(parts))
        return out

    def summarize(self, state: ClusterState, cycle: CycleState, judged: IntArray) -> list[str]:
        """Why no node qualifies: for each bound that no judged node meets, the best RTT
        among the nodes this filter judged (those the filters before it let through)."""
        resolved = _resolved(cycle)
        lines = []
        for ref, bound in zip(resolved.refs, self._bounds(state, resolved), strict=True):
            values = bound.values[judged]
            if values.size == 0 or np.isnan(values).all():
                lines.append(f"{ref.text}: no node has coordinates to estimate RTT")
                continue
            k = int(np.nanargmin(values))  # RTT estimates grow with the haversine term
            best = float(self._ms(ref, values[k : k + 1])[0])
            if best > ref.threshold_ms:
                node = state.names[int(judged[k])]
                lines.append(
                    f"{ref.text}: best RTT {best:.1f} ms (node {node}) > {ref.threshold_ms:g} ms"
                )
        if not lines and len(resolved.refs) > 1:
            lines.append(f"no node is within all {len(resolved.refs)} latency bounds at once")
        return lines

    # -- score ----------------------------------------------------------------------------

    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status:
        return OK if NAME in cycle.data else SKIP

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        resolved = _resolved(cycle)
        total: FloatArray | None = None
        for ref, bound in zip(resolved.refs, self._bounds(state, resolved), strict=True):
            scale = -MAX_NODE_SCORE / ref.threshold_ms
            if ref.kind in ("node", "service"):
                part = np.multiply(bound.values, scale, dtype=np.float64)
                part += MAX_NODE_SCORE
            else:
                # Estimates need an asin per node: only the feasible ones, the others
                # are never chosen and keep 0.
                part = np.zeros(len(state), dtype=np.float64)
                chosen = np.flatnonzero(feasible)
                part[chosen] = self._ms(ref, bound.values[chosen]) * scale + MAX_NODE_SCORE
            np.fmax(part, 0.0, out=part)  # beyond the bound, or unknown (NaN): 0
            total = part if total is None else np.add(total, part, out=total)
        assert total is not None  # pre_filter gives at least one reference
        if len(resolved.refs) > 1:
            total /= len(resolved.refs)
        result: FloatArray = np.floor(total, out=total)
        return result

    # -- bounds ---------------------------------------------------------------------------

    def _bounds(self, state: ClusterState, resolved: _Resolved) -> list[_Bound]:
        """Each reference's values and limit (memoized for the decision)."""
        if resolved.bounds is None:
            resolved.bounds = [self._bound(state, ref) for ref in resolved.refs]
        return resolved.bounds

    def _bound(self, state: ClusterState, ref: Reference) -> _Bound:
        if ref.kind == "node":
            return _Bound(_source(state).row(ref.node), float32_limit(ref.threshold_ms))
        if ref.kind == "service":
            return _Bound(self._nearest.row(state, ref.name), float32_limit(ref.threshold_ms))
        if ref.kind == "location":
            terms = self._estimates.location(state, ref.point)
        else:
            assert ref.area is not None
            terms = self._estimates.area(state, ref.area)
        # estimate = distance_rtt_ms(km) + access ≤ threshold
        #   ⇔ km ≤ (threshold − access) / MS_PER_KM
        reach_km = (ref.threshold_ms - self.config.access_ms) / MS_PER_KM
        return _Bound(terms, within_km(reach_km))

    def _ms(self, ref: Reference, values: RttVector) -> FloatArray:
        """RTT in ms of some of a reference's values (NaN where unknown)."""
        if ref.kind in ("node", "service"):
            return np.asarray(values, dtype=np.float64)
        km = km_of(np.asarray(values, dtype=np.float64))
        rtt: FloatArray = np.asarray(distance_rtt_ms(km), dtype=np.float64) + self.config.access_ms
        return rtt


# -- the per-service nearest-instance rows ----------------------------------------------------


@dataclass
class _Nearest:
    epoch: int
    added: int  # state.hosts_added(service) entries folded into ``row``
    lost: int  # state.hosts_lost(service) when ``row`` was last brought up to date
    row: npt.NDArray[np.float32]


class NearestInstances:
    """Per service, the RTT from its nearest running instance to every node.

    ``row(state, service)[j] = min over nodes i running the service of RTT(i → j)``. Kept
    up to date from the state's per-service host log
    (:meth:`~harmonia.sched.state.ClusterState.hosts_added`): each node that newly runs
    the service lowers the minimum with one ``np.minimum``, and nothing else is read, so
    placements of other services cost nothing here. A node that stopped running it
    (:meth:`~harmonia.sched.state.ClusterState.hosts_lost`) forces a rebuild, since the
    minimum may rise, as does an epoch change. Rebuilt and patched rows are equal: a
    minimum is exact.
    """

    def __init__(self) -> None:
        self._owner: tuple[ClusterState, RttSource] | None = None
        self._rows: OrderedDict[str, _Nearest] = OrderedDict()

    def row(self, state: ClusterState, service: str) -> npt.NDArray[np.float32]:
        """The service's nearest-instance row (+inf everywhere without an instance); the
        caller must not modify it."""
        source = _source(state)
        owner = self._owner
        if owner is None or owner[0] is not state or owner[1] is not source:
            self._rows.clear()
            self._owner = (state, source)
        entry = self._rows.get(service)
        added = state.hosts_added(service)
        lost = state.hosts_lost(service)
        if entry is not None and entry.epoch == state.epoch and entry.lost == lost:
            if entry.added < len(added):
                new = np.array(added[entry.added :], dtype=np.intp)
                _lower(entry.row, new, source)
                entry.added = len(added)
            self._rows.move_to_end(service)
            return entry.row
        row = np.full(len(state), np.inf, dtype=np.float32)
        _lower(row, np.flatnonzero(state.counts_of(service) > 0), source)
        if len(self._rows) >= NEAREST_KEPT:
            self._rows.popitem(last=False)
        self._rows[service] = _Nearest(state.epoch, len(added), lost, row)
        return row

    def hosts_nearest_to(self, state: ClusterState, service: str, nodes: IntArray) -> list[int]:
        """For each of ``nodes``, the node of the service's instance nearest to it (for
        explanations only; reads every host's row)."""
        hosts = np.flatnonzero(state.counts_of(service) > 0)
        if hosts.size == 0 or nodes.size == 0:
            return [-1] * int(nodes.size)
        source = _source(state)
        best = np.full(nodes.size, np.inf, dtype=np.float32)
        which = np.full(nodes.size, -1, dtype=np.intp)
        for start in range(0, hosts.size, NEAREST_BLOCK):
            block_hosts = hosts[start : start + NEAREST_BLOCK]
            block = source.rows(block_hosts)[:, nodes]
            k = block.argmin(axis=0)
            values = block[k, np.arange(nodes.size)]
            better = values < best
            best[better] = values[better]
            which[better] = block_hosts[k[better]]
        return [int(h) for h in which.tolist()]


def _lower(row: npt.NDArray[np.float32], hosts: IntArray, source: RttSource) -> None:
    """``row`` = min(row, RTT from each of ``hosts``), reading a bounded block at a time."""
    if hosts.size <= NEAREST_ONE_BY_ONE:
        # NOTE: a few new instances (the usual patch) are folded in row by row: gathering
        # them into a block first costs more than the minimum itself.
        for host in hosts.tolist():
            np.minimum(row, source.row(host), out=row)
        return
    for start in range(0, hosts.size, NEAREST_BLOCK):
        block = source.rows(hosts[start : start + NEAREST_BLOCK])
        np.minimum(row, block.min(axis=0), out=row)


# -- user locations and areas -------------------------------------------------------------------


class _Estimates:
    """Haversine terms from user positions and areas to every node (see
    :class:`~harmonia.sched.plugins.geo.DistanceCache`). An area's are the largest over
    its points, kept per area (least recently used dropped past :data:`ESTIMATES_KEPT`):
    the estimate grows with the term, so that is the worst point's RTT."""

    def __init__(self) -> None:
        self._distances = DistanceCache()
        self._areas: OrderedDict[Area, FloatArray] = OrderedDict()
        self._coordinates: tuple[FloatArray, FloatArray] | None = None

    def location(self, state: ClusterState, point: tuple[float, float]) -> FloatArray:
        return self._distances.terms(state, *point)

    def area(self, state: ClusterState, area: Area) -> FloatArray:
        """The area's terms; the caller must not modify them."""
        coordinates = self._coordinates
        if (
            coordinates is None
            or coordinates[0] is not state.lat
            or coordinates[1] is not state.long
        ):
            self._areas.clear()
            self._coordinates = (state.lat, state.long)
        worst = self._areas.get(area)
        if worst is not None:
            self._areas.move_to_end(area)
            return worst
        worst = np.full(len(state), -np.inf, dtype=np.float64)
        for p in area.points:
            # np.maximum propagates NaN: a node without coordinates stays unknown.
            np.maximum(worst, self._distances.terms(state, p.lat, p.long), out=worst)
        worst.flags.writeable = False
        if len(self._areas) >= ESTIMATES_KEPT:
            self._areas.popitem(last=False)
        self._areas[area] = worst
        return worst


# -- helpers -------------------------------------------------------------------------------------


def _source(state: ClusterState) -> RttSource:
    # pre_filter refuses node and service references when the state has no RTT data.
    source = state.rtt
    assert source is not None, "latency reference to nodes without RTT data"
    return source


def _resolved(cycle: CycleState) -> _Resolved:
    resolved: _Resolved = cycle.data[NAME]
    return resolved


@functools.lru_cache(maxsize=4096)  # NOTE: numpy scalar arithmetic costs microseconds
def float32_limit(threshold: float) -> np.float32:
    """The largest float32 not above ``threshold``: for a float32 ``x``, ``x ≤ threshold``
    (compared exactly) holds exactly when ``x ≤ float32_limit(threshold)``. Example:
    float32(37.2) is 37.2000007…, above 37.2, so the limit is the float32 just below it."""
    limit = np.float32(min(threshold, FLOAT32_MAX))
    if float(limit) > threshold:
        limit = np.nextafter(limit, np.float32(-np.inf))
    return limit


def delay_ms(value: str) -> float | None:
    """A delay label's value as a positive, finite number of ms, or None."""
    try:
        ms = float(value)
    except ValueError:
        return None
    return ms if math.isfinite(ms) and ms > 0 else None


def _resolve_name(
    state: ClusterState,
    request: PlacementRequest,
    name: str,
    threshold_ms: float,
    text: str,
    refs: list[Reference],
    problems: list[str],
    waiting: list[str],
) -> None:
    """Add the reference ``name`` (a node, else a service) or say why it cannot be."""
    node = state.index.get(name)
    counts = state.service_counts.get(name)
    if node is None:
        in_application = bool(request.application) and name.startswith(f"{request.application}.")
        if counts is None and name != request.service and not in_application:
            problems.append(f"{text}: {name!r} is neither a node nor a known service")
            return
    if state.rtt is None:
        problems.append(f"{text}: the state has no RTT data to check it against")
        return
    if node is not None:
        refs.append(Reference(text, "node", name, threshold_ms, node=node))
    elif counts is None or state.max_count_of(name) <= 0:
        waiting.append(f"{text}: no running instance of {name!r} yet")
    else:
        refs.append(Reference(text, "service", name, threshold_ms))


__all__ = [
    "DEFAULT_ACCESS_MS",
    "Latency",
    "LatencyConfig",
    "NearestInstances",
    "Reference",
    "delay_ms",
    "float32_limit",
]
