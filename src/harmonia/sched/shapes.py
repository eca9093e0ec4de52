"""Per-shape cache of the row-local plugins' results, refreshed row by row.

A row-local plugin (fit, the allocation scores, the taint filter) gives node i a result
that depends only on row i and the request, so for one request *shape* (resource vector,
skipped row-local filters, plugin cache keys) the combined feasibility mask and weighted
score over all nodes can be kept and reused. After a placement or release only the rows
in the state's change log since the entry was last brought up to date are recomputed,
through the plugins' scalar paths (bit-identical to their vector paths). Building an
entry for a shape never seen costs a few dozen vector operations over all nodes, about
0.3 ms at 12,500 nodes. An entry whose epoch has passed (the log was dropped) is rebuilt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

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
        # A plugin's array may be its own cache and is never written into, unless the
        # plugin says it is new (fresh_scores): the first score of weight 1 is then kept
        # as the entry's base rather than copied.
        self._keep_first = bool(scores) and (
            self.weighted_scores[0][1] == 1 and getattr(scores[0], "fresh_scores", False)
        )
        self.score_fns = [(p.score_node, profile.weights[p.name]) for p in scores]
        self.key_fns: list[Callable[[CycleState], Hashable]] = [
            key_fn
            for p in [*filters, *scores]
            if (key_fn := getattr(p, "cache_key", None)) is not None
        ]
        self.entries: dict[Hashable, ShapeEntry] = {}
        # Each entry holds a bool and a float64 per node; keep the cache near 64 MB.
        self.limit = max(8, CACHE_BYTES // (9 * max(len(state), 1)))

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
        epoch, seen = state.epoch, len(state.changes)
        active = self._active(skipped_here)
        mask, base = self.vectors(cycle, active)
        return ShapeEntry(
            mask, base, int(np.count_nonzero(mask)), epoch, seen, [p.filter_node for p in active]
        )

    def _store(self, key: Hashable, entry: ShapeEntry) -> None:
        if key not in self.entries and len(self.entries) >= self.limit:
            del self.entries[next(iter(self.entries))]
        self.entries[key] = entry

    def vectors(
        self, cycle: CycleState, filters: list[RowLocalFilterPlugin]
    ) -> tuple[BoolArray, FloatArray]:
        """Combined mask and weighted score (-inf where infeasible) of the row-local plugins."""
        state = self.state
        mask: BoolArray
        if filters:
            # A copy of the first mask (it may be the plugin's or the state's own).
            mask = np.array(filters[0].filter(state, cycle), dtype=bool)
            for plugin in filters[1:]:
                np.logical_and(mask, plugin.filter(state, cycle), out=mask)
        else:
            mask = np.ones(len(state), dtype=bool)
        base: FloatArray | None = None
        for scorer, weight in self.weighted_scores:
            scores = scorer.score(state, cycle, mask)
            if base is None:
                base = scores if self._keep_first else scores * weight
            else:
                if weight != 1:
                    scores = scores * weight
                np.add(base, scores, out=base)
        if base is None:
            base = np.zeros(len(state), dtype=np.float64)
        # NOTE: the infeasible nodes' indices, then one scatter: at 12,500 nodes this costs
        # less than np.where's new array or a masked copyto, whose branch per element
        # mispredicts on an irregular mask.
        base[np.flatnonzero(~mask)] = -np.inf
        return mask, base


__all__ = ["CACHE_BYTES", "ROW_REFRESH_LIMIT", "ShapeCache", "ShapeEntry"]
