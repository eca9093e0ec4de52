"""Per-shape cache of the row-local plugins' results, refreshed row by row, and its prefetcher.

A row-local plugin (fit, the allocation scores, the taint filter) gives node i a result
that depends only on row i and the request, so for one request *shape* (resource vector,
skipped row-local filters, plugin cache keys) the combined feasibility mask and weighted
score over all nodes can be kept and reused. After a placement or release only the rows
in the state's change log since the entry was last brought up to date are recomputed,
through the plugins' scalar paths (bit-identical to their vector paths).

Building an entry for a shape never seen costs a few dozen vector operations over all
nodes, about 0.3 ms at 12,500 nodes; traces whose jobs each ask for a different shape pay
it on most jobs. A host that knows its next requests (the simulator reads its trace ahead)
can :meth:`ShapeCache.prefetch` them: a background thread builds their entries while the
host goes on. NumPy releases the GIL inside its vector loops, so on a machine with a
second core the build overlaps the host's own work, much as kube-scheduler spreads
filtering and scoring over goroutines.

Why prefetched entries are exact: an entry records the state's change-log position and
epoch *before* it reads any row. A row written while the build runs is logged at or after
that position, so the first lookup refreshes it from the row's final values; rows not
logged since did not change during the build. An entry whose epoch has passed is rebuilt.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from harmonia.model import HarmoniaError, PlacementRequest
from harmonia.sched.framework import (
    CycleState,
    Profile,
    RowLocalFilterPlugin,
    RowLocalScorePlugin,
)
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, NodeRow

CACHE_BYTES = 64 << 20
# Past this many changed rows a full vector recompute is cheaper than the scalar path.
ROW_REFRESH_LIMIT = 64
# Requests waiting for the prefetch thread; beyond this, new ones are dropped.
PREFETCH_QUEUE_LIMIT = 4096

#: Builds the cycle of a request as a decision would (pre-filters run) and returns it with
#: the plugins that skip it, or ``None`` when the request would be refused before filtering.
Prepare = Callable[[PlacementRequest], "tuple[CycleState, set[str]] | None"]


@dataclass
class ShapeEntry:
    """Row-local results for one request shape, current up to ``seen`` in the change log."""

    mask: BoolArray
    base: FloatArray  # weighted score sum; -inf where the mask is False
    count: int  # feasible nodes in mask
    epoch: int
    seen: int
    filter_fns: list[Callable[[NodeRow, CycleState], bool]]


class ShapeCache:
    """Entries by request shape for one scheduler's state and profile."""

    def __init__(
        self,
        state: ClusterState,
        profile: Profile,
        filters: list[RowLocalFilterPlugin],
        scores: list[RowLocalScorePlugin],
    ) -> None:
        self.state = state
        self.filters = filters
        self.filter_names = {p.name for p in filters}
        self.weighted_scores = [(p, profile.weights[p.name]) for p in scores]
        self.score_fns = [(p.score_node, profile.weights[p.name]) for p in scores]
        self.key_fns: list[Callable[[CycleState], Hashable]] = [
            key_fn
            for p in [*filters, *scores]
            if (key_fn := getattr(p, "cache_key", None)) is not None
        ]
        self.entries: dict[Hashable, ShapeEntry] = {}
        # Each entry holds a bool and a float64 per node; keep the cache near 64 MB.
        self.limit = max(8, CACHE_BYTES // (9 * max(len(state), 1)))
        self.prefetched = 0  # entries the prefetch thread built
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[PlacementRequest | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._prepare: Prepare | None = None
        self._failure: BaseException | None = None

    # -- lookup ----------------------------------------------------------------------------

    def key(self, cycle: CycleState, skipped: set[str]) -> tuple[Hashable, tuple[str, ...]]:
        skipped_here = tuple(sorted(skipped & self.filter_names)) if skipped else ()
        shape = cycle.shape or cycle.vector.tobytes()
        if self.key_fns or skipped_here:
            return (
                shape,
                skipped_here,
                tuple([key_fn(cycle) for key_fn in self.key_fns]),
            ), skipped_here
        return shape, skipped_here

    def entry(self, cycle: CycleState, skipped: set[str]) -> ShapeEntry:
        """The entry of ``cycle``'s shape, brought up to date with the state."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise HarmoniaError(f"the shape prefetch thread failed: {failure}") from failure
        state = self.state
        if self.key_fns or skipped & self.filter_names:
            key, skipped_here = self.key(cycle, skipped)
        else:  # the common case, inlined: the key is the shape's bytes
            key, skipped_here = cycle.shape or cycle.vector.tobytes(), ()
        entry = self.entries.get(key)
        changes = state.changes
        behind = len(changes) - entry.seen if entry is not None else 0
        if entry is None or entry.epoch != state.epoch or behind > ROW_REFRESH_LIMIT:
            entry = self._build(cycle, skipped_here)
            self._store(key, entry)
        elif behind:
            # NOTE: the scalar refresh is inlined; it runs for every changed node and
            # every request shape, and call overhead dominates its cost.
            mask, base, filter_fns, score_fns = (
                entry.mask,
                entry.base,
                entry.filter_fns,
                self.score_fns,
            )
            row_of = state.row
            count = entry.count
            for index in set(changes[entry.seen :]) if behind > 1 else (changes[-1],):
                row = row_of(index)
                was_feasible = mask[index]
                for filter_fn in filter_fns:
                    if not filter_fn(row, cycle):
                        if was_feasible:
                            mask[index] = False
                            base[index] = -math.inf
                            count -= 1
                        break
                else:
                    total = 0.0
                    for score_fn, weight in score_fns:
                        total += score_fn(row, cycle) * weight
                    if not was_feasible:
                        mask[index] = True
                        count += 1
                    base[index] = total
            entry.count = count
            entry.seen = len(changes)
        return entry

    def _active(self, skipped_here: tuple[str, ...]) -> list[RowLocalFilterPlugin]:
        if not skipped_here:
            return self.filters
        return [p for p in self.filters if p.name not in skipped_here]

    def _build(self, cycle: CycleState, skipped_here: tuple[str, ...]) -> ShapeEntry:
        state = self.state
        # Read before any row (see the module doc).
        epoch, seen = state.epoch, len(state.changes)
        active = self._active(skipped_here)
        mask, base = self.vectors(cycle, active)
        return ShapeEntry(
            mask, base, int(np.count_nonzero(mask)), epoch, seen, [p.filter_node for p in active]
        )

    def _store(self, key: Hashable, entry: ShapeEntry, *, replace: bool = True) -> bool:
        """Keep ``entry``; with ``replace=False`` only over an entry of an older epoch."""
        with self._lock:
            current = self.entries.get(key)
            if current is not None:
                if not replace and current.epoch >= entry.epoch:
                    return False
            elif len(self.entries) >= self.limit:
                del self.entries[next(iter(self.entries))]
            self.entries[key] = entry
            return True

    def vectors(
        self, cycle: CycleState, filters: list[RowLocalFilterPlugin]
    ) -> tuple[BoolArray, FloatArray]:
        """Combined mask and weighted score (-inf where infeasible) of the row-local plugins."""
        state = self.state
        mask: BoolArray = np.ones(len(state), dtype=bool)
        for plugin in filters:
            np.logical_and(mask, plugin.filter(state, cycle), out=mask)
        base: FloatArray | None = None
        for scorer, weight in self.weighted_scores:
            scores = scorer.score(state, cycle, mask)
            if base is None:
                # The plugin's array may be its own cache: never write into it.
                base = scores * weight
            else:
                if weight != 1:
                    scores = scores * weight
                np.add(base, scores, out=base)
        if base is None:
            base = np.zeros(len(state), dtype=np.float64)
        return mask, np.where(mask, base, -np.inf)

    # -- prefetch ---------------------------------------------------------------------------

    def prefetch(self, requests: Iterable[PlacementRequest], prepare: Prepare) -> int:
        """Queue ``requests`` for the background thread; returns how many were queued.

        Shapes already cached are skipped when their turn comes. When more than
        :data:`PREFETCH_QUEUE_LIMIT` wait, the rest are not queued: their decisions
        build the entries themselves.
        """
        self._prepare = prepare
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(
                target=self._work, name="harmonia-shape-prefetch", daemon=True
            )
            self._worker.start()
        queued = 0
        for request in requests:
            if self._queue.qsize() >= PREFETCH_QUEUE_LIMIT:
                break
            self._queue.put(request)
            queued += 1
        return queued

    def close(self) -> None:
        """Stop the prefetch thread (if started) and wait for it."""
        worker = self._worker
        if worker is None:
            return
        self._queue.put(None)
        worker.join()
        self._worker = None

    def _work(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            try:
                self._prefetch_one(request)
            except BaseException as error:  # re-raised in the host thread, never lost
                self._failure = error
                return

    def _prefetch_one(self, request: PlacementRequest) -> None:
        assert self._prepare is not None
        prepared = self._prepare(request)
        if prepared is None:
            return
        cycle, skipped = prepared
        key, skipped_here = self.key(cycle, skipped)
        current = self.entries.get(key)
        if current is not None and current.epoch == self.state.epoch:
            return
        entry = self._build(cycle, skipped_here)
        # The host may have built it meanwhile; its entry is as exact, keep it.
        if self._store(key, entry, replace=False):
            self.prefetched += 1


__all__ = ["CACHE_BYTES", "ROW_REFRESH_LIMIT", "ShapeCache", "ShapeEntry"]
