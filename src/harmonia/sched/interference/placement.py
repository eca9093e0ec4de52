"""Batch placement of long-running containers onto identical nodes, and its evaluation.

A *batch* is a count of containers per application (``batch[a]``); a *placement* of it
onto ``nodes`` nodes of capacity ``capacity`` is an integer matrix ``x`` of shape
``(nodes, apps)`` whose column sums equal the batch and whose row sums are at most the
capacity. It is judged by Metis's metric (Wang et al., "Metis: Learning to Schedule
Long-Running Applications in Shared Container Clusters at Scale", SC'20): cluster
throughput = Σ over nodes of the node throughput of its configuration, divided by the
number of containers in the batch, where node throughput = Σ over apps of per-container
throughput × containers, read from an :class:`InterferenceTable`.

Interference rules (Metis's ``interference_applist``, used as Medea's constraints) are
counted per node: rule ``(s, c, at_most, t)`` is broken on node ``n`` when ``x[n, s] > 0``
and ``x[n, c] > t``; ``(s, c, at_least, t)`` when ``x[n, s] > 0`` and ``x[n, c] < t``.
The count ``x[n, c]`` is the number of ``c`` containers on the node (for ``s == c`` it
includes the container itself), the same reading the Medea ILP encodes.

Policies are registered by name: ``round-robin`` (here), ``paragon``
(:mod:`.paragon`), ``medea`` (:mod:`.medea`) and ``interference`` (:mod:`.search`,
Harmonia's own).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from harmonia.model import FieldError, InputError
from harmonia.sched.interference.table import InterferenceTable

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class RuleLike(Protocol):
    """An interference rule (see :class:`harmonia.sched.interference.data.Rule`)."""

    @property
    def app_s(self) -> int: ...
    @property
    def app_c(self) -> int: ...
    @property
    def kind(self) -> Literal["at_most", "at_least"]: ...
    @property
    def threshold(self) -> int: ...


@dataclass(frozen=True)
class BatchProblem:
    """One batch to place: what every policy receives."""

    batch: IntArray  # (apps,)
    nodes: int
    capacity: int
    table: InterferenceTable
    rules: tuple[RuleLike, ...] = ()
    time_limit_s: float = 10.0
    seed: int = 0

    @property
    def apps(self) -> int:
        return int(self.batch.shape[0])

    @property
    def containers(self) -> int:
        return int(self.batch.sum())


@dataclass
class Placement:
    """A placed batch and how good it is (see module doc for the metric)."""

    policy: str
    matrix: IntArray  # (nodes, apps)
    modelled_throughput: float
    measured_throughput: float | None
    violations: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "placement": self.matrix.tolist(),
            "modelled_throughput": self.modelled_throughput,
            "measured_throughput": self.measured_throughput,
            "violations": self.violations,
            "seconds": round(self.seconds, 6),
            **({"info": self.info} if self.info else {}),
        }


PolicyFn = Callable[[BatchProblem], tuple[IntArray, dict[str, Any]]]
_POLICIES: dict[str, PolicyFn] = {}


def register_policy(name: str) -> Callable[[PolicyFn], PolicyFn]:
    """Register a batch placement policy under ``name``."""

    def decorate(fn: PolicyFn) -> PolicyFn:
        _POLICIES[name] = fn
        return fn

    return decorate


def _load_builtin() -> None:
    # Imported here: these modules import this one.
    from harmonia.sched.interference import medea, paragon, search  # noqa: F401


def policy_names() -> list[str]:
    """Names of the registered batch placement policies."""
    _load_builtin()
    return sorted(_POLICIES)


# -- evaluation ------------------------------------------------------------------------


def modelled_throughput(matrix: npt.ArrayLike, table: InterferenceTable) -> float:
    """Metis's cluster throughput of ``matrix`` by the table: Σ node throughput / containers."""
    x = np.asarray(matrix, dtype=np.int64)
    total = int(x.sum())
    if total == 0:
        return 0.0
    return float(table.throughput(x).sum()) / total


def measured_throughput(matrix: npt.ArrayLike, table: InterferenceTable) -> float | None:
    """The same metric when every non-empty node's configuration was measured, else None."""
    x = np.asarray(matrix, dtype=np.int64)
    used = x[x.sum(axis=1) > 0]
    if used.shape[0] == 0 or not table.measured[table.index(used)].all():
        return None
    return modelled_throughput(used, table)


def rule_violations(matrix: npt.ArrayLike, rules: Sequence[RuleLike]) -> int:
    """Number of (node, rule) pairs broken (see module doc)."""
    x = np.asarray(matrix, dtype=np.int64)
    if not rules:
        return 0
    s = np.array([r.app_s for r in rules], dtype=np.int64)
    c = np.array([r.app_c for r in rules], dtype=np.int64)
    t = np.array([r.threshold for r in rules], dtype=np.int64)
    at_most = np.array([r.kind == "at_most" for r in rules])
    present = x[:, s] > 0  # (nodes, rules)
    other = x[:, c]
    broken = np.where(at_most, other > t, other < t) & present
    return int(broken.sum())


# -- validation ------------------------------------------------------------------------


def make_problem(
    batch: npt.ArrayLike,
    nodes: int,
    capacity: int,
    *,
    table: InterferenceTable,
    rules: Sequence[RuleLike] = (),
    time_limit_s: float = 10.0,
    seed: int = 0,
) -> BatchProblem:
    """Check the inputs of a placement and build the problem; ``InputError`` naming each
    field at fault."""
    problems: list[FieldError] = []
    array = np.asarray(batch)
    if array.ndim != 1 or array.shape[0] != table.apps:
        problems.append(FieldError("batch", f"needs {table.apps} counts, one per application"))
    elif array.dtype.kind not in "iu" and not (
        array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all()
    ):
        problems.append(FieldError("batch", "counts must be integers"))
    elif (array < 0).any():
        problems.append(FieldError("batch", "counts must be >= 0"))
    if nodes < 1:
        problems.append(FieldError("nodes", f"must be >= 1, not {nodes}"))
    if capacity < 1 or capacity > table.capacity:
        problems.append(
            FieldError("capacity", f"must be 1..{table.capacity} (the table's), not {capacity}")
        )
    if time_limit_s <= 0:
        problems.append(FieldError("time_limit", f"must be > 0, not {time_limit_s}"))
    for i, rule in enumerate(rules):
        if not (0 <= rule.app_s < table.apps and 0 <= rule.app_c < table.apps):
            problems.append(FieldError(f"rules[{i}]", "application index out of range"))
        if rule.kind not in ("at_most", "at_least"):
            problems.append(FieldError(f"rules[{i}].kind", f"unknown kind {rule.kind!r}"))
    if not problems:
        total = int(array.sum())
        if total > nodes * capacity:
            problems.append(
                FieldError(
                    "batch",
                    f"{total} containers do not fit {nodes} nodes × {capacity} slots "
                    f"({nodes * capacity})",
                )
            )
    if problems:
        raise InputError(problems, "batch placement")
    return BatchProblem(
        batch=array.astype(np.int64),
        nodes=int(nodes),
        capacity=int(capacity),
        table=table,
        rules=tuple(rules),
        time_limit_s=float(time_limit_s),
        seed=int(seed),
    )


def check_placement(matrix: IntArray, problem: BatchProblem) -> None:
    """Raise ``RuntimeError`` if ``matrix`` is not a valid placement (a policy bug)."""
    if matrix.shape != (problem.nodes, problem.apps):
        raise RuntimeError(f"placement shape {matrix.shape} != {(problem.nodes, problem.apps)}")
    if (matrix < 0).any() or (matrix.sum(axis=1) > problem.capacity).any():
        raise RuntimeError("placement breaks node capacity")
    if not np.array_equal(matrix.sum(axis=0), problem.batch):
        raise RuntimeError("placement does not place every container exactly once")


def place(
    batch: npt.ArrayLike,
    nodes: int,
    capacity: int,
    policy: str,
    *,
    table: InterferenceTable,
    rules: Sequence[RuleLike] = (),
    time_limit_s: float = 10.0,
    seed: int = 0,
) -> Placement:
    """Place one batch with the named policy and evaluate it."""
    names = policy_names()
    if policy not in _POLICIES:
        raise InputError(
            [FieldError("policy", f"unknown policy {policy!r}; known: {', '.join(names)}")],
            "batch placement",
        )
    problem = make_problem(
        batch,
        nodes,
        capacity,
        table=table,
        rules=rules,
        time_limit_s=time_limit_s,
        seed=seed,
    )
    started = time.monotonic()
    matrix, info = _POLICIES[policy](problem)
    seconds = time.monotonic() - started
    matrix = np.asarray(matrix, dtype=np.int64)
    check_placement(matrix, problem)
    return Placement(
        policy=policy,
        matrix=matrix,
        modelled_throughput=modelled_throughput(matrix, table),
        measured_throughput=measured_throughput(matrix, table),
        violations=rule_violations(matrix, problem.rules),
        seconds=seconds,
        info=info,
    )


# -- round-robin -------------------------------------------------------------------------


@register_policy("round-robin")
def round_robin(problem: BatchProblem) -> tuple[IntArray, dict[str, Any]]:
    """Spread containers evenly, application by application: the ``j``-th container of the
    batch (apps in order) goes to node ``j mod nodes``. Every node gets at most
    ``ceil(total / nodes) <= capacity`` containers."""
    apps_in_order = np.repeat(np.arange(problem.apps), problem.batch)
    node_of = np.arange(apps_in_order.shape[0]) % problem.nodes
    matrix = np.zeros((problem.nodes, problem.apps), dtype=np.int64)
    np.add.at(matrix, (node_of, apps_in_order), 1)
    return matrix, {}


__all__ = [
    "BatchProblem",
    "Placement",
    "RuleLike",
    "check_placement",
    "make_problem",
    "measured_throughput",
    "modelled_throughput",
    "place",
    "policy_names",
    "register_policy",
    "round_robin",
    "rule_violations",
]
