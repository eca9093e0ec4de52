"""Geo: only nodes within a great-circle distance of a position.

Enforces the ``geo`` constraint of :mod:`harmonia.model.constraints` (Oakestra's geo
constraint, Bartolomeo et al., "Oakestra: A Lightweight Hierarchical Orchestration
Framework for Edge Computing", USENIX ATC'23): a node qualifies when the haversine
distance from ``location`` to the node is at most ``threshold_km``. Oakestra's own
implementation compares a distance in degrees with the threshold in kilometres; here both
are kilometres. Example: Munich (48.1351, 11.5820) to Augsburg (48.3705, 10.8978) is about
57 km, so a 50 km bound around Munich rejects an Augsburg node and a 60 km bound keeps it.

A node without coordinates is rejected, with that reason: its distance is unknown, and a
hard constraint must not pass on a guess. Several geo constraints must all hold.
The filter compares the haversine term ``a = sin²(d / 2R)`` with ``sin²(threshold / 2R)``
(the same order, as ``d = 2R·asin(√a)`` grows with ``a``), so no ``asin`` runs over all
nodes: on machines without vectorized trigonometric functions that is most of the cost of
a distance. The terms are kept per position and state (positions of nodes never change in
a ``ClusterState``), so repeated requests from the same place cost one compare.
:class:`DistanceCache` is shared with the latency plugin, which estimates RTT to users
from the same distances.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from harmonia.model import GeoConstraint, GeoPoint
from harmonia.model.topology import EARTH_RADIUS_KM
from harmonia.sched.framework import OK, SKIP, CycleState, Status
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray

NAME = "Geo"
# Distance vectors kept per position: 8 bytes per node each (80 kB at 10,000 nodes).
POSITIONS_KEPT = 256


class Geo:
    """Filter: within ``threshold_km`` of ``location`` for every geo constraint."""

    name = NAME
    constraint_types = ("geo",)

    def __init__(self) -> None:
        self._distances = DistanceCache()

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        constraints = [c for c in cycle.request.constraints if isinstance(c, GeoConstraint)]
        if not constraints:
            return SKIP
        cycle.data[NAME] = constraints
        return OK

    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray:
        mask = np.ones(len(state), dtype=bool)
        for c in _constraints(cycle):
            terms = self._distances.terms(state, c.location.lat, c.location.long)
            # NaN (no coordinates) compares False: rejected.
            np.logical_and(mask, terms <= within_km(c.threshold_km), out=mask)
        return mask

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]:
        constraints = _constraints(cycle)
        distances = [self.distances_km(state, c, rejected) for c in constraints]
        out = []
        for k in range(rejected.size):
            parts = []
            for c, km in zip(constraints, distances, strict=True):
                d = float(km[k])
                if math.isnan(d):
                    parts.append(f"node has no coordinates (geo bound around {_at(c.location)})")
                elif d > c.threshold_km:
                    parts.append(f"{d:.1f} km from {_at(c.location)} > {c.threshold_km:g} km")
            out.append("; ".join(parts))
        return out

    def summarize(self, state: ClusterState, cycle: CycleState, judged: IntArray) -> list[str]:
        """Why no node qualifies: per constraint, the nearest of the nodes it judged."""
        lines = []
        constraints = _constraints(cycle)
        for c in constraints:
            km = self.distances_km(state, c, judged)
            what = f"geo within {c.threshold_km:g} km of {_at(c.location)}"
            if judged.size == 0 or np.isnan(km).all():
                lines.append(f"{what}: no node has coordinates")
                continue
            k = int(np.nanargmin(km))
            if km[k] > c.threshold_km:
                nearest = state.names[int(judged[k])]
                lines.append(f"{what}: nearest node {nearest} is {km[k]:.1f} km away")
        if not lines and len(constraints) > 1:
            lines.append(f"no node is within all {len(constraints)} geo bounds at once")
        return lines

    def distances_km(self, state: ClusterState, c: GeoConstraint, nodes: IntArray) -> FloatArray:
        """Great-circle km from ``c``'s location to each of ``nodes`` (NaN without
        coordinates), from the terms the filter keeps per position."""
        terms = self._distances.terms(state, c.location.lat, c.location.long)
        return km_of(terms[nodes])


class DistanceCache:
    """Haversine terms ``a = sin²(d / 2R)`` from a position to every node of a state, kept
    per position (least recently used dropped past :data:`POSITIONS_KEPT`). Compare them
    with :func:`within_km`; turn them into kilometres with :func:`km_of`.

    NOTE: inlined for speed. ``sin((b - a) / 2)`` is expanded as
    ``sin(b/2)cos(a/2) - cos(b/2)sin(a/2)`` with the nodes' half-angle sines and cosines
    computed once per state, so a new position costs a dozen multiplications over the
    nodes and no trigonometric function (versus four in
    :func:`~harmonia.model.topology.haversine_km`); distances agree within 1e-9 km.
    """

    def __init__(self) -> None:
        self._coordinates: tuple[FloatArray, FloatArray] | None = None
        self._node_terms: tuple[FloatArray, ...] = ()
        self._terms: OrderedDict[tuple[float, float], FloatArray] = OrderedDict()

    def terms(self, state: ClusterState, lat: float, long: float) -> FloatArray:
        """``a`` from (lat, long) in degrees to every node (NaN for nodes without
        coordinates); the caller must not modify it."""
        coordinates = self._coordinates
        if (
            coordinates is None
            or coordinates[0] is not state.lat
            or coordinates[1] is not state.long
        ):
            # Another state (a copy shares its coordinate arrays, so it keeps the cache).
            self._terms.clear()
            self._coordinates = (state.lat, state.long)
            half_lat, half_long = np.radians(state.lat) * 0.5, np.radians(state.long) * 0.5
            self._node_terms = (
                np.sin(half_lat),
                np.cos(half_lat),
                np.sin(half_long),
                np.cos(half_long),
                np.cos(np.radians(state.lat)),
            )
        key = (lat, long)
        terms = self._terms.get(key)
        if terms is None:
            terms = self._compute(lat, long)
            terms.flags.writeable = False
            if len(self._terms) >= POSITIONS_KEPT:
                self._terms.popitem(last=False)
            self._terms[key] = terms
        else:
            self._terms.move_to_end(key)
        return terms

    def _compute(self, lat: float, long: float) -> FloatArray:
        s_lat, c_lat, s_long, c_long, cos_lat = self._node_terms
        half_lat, half_long = math.radians(lat) * 0.5, math.radians(long) * 0.5
        # a = sin²(Δlat/2) + cos(lat1) cos(lat2) sin²(Δlong/2)
        a = s_lat * math.cos(half_lat)
        a -= c_lat * math.sin(half_lat)
        a *= a
        b = s_long * math.cos(half_long)
        b -= c_long * math.sin(half_long)
        b *= b
        b *= cos_lat
        b *= math.cos(math.radians(lat))
        a += b
        np.minimum(a, 1.0, out=a)  # rounding can push a just above 1 for antipodes
        return a


def within_km(km: float) -> float:
    """The largest haversine term of a distance of at most ``km`` (-1 for ``km`` < 0, so
    nothing qualifies): ``d ≤ km`` exactly when ``a ≤ within_km(km)``."""
    if km < 0:
        return -1.0
    return math.sin(min(km / (2.0 * EARTH_RADIUS_KM), math.pi / 2)) ** 2


def km_of(terms: FloatArray) -> FloatArray:
    """Great-circle distances in km of haversine terms: ``2R·asin(√a)``."""
    km: FloatArray = np.arcsin(np.sqrt(terms)) * (2.0 * EARTH_RADIUS_KM)
    return km


def _constraints(cycle: CycleState) -> list[GeoConstraint]:
    constraints: list[GeoConstraint] = cycle.data[NAME]
    return constraints


def _at(point: GeoPoint) -> str:
    return f"({point.lat:g}, {point.long:g})"
