"""Vivaldi network coordinates fitted to sparse RTT measurements, and their error.

Vivaldi (F. Dabek, R. Cox, F. Kaashoek, R. Morris, "Vivaldi: A Decentralized Network
Coordinate System", SIGCOMM 2004) places every node at a point so that distances predict
RTTs. A measurement RTT(i, j) = r acts as a spring between i and j whose rest length is r:
node i moves by δ·(r − ‖x_i − x_j‖) along the unit vector from j to i. The paper's two
refinements are used as the paper describes them:

- **adaptive timestep**: each node keeps a local error estimate e_i (start 1); a sample
  is weighted w = e_i / (e_i + e_j), the step is δ = cc·w, and e_i moves towards the
  sample's relative error |‖x_i − x_j‖ − r| / r by ce·w. A confident node (small e_i)
  barely moves for an unsure neighbour; an unsure one moves a lot for a confident one.
- **height vectors**: a node is [x, h] with h ≥ 0 its access-link delay;
  [x, h_x] − [y, h_y] = [x − y, h_x + h_y] and ‖[x, h]‖ = ‖x‖ + h, so the predicted RTT
  is ‖x_i − x_j‖ + h_i + h_j (:class:`~harmonia.sched.rtt.source.CoordinateRtt`). Edge
  devices behind a slow access network get a large height instead of being pushed far
  from every other node.

Vectorization: the paper's nodes update one sample at a time, asynchronously. Here one
*round* updates every node at once against a batch of its measured neighbours; the
springs of a batch are averaged per node (weighted by r^−½, see :func:`fit_vivaldi`), so
a node with 64 neighbours does not take a 64-times larger step, then every node moves
simultaneously. A round is a handful of numpy gathers and sums over (nodes × batch ×
dims) float32 arrays: about 10 ms for 10,000 nodes. The seed fixes the initial positions
and the neighbour batches, so the fit is deterministic.

:func:`sample_pairs` chooses which pairs to measure (each node probes ``per_node`` random
others, plus ``local`` nodes of its own cluster; a node's degree is then about twice
that), :func:`estimation_error` compares a fitted source with the truth on a random
sample of pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from harmonia.model.errors import FieldError, InputError
from harmonia.sched.rtt.source import CoordinateRtt, RttSource

PAPER_CC = 0.25
"""Vivaldi's movement constant cc as the paper recommends it for one sample per step."""

CC = 1.0
"""The movement constant :func:`fit_vivaldi` uses by default. A step here follows the
mean of a batch of springs, far less noisy than the paper's single sample, so a larger
constant is stable and converges about three times faster (measured on 1,000 generated
nodes: 300 rounds at cc = 1.0 fit as well as 1,000 at 0.25, and a planar metric reached
1% median error in 300 rounds instead of 1,000)."""

CE = 0.25
"""Vivaldi's error-estimate constant ce (the paper's recommended value)."""

HEIGHT_MIN_MS = 0.01
"""Heights never drop below 10 µs: a height-vector update scales h by the force, so a
height of exactly 0 could never grow again (Serf's Vivaldi uses the same floor)."""

IntArray = npt.NDArray[np.intp]
F64Array = npt.NDArray[np.float64]


class RttSamples(NamedTuple):
    """Sparse RTT measurements: ``rtt_ms[k]`` was measured between nodes ``i[k]`` and
    ``j[k]``. A pair may appear more than once (both directions, repeated probes)."""

    i: IntArray
    j: IntArray
    rtt_ms: F64Array

    @property
    def size(self) -> int:
        """Number of measurements (``len()`` stays the tuple's 3 fields)."""
        return int(self.i.shape[0])


@dataclass(frozen=True)
class EstimationError:
    """How far estimated RTTs are from the truth over ``pairs`` node pairs.

    Relative error = |estimated − true| / true (pairs with a true RTT of 0 are skipped).
    """

    pairs: int
    p50: float
    p90: float
    p99: float
    mean_abs_ms: float

    def as_dict(self) -> dict[str, float]:
        return {
            "pairs": self.pairs,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "mean_abs_ms": self.mean_abs_ms,
        }


def samples_of(i: npt.ArrayLike, j: npt.ArrayLike, rtt_ms: npt.ArrayLike, n: int) -> RttSamples:
    """Checked :class:`RttSamples` for ``n`` nodes; an :class:`InputError` names the
    first bad measurement of each kind."""
    ia = np.asarray(i).reshape(-1)
    ja = np.asarray(j).reshape(-1)
    ra = np.asarray(rtt_ms, dtype=np.float64).reshape(-1)
    errors: list[FieldError] = []
    if not (ia.shape == ja.shape == ra.shape):
        errors.append(
            FieldError(
                "samples", f"i, j and rtt_ms differ in length: {ia.size}, {ja.size}, {ra.size}"
            )
        )
        raise InputError(errors, "rtt samples")
    for name, arr in (("i", ia), ("j", ja)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            errors.append(FieldError(f"samples.{name}", f"must be integers, got {arr.dtype}"))
        elif (bad := np.flatnonzero((arr < 0) | (arr >= n))).size:
            k = int(bad[0])
            errors.append(
                FieldError(f"samples.{name}[{k}]", f"node {arr[k]} out of range 0..{n - 1}")
            )
    if (bad := np.flatnonzero(~(np.isfinite(ra) & (ra > 0)))).size:
        k = int(bad[0])
        errors.append(FieldError(f"samples.rtt_ms[{k}]", f"must be a positive number, got {ra[k]}"))
    if not errors and (bad := np.flatnonzero(ia == ja)).size:
        k = int(bad[0])
        errors.append(FieldError(f"samples[{k}]", f"measures node {ia[k]} against itself"))
    if errors:
        raise InputError(errors, "rtt samples")
    return RttSamples(ia.astype(np.intp), ja.astype(np.intp), ra)


def sample_pairs(
    n: int,
    per_node: int = 16,
    seed: int = 0,
    *,
    groups: npt.ArrayLike | None = None,
    local: int = 0,
) -> tuple[IntArray, IntArray]:
    """Pairs to measure: each node probes ``per_node`` distinct random other nodes and,
    with ``groups`` (a label per node, e.g. its Harmonia cluster), up to ``local`` random
    nodes of its own group.

    Returns unique unordered pairs (i < j), so a node ends up with about
    2·(``per_node`` + ``local``) measured neighbours (its own probes and those it
    receives). Local probes matter: Vivaldi learns short RTTs only from short samples,
    and a cluster's nodes already measure each other cheaply (Goldpinger's in-cluster
    mesh). ``per_node`` is capped at n − 1; with ``per_node`` ≥ n − 1 every pair is
    returned.
    """
    if n < 0 or per_node < 0 or local < 0:
        raise InputError(
            [
                FieldError(
                    "sample_pairs", f"n, per_node, local must be ≥ 0: {n}, {per_node}, {local}"
                )
            ]
        )
    rng = np.random.default_rng(seed)
    k = min(per_node, n - 1)
    if n >= 2 and k >= n - 1:
        i, j = np.triu_indices(n, 1)
        return i.astype(np.intp), j.astype(np.intp)
    src_parts: list[IntArray] = []
    dst_parts: list[IntArray] = []
    if n >= 2 and k > 0:
        # Offsets 1..n−1, distinct per node: j = (i + offset) mod n is never i and never
        # repeats within a node's probes, with no Python loop over nodes.
        draw = _distinct_offsets if k * k <= n else _partition_offsets
        offsets = draw(rng, n, k)
        src = np.repeat(np.arange(n, dtype=np.intp), k)
        src_parts.append(src)
        dst_parts.append((src + offsets.reshape(-1)) % n)
    if groups is not None and local > 0:
        label = np.asarray(groups).reshape(-1)
        if label.shape != (n,):
            raise InputError([FieldError("groups", f"must have {n} labels, got {label.size}")])
        _, code = np.unique(label, return_inverse=True)
        members = np.argsort(code, kind="stable")  # nodes grouped together
        size = np.bincount(code)[code]  # group size of each node
        first = np.concatenate([[0], np.cumsum(np.bincount(code))[:-1]])[code]
        position = np.empty(n, dtype=np.intp)
        position[members] = np.arange(n)
        position -= first  # each node's rank inside its group
        has_peers = np.flatnonzero(size > 1)
        src = np.repeat(has_peers, local)
        span = size[src] - 1
        offset = 1 + (rng.random(src.size) * span).astype(np.intp)  # 1..size−1: never self
        src_parts.append(src)
        dst_parts.append(members[first[src] + (position[src] + offset) % size[src]])
    if not src_parts:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty.copy()
    src, dst = np.concatenate(src_parts), np.concatenate(dst_parts)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    codes = np.unique(lo.astype(np.int64) * n + hi)
    return (codes // n).astype(np.intp), (codes % n).astype(np.intp)


def _partition_offsets(rng: np.random.Generator, n: int, k: int) -> IntArray:
    """(n × k) offsets in 1..n−1, distinct within each row: the k smallest of n − 1
    random keys per row, in row blocks so memory stays at a few MiB. O(n²) time."""
    offsets = np.empty((n, k), dtype=np.intp)
    block = max(1, (1 << 19) // n)
    for start in range(0, n, block):
        keys = rng.random((min(block, n - start), n - 1))
        offsets[start : start + block] = np.argpartition(keys, k - 1, axis=1)[:, :k] + 1
    return offsets


def _distinct_offsets(rng: np.random.Generator, n: int, k: int) -> IntArray:
    """(n × k) offsets in 1..n−1, distinct within each row, for k² ≤ n: draws with
    replacement and redraws the rows with a repeat. A row repeats with probability about
    k²/2n, so at most ~40% of rows are redrawn once and the loop ends quickly."""
    offsets = rng.integers(1, n, size=(n, k))
    while True:
        ordered = np.sort(offsets, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if bad.size == 0:
            return offsets.astype(np.intp)
        offsets[bad] = rng.integers(1, n, size=(bad.size, k))


def fit_vivaldi(
    n: int,
    samples: RttSamples | tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    *,
    names: Sequence[str] | None = None,
    dims: int = 8,
    rounds: int = 400,
    batch: int = 8,
    weight_power: float = 0.5,
    cc: float = CC,
    seed: int = 0,
) -> CoordinateRtt:
    """Fit Vivaldi coordinates (``dims`` dimensions plus a height) to sparse samples.

    Each of ``rounds`` rounds, every measured node draws ``batch`` of its measurements
    (with replacement, seeded) and moves by the weighted mean of their springs, each
    spring with Vivaldi's adaptive timestep δ = ``cc``·e_i/(e_i + e_j) (see :data:`CC`
    for why ``cc`` is larger than the paper's :data:`PAPER_CC`). Springs are weighted
    by r^−``weight_power``: 0 is the paper's absolute-error springs, under which the many
    long links drown the few short ones (a same-site pair at 1 ms ends up predicted at
    several ms); 0.5, the default, keeps the median and cuts the tail (see the module
    docstring for figures). The last quarter of the rounds is averaged, damping the
    jitter that sampling adds. Nodes without measurements sit at the centroid with the
    median height. ``names`` default to ``"0"``, ``"1"``, ….

    The defaults were chosen on ``Topology.generate`` infrastructure (1,000 nodes, 10
    clusters, ~32 measured neighbours per node, half in the node's own cluster): 8
    dimensions fit clearly better than 3 there, since the 8 edge sites are nearly
    equidistant from each other, which 3 dimensions cannot express.

    Cost: O(rounds · n · batch · dims) time, O(n · dims + samples) memory.
    """
    if names is None:
        names = [str(k) for k in range(n)]
    if len(names) != n:
        raise InputError([FieldError("names", f"must have {n} names, got {len(names)}")])
    if dims < 1 or rounds < 1 or batch < 1 or not weight_power >= 0 or not 0 < cc <= 2:
        raise InputError(
            [
                FieldError(
                    "fit_vivaldi",
                    "dims, rounds, batch must be ≥ 1, weight_power ≥ 0 and cc in (0, 2], "
                    f"got {dims}, {rounds}, {batch}, {weight_power}, {cc}",
                )
            ]
        )
    si, sj, sr = samples
    s = samples_of(si, sj, sr, n)  # checked even when given as RttSamples: it is cheap
    rng = np.random.default_rng(seed)
    # Every measurement is a spring for both of its ends: directed edges, grouped by source.
    # NOTE: the loop runs in float32: half the memory traffic of float64, and coordinates
    # in ms need no more than 7 significant digits.
    src = np.concatenate([s.i, s.j])
    order = np.argsort(src, kind="stable")
    dst = np.concatenate([s.j, s.i])[order]
    rtt = np.concatenate([s.rtt_ms, s.rtt_ms])[order].astype(np.float32)
    weight = (rtt**-weight_power).astype(np.float32)
    degree = np.bincount(src, minlength=n)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    active = np.flatnonzero(degree > 0)
    scale = float(np.median(rtt)) if rtt.size else 1.0
    # Random start, not the paper's origin: nodes at one point have no direction to move.
    x = rng.normal(0.0, scale / (2.0 * np.sqrt(dims)), size=(n, dims)).astype(np.float32)
    h = np.full(n, max(scale / 10.0, HEIGHT_MIN_MS), dtype=np.float32)
    e = np.ones(n, dtype=np.float32)
    a = active.size
    x_sum, h_sum = np.zeros((a, dims)), np.zeros(a)
    tail = rounds - max(1, rounds // 4)
    # Batches are regular: ``batch`` springs per active node, so every per-spring array
    # is (a × batch) and per-node sums are sums over axis 1, with no scatter.
    first, count = start[active][:, None], degree[active][:, None]
    xa, ha, ea = x[active], h[active], e[active]
    cc32, ce32, floor = np.float32(cc), np.float32(CE), np.float32(HEIGHT_MIN_MS)
    for r in range(rounds):
        draw = rng.random((a, batch), dtype=np.float32)
        pick = first + (draw * count).astype(np.intp)
        j, measured, omega = dst[pick], rtt[pick], weight[pick]
        v = xa[:, None, :] - x[j]  # (a × batch × dims)
        hs = ha[:, None] + h[j]
        predicted = np.sqrt(np.einsum("abd,abd->ab", v, v)) + hs
        w = ea[:, None] / (ea[:, None] + e[j])
        # Spring: δ·(r − predicted) along the unit height vector [v, hs] / predicted.
        force = (cc32 * omega) * w * (measured - predicted) / np.maximum(predicted, 1e-6)
        sample_error = np.abs(predicted - measured) / measured
        norm = 1.0 / omega.sum(axis=1)
        xa = xa + np.einsum("ab,abd->ad", force, v) * norm[:, None]
        ha = np.maximum(ha + (force * hs).sum(axis=1) * norm, floor)
        de = (ce32 * omega * w * (sample_error - ea[:, None])).sum(axis=1) * norm
        ea = np.clip(ea + de, np.float32(1e-3), np.float32(1.0))
        x[active], h[active], e[active] = xa, ha, ea
        if r >= tail:
            x_sum += xa
            h_sum += ha
    if not a:
        x[:] = 0.0  # nothing measured: all nodes at one point, RTT = the two heights
    else:
        averaged = rounds - tail
        x[active], h[active] = x_sum / averaged, h_sum / averaged
        lonely = degree == 0
        x[lonely] = x[active].mean(axis=0)
        h[lonely] = np.median(h[active])
        x -= x[active].mean(axis=0)  # coordinates are translation-invariant: centre them
    return CoordinateRtt(names, x, h)


def estimation_error(
    estimated: RttSource,
    truth: RttSource | npt.ArrayLike,
    *,
    pairs: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    sample: int = 200_000,
    seed: int = 0,
) -> EstimationError:
    """Relative-error percentiles and mean absolute error (ms) of ``estimated`` against
    ``truth`` (a source or an n×n matrix in the same node order).

    On ``pairs`` (arrays i, j) when given, else on ``sample`` random pairs i ≠ j (all
    pairs when n(n−1) ≤ ``sample``), so a 10,000-node comparison reads 200,000 values,
    not 10⁸.
    """
    n = len(estimated)
    true_source = truth if isinstance(truth, RttSource) else None
    matrix = None if true_source is not None else np.asarray(truth, dtype=np.float32)
    if matrix is not None and matrix.shape != (n, n):
        raise InputError([FieldError("truth", f"must be {n} × {n}, got shape {matrix.shape}")])
    if true_source is not None and len(true_source) != n:
        raise InputError([FieldError("truth", f"must have {n} nodes, got {len(true_source)}")])
    if pairs is not None:
        pi = np.asarray(pairs[0], dtype=np.intp).reshape(-1)
        pj = np.asarray(pairs[1], dtype=np.intp).reshape(-1)
    elif n * (n - 1) <= sample:
        pi, pj = np.nonzero(~np.eye(n, dtype=bool))
    else:
        rng = np.random.default_rng(seed)
        pi = rng.integers(0, n, size=sample)
        pj = (pi + rng.integers(1, n, size=sample)) % n  # never i itself
    est = estimated.pair_rtts(pi, pj).astype(np.float64)
    if true_source is not None:
        true = true_source.pair_rtts(pi, pj).astype(np.float64)
    else:
        assert matrix is not None
        true = matrix[pi, pj].astype(np.float64)
    keep = true > 0
    if not keep.any():
        return EstimationError(0, 0.0, 0.0, 0.0, 0.0)
    est, true = est[keep], true[keep]
    relative = np.abs(est - true) / true
    p50, p90, p99 = np.percentile(relative, [50, 90, 99]).tolist()
    return EstimationError(
        int(keep.sum()), float(p50), float(p90), float(p99), float(np.abs(est - true).mean())
    )
