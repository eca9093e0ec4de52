"""Named policies: profiles registered by name, built fresh for every scheduler.

Built-in: ``default`` (kube-scheduler's default scoring), ``binpack``, ``spread``,
``random``, ``round-robin``, ``ratio`` (RequestedToCapacityRatio), ``latency`` (the
default plus latency and geo bounds, after the kubernetes-edge-scheduler and Oakestra),
``latency-reliable`` (``latency`` with failover reservations) and ``interference``
(``default`` plus the modelled co-location throughput of long-running containers).
Only ``latency``, ``latency-reliable`` and ``ldp`` enforce ``latency`` and ``geo``
constraints; the others refuse requests that carry them, so ``default`` and ``latency`` can
be compared on the same workload.

Two policies are *delegated* (:class:`DelegatedProfile`): ``rom`` and ``ldp`` schedule root
→ cluster → node, after Oakestra's root schedulers (see :mod:`harmonia.sched.hierarchy`).
Their profiles carry the node-level policy's plugins (``default`` and ``latency``), which
each cluster runs over its own nodes; hosts build their scheduler with
``harmonia.sched.scheduler_for``, which delegates for these and schedules flat otherwise.

Third parties add policies through the entry-point group ``harmonia.policies``; an entry
point names a callable that takes no argument and returns a
:class:`~harmonia.sched.framework.Profile`::

    [project.entry-points."harmonia.policies"]
    my-policy = "my_package.policies:build_my_policy"

A factory, not a profile, is registered because plugins may keep state (RoundRobin's
cursor) that must not leak between schedulers.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from harmonia.model import HarmoniaError
from harmonia.sched.framework import Plugin, Profile, ProfileError
from harmonia.sched.plugins import (
    BalancedAllocation,
    CloudFirst,
    Direct,
    FailoverReservation,
    Geo,
    InterferenceScore,
    Latency,
    LeastAllocated,
    MostAllocated,
    NodeAffinity,
    NodeResourcesFit,
    NodeSchedulable,
    RandomScore,
    RequestedToCapacityRatio,
    RoundRobin,
    ServiceAntiAffinity,
    ServiceSpread,
    TaintToleration,
)

ENTRY_POINT_GROUP = "harmonia.policies"

PolicyFactory = Callable[[], Profile]


class UnknownPolicyError(HarmoniaError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown policy {name!r}; known policies: {', '.join(known)}")
        self.name = name


_REGISTRY: dict[str, PolicyFactory] = {}
_BROKEN: dict[str, str] = {}
_entry_points_loaded = False


class DelegatedProfile(Profile):
    """A hierarchical policy: the root policy ``root`` (``"rom"`` or ``"ldp"``) picks a
    cluster from aggregated cluster rows, then that cluster places the request on its own
    nodes with the plugins of ``node_policy``.

    The profile's plugins and weights are ``node_policy``'s, so listings, explanations and
    the check that every constraint is enforced read as for any policy. A plain
    :class:`~harmonia.sched.scheduler.Scheduler` given this profile runs those plugins over
    all nodes at once, as if the state were a single cluster; only
    ``harmonia.sched.scheduler_for`` (or ``DelegatingScheduler``) delegates.
    """

    def __init__(self, name: str, root: str, node_policy: str, description: str = "") -> None:
        node = get_policy(node_policy)
        if isinstance(node, DelegatedProfile):
            raise ProfileError(
                f"policy {name!r}: node-level policy {node_policy!r} is itself delegated"
            )
        super().__init__(name, node.plugins, node.weights, description)
        self.root = root
        self.node_policy = node_policy

    def node_profile(self) -> Profile:
        """A fresh profile of the node-level policy, one per cluster: plugins may keep
        state (caches keyed by state, RoundRobin's cursor) that must not be shared."""
        return get_policy(self.node_policy)


def register_policy(name: str, factory: PolicyFactory, *, replace: bool = False) -> None:
    """Register ``factory`` under ``name``; refuses to shadow a name unless ``replace``."""
    if name in _REGISTRY and not replace:
        raise HarmoniaError(f"policy {name!r} is already registered")
    _REGISTRY[name] = factory


def policy_names() -> list[str]:
    """Names of the policies that can be built (broken entry points are left out)."""
    _load_entry_points()
    return sorted(_REGISTRY)


def broken_policies() -> dict[str, str]:
    """Entry points that failed to load, with the reason, so a CLI can warn about them."""
    _load_entry_points()
    return dict(_BROKEN)


def get_policy(name: str) -> Profile:
    """A fresh profile of the policy ``name``."""
    _load_entry_points()
    factory = _REGISTRY.get(name)
    if factory is None:
        if name in _BROKEN:
            raise HarmoniaError(_BROKEN[name])
        raise UnknownPolicyError(name, sorted(_REGISTRY))
    profile = factory()
    if not isinstance(profile, Profile):
        raise HarmoniaError(
            f"policy {name!r}: factory returned {type(profile).__name__}, not Profile"
        )
    return profile


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue  # built-ins win; a plugin package cannot silently replace them
        try:
            factory = ep.load()
        except Exception as exc:
            # A broken third-party package must not take the other policies down with it:
            # it is remembered, named when asked for, and the rest still load.
            _BROKEN[ep.name] = f"policy {ep.name!r} from {ep.value!r} failed to load: {exc}"
            continue
        _REGISTRY[ep.name] = factory
    _entry_points_loaded = True


def _filters() -> list[Plugin]:
    # Cheapest and most selective first: health, then explicit placement, then resources,
    # then label and taint checks, then the per-service counts.
    return [
        NodeSchedulable(),
        Direct(),
        NodeResourcesFit(),
        NodeAffinity(),
        TaintToleration(),
        ServiceAntiAffinity(),
    ]


def default_profile() -> Profile:
    """kube-scheduler's default score weights: TaintToleration 3, NodeAffinity 2,
    spread 2, NodeResourcesFit (LeastAllocated) 1, BalancedAllocation 1."""
    return Profile(
        "default",
        [*_filters(), LeastAllocated(), BalancedAllocation(), ServiceSpread()],
        {
            "TaintToleration": 3,
            "NodeAffinity": 2,
            "ServiceSpread": 2,
            "LeastAllocated": 1,
            "BalancedAllocation": 1,
        },
        description="Kubernetes' default scoring: least allocated, balanced, spread, affinity",
    )


def binpack_profile() -> Profile:
    return Profile(
        "binpack",
        [*_filters(), MostAllocated()],
        {"TaintToleration": 3, "NodeAffinity": 2, "MostAllocated": 1},
        description="fill the fullest node that fits (MostAllocated)",
    )


def spread_profile() -> Profile:
    return Profile(
        "spread",
        [*_filters(), ServiceSpread(), LeastAllocated()],
        {"TaintToleration": 3, "NodeAffinity": 2, "ServiceSpread": 3, "LeastAllocated": 1},
        description="spread each service's instances, then the load",
    )


def ratio_profile() -> Profile:
    return Profile(
        "ratio",
        [*_filters(), RequestedToCapacityRatio()],
        {"TaintToleration": 3, "NodeAffinity": 2, "RequestedToCapacityRatio": 1},
        description="RequestedToCapacityRatio with the linear shape (0,0)-(100,100)",
    )


def latency_profile() -> Profile:
    """The default filters plus latency and geo bounds, after the kubernetes-edge-scheduler
    (delay labels; pods without one go to the cloud) and Oakestra's LDP (latency and geo
    constraints).

    Geo and Latency filter right after explicit placement and before the resource fit:
    a location bound is the most selective check, and a node near enough but full is then
    reported as full, not as too far. Scores: Latency ×2 prefers the closer of the nodes
    within the bound about as much as the two load scores together prefer an emptier one;
    CloudFirst ×3 sends requests without a location bound to the cloud unless no cloud node
    fits, as strongly as TaintToleration keeps work off soft-tainted nodes; LeastAllocated
    and BalancedAllocation as in ``default``. ServiceSpread is left out: spreading pulls a
    service's replicas away from the reference they must be near (an ``anti_affinity``
    constraint still spreads them where that matters), and it is a tenth of a decision's
    cost at 10,000 nodes.
    """
    return Profile(
        "latency",
        [
            NodeSchedulable(),
            Direct(),
            Geo(),
            Latency(),
            NodeResourcesFit(),
            NodeAffinity(),
            TaintToleration(),
            ServiceAntiAffinity(),
            LeastAllocated(),
            BalancedAllocation(),
            CloudFirst(),
        ],
        {
            "TaintToleration": 3,
            "NodeAffinity": 2,
            "LeastAllocated": 1,
            "BalancedAllocation": 1,
            "Latency": 2,
            "CloudFirst": 3,
        },
        description="default filters plus latency and geo bounds; lower RTT, unbounded to cloud",
    )


def latency_reliable_profile() -> Profile:
    """``latency`` plus failover reservations (:mod:`harmonia.sched.failover`, after the
    kubernetes-edge-scheduler's placeholders): each placement also keeps spare capacity
    within the instance's bounds on another node, shared between instances that no
    single node failure takes down together. Same filters and scores as ``latency``, so
    it places within the same bounds; the placeholders only take capacity away.
    """
    latency = latency_profile()
    return Profile(
        "latency-reliable",
        [*latency.plugins, FailoverReservation()],
        latency.weights,
        description="latency plus failover reservations within each bound for any single "
        "node failure",
    )


def interference_profile() -> Profile:
    """``default`` plus Interference ×2 (after Metis, SC'20): requests of QoS class
    ``LRA`` labelled with their profiled application go where one more container adds
    the most modelled node throughput; other requests score as in ``default``. Weight 2,
    as much as spreading, so the model outweighs each load score alone but not the
    taint and affinity preferences together. The table is read from
    ``HARMONIA_INTERFERENCE_TABLE`` (see :mod:`harmonia.sched.plugins.interference`).
    """
    default = default_profile()
    return Profile(
        "interference",
        [*default.plugins, InterferenceScore()],
        {**default.weights, "Interference": 2},
        description="default plus the modelled throughput gain of co-located long-running "
        "containers (LRA)",
    )


def rom_profile() -> Profile:
    """Oakestra's resource-only matching, delegated: root → cluster → ``default``."""
    return DelegatedProfile(
        "rom",
        "rom",
        "default",
        description="delegated: the least-allocated cluster whose largest free node fits "
        "(Oakestra's ROM), then default on its nodes",
    )


def ldp_profile() -> Profile:
    """Oakestra's latency- and distance-aware placement, delegated: root → cluster →
    ``latency``."""
    return DelegatedProfile(
        "ldp",
        "ldp",
        "latency",
        description="delegated: the cluster with the nearest node within the latency and geo "
        "bounds (Oakestra's LDP), then latency on its nodes",
    )


def random_profile() -> Profile:
    return Profile("random", [*_filters(), RandomScore()], description="a feasible node at random")


def round_robin_profile() -> Profile:
    return Profile("round-robin", [*_filters(), RoundRobin()], description="feasible nodes in turn")


for _name, _factory in {
    "default": default_profile,
    "binpack": binpack_profile,
    "spread": spread_profile,
    "ratio": ratio_profile,
    "random": random_profile,
    "round-robin": round_robin_profile,
    "latency": latency_profile,
    "latency-reliable": latency_reliable_profile,
    "interference": interference_profile,
    "rom": rom_profile,
    "ldp": ldp_profile,
}.items():
    register_policy(_name, _factory)
