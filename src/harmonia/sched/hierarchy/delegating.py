"""``DelegatingScheduler``: root → cluster → node, each cluster on its own sub-state.

One decision:

1. **Root prepare**, on the whole infrastructure's state: the request's constraint types
   are checked against the policy, and the pre-filters whose outcome depends on the whole
   infrastructure run once on the global state — ``Direct``, ``Geo`` and ``Latency``
   (nodes, clusters, services and areas anywhere) and ``NodeResourcesFit`` (larger than
   every node) — so such a request is refused before filtering (``UNRESOLVABLE``: an
   unknown name, a request too large; ``UNSCHEDULABLE``: a service with no instance yet)
   as the flat policy refuses it. The other pre-filters read only the request and the
   cluster's nodes, and run in the cluster.
2. **Root ranking** (:mod:`harmonia.sched.hierarchy.root`) over the aggregated cluster
   rows (:mod:`harmonia.sched.hierarchy.rows`). When the request carries a constraint of a
   plugin the root evaluates per node (``Direct`` for both roots; ``Geo`` and ``Latency``
   for ``ldp``), those filters run over all nodes, together with health and the
   resource fit, and are reduced per cluster: a vector pass over the nodes, no Python loop.
3. **Cluster decision**: the best cluster's own :class:`~harmonia.sched.Scheduler` runs the
   node-level policy over that cluster's :class:`~harmonia.sched.ClusterState` only, so it
   costs O(nodes in the cluster). When it refuses, the next cluster is asked, up to
   ``max_clusters`` (3) in all; the decision's reasons then name each cluster tried and
   why it refused. An ``UNRESOLVABLE`` answer is final: nothing cluster-specific causes it
   once the root has checked the request's size and names.
4. **Reservation**: the cluster's scheduler reserves in its sub-state and the same amounts
   are reserved at once on the global state, which hosts read for metrics, so the next
   decision sees both (Oakestra reserves nothing between decisions, and over-commits).

**References across clusters.** In a cluster's profile ``Direct``, ``Geo`` and ``Latency``
run on the global state, sliced to the cluster, and reuse the root's results for the
request (:mod:`harmonia.sched.hierarchy.wrappers`): a delay bound to a node or to the
nearest instance of a service in another cluster is checked against the real RTTs.

**Sub-states** (:mod:`harmonia.sched.hierarchy.substates`) hold each cluster's nodes in
global order and stay identical to the global state row for row: hosts go through
:meth:`DelegatingScheduler.release`, :meth:`~DelegatingScheduler.set_healthy` and
:meth:`~DelegatingScheduler.set_cordoned`, and changes made to the global state directly
are found in its change log before the next decision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from harmonia.model import RESOURCE_NAMES, GeoConstraint, PlacementRequest
from harmonia.sched.decision import Decision, Plan, Rejection
from harmonia.sched.facts import FactsBook
from harmonia.sched.framework import (
    Code,
    CycleState,
    FilterPlugin,
    Plugin,
    PreFilterPlugin,
    Profile,
    ProfileError,
    RowLocalFilterPlugin,
    ScorePlugin,
)
from harmonia.sched.hierarchy.root import ROOT_POLICIES, RootPolicy, RootView
from harmonia.sched.hierarchy.rows import ClusterRows, IndexArray
from harmonia.sched.hierarchy.substates import ClusterScope, SubStates
from harmonia.sched.hierarchy.wrappers import GlobalFilter, GlobalScore, RootContext
from harmonia.sched.plugins import Direct, Geo, Latency, NodeResourcesFit, NodeSchedulable
from harmonia.sched.plugins.resource_fit import fmt
from harmonia.sched.policies import DelegatedProfile, get_policy
from harmonia.sched.scheduler import Scheduler, decide_each
from harmonia.sched.shapes import ShapeCache
from harmonia.sched.state import (
    BoolArray,
    ClusterState,
    FloatArray,
    IntArray,
)

#: Clusters asked, best first, before a request is refused.
MAX_CLUSTERS_TRIED = 3
#: Node-level plugins that name things anywhere in the infrastructure (or whose masks the
#: root computes): in a cluster they run on the global state, sliced
#: (:class:`~harmonia.sched.hierarchy.wrappers.GlobalFilter`).
GLOBAL_PLUGIN_TYPES: tuple[type[Plugin], ...] = (Direct, Geo, Latency)
#: Pre-filters whose outcome depends on the whole infrastructure: they run at the root.
ROOT_PRE_FILTER_TYPES: tuple[type[Plugin], ...] = (*GLOBAL_PLUGIN_TYPES, NodeResourcesFit)
EXAMPLES_PER_PLUGIN = 3  # examples kept per plugin when refusals of clusters merge
_NOTHING_SKIPPED: set[str] = set()


class DelegatingScheduler:
    """Places requests root → cluster → node with a delegated policy (``rom``, ``ldp``).

    The same public interface as :class:`~harmonia.sched.Scheduler` (``schedule``,
    ``schedule_many``, ``state``, ``profile``) and the host-facing
    mutators ``release``, ``set_healthy`` and ``set_cordoned``. ``state`` is the global
    state; :attr:`clusters` holds each cluster's sub-state and scheduler, :attr:`rows` the
    aggregated cluster rows the root ranks. ``node_policy`` replaces the policy's
    node-level one (the profile is then named ``"<policy>/<node_policy>"``);
    ``max_clusters`` bounds the clusters asked per request.
    """

    def __init__(
        self,
        state: ClusterState,
        root: str | DelegatedProfile = "rom",
        *,
        node_policy: str | None = None,
        seed: int = 0,
        top_k: int = 5,
        node_reason_limit: int = 50,
        cache: bool = True,
        explain_failures: bool = True,
        max_clusters: int = MAX_CLUSTERS_TRIED,
    ) -> None:
        profile = get_policy(root) if isinstance(root, str) else root
        if not isinstance(profile, DelegatedProfile):
            delegated = ", ".join(sorted(ROOT_POLICIES))
            raise ProfileError(
                f"policy {profile.name!r} is not delegated (delegated policies: {delegated})"
            )
        if node_policy is not None and node_policy != profile.node_policy:
            profile = DelegatedProfile(
                f"{profile.name}/{node_policy}",
                profile.root,
                node_policy,
                description=f"{profile.root} at the root, {node_policy} on the nodes",
            )
        root_type = ROOT_POLICIES.get(profile.root)
        if root_type is None:
            known = ", ".join(sorted(ROOT_POLICIES))
            raise ProfileError(
                f"policy {profile.name!r}: unknown root policy {profile.root!r} (known: {known})"
            )
        if max_clusters < 1:
            raise ProfileError(f"max_clusters must be at least 1, got {max_clusters}")
        self.state = state
        self.profile: DelegatedProfile = profile
        self.root: RootPolicy = root_type()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.cache = cache
        self.explain_failures = explain_failures
        self.max_clusters = max_clusters
        self.rows = ClusterRows(state)
        # The profile's own plugin instances are the global ones: the root runs them on the
        # global state, and every cluster's wrappers share them (and their caches).
        self._root_filters: list[FilterPlugin] = [
            p for p in profile.filters if isinstance(p, self.root.filter_types)
        ]
        self._root_pre_filters: list[PreFilterPlugin] = [
            p for p in profile.pre_filters if isinstance(p, ROOT_PRE_FILTER_TYPES)
        ]
        # What each request needs of itself alone, learned once for the root and the
        # clusters asked (their profiles share the constraint-driven plugins).
        self.facts = FactsBook(profile)
        # The nodes that are schedulable and have room for a request, per request shape,
        # kept current from the change log: the root's node mask starts from it rather
        # than comparing every node's free amounts on every decision.
        fit_filters: list[RowLocalFilterPlugin] = [NodeSchedulable(), NodeResourcesFit()]
        self._fit = ShapeCache(state, Profile("root-fit", fit_filters), fit_filters, [])
        self._context = RootContext()
        shared = {p.name: p for p in profile.plugins if isinstance(p, GLOBAL_PLUGIN_TYPES)}
        self.clusters: list[ClusterScope] = []
        for c, name in enumerate(self.rows.names):
            members = self.rows.members[c]
            sub = ClusterState([state.node(i) for i in members.tolist()])
            cluster_profile = self._cluster_profile(profile.node_profile(), shared, members)
            scheduler = Scheduler(
                sub,
                cluster_profile,
                seed=int(np.random.SeedSequence([seed, c]).generate_state(1)[0]),
                top_k=top_k,
                node_reason_limit=node_reason_limit,
                cache=cache,
                explain_failures=explain_failures,
                facts=self.facts,
            )
            self.clusters.append(ClusterScope(c, name, members, sub, scheduler))
        self._substates = SubStates(state, self.clusters)
        #: Local index of each node in its cluster's sub-state.
        self.local: IndexArray = self._substates.local

    def _cluster_profile(
        self, fresh: Profile, shared: dict[str, Plugin], members: IndexArray
    ) -> Profile:
        plugins: list[Plugin] = []
        for plugin in fresh.plugins:
            inner = shared.get(plugin.name) if isinstance(plugin, GLOBAL_PLUGIN_TYPES) else None
            if inner is None:
                plugins.append(plugin)
            elif isinstance(inner, ScorePlugin):
                plugins.append(GlobalScore(inner, self.state, members, self._context))
            else:
                plugins.append(GlobalFilter(inner, self.state, members, self._context))
        return Profile(self.profile.name, plugins, fresh.weights, fresh.description)

    # -- one request -------------------------------------------------------------------

    def schedule(self, request: PlacementRequest, *, explain: bool = False) -> Decision:
        """Decide one request and, if it is placed, reserve it in :attr:`state` and in
        its cluster's sub-state."""
        self._substates.sync()
        state = self.state
        decision = Decision(
            request.id, None, Code.UNSCHEDULABLE, nodes_total=len(state), policy=self.profile.name
        )
        context = self._context
        try:
            prepared = self._prepare(request, decision)
            if prepared is None:
                return decision
            cycle, skipped = prepared
            context.request, context.data = request, cycle.data
            if self.cache:
                self.rows.refresh()
            else:
                self.rows.recompute(track=False)  # the reference: every row from the columns
            view, active = self._view(cycle, skipped)
            scores = self.root.rank(self.rows, state, view)
            if not self._ask_clusters(decision, cycle, scores, explain):
                decision.reasons = self._no_cluster(cycle, view, active)
            return decision
        finally:
            context.clear()

    def _prepare(
        self, request: PlacementRequest, decision: Decision
    ) -> tuple[CycleState, set[str]] | None:
        """The root's cycle after the root's pre-filters ran on the global state, and the
        plugins that sit the request out; ``None`` (and ``decision`` says why) when the
        request is refused before filtering."""
        facts = self.facts.learn(request)
        if facts.unenforced:
            decision.code = Code.UNRESOLVABLE
            decision.reasons = list(facts.unenforced)
            return None
        cycle = CycleState(
            request=request,
            vector=facts.vector,
            amounts=facts.amounts,
            requested=facts.requested,
            rng=self.rng,
            inapplicable=facts.inapplicable,
            shape=facts.shape,
        )
        skipped: set[str] = set(facts.inapplicable)
        statuses = self._context.statuses
        for plugin in self._root_pre_filters:
            if plugin.name in facts.inapplicable:
                continue
            status = plugin.pre_filter(self.state, cycle)
            if status.code is Code.SKIP:
                skipped.add(plugin.name)
            elif not status.ok:
                decision.code = status.code
                decision.reasons = [f"{plugin.name}: {r}" for r in status.reasons]
                return None
            statuses[plugin.name] = status
        return cycle, skipped

    def _view(self, cycle: CycleState, skipped: set[str]) -> tuple[RootView, list[FilterPlugin]]:
        """The root's view of the request, and the root filters that applied to it."""
        view = RootView(cycle.vector, cycle.amounts, cycle.requested)
        active = [p for p in self._root_filters if p.name not in skipped]
        if not active:
            return view, active
        state, context = self.state, self._context
        # Schedulable and with room for the request (NodeSchedulable and NodeResourcesFit),
        # kept per request shape rather than compared node by node each time.
        fit = self._fit.entry(cycle, _NOTHING_SKIPPED).mask
        mask: BoolArray | None = None
        for plugin in active:
            plugin_mask = plugin.filter(state, cycle)
            context.masks[plugin.name] = plugin_mask
            # NOTE: the first combination makes a new array: the plugin's mask and the fit
            # mask belong to their owners.
            mask = (
                np.logical_and(plugin_mask, fit)
                if mask is None
                else np.logical_and(mask, plugin_mask, out=mask)
            )
        assert mask is not None
        view.node_mask = mask
        if self.root.wants_proximity:
            view.proximity = self._proximity(cycle, active, mask)
        return view, active

    def _proximity(
        self, cycle: CycleState, active: list[FilterPlugin], mask: BoolArray
    ) -> FloatArray | None:
        """Per node, 0..100, how close it is to the request's location bounds: the mean of
        the Latency score (its own scale: 100 at 0 ms, 0 at the bound) and of
        ``100 × (1 − km / threshold)`` per geo bound; ``None`` without such bounds.
        Meaningful only where ``mask`` holds."""
        state, context = self.state, self._context
        parts: list[FloatArray] = []
        for plugin in active:
            if isinstance(plugin, Latency):
                status = plugin.pre_score(state, cycle, mask)
                context.pre_scores[plugin.name] = status
                if status.ok:
                    scores = plugin.score(state, cycle, mask)
                    context.scores[plugin.name] = scores
                    parts.append(scores)
            elif isinstance(plugin, Geo):
                parts.append(self._geo_closeness(plugin, cycle.request, mask))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        total: FloatArray = np.add(parts[0], parts[1])
        for part in parts[2:]:
            total += part
        total /= len(parts)
        return total

    def _geo_closeness(self, geo: Geo, request: PlacementRequest, mask: BoolArray) -> FloatArray:
        bounds = [c for c in request.constraints if isinstance(c, GeoConstraint)]
        closeness = np.zeros(len(self.state), dtype=np.float64)
        chosen = np.flatnonzero(mask)
        if not bounds or chosen.size == 0:
            return closeness
        total = np.zeros(chosen.size, dtype=np.float64)
        for c in bounds:
            # Distances only for the nodes within the bounds (few, for a geo bound), from
            # the terms the Geo filter has just computed for this position.
            km = geo.distances_km(self.state, c, chosen)
            total += np.maximum(100.0 * (1.0 - km / c.threshold_km), 0.0)
        closeness[chosen] = total / len(bounds)
        return closeness

    def _ask_clusters(
        self, decision: Decision, cycle: CycleState, scores: FloatArray, explain: bool
    ) -> bool:
        """Ask the clusters best first, up to :attr:`max_clusters`, and fill ``decision``;
        reserve the placement on the global state too. ``scores`` (``-inf`` where a cluster
        does not qualify) is used up: each cluster asked is set to ``-inf``. False when no
        cluster qualifies (``decision`` is then left for the caller to explain)."""
        request = cycle.request
        tried: list[str] = []
        refusals: list[ClusterScope] = []
        answers: list[Decision] = []
        for _ in range(self.max_clusters):
            # NOTE: argmax per cluster asked rather than a full sort: the first cluster
            # takes nearly every request, and argmax keeps the lower index among ties.
            c = int(scores.argmax()) if scores.size else 0
            if not scores.size or scores[c] == -np.inf:
                if not answers:
                    return False
                break
            scores[c] = -np.inf
            scope = self.clusters[c]
            answer = scope.scheduler.schedule(request, explain=explain)
            if answer.node is not None:
                node = int(scope.members[scope.state.index[answer.node]])
                self.state.reserve(node, request, cycle.vector, requested=cycle.requested)
                self._substates.mark()
                decision.node = answer.node
                decision.code = Code.OK
                decision.nodes_feasible = answer.nodes_feasible
                decision.rejections = answer.rejections
                decision.top_scores = answer.top_scores
                decision.node_reasons = answer.node_reasons
                decision.reasons = tried
                if explain:
                    qualified = len(refusals) + 1 + int(np.count_nonzero(np.isfinite(scores)))
                    decision.reasons = [
                        f"root {self.root.name}: cluster {scope.name}, choice "
                        f"{len(refusals) + 1} of {qualified} qualifying clusters",
                        *tried,
                    ]
                return True
            tried += [f"cluster {scope.name}: {r}" for r in answer.reasons]
            refusals.append(scope)
            answers.append(answer)
            if answer.code is Code.UNRESOLVABLE:
                decision.code = Code.UNRESOLVABLE
                decision.reasons = tried
                return True
        qualified = len(refusals) + int(np.count_nonzero(np.isfinite(scores)))
        names = ", ".join(scope.name for scope in refusals)
        decision.reasons = [
            f"root {self.root.name}: {len(refusals)} of {qualified} qualifying clusters "
            f"refused ({names})",
            *tried,
        ]
        decision.rejections = _merged_rejections(answers)
        for answer in answers:
            decision.node_reasons.update(answer.node_reasons)
        return True

    def _no_cluster(
        self, cycle: CycleState, view: RootView, active: list[FilterPlugin]
    ) -> list[str]:
        """Why no cluster qualifies, in kube-scheduler's style per cluster: the first
        check (health, each root filter, each resource) that leaves a cluster without a
        node, with the bound plugins' summaries (the best RTT on offer)."""
        rows, state = self.rows, self.state
        k = len(rows)
        counts: list[str] = []
        lines: list[str] = []
        if view.node_mask is None:
            with_nodes = rows.schedulable > 0
            alive_clusters = with_nodes.copy()
            _count(counts, k - int(np.count_nonzero(alive_clusters)), "no schedulable node")
            for r in cycle.requested:
                short = alive_clusters & (rows.max_free[:, r] < cycle.vector[r])
                largest = int(rows.max_free[with_nodes, r].max(initial=0))
                _count(
                    counts,
                    int(np.count_nonzero(short)),
                    f"no node with {RESOURCE_NAMES[r]} {fmt(r, int(cycle.vector[r]))} free "
                    f"(largest anywhere {fmt(r, largest)})",
                )
                alive_clusters &= ~short
        else:
            alive = state.schedulable.copy()
            before = rows.any_per_cluster(alive)
            _count(counts, k - int(np.count_nonzero(before)), "no schedulable node")
            stages: list[tuple[str, BoolArray, FilterPlugin | None]] = [
                (f"no node that passes {p.name}", self._context.masks[p.name], p) for p in active
            ]
            stages += [
                (
                    f"no such node with {RESOURCE_NAMES[r]} {fmt(r, int(cycle.vector[r]))} free",
                    state.free[:, r] >= cycle.vector[r],
                    None,
                )
                for r in cycle.requested
            ]
            for text, mask, plugin in stages:
                rejected = alive & ~mask
                summarize = getattr(plugin, "summarize", None)
                if plugin is not None and summarize is not None and rejected.any():
                    judged = np.flatnonzero(alive)
                    lines += [f"{plugin.name}: {t}" for t in summarize(state, cycle, judged)]
                alive &= mask
                after = rows.any_per_cluster(alive)
                _count(counts, int(np.count_nonzero(before & ~after)), text)
                before = after
        head = f"0/{k} clusters are available"
        return [f"{head}: {', '.join(counts)}" if counts else head, *lines]

    # -- batches -------------------------------------------------------------

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

    def release(self, node: int, request: PlacementRequest, vector: IntArray | None = None) -> None:
        """Undo the placement of ``request`` on node ``node`` (a global index), in the
        global state and the node's sub-state. A refused release changes neither."""
        self._substates.release(node, request, vector)

    def set_healthy(self, name: str, healthy: bool) -> None:
        """Mark node ``name`` up or down, in the global state and its sub-state."""
        self._substates.set_healthy(name, healthy)

    def set_cordoned(self, name: str, cordoned: bool) -> None:
        """Cordon or uncordon node ``name``, in the global state and its sub-state."""
        self._substates.set_cordoned(name, cordoned)

    def sync(self) -> None:
        """Copy changes made to the global state directly (not through these mutators)
        into the sub-states. Runs before every decision; call it to read the sub-states
        in between."""
        self._substates.sync()


def _count(parts: list[str], count: int, text: str) -> None:
    if count:
        parts.append(f"{count} have {text}")


def _merged_rejections(answers: list[Decision]) -> list[Rejection]:
    """Per plugin, the nodes rejected over every cluster asked, with a few examples."""
    merged: dict[str, tuple[int, list[str]]] = {}
    for answer in answers:
        for rejection in answer.rejections:
            count, examples = merged.get(rejection.plugin, (0, []))
            examples = examples + list(rejection.examples)
            merged[rejection.plugin] = (count + rejection.count, examples)
    return [
        Rejection(plugin, count, tuple(examples[:EXAMPLES_PER_PLUGIN]))
        for plugin, (count, examples) in merged.items()
    ]


def scheduler_for(
    state: ClusterState,
    policy: str | Profile = "default",
    *,
    seed: int = 0,
    top_k: int = 5,
    node_reason_limit: int = 50,
    cache: bool = True,
    explain_failures: bool = True,
) -> Scheduler | DelegatingScheduler:
    """The scheduler a host should use for ``policy``: a :class:`DelegatingScheduler` for a
    delegated policy (``rom``, ``ldp``), a flat :class:`~harmonia.sched.Scheduler` for any
    other. Both take the same options and answer the same calls."""
    profile = get_policy(policy) if isinstance(policy, str) else policy
    if isinstance(profile, DelegatedProfile):
        return DelegatingScheduler(
            state,
            profile,
            seed=seed,
            top_k=top_k,
            node_reason_limit=node_reason_limit,
            cache=cache,
            explain_failures=explain_failures,
        )
    return Scheduler(
        state,
        profile,
        seed=seed,
        top_k=top_k,
        node_reason_limit=node_reason_limit,
        cache=cache,
        explain_failures=explain_failures,
    )


__all__ = [
    "GLOBAL_PLUGIN_TYPES",
    "MAX_CLUSTERS_TRIED",
    "ROOT_PRE_FILTER_TYPES",
    "DelegatingScheduler",
    "scheduler_for",
]
