"""The scheduling cycle: run a profile's plugins over a ``ClusterState`` for one request.

Hosts (simulator, control plane, Kubernetes adapter, CLI) create a :class:`Scheduler`
over a state they own or a copy of it, call :meth:`Scheduler.schedule` per request or
:meth:`Scheduler.schedule_many` for a batch, and apply the returned decisions. Each
placement is reserved in the scheduler's state at once, so the next decision sees it.

Two paths make the same choice. The full path runs every plugin over every node; it
runs when an explanation is asked for, when nothing fits (to say why), or with
``cache=False``. The fast path caches, per request shape, the combined mask and score of
the row-local plugins and refreshes only the nodes changed since (see
:meth:`Scheduler._select_cached`); the other plugins run in full. Rejection counts and
reasons are computed only on the full path.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable

import numpy as np

from harmonia.model import PlacementRequest
from harmonia.sched.decision import Decision, NodeScore, Plan, Rejection
from harmonia.sched.facts import FactsBook
from harmonia.sched.framework import (
    Code,
    CycleState,
    FilterPlugin,
    NormalizePlugin,
    PreScorePlugin,
    Profile,
    RowLocalFilterPlugin,
    RowLocalScorePlugin,
    ScorePlugin,
    is_row_local_filter,
    is_row_local_score,
)
from harmonia.sched.policies import get_policy
from harmonia.sched.shapes import ShapeCache
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray

EXAMPLES_PER_PLUGIN = 3


class Scheduler:
    """Places requests on the nodes of ``state`` with the policy ``policy``."""

    def __init__(
        self,
        state: ClusterState,
        policy: str | Profile = "default",
        *,
        seed: int = 0,
        top_k: int = 5,
        node_reason_limit: int = 50,
        cache: bool = True,
        explain_failures: bool = True,
        facts: FactsBook | None = None,
    ) -> None:
        self.state = state
        self.profile = get_policy(policy) if isinstance(policy, str) else policy
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.top_k = top_k
        self.node_reason_limit = node_reason_limit
        self.cache = cache
        # Hosts that only need to know a request did not fit (the simulator's retry
        # loop) turn this off; the full path's per-plugin explanation is then skipped.
        self.explain_failures = explain_failures
        self._normalizers = {
            p.name: p for p in self.profile.scores if isinstance(p, NormalizePlugin)
        }
        profile = self.profile
        self._row_local_filters: list[RowLocalFilterPlugin] = [
            p
            for p in profile.filters
            if is_row_local_filter(p) and isinstance(p, RowLocalFilterPlugin)
        ]
        self._other_filters: list[FilterPlugin] = [
            p for p in profile.filters if not is_row_local_filter(p)
        ]
        self._row_local_scores: list[RowLocalScorePlugin] = [
            p
            for p in profile.scores
            if is_row_local_score(p) and isinstance(p, RowLocalScorePlugin)
        ]
        self._other_scores: list[ScorePlugin] = [
            p for p in profile.scores if not is_row_local_score(p)
        ]
        # A book shared with another scheduler (a delegated policy's root) must know the
        # same constraint-driven plugins; otherwise this scheduler keeps its own.
        self.facts = facts if facts is not None and facts.serves(profile) else FactsBook(profile)
        self._other_scores_with_pre = [
            (p, p.pre_score if isinstance(p, PreScorePlugin) else None) for p in self._other_scores
        ]
        self._shapes = ShapeCache(state, profile, self._row_local_filters, self._row_local_scores)

    # -- one request -------------------------------------------------------------------

    def schedule(self, request: PlacementRequest, *, explain: bool = False) -> Decision:
        """Decide one request and, if it is placed, reserve it in :attr:`state`."""
        state = self.state
        decision = Decision(
            request.id, None, Code.UNSCHEDULABLE, nodes_total=len(state), policy=self.profile.name
        )
        prepared = self._prepare(request, decision)
        if prepared is None:
            return decision
        cycle, skipped = prepared
        cacheable = self.cache and not explain
        node = self._select_cached(cycle, skipped, decision) if cacheable else None
        if node is None and cacheable and not self.explain_failures:
            decision.reasons = [f"0/{len(state)} nodes are available"]
            return decision
        if node is None:
            node = self._select_full(cycle, skipped, decision, explain)
        if node is None:
            return decision

        state.reserve(node, request, cycle.vector, requested=cycle.requested)
        failure = self._reserve_and_permit(cycle, node)
        if failure is not None:
            decision.code, decision.reasons = failure
            return decision
        decision.node = state.names[node]
        decision.code = Code.OK
        return decision

    def _prepare(
        self, request: PlacementRequest, decision: Decision | None = None
    ) -> tuple[CycleState, set[str]] | None:
        """The request's cycle after the pre-filters, and the plugins that sit it out.

        ``None`` when the request is refused before filtering; ``decision`` (if given)
        then says why.
        """
        state, profile = self.state, self.profile
        facts = self.facts.learn(request)
        if facts.unenforced:
            if decision is not None:
                decision.code = Code.UNRESOLVABLE
                decision.reasons = list(facts.unenforced)
            return None
        inapplicable = facts.inapplicable
        cycle = CycleState(
            request=request,
            vector=facts.vector,
            amounts=facts.amounts,
            requested=facts.requested,
            rng=self.rng,
            inapplicable=inapplicable,
            shape=facts.shape,
        )
        skipped: set[str] = set(inapplicable)
        for plugin in profile.pre_filters:
            if plugin.name in inapplicable:
                continue
            status = plugin.pre_filter(state, cycle)
            if status.code is Code.SKIP:
                skipped.add(plugin.name)
            elif not status.ok:
                if decision is not None:
                    decision.code = status.code
                    decision.reasons = [f"{plugin.name}: {r}" for r in status.reasons]
                return None
        return cycle, skipped

    def _select_full(
        self, cycle: CycleState, skipped: set[str], decision: Decision, explain: bool
    ) -> int | None:
        """Run every filter and score over all nodes; the reference semantics."""
        state = self.state
        masks: list[tuple[FilterPlugin, BoolArray]] = []
        feasible: BoolArray | None = None
        for plugin in self.profile.filters:
            if plugin.name in skipped:
                continue
            mask = plugin.filter(state, cycle)
            masks.append((plugin, mask))
            feasible = (
                mask.copy() if feasible is None else np.logical_and(feasible, mask, out=feasible)
            )
        if feasible is None:  # every filter skipped this request: every node fits
            feasible = np.ones(len(state), dtype=bool)
        decision.nodes_feasible = int(np.count_nonzero(feasible))
        if decision.nodes_feasible == 0 or explain:
            self._explain_rejections(decision, cycle, masks, explain)
        if decision.nodes_feasible == 0:
            decision.reasons = [_summarize(decision), *decision.reasons]
            return None
        totals, parts = self._score(cycle, feasible, keep_parts=explain)
        masked = np.where(feasible, totals, -np.inf)
        if explain:
            decision.top_scores = self._top_scores(masked, parts)
        # NOTE: argmax picks the lowest node index among equal best scores, which keeps
        # decisions reproducible and comparable to a reference implementation.
        return int(masked.argmax())

    def _select_cached(
        self, cycle: CycleState, skipped: set[str], decision: Decision
    ) -> int | None:
        """Same choice as :meth:`_select_full`, reusing row-local results for this shape.

        Row-local plugins (fit, allocation scores) give node i a result that depends only
        on row i and the request's resource vector, so their combined mask and weighted
        score are cached per vector and only the rows changed since are recomputed. The
        other plugins run in full. Returns ``None`` when no node is feasible; the full
        path then runs to explain why.
        """
        state = self.state
        entry = self._shapes.entry(cycle, skipped)
        feasible = entry.mask
        narrowed = False
        for plugin in self._other_filters:
            if plugin.name in skipped:
                continue
            feasible = np.logical_and(feasible, plugin.filter(state, cycle))
            narrowed = True
        count = int(np.count_nonzero(feasible)) if narrowed else entry.count
        if count == 0:
            return None
        decision.nodes_feasible = count
        totals = entry.base
        for scorer, pre_score in self._other_scores_with_pre:
            if scorer.name in cycle.inapplicable:
                continue
            if pre_score and pre_score(state, cycle, feasible).code is Code.SKIP:
                continue
            weighted = self._weighted(scorer, cycle, feasible)
            totals = (
                totals + weighted if totals is entry.base else np.add(totals, weighted, out=totals)
            )
        if narrowed:
            totals = np.where(feasible, totals, -np.inf)
        return int(totals.argmax())  # the method skips np.argmax's dispatch, ~3 µs

    def _weighted(self, plugin: ScorePlugin, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        scores = plugin.score(self.state, cycle, feasible)
        normalizer = self._normalizers.get(plugin.name)
        if normalizer is not None:
            scores = normalizer.normalize(self.state, cycle, scores, feasible)
        weight = self.profile.weights[plugin.name]
        return scores * weight if weight != 1 else scores

    def _score(
        self, cycle: CycleState, feasible: BoolArray, *, keep_parts: bool
    ) -> tuple[FloatArray, dict[str, FloatArray]]:
        state, profile = self.state, self.profile
        skipped = {
            p.name
            for p in profile.pre_scores
            if p.pre_score(state, cycle, feasible).code is Code.SKIP
        }
        totals = np.zeros(len(state), dtype=np.float64)
        parts: dict[str, FloatArray] = {}
        # Row-local scores first, in the order the cached path adds them.
        ordered: list[ScorePlugin] = [*self._row_local_scores, *self._other_scores]
        for plugin in ordered:
            if plugin.name in skipped:
                continue
            weighted = self._weighted(plugin, cycle, feasible)
            totals += weighted
            if keep_parts:
                parts[plugin.name] = weighted
        return totals, parts

    def _reserve_and_permit(self, cycle: CycleState, node: int) -> tuple[Code, list[str]] | None:
        """Run reserve, permit and bind; on refusal undo everything and say why."""
        state, profile = self.state, self.profile
        for plugin in profile.reserves:
            status = plugin.reserve(state, cycle, node)
            if not status.ok:
                return self._undo(cycle, node, plugin.name, status.code, status.reasons)
        for permit in profile.permits:
            status = permit.permit(state, cycle, node)
            if not status.ok:
                return self._undo(cycle, node, permit.name, status.code, status.reasons)
        for binder in profile.binds:
            status = binder.bind(state, cycle, node)
            if not status.ok:
                return self._undo(cycle, node, binder.name, status.code, status.reasons)
        return None

    def _undo(
        self, cycle: CycleState, node: int, plugin: str, code: Code, reasons: tuple[str, ...]
    ) -> tuple[Code, list[str]]:
        # As in Kubernetes, every reserve plugin is unreserved, in reverse order, whether
        # or not its reserve ran; unreserve must therefore be idempotent.
        for reserve in reversed(self.profile.reserves):
            reserve.unreserve(self.state, cycle, node)
        self.state.release(node, cycle.request, cycle.vector)
        code = Code.UNSCHEDULABLE if code is Code.OK else code
        where = self.state.names[node]
        return code, [f"{plugin} refused {where}: {r}" for r in reasons] or [
            f"{plugin} refused {where}"
        ]

    # -- explanations --------------------------------------------------------------------

    def _explain_rejections(
        self,
        decision: Decision,
        cycle: CycleState,
        masks: list[tuple[FilterPlugin, BoolArray]],
        full: bool,
    ) -> None:
        """Attribute each rejected node to the first filter that rejected it."""
        state = self.state
        alive = np.ones(len(state), dtype=bool)
        budget = self.node_reason_limit if full else 0
        for plugin, mask in masks:
            rejected_mask = alive & ~mask
            count = int(np.count_nonzero(rejected_mask))
            alive &= mask
            if count == 0:
                continue
            rejected = np.flatnonzero(rejected_mask)
            # A filter's optional summarize(state, cycle, judged) says why none of the nodes
            # it judged passed (the Latency filter: the best RTT there was).
            summarize = getattr(plugin, "summarize", None)
            if summarize is not None and decision.nodes_feasible == 0:
                judged = np.flatnonzero(alive | rejected_mask)
                decision.reasons += [f"{plugin.name}: {t}" for t in summarize(state, cycle, judged)]
            shown = max(EXAMPLES_PER_PLUGIN, min(budget, count))
            texts = plugin.explain(state, cycle, rejected[:shown])
            names = [state.names[i] for i in rejected[:shown].tolist()]
            decision.rejections.append(
                Rejection(
                    plugin.name,
                    count,
                    tuple(
                        f"{name}: {t}"
                        for name, t in zip(names, texts[:EXAMPLES_PER_PLUGIN], strict=False)
                    ),
                )
            )
            if full and budget > 0:
                for name, text in list(zip(names, texts, strict=False))[:budget]:
                    decision.node_reasons.setdefault(name, []).append(f"{plugin.name}: {text}")
                budget -= min(budget, count)

    def _top_scores(self, masked: FloatArray, parts: dict[str, FloatArray]) -> list[NodeScore]:
        finite = int(np.count_nonzero(np.isfinite(masked)))
        k = min(self.top_k, finite)
        if k == 0:
            return []
        # Stable sort on the negated scores keeps the lowest index first among ties,
        # matching the choice made by argmax.
        order = np.argsort(-masked, kind="stable")[:k]
        return [
            NodeScore(
                node=self.state.names[i],
                total=float(masked[i]),
                by_plugin={name: float(part[i]) for name, part in parts.items()},
            )
            for i in order.tolist()
        ]

    # -- batches -------------------------------------------------------------------------

    def schedule_many(
        self,
        requests: Iterable[PlacementRequest],
        *,
        explain: bool = False,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> Plan:
        """Decide requests one after another; each decision sees the previous reservations."""
        return decide_each(self.schedule, requests, explain=explain, on_decision=on_decision)

    # -- host-facing mutators ------------------------------------------------------------
    # Hosts change placements and node health through the scheduler rather than its state,
    # so the same host code serves a DelegatingScheduler, which must update its clusters'
    # sub-states as well (harmonia.sched.hierarchy).

    def release(self, node: int, request: PlacementRequest, vector: IntArray | None = None) -> None:
        """Undo the placement of ``request`` on node ``node`` (an index): the state's
        :meth:`~harmonia.sched.state.ClusterState.release`."""
        self.state.release(node, request, vector)

    def set_healthy(self, name: str, healthy: bool) -> None:
        """Mark node ``name`` up or down in :attr:`state`."""
        self.state.set_healthy(name, healthy)

    def set_cordoned(self, name: str, cordoned: bool) -> None:
        """Cordon or uncordon node ``name`` in :attr:`state`."""
        self.state.set_cordoned(name, cordoned)


def decide_each(
    schedule: Callable[..., Decision],
    requests: Iterable[PlacementRequest],
    *,
    explain: bool,
    on_decision: Callable[[Decision], None] | None,
) -> Plan:
    """``schedule_many`` of any scheduler: ``schedule(request, explain=...)`` in turn.

    The cyclic garbage collector is paused for the batch, as the simulator pauses it for
    a run: decisions create no reference cycles (every object they make is freed by its
    reference count), so the collector's passes, triggered by the many short-lived
    objects, find nothing; they cost about a tenth of a decision on a 100-node cluster.
    """
    started = time.monotonic()
    plan = Plan()
    collecting = gc.isenabled()
    gc.disable()
    try:
        for request in requests:
            decision = schedule(request, explain=explain)
            plan.decisions.append(decision)
            if on_decision is not None:
                on_decision(decision)
    finally:
        if collecting:
            gc.enable()
    plan.seconds = time.monotonic() - started
    return plan


def _summarize(decision: Decision) -> str:
    parts = [
        f"{r.count} rejected by {r.plugin}" + (f" (e.g. {r.examples[0]})" if r.examples else "")
        for r in decision.rejections
    ]
    head = f"0/{decision.nodes_total} nodes are available"
    return f"{head}: {', '.join(parts)}" if parts else head


__all__ = ["Scheduler"]
