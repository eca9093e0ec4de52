"""The plugin framework, after the Kubernetes scheduling framework, vectorized over nodes.

Extension points, in the order a decision runs them:

``pre_filter``  once per request: prepare cycle data, or answer ``SKIP`` (the plugin's
                filter has nothing to check for this request) or ``UNRESOLVABLE``;
``filter``      a boolean mask over all nodes (``True`` = feasible);
``pre_score``   once, with the feasible mask: prepare, or ``SKIP`` the plugin's score;
``score``       a float vector over all nodes, 0..100 (after ``normalize`` if defined);
``normalize``   rescale raw scores using the feasible nodes (e.g. divide by the maximum);
``filter_node`` / ``score_node``  the scalar form of a *row-local* plugin (one whose verdict
                on node i depends only on row i and the request's resources): the
                scheduler caches row-local results per request shape and refreshes only
                the nodes that changed, through these;
``reserve`` / ``unreserve``  account the choice in plugin state; when any later phase
                refuses, every reserve plugin's ``unreserve`` runs (reverse order, as in
                Kubernetes), so ``unreserve`` must be idempotent;
``permit``      last word before the placement enters the plan;
``bind``        hand the placement to the host (the core itself binds nothing).

A plugin that declares ``constraint_types`` (the constraint types it enforces) runs in
no phase for a request that carries none of them. A plugin implements only the phases it
needs; a :class:`Profile` detects them once,
when it is built, and checks its weights there rather than mid-run. Filters also
implement ``explain``: a reason per rejected node, used only for explanations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np

from harmonia.model import HarmoniaError, PlacementRequest
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray, NodeRow

MAX_NODE_SCORE = 100


class Code(Enum):
    """Outcome of a phase or a decision. Expected outcomes are data, not exceptions."""

    OK = "OK"
    SKIP = "SKIP"
    UNSCHEDULABLE = "UNSCHEDULABLE"  # no node fits now; may fit after capacity frees
    UNRESOLVABLE = "UNRESOLVABLE"  # no retry can help (bad constraint, too big for any node)
    ERROR = "ERROR"


@dataclass(frozen=True)
class Status:
    code: Code = Code.OK
    reasons: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.code is Code.OK


OK = Status(Code.OK)
SKIP = Status(Code.SKIP)


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNRESOLVABLE, reasons)


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, reasons)


@dataclass(slots=True)
class CycleState:
    """Per-decision scratchpad shared by the plugins, keyed by plugin name."""

    request: PlacementRequest
    vector: IntArray  # resource amounts, RESOURCE_NAMES order
    amounts: list[int]  # the same as Python ints, for scalar paths
    requested: tuple[int, ...]  # columns with a non-zero amount
    rng: np.random.Generator
    data: dict[str, Any] = field(default_factory=dict)
    # Plugins that enforce constraint types the request does not carry; they sit out.
    inapplicable: AbstractSet[str] = frozenset()
    shape: bytes = b""  # vector.tobytes(), when the scheduler has it at hand


@runtime_checkable
class Plugin(Protocol):
    name: str


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: ClusterState, cycle: CycleState) -> BoolArray: ...

    def explain(self, state: ClusterState, cycle: CycleState, rejected: IntArray) -> list[str]: ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray: ...


@runtime_checkable
class NormalizePlugin(Plugin, Protocol):
    def normalize(
        self, state: ClusterState, cycle: CycleState, scores: FloatArray, feasible: BoolArray
    ) -> FloatArray: ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    def reserve(self, state: ClusterState, cycle: CycleState, node: int) -> Status: ...

    def unreserve(self, state: ClusterState, cycle: CycleState, node: int) -> None: ...


@runtime_checkable
class PermitPlugin(Plugin, Protocol):
    def permit(self, state: ClusterState, cycle: CycleState, node: int) -> Status: ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    def bind(self, state: ClusterState, cycle: CycleState, node: int) -> Status: ...


# A row-local plugin whose results (or whose pre-filter's SKIP) depend on more of the
# request than its resource vector defines ``cache_key(cycle) -> Hashable``; the
# scheduler keys its cache by the resource vector plus those keys.


@runtime_checkable
class RowLocalFilterPlugin(FilterPlugin, Protocol):
    """A filter whose verdict on node i depends only on row i and the request's resources
    (and on what its ``cache_key`` names)."""

    def filter_node(self, row: NodeRow, cycle: CycleState) -> bool: ...


@runtime_checkable
class RowLocalScorePlugin(ScorePlugin, Protocol):
    """A score whose value on node i depends only on row i and the request's resources
    (and on what its ``cache_key`` names).

    A plugin whose ``score`` returns a new array on every call may say so with a class
    attribute ``fresh_scores = True``: the shape cache then keeps that array rather than a
    copy (otherwise it assumes the array may be the plugin's own and never writes into it).
    """

    def score_node(self, row: NodeRow, cycle: CycleState) -> float: ...


def is_row_local_filter(plugin: Plugin) -> bool:
    """Whether the plugin's filter is row-local (``row_local`` or ``row_local_filter``)."""
    return bool(getattr(plugin, "row_local_filter", getattr(plugin, "row_local", False)))


def is_row_local_score(plugin: Plugin) -> bool:
    """Whether the plugin's score is row-local (``row_local`` or ``row_local_score``)."""
    return bool(getattr(plugin, "row_local_score", getattr(plugin, "row_local", False)))


class ProfileError(HarmoniaError):
    """A profile is malformed: caught when it is built, never during a decision."""


class Profile:
    """A named policy: an ordered list of plugins and the weights of the scoring ones.

    Order matters for filters: cheap, selective filters first, so the explanation of a
    rejection names the first reason, as kube-scheduler does.
    """

    def __init__(
        self,
        name: str,
        plugins: Sequence[Plugin],
        weights: Mapping[str, int] | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.description = description
        self.plugins: tuple[Plugin, ...] = tuple(plugins)
        names = [p.name for p in self.plugins]
        if len(set(names)) != len(names):
            raise ProfileError(f"policy {name!r}: plugin names repeat: {names}")
        weights = dict(weights or {})
        self.pre_filters = [p for p in self.plugins if isinstance(p, PreFilterPlugin)]
        self.filters = [p for p in self.plugins if isinstance(p, FilterPlugin)]
        self.pre_scores = [p for p in self.plugins if isinstance(p, PreScorePlugin)]
        self.scores = [p for p in self.plugins if isinstance(p, ScorePlugin)]
        self.reserves = [p for p in self.plugins if isinstance(p, ReservePlugin)]
        self.permits = [p for p in self.plugins if isinstance(p, PermitPlugin)]
        self.binds = [p for p in self.plugins if isinstance(p, BindPlugin)]
        score_names = {p.name for p in self.scores}
        for plugin_name, weight in weights.items():
            if plugin_name not in score_names:
                raise ProfileError(
                    f"policy {name!r}: weight for {plugin_name!r}, not a score plugin"
                )
            if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
                raise ProfileError(
                    f"policy {name!r}: weight of {plugin_name!r} must be a positive int"
                )
        self.weights: dict[str, int] = {p.name: weights.get(p.name, 1) for p in self.scores}
        if not self.filters:
            raise ProfileError(f"policy {name!r} has no filter plugin")
        for plugin in self.plugins:
            # The scheduler caches row-local results across decisions; anything that
            # depends on other rows or on the feasible set would make the cache wrong.
            if is_row_local_score(plugin) and isinstance(plugin, ScorePlugin):
                if isinstance(plugin, PreScorePlugin | NormalizePlugin):
                    raise ProfileError(
                        f"policy {name!r}: row-local score {plugin.name!r} "
                        "must not pre-score or normalize"
                    )
                if not isinstance(plugin, RowLocalScorePlugin):
                    raise ProfileError(
                        f"policy {name!r}: row-local {plugin.name!r} lacks score_node"
                    )
            if (
                is_row_local_filter(plugin)
                and isinstance(plugin, FilterPlugin)
                and not isinstance(plugin, RowLocalFilterPlugin)
            ):
                raise ProfileError(f"policy {name!r}: row-local {plugin.name!r} lacks filter_node")
        self.constraint_types: frozenset[str] = frozenset(
            t for p in self.plugins for t in getattr(p, "constraint_types", ())
        )

    def __repr__(self) -> str:
        parts = [
            f"{p.name}×{self.weights[p.name]}" if p.name in self.weights else p.name
            for p in self.plugins
        ]
        return f"Profile({self.name!r}: {', '.join(parts)})"
