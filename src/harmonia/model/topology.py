"""Network topology: node names plus a round-trip-time (RTT) matrix in milliseconds.

:class:`Topology` is the model-layer value that the scheduling core copies into
``ClusterState`` (as its float32 RTT column) and that latency constraints are checked
against. It is built three ways:

- parsed from text in the kubernetes-edge-scheduler format
  (:meth:`Topology.from_matrix_text`): a whitespace-separated square matrix, one row per
  line, and a JSON object mapping each node name to its row index. The CLI and the
  simulator read the files and hand the text here; this module does no file I/O.
- generated for simulated infrastructure (:meth:`Topology.generate`) from node roles,
  clusters and geo positions, vectorized with numpy so 10,000 nodes take seconds;
- constructed directly from names and an array (the Kubernetes adapter, tests).

:func:`haversine_km` (great-circle distance, broadcasting over numpy arrays) lives here
too; the scheduler's geo plugin reuses it.

The matrix need not be symmetric (measured RTTs rarely are) but must be square, finite,
non-negative, with a zero diagonal. Every problem found is reported at once as an
:class:`~harmonia.model.errors.InputError` whose paths name the place:
``matrix line 3: expected 5 values, got 4`` or ``index["edge-1"]: row 7 out of range 0..4``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from harmonia.model.errors import FieldError, HarmoniaError, InputError
from harmonia.model.node import Node, NodeRole

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), the usual constant for haversine distances."""

FIBER_KM_PER_MS = 200.0
"""Light travels about 200 km per millisecond in optical fiber (refractive index ~1.47)."""

ROUTE_DETOUR = 1.5
"""Fiber routes are longer than the great circle; 1.5 is a common planning factor."""

LINK_BASE_MS: Mapping[str, tuple[float, float]] = {
    "site": (0.2, 1.5),  # same cluster, < 1 km apart: one LAN / data-centre fabric
    "metro": (5.0, 15.0),  # same edge cluster (nodes up to ~40 km apart) or edge sites < 50 km
    "backbone": (2.0, 6.0),  # cloud data centre to another cloud data centre
    "edge-cloud": (30.0, 60.0),  # edge node to a cloud data centre (access + core network)
    "edge-edge": (20.0, 50.0),  # edge sites in different cities (two access legs)
}
"""Base RTT range (ms) per kind of link, before the distance term and jitter.

:meth:`Topology.generate` draws a base uniformly from the range, adds
:func:`distance_rtt_ms` and multiplies by ``1 ± jitter``.
"""

SITE_KM = 1.0
METRO_KM = 50.0
_MAX_ERRORS = 20
_BLOCK_ELEMENTS = 1 << 17  # pairs per block in generate: buffers stay in cache

FloatArray = npt.NDArray[np.float32]


class UnknownNodeError(HarmoniaError, KeyError):
    """A node name that the topology does not contain."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown node"


def haversine_km(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> npt.NDArray[np.floating[Any]]:
    """Great-circle distance in km between points given in degrees; broadcasts like numpy.

    Computes in float32 when every input is float32 (the n×n case, to halve memory) and
    in float64 otherwise. Munich (48.1351, 11.5820) to Berlin (52.5200, 13.4050) gives
    about 504 km.
    """
    arrays = [np.asarray(v) for v in (lat1, lon1, lat2, lon2)]
    dtype = np.result_type(*arrays, np.float32)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    la1, lo1, la2, lo2 = (np.radians(a.astype(dtype, copy=False)) for a in arrays)
    sin_dlat = np.sin((la2 - la1) * 0.5)
    sin_dlon = np.sin((lo2 - lo1) * 0.5)
    a = sin_dlat * sin_dlat + np.cos(la1) * np.cos(la2) * (sin_dlon * sin_dlon)
    a = np.minimum(a, 1.0)  # rounding can push a just above 1 for antipodes
    result: npt.NDArray[np.floating[Any]] = (2.0 * EARTH_RADIUS_KM) * np.arcsin(np.sqrt(a))
    return result.astype(dtype, copy=False)


def distance_rtt_ms(distance_km: npt.ArrayLike) -> npt.NDArray[np.floating[Any]]:
    """Round-trip propagation delay over fiber for a great-circle distance.

    ``2 × km × ROUTE_DETOUR / FIBER_KM_PER_MS``: 500 km → 2 × 500 × 1.5 / 200 = 7.5 ms.
    """
    km: npt.NDArray[np.floating[Any]] = np.asarray(distance_km)
    if km.dtype != np.float32:
        km = km.astype(np.float64)
    return km * km.dtype.type(2.0 * ROUTE_DETOUR / FIBER_KM_PER_MS)


class Topology:
    """Node names and their RTT matrix in ms (float32, read-only, row = from, column = to)."""

    __slots__ = ("_index", "_names", "_rtt")

    _names: tuple[str, ...]
    _rtt: FloatArray
    _index: dict[str, int]

    def __init__(self, names: Sequence[str], rtt_ms: npt.ArrayLike) -> None:
        names = tuple(names)
        rtt = np.asarray(rtt_ms, dtype=np.float32)
        errors = check_names(names) + _check_matrix(rtt, len(names))
        if errors:
            raise InputError(_capped(errors), "topology")
        self._set(names, rtt)

    @classmethod
    def _trusted(cls, names: tuple[str, ...], rtt: FloatArray) -> Topology:
        """Build without validation, for values this module has already checked."""
        topology = cls.__new__(cls)
        topology._set(names, rtt)
        return topology

    def _set(self, names: tuple[str, ...], rtt: FloatArray) -> None:
        view = rtt.view()  # a read-only view leaves the caller's array writable
        view.flags.writeable = False
        self._names = names
        self._rtt = view
        self._index = {name: i for i, name in enumerate(names)}

    # -- access ---------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def rtt_ms(self) -> FloatArray:
        """The n×n matrix (read-only view)."""
        return self._rtt

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Topology):
            return NotImplemented
        return self._names == other._names and bool(np.array_equal(self._rtt, other._rtt))

    def __repr__(self) -> str:
        return f"Topology({len(self)} nodes)"

    def index_of(self, name: str) -> int:
        """Row/column of ``name``; :class:`UnknownNodeError` when absent."""
        try:
            return self._index[name]
        except KeyError:
            raise UnknownNodeError(f"node {name!r} is not in the topology") from None

    def rtt(self, source: str, target: str) -> float:
        """RTT in ms from ``source`` to ``target``."""
        return float(self._rtt[self.index_of(source), self.index_of(target)])

    def indices(self, names: Iterable[str]) -> npt.NDArray[np.intp]:
        """Rows of ``names`` in order; one :class:`InputError` listing every unknown name."""
        names = list(names)
        missing = [n for n in names if n not in self._index]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:_MAX_ERRORS])
            more = f" and {len(missing) - _MAX_ERRORS} more" if len(missing) > _MAX_ERRORS else ""
            raise InputError(
                [FieldError("nodes", f"{len(missing)} not in the topology: {shown}{more}")],
                "topology",
            )
        return np.fromiter((self._index[n] for n in names), dtype=np.intp, count=len(names))

    def reorder(self, names: Sequence[str]) -> Topology:
        """This topology restricted to ``names`` and in their order (for aligning rows with
        the scheduler's node order). ``names`` may be a subset; unknown or repeated names
        are an :class:`InputError` naming them."""
        names = tuple(names)
        dupes = sorted(n for n, c in Counter(names).items() if c > 1)
        if dupes:
            raise InputError(
                [FieldError("nodes", f"repeated: {', '.join(repr(n) for n in dupes)}")], "topology"
            )
        idx = self.indices(names)
        if np.array_equal(idx, np.arange(len(self._names))):
            return self
        return Topology._trusted(names, np.ascontiguousarray(self._rtt[np.ix_(idx, idx)]))

    # -- text format ----------------------------------------------------------------------

    @classmethod
    def from_matrix_text(
        cls, matrix_text: str, index_json_text: str, *, source: str = ""
    ) -> Topology:
        """Parse the kubernetes-edge-scheduler format.

        ``matrix_text``: one row per line, values separated by whitespace, in ms; blank
        lines and lines starting with ``#`` are skipped. ``index_json_text``: a JSON object
        ``{"node-name": row, ...}`` with 0-based rows; every row must be named exactly once.
        Error paths use 1-based line and value numbers (as an editor shows them) and the
        JSON's own 0-based rows.
        """
        n, rows, matrix_errors = _parse_matrix(matrix_text)
        index_errors: list[FieldError] = []
        names_by_row = _parse_index(index_json_text, n, index_errors)
        errors = matrix_errors + index_errors
        if errors:
            raise InputError(_capped(errors), source)
        rtt = np.vstack(rows).astype(np.float32)
        return cls._trusted(tuple(name for name in names_by_row if name is not None), rtt)

    def to_matrix_text(self) -> str:
        """The matrix in the format :meth:`from_matrix_text` reads; parsing it back gives
        the identical float32 values."""
        if not self._names:
            return ""
        template = " ".join(["%.6g"] * len(self._names))
        return "\n".join(_format_row(row, template) for row in self._rtt) + "\n"

    def to_index_json(self) -> str:
        """``{"node-name": row}`` in row order, as :meth:`from_matrix_text` reads it."""
        return json.dumps({name: i for i, name in enumerate(self._names)}, indent=2) + "\n"

    # -- synthetic ------------------------------------------------------------------------

    @classmethod
    def generate(
        cls, nodes: Sequence[Node], rng: np.random.Generator, jitter: float = 0.1
    ) -> Topology:
        """A plausible symmetric RTT matrix for ``nodes`` from their clusters, roles and
        positions.

        Each pair gets a link kind (see :data:`LINK_BASE_MS`), checked in this order:
        same cluster and < 1 km apart → ``site``; same cluster → ``metro``; both cloud →
        ``backbone``; one edge, one cloud → ``edge-cloud``; edge sites < 50 km apart →
        ``metro``; otherwise ``edge-edge``. RTT = (base drawn uniformly in the kind's
        range + :func:`distance_rtt_ms`) × uniform(1 - jitter, 1 + jitter), rounded to
        1 µs. Example: edge node in Munich to cloud in Frankfurt (~304 km), base 40 ms,
        jitter factor 1.05 → (40 + 2 × 304 × 1.5 / 200) × 1.05 = (40 + 4.56) × 1.05 ≈ 46.8 ms.

        A node without a location sits at the mean position of its cluster's located nodes
        (or of all located nodes). Vectorized over blocks of rows; memory beyond the n×n
        float32 result stays under a few MiB.
        """
        if not 0.0 <= jitter < 1.0:
            raise InputError([FieldError("jitter", f"must be in [0, 1), got {jitter}")])
        names = tuple(node.name for node in nodes)
        name_errors = check_names(names)
        if name_errors:
            raise InputError(_capped(name_errors), "topology")
        n = len(nodes)
        lat, lon = _positions(nodes)
        cluster_ids: dict[str, int] = {}
        cluster = np.fromiter(
            (cluster_ids.setdefault(node.cluster, len(cluster_ids)) for node in nodes),
            dtype=np.int32,
            count=n,
        )
        edge = np.fromiter((node.role is NodeRole.EDGE for node in nodes), dtype=bool, count=n)
        rtt = np.empty((n, n), dtype=np.float32)
        _fill_upper(rtt, lat, lon, cluster, edge, rng, jitter)
        _mirror_upper(rtt)
        return cls._trusted(names, rtt)


# -- helpers ------------------------------------------------------------------------------


def _fill_upper(
    rtt: FloatArray,
    lat: FloatArray,
    lon: FloatArray,
    cluster: npt.NDArray[np.int32],
    edge: npt.NDArray[np.bool_],
    rng: np.random.Generator,
    jitter: float,
) -> None:
    """Write the generated RTT of every pair (i, j ≥ i) into ``rtt``; see ``generate``.

    NOTE: inlined for speed. Rows go in blocks of about ``_BLOCK_ELEMENTS`` pairs through
    preallocated, cache-sized buffers with ``out=`` operations: fresh temporaries per
    operation made it about 1.6 times slower. The distance is the haversine formula with
    ``sin((b - a) / 2)`` expanded as ``sin(b/2)cos(a/2) - cos(b/2)sin(a/2)``, so the sines
    and cosines are taken once per node, not once per pair.
    """
    n = len(lat)
    half_lat, half_lon = np.radians(lat) * 0.5, np.radians(lon) * 0.5
    s_lat, c_lat = np.sin(half_lat), np.cos(half_lat)
    s_lon, c_lon = np.sin(half_lon), np.cos(half_lon)
    cos_lat = np.cos(np.radians(lat))
    edge8 = edge.astype(np.int8)
    # Link codes: 0 both cloud, 1 edge-cloud, 2 edge-edge (sum of edge flags), then
    # 3 metro and 4 site set from distance and cluster; tables follow that order.
    kinds = ("backbone", "edge-cloud", "edge-edge", "metro", "site")
    low = np.array([LINK_BASE_MS[k][0] for k in kinds], dtype=np.float32)
    width = np.array([LINK_BASE_MS[k][1] for k in kinds], dtype=np.float32) - low
    per_km = np.float32(2.0 * ROUTE_DETOUR / FIBER_KM_PER_MS)
    block = max(1, min(n, _BLOCK_ELEMENTS // max(n, 1)))
    size = block * n
    f_a, f_b, f_c = (np.empty(size, dtype=np.float32) for _ in range(3))
    code_buf = np.empty(size, dtype=np.int8)
    m_a, m_b = np.empty(size, dtype=bool), np.empty(size, dtype=bool)
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        shape = (i1 - i0, n - i0)
        count = shape[0] * shape[1]
        a, b, c = (buf[:count].reshape(shape) for buf in (f_a, f_b, f_c))
        code = code_buf[:count].reshape(shape)
        near, same = m_a[:count].reshape(shape), m_b[:count].reshape(shape)
        rows, cols = slice(i0, i1), slice(i0, n)
        # a = sin²(dlat/2); b = cos(lat1) cos(lat2) sin²(dlon/2); km = 2R asin(sqrt(a + b))
        np.multiply(c_lat[rows, None], s_lat[None, cols], out=a)
        np.multiply(s_lat[rows, None], c_lat[None, cols], out=b)
        np.subtract(a, b, out=a)
        np.multiply(a, a, out=a)
        np.multiply(c_lon[rows, None], s_lon[None, cols], out=b)
        np.multiply(s_lon[rows, None], c_lon[None, cols], out=c)
        np.subtract(b, c, out=b)
        np.multiply(b, b, out=b)
        np.multiply(b, cos_lat[rows, None], out=b)
        np.multiply(b, cos_lat[None, cols], out=b)
        np.add(a, b, out=a)
        np.minimum(a, 1.0, out=a)
        np.sqrt(a, out=a)
        np.arcsin(a, out=a)
        np.multiply(a, np.float32(2.0 * EARTH_RADIUS_KM), out=a)  # a is now km
        # link kind, in the precedence generate() documents (later lines win)
        np.add(edge8[rows, None], edge8[None, cols], out=code)
        np.less(a, METRO_KM, out=near)
        np.equal(code, 2, out=same)
        np.logical_and(near, same, out=near)
        np.putmask(code, near, 3)
        np.equal(cluster[rows, None], cluster[None, cols], out=same)
        np.putmask(code, same, 3)
        np.less(a, SITE_KM, out=near)
        np.logical_and(near, same, out=near)
        np.putmask(code, near, 4)
        # rtt = (low + width × u + km × per_km) × (1 - jitter + 2 jitter × u'), to 1 µs
        np.multiply(a, per_km, out=a)
        np.take(low, code, out=b, mode="clip")
        np.add(a, b, out=a)
        np.take(width, code, out=c, mode="clip")
        # NOTE: one draw of 16-bit integers gives both uniforms, faster than two float
        # draws; steps of 1/65536 are finer than the 1 µs rounding for any base range.
        bits = rng.integers(0, 1 << 16, size=(2, *shape), dtype=np.uint16)
        np.multiply(bits[0], np.float32(1.0 / 65536.0), out=b)
        np.multiply(c, b, out=c)
        np.add(a, c, out=a)
        np.multiply(bits[1], np.float32(2.0 * jitter / 65536.0), out=b)
        np.add(b, np.float32(1.0 - jitter), out=b)
        np.multiply(a, b, out=a)
        np.multiply(a, np.float32(1000.0), out=a)
        np.rint(a, out=a)
        np.divide(a, np.float32(1000.0), out=a)
        rtt[rows, cols] = a


def _mirror_upper(rtt: FloatArray, tile: int = 256) -> None:
    """Copy the upper triangle onto the lower one and zero the diagonal, in row strips
    (a strip's transpose is written while it is still in cache)."""
    n = len(rtt)
    for s0 in range(0, n, tile):
        s1 = min(n, s0 + tile)
        square = np.triu(rtt[s0:s1, s0:s1], 1)
        rtt[s0:s1, s0:s1] = square + square.T
        rtt[s1:, s0:s1] = rtt[s0:s1, s1:].T


def _positions(nodes: Sequence[Node]) -> tuple[FloatArray, FloatArray]:
    """Latitude and longitude vectors; missing locations filled as generate() documents."""
    n = len(nodes)
    lat = np.full(n, np.nan, dtype=np.float64)
    lon = np.full(n, np.nan, dtype=np.float64)
    for i, node in enumerate(nodes):
        if node.location is not None:
            lat[i] = node.location.lat
            lon[i] = node.location.long
    missing = np.isnan(lat)
    if missing.any():
        located = ~missing
        fallback = (
            (float(lat[located].mean()), float(lon[located].mean())) if located.any() else (0, 0)
        )
        sums: dict[str, list[float]] = {}
        for i, node in enumerate(nodes):
            if located[i]:
                acc = sums.setdefault(node.cluster, [0.0, 0.0, 0.0])
                acc[0] += lat[i]
                acc[1] += lon[i]
                acc[2] += 1
        for j in np.flatnonzero(missing).tolist():
            total = sums.get(nodes[j].cluster)
            lat[j], lon[j] = (total[0] / total[2], total[1] / total[2]) if total else fallback
    return lat.astype(np.float32), lon.astype(np.float32)


def check_names(names: tuple[str, ...]) -> list[FieldError]:
    """Every name a non-empty string, none repeated; one error per offending entry."""
    errors = [
        FieldError(f"names[{i}]", "must be a non-empty string")
        for i, name in enumerate(names)
        if not isinstance(name, str) or not name
    ]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            errors.append(FieldError(f"names[{i}]", f"{name!r} repeats names[{seen[name]}]"))
        else:
            seen[name] = i
    return errors


def _check_matrix(rtt: FloatArray, n: int) -> list[FieldError]:
    if rtt.shape != (n, n):
        return [FieldError("rtt_ms", f"must have shape ({n}, {n}) for {n} names, got {rtt.shape}")]
    if n == 0:
        return []
    # NOTE: min/max first, so a valid 10,000×10,000 matrix is checked without temporaries;
    # NaN propagates through both and fails the test too.
    low, high = rtt.min(), rtt.max()
    diagonal_ok = not np.diagonal(rtt).any()
    if low >= 0 and np.isfinite(high) and diagonal_ok:
        return []
    errors = [
        FieldError(f"rtt_ms[{i}][{j}]", _value_problem(float(rtt[i, j]), i == j))
        for i, j in np.argwhere(~(np.isfinite(rtt) & (rtt >= 0)))[:_MAX_ERRORS].tolist()
    ]
    errors += [
        FieldError(f"rtt_ms[{i}][{i}]", _value_problem(float(rtt[i, i]), True))
        for i in np.flatnonzero(np.isfinite(np.diagonal(rtt)) & (np.diagonal(rtt) > 0)).tolist()
    ]
    return errors


def _value_problem(value: float, diagonal: bool) -> str:
    if not np.isfinite(value):
        return f"is {value}, must be finite"
    if value < 0:
        return f"is {value}, must be >= 0"
    return f"is {value}, the diagonal must be 0" if diagonal else f"is {value}"


def _parse_matrix(
    text: str,
) -> tuple[int, list[npt.NDArray[np.float64]], list[FieldError]]:
    """The number of rows, the rows that parsed, and every problem found."""
    lines = [
        (number, line.split())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    n = len(lines)
    if n == 0:
        return 0, [], [FieldError("matrix", "has no rows")]
    rows: list[npt.NDArray[np.float64]] = []
    errors: list[FieldError] = []
    for row, (number, tokens) in enumerate(lines):
        path = f"matrix line {number}"
        if len(tokens) != n:
            errors.append(FieldError(path, f"expected {n} values, got {len(tokens)}"))
            continue
        values, bad = _parse_values(tokens)
        errors += [FieldError(path, f"value {j + 1} {tokens[j]!r} is not a number") for j in bad]
        if bad:
            continue
        invalid = ~(np.isfinite(values) & (values >= 0))
        invalid[row] |= values[row] != 0
        errors += [
            FieldError(path, f"value {j + 1} {_value_problem(float(values[j]), j == row)}")
            for j in np.flatnonzero(invalid).tolist()
        ]
        rows.append(values)
    return n, rows, errors


def _parse_values(tokens: list[str]) -> tuple[npt.NDArray[np.float64], list[int]]:
    try:
        return np.array(tokens, dtype=np.float64), []
    except ValueError:
        pass
    values = np.empty(len(tokens), dtype=np.float64)
    bad = []
    for j, token in enumerate(tokens):
        try:
            values[j] = float(token)
        except ValueError:
            bad.append(j)
    return values, bad


class _Pairs(list[tuple[str, Any]]):
    """A JSON object kept as its key/value pairs, so repeated keys are seen."""


def _parse_index(text: str, n: int, errors: list[FieldError]) -> list[str | None]:
    """Names by row; appends every problem to ``errors``."""
    names: list[str | None] = [None] * n
    try:
        document = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        errors.append(FieldError("index", f"is not valid JSON: {exc}"))
        return names
    if not isinstance(document, _Pairs):
        errors.append(FieldError("index", "must be a JSON object mapping node name to row"))
        return names
    if n == 0:
        return names  # the matrix error says enough
    seen: set[str] = set()
    for name, row in document:
        path = f"index[{json.dumps(name)}]"
        if not name:
            errors.append(FieldError(path, "node name must not be empty"))
            continue
        if name in seen:
            errors.append(FieldError(path, "node name appears more than once"))
            continue
        seen.add(name)
        if isinstance(row, bool) or not isinstance(row, int):
            errors.append(FieldError(path, f"row must be an integer, got {json.dumps(row)}"))
        elif not 0 <= row < n:
            errors.append(FieldError(path, f"row {row} out of range 0..{n - 1}"))
        elif (other := names[row]) is not None:
            errors.append(FieldError(path, f"row {row} is already taken by {json.dumps(other)}"))
        else:
            names[row] = name
    unnamed = [row for row, name in enumerate(names) if name is None]
    if unnamed:
        shown = ", ".join(str(r) for r in unnamed[:_MAX_ERRORS])
        more = f" and {len(unnamed) - _MAX_ERRORS} more" if len(unnamed) > _MAX_ERRORS else ""
        errors.append(FieldError("index", f"rows without a node name: {shown}{more}"))
    return names


def _format_row(row: FloatArray, template: str) -> str:
    """Shortest-ish text that parses back (float64 then float32) to exactly ``row``.

    ``%.6g`` suffices for values rounded to 1 µs below 1 s; values that do not survive it
    fall back to ``%.9g``, which always round-trips a float32. ``template`` is ``%.6g``
    repeated once per value: one formatting call per row is the fast path.
    """
    values = row.tolist()
    line = template % tuple(values)
    tokens = line.split(" ")
    back = np.array(tokens, dtype=np.float64).astype(np.float32)
    bad = np.flatnonzero(back != row).tolist()
    if not bad:
        return line
    for j in bad:
        tokens[j] = f"{values[j]:.9g}"
    return " ".join(tokens)


def _capped(errors: list[FieldError]) -> list[FieldError]:
    if len(errors) <= _MAX_ERRORS:
        return errors
    return [*errors[:_MAX_ERRORS], FieldError("", f"... and {len(errors) - _MAX_ERRORS} more")]
