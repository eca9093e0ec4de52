"""The RTT source interface and its two storages: a full matrix and network coordinates.

Plugins read RTTs only through :class:`RttSource`, so a latency filter works the same
whether the numbers come from a measured matrix (:class:`MatrixRtt`, O(n²) memory, a row
is a view) or from Vivaldi coordinates (:class:`CoordinateRtt`, O(n·d) memory, a row is
computed on demand in O(n·d)). Row ``i`` holds the RTT in ms from node ``i`` to every
node, in :attr:`RttSource.names` order; :meth:`RttSource.reorder` aligns a source with a
``ClusterState`` (``source.reorder(state.names)``), so row numbers are state node numbers.

Radius queries compare in float32 (the storage precision): ``within(i, 10.0)`` is
``row(i) <= np.float32(10.0)``, and includes ``i`` itself for any radius ≥ 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from harmonia.model.errors import FieldError, InputError
from harmonia.model.topology import Topology, check_names

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]

_MAX_NAMED = 20
_ROW_BLOCK_ELEMENTS = 1 << 22  # elements per block when materializing a matrix (16 MiB)


class HasRtt(Protocol):
    """What :meth:`MatrixRtt.of_state` needs of a ``ClusterState``."""

    @property
    def names(self) -> Sequence[str]: ...

    @property
    def rtt_ms(self) -> npt.NDArray[np.float32] | None: ...


class RttSource(ABC):
    """RTTs in ms between named nodes; row ``i`` = from node ``i`` to every node.

    Subclasses provide :attr:`names`, :meth:`row`, :meth:`rows` and :meth:`_take`; the
    rest (name lookup, radius queries, reordering, materializing) is shared.
    """

    __slots__ = ("_index",)

    _index: dict[str, int] | None

    # -- what a storage provides -------------------------------------------------------

    @property
    @abstractmethod
    def names(self) -> tuple[str, ...]:
        """Node names in row order."""

    @abstractmethod
    def row(self, i: int) -> FloatArray:
        """RTT in ms from node ``i`` to every node (length n, float32; do not modify)."""

    @abstractmethod
    def rows(self, indices: npt.ArrayLike) -> FloatArray:
        """RTT from each node of ``indices`` to every node: a new (k × n) float32 array."""

    @abstractmethod
    def _take(self, idx: IndexArray, names: tuple[str, ...]) -> RttSource:
        """This source restricted to the rows/columns ``idx`` (already checked), renamed."""

    # -- shared ------------------------------------------------------------------------

    @property
    def symmetric(self) -> bool:
        """Whether RTT(i, j) = RTT(j, i) for every pair (lets callers skip the reverse
        direction). Conservative: ``False`` unless the storage knows."""
        return False

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._name_index()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} nodes)"

    def _name_index(self) -> dict[str, int]:
        # Built lazily: a plugin that only reads rows by number never pays for it.
        if getattr(self, "_index", None) is None:
            self._index = {name: i for i, name in enumerate(self.names)}
        assert self._index is not None
        return self._index

    def index_of(self, name: str) -> int:
        """Row of ``name``; an :class:`InputError` naming it when absent."""
        return int(self.indices([name])[0])

    def indices(self, names: Iterable[str]) -> IndexArray:
        """Rows of ``names`` in order; one :class:`InputError` listing every unknown name."""
        names = list(names)
        index = self._name_index()
        missing = [n for n in names if n not in index]
        if missing:
            raise InputError([FieldError("nodes", _not_found(missing))], "rtt")
        return np.fromiter((index[n] for n in names), dtype=np.intp, count=len(names))

    def rtt(self, i: int, j: int) -> float:
        """RTT in ms from node ``i`` to node ``j``."""
        return float(self.row(i)[j])

    def pair_rtts(self, i: npt.ArrayLike, j: npt.ArrayLike) -> FloatArray:
        """RTT from ``i[k]`` to ``j[k]`` for each k (float32). Storages override this with
        a direct gather; this fallback reads one row per distinct source."""
        ia = np.asarray(i, dtype=np.intp).reshape(-1)
        ja = np.asarray(j, dtype=np.intp).reshape(-1)
        out = np.empty(ia.size, dtype=np.float32)
        order = np.argsort(ia, kind="stable")
        sources, starts = np.unique(ia[order], return_index=True)
        bounds = [*starts.tolist(), ia.size]
        for k, source in enumerate(sources.tolist()):
            chosen = order[bounds[k] : bounds[k + 1]]
            out[chosen] = self.row(source)[ja[chosen]]
        return out

    def row_to(self, i: int, targets: npt.ArrayLike) -> FloatArray:
        """RTT from node ``i`` to each node of ``targets`` (cost O(len(targets)) where the
        storage allows, instead of a whole row)."""
        ja = np.asarray(targets, dtype=np.intp).reshape(-1)
        return self.pair_rtts(np.full(ja.size, i, dtype=np.intp), ja)

    def within(self, i: int, radius_ms: float) -> BoolArray:
        """Mask of the nodes whose RTT from node ``i`` is at most ``radius_ms`` (float32)."""
        mask: BoolArray = self.row(i) <= np.float32(radius_ms)
        return mask

    def within_all(self, indices: npt.ArrayLike, radius_ms: float) -> BoolArray:
        """Mask of the nodes within ``radius_ms`` of every node of ``indices`` (all
        nodes when ``indices`` is empty): "close to all my peers"."""
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        if idx.size == 0:
            return np.ones(len(self), dtype=bool)
        mask: BoolArray = self.rows(idx).max(axis=0) <= np.float32(radius_ms)
        return mask

    def reorder(self, names: Sequence[str]) -> RttSource:
        """This source restricted to ``names`` and in their order, e.g. ``state.names``.

        ``names`` may be a subset (a measurement may cover more nodes than the state);
        a name not in the source, or repeated, is an :class:`InputError` naming it.
        """
        names = tuple(names)
        dupes = sorted(n for n, c in Counter(names).items() if c > 1)
        if dupes:
            shown = ", ".join(repr(n) for n in dupes[:_MAX_NAMED])
            raise InputError([FieldError("nodes", f"repeated: {shown}")], "rtt")
        idx = self.indices(names)
        if names == self.names:
            return self
        return self._take(idx, names)

    def to_matrix(self) -> FloatArray:
        """The full n×n float32 matrix (for ``ClusterState.attach_rtt``); n² memory."""
        n = len(self)
        out = np.empty((n, n), dtype=np.float32)
        block = max(1, _ROW_BLOCK_ELEMENTS // max(n, 1))
        for start in range(0, n, block):
            stop = min(n, start + block)
            out[start:stop] = self.rows(np.arange(start, stop))
        return out


class MatrixRtt(RttSource):
    """A full RTT matrix (float32, row = from, column = to); rows are read-only views.

    Built from a :class:`~harmonia.model.topology.Topology` (:meth:`from_topology`),
    from files (:func:`load_rtt`), from Goldpinger with every pair measured, or around a
    ``ClusterState``'s attached matrix (:meth:`of_state`, no copy).
    """

    __slots__ = ("_matrix", "_names", "_symmetric")

    def __init__(self, names: Sequence[str], matrix: npt.ArrayLike, *, validate: bool = True):
        names = tuple(names)
        rtt = np.asarray(matrix, dtype=np.float32)
        if validate:
            errors = _check_names(names) + _check_matrix(rtt, len(names))
            if errors:
                raise InputError(errors, "rtt")
        view = rtt.view()  # read-only view: the caller's array stays writable
        view.flags.writeable = False
        self._names = names
        self._matrix = view
        self._index = None
        self._symmetric: bool | None = None

    @classmethod
    def from_topology(cls, topology: Topology) -> MatrixRtt:
        """Wrap a topology's matrix (already validated; no copy)."""
        return cls(topology.names, topology.rtt_ms, validate=False)

    @classmethod
    def of_state(cls, state: HasRtt) -> MatrixRtt:
        """Wrap ``state.rtt_ms`` (rows in state order; no copy, no validation: the matrix
        came from a validated source through ``attach_rtt``). :class:`InputError` when the
        state has no RTT matrix attached."""
        if state.rtt_ms is None:
            raise InputError([FieldError("rtt_ms", "no RTT matrix is attached")], "state")
        return cls(state.names, state.rtt_ms, validate=False)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def symmetric(self) -> bool:
        """Checked once on first use (one pass over the matrix), then cached."""
        if self._symmetric is None:
            self._symmetric = _is_symmetric(self._matrix)
        return self._symmetric

    @property
    def matrix(self) -> FloatArray:
        """The n×n matrix (read-only view)."""
        return self._matrix

    def row(self, i: int) -> FloatArray:
        row: FloatArray = self._matrix[i]
        return row

    def rows(self, indices: npt.ArrayLike) -> FloatArray:
        return self._matrix[np.asarray(indices, dtype=np.intp).reshape(-1)]

    def pair_rtts(self, i: npt.ArrayLike, j: npt.ArrayLike) -> FloatArray:
        ia = np.asarray(i, dtype=np.intp).reshape(-1)
        out: FloatArray = self._matrix[ia, np.asarray(j, dtype=np.intp).reshape(-1)]
        return out

    def row_to(self, i: int, targets: npt.ArrayLike) -> FloatArray:
        out: FloatArray = self._matrix[i, np.asarray(targets, dtype=np.intp).reshape(-1)]
        return out

    def to_matrix(self) -> FloatArray:
        return self._matrix.copy()

    def _take(self, idx: IndexArray, names: tuple[str, ...]) -> MatrixRtt:
        return MatrixRtt(names, self._matrix[np.ix_(idx, idx)], validate=False)


class CoordinateRtt(RttSource):
    """RTTs predicted by network coordinates with heights (Vivaldi's height model).

    Node ``i`` sits at ``x_i`` (a point in d dimensions) on a "height" ``h_i ≥ 0``, its
    access-link delay: RTT(i, j) = ‖x_i − x_j‖ + h_i + h_j for i ≠ j, 0 for i = j. Memory
    is n·(d+1) floats, so 10,000 or 100,000 nodes need no n² storage; a row costs O(n·d).

    Rows are exactly symmetric: each term is computed in the same order for (i, j) and
    (j, i), and (a − b)² = (b − a)² in floating point.
    """

    __slots__ = ("_coords", "_heights", "_names")

    def __init__(self, names: Sequence[str], coords: npt.ArrayLike, heights: npt.ArrayLike):
        names = tuple(names)
        x = np.asarray(coords, dtype=np.float32)
        h = np.asarray(heights, dtype=np.float32)
        errors = _check_names(names)
        n = len(names)
        if x.ndim != 2 or x.shape[0] != n:
            errors.append(FieldError("coords", f"must be {n} × d, got shape {x.shape}"))
        elif not np.isfinite(x).all():
            errors.append(FieldError("coords", "must be finite"))
        if h.shape != (n,):
            errors.append(FieldError("heights", f"must have {n} values, got shape {h.shape}"))
        elif not (np.isfinite(h) & (h >= 0)).all():
            errors.append(FieldError("heights", "must be finite and non-negative"))
        if errors:
            raise InputError(errors, "rtt")
        self._names = names
        # Stored one dimension per row so each dimension over all nodes is contiguous.
        self._coords = np.ascontiguousarray(x.T)
        self._heights = h.copy()
        self._coords.flags.writeable = False
        self._heights.flags.writeable = False
        self._index = None

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @property
    def symmetric(self) -> bool:
        return True

    @property
    def dims(self) -> int:
        return int(self._coords.shape[0])

    @property
    def coords(self) -> FloatArray:
        """The (n × d) coordinates (a read-only transposed view)."""
        return self._coords.T

    @property
    def heights(self) -> FloatArray:
        """The n heights in ms (read-only)."""
        return self._heights

    def row(self, i: int) -> FloatArray:
        x, h = self._coords, self._heights
        acc = np.zeros(x.shape[1], dtype=np.float32)
        for k in range(x.shape[0]):  # d is small (2..8): a loop over dimensions, not nodes
            t = x[k] - x[k, i]
            acc += t * t
        np.sqrt(acc, out=acc)
        acc += h + h[i]
        acc[i] = 0.0
        return acc

    def rows(self, indices: npt.ArrayLike) -> FloatArray:
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)
        x, h = self._coords, self._heights
        acc = np.zeros((idx.size, x.shape[1]), dtype=np.float32)
        for k in range(x.shape[0]):
            t = x[k][None, :] - x[k, idx][:, None]
            acc += t * t
        np.sqrt(acc, out=acc)
        acc += h[None, :] + h[idx][:, None]
        acc[np.arange(idx.size), idx] = 0.0
        return acc

    def pair_rtts(self, i: npt.ArrayLike, j: npt.ArrayLike) -> FloatArray:
        ia = np.asarray(i, dtype=np.intp).reshape(-1)
        ja = np.asarray(j, dtype=np.intp).reshape(-1)
        x, h = self._coords, self._heights
        acc = np.zeros(ia.size, dtype=np.float32)
        for k in range(x.shape[0]):  # same operation order as row(): identical values
            t = x[k, ja] - x[k, ia]
            acc += t * t
        np.sqrt(acc, out=acc)
        acc += h[ja] + h[ia]
        acc[ia == ja] = 0.0
        return acc

    def _take(self, idx: IndexArray, names: tuple[str, ...]) -> CoordinateRtt:
        return CoordinateRtt(names, self._coords[:, idx].T, self._heights[idx])


def load_rtt(matrix_path: str | Path, index_path: str | Path) -> MatrixRtt:
    """Read the kubernetes-edge-scheduler static files: a whitespace-separated square
    matrix in ms (one row per line) and a JSON object ``{"node": row}``.

    Parsing is :meth:`Topology.from_matrix_text`; an unreadable file is an
    :class:`InputError` whose path names the file, and a format error names the matrix
    file as its source (``rtt.txt: matrix line 3: expected 5 values, got 4``).
    """
    texts: list[str] = []
    errors: list[FieldError] = []
    for path in (Path(matrix_path), Path(index_path)):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            errors.append(FieldError(str(path), f"cannot be read: {reason}"))
    if errors:
        raise InputError(errors, "rtt files")
    source = f"{matrix_path} + {index_path}"
    return MatrixRtt.from_topology(Topology.from_matrix_text(texts[0], texts[1], source=source))


# -- helpers --------------------------------------------------------------------------------


def _is_symmetric(matrix: FloatArray, tile: int = 512) -> bool:
    """``matrix == matrix.T``, by tiles of the upper triangle: comparing with the whole
    transpose at once reads it column-wise and is ~20 times slower at 10,000 nodes."""
    n = matrix.shape[0]
    for r0 in range(0, n, tile):
        r1 = min(n, r0 + tile)
        for c0 in range(r0, n, tile):
            c1 = min(n, c0 + tile)
            if not np.array_equal(matrix[r0:r1, c0:c1], matrix[c0:c1, r0:r1].T):
                return False
    return True


def _not_found(missing: Sequence[str]) -> str:
    shown = ", ".join(repr(n) for n in missing[:_MAX_NAMED])
    more = f" and {len(missing) - _MAX_NAMED} more" if len(missing) > _MAX_NAMED else ""
    return f"{len(missing)} not in the RTT source: {shown}{more}"


def _check_names(names: tuple[str, ...]) -> list[FieldError]:
    return check_names(names)[:_MAX_NAMED]


def _check_matrix(rtt: FloatArray, n: int) -> list[FieldError]:
    """Shape, finiteness, sign and diagonal, vectorized; at most a few errors."""
    if rtt.shape != (n, n):
        return [FieldError("matrix", f"must be {n} × {n}, got shape {rtt.shape}")]
    errors = []
    bad = ~(np.isfinite(rtt) & (rtt >= 0))
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        count = int(bad.sum())
        errors.append(
            FieldError(
                f"matrix[{i}][{j}]",
                f"must be a finite non-negative number, got {rtt[i, j]}"
                + (f" ({count - 1} more such values)" if count > 1 else ""),
            )
        )
    diagonal = np.flatnonzero(np.diagonal(rtt) != 0)
    if diagonal.size:
        i = int(diagonal[0])
        errors.append(FieldError(f"matrix[{i}][{i}]", f"diagonal must be 0, got {rtt[i, i]}"))
    return errors
