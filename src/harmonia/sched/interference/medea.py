"""``medea``: an integer linear program after Medea (Garefalakis et al., "Medea:
Scheduling of Long Running Applications in Shared Production Clusters", EuroSys'18), the
ILP baseline of Metis (SC'20).

Medea places long-running containers by solving an ILP whose constraints are
placement rules (affinity, anti-affinity, cardinality) treated as *soft*: each
violation costs a penalty, and the objective trades violations against resource
fragmentation (nodes used). Here the rules are Metis's interference rules
(``at_most`` / ``at_least`` cardinalities of ``app_c`` beside ``app_s``), and the program is

* ``x[n, a] ∈ {0..C}`` containers of ``a`` on node ``n``; ``Σ_n x[n, a] = batch[a]``;
* ``y[n, a] ∈ {0, 1}`` "``a`` is on ``n``": ``y ≤ x ≤ C·y``;
* ``u[n] ∈ {0, 1}`` "node used": ``Σ_a x[n, a] ≤ C·u[n]``, and ``u[n] ≥ u[n+1]`` to break
  the symmetry of identical nodes, with loads ``Σ_a x[n, a]`` non-increasing in ``n``;
* per node and rule a slack ``v ≥ 0``: at_most ``x[n, c] ≤ t + C·(1 − y[n, s]) + v``,
  at_least ``x[n, c] ≥ t·y[n, s] − v``;
* minimize ``penalty · Σ v + Σ_n u[n]``.

With ``hard=True`` every slack is fixed at 0 (the rules must hold, or the batch is
infeasible). Solved with HiGHS through :func:`scipy.optimize.milp` under the time limit;
the result says whether the limit was hit and whether optimality was proven. If the solver
finds no solution in time, the placement falls back to round-robin (and says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from harmonia.model import FieldError, InputError
from harmonia.sched.interference.placement import (
    BatchProblem,
    IntArray,
    register_policy,
    round_robin,
)

#: Cost of one unit of rule violation, against 1 per node used.
VIOLATION_PENALTY = 100.0


class _Rows:
    """Sparse constraint rows accumulated as COO triplets."""

    def __init__(self) -> None:
        self.r: list[IntArray] = []
        self.c: list[IntArray] = []
        self.v: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        self.lo: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        self.hi: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        self.count = 0

    def add(
        self,
        terms: Sequence[tuple[IntArray, float | np.ndarray[Any, np.dtype[np.float64]]]],
        lo: float | np.ndarray[Any, np.dtype[np.float64]],
        hi: float | np.ndarray[Any, np.dtype[np.float64]],
    ) -> None:
        """Add ``len(cols)`` rows: row i = Σ_terms coef·var[cols[i]] within [lo, hi]."""
        size = terms[0][0].shape[0]
        rows = np.arange(self.count, self.count + size)
        for cols, coef in terms:
            self.r.append(rows)
            self.c.append(cols)
            self.v.append(np.broadcast_to(np.asarray(coef, dtype=float), (size,)).copy())
        self.lo.append(np.broadcast_to(np.asarray(lo, dtype=float), (size,)).copy())
        self.hi.append(np.broadcast_to(np.asarray(hi, dtype=float), (size,)).copy())
        self.count += size

    def add_sum(self, cols: IntArray, lo: float, hi: float) -> None:
        """Add one row: Σ var[cols] within [lo, hi]."""
        self.r.append(np.full(cols.shape[0], self.count))
        self.c.append(cols)
        self.v.append(np.ones(cols.shape[0]))
        self.lo.append(np.array([lo]))
        self.hi.append(np.array([hi]))
        self.count += 1

    def constraint(self, variables: int) -> LinearConstraint:
        matrix = coo_array(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))),
            shape=(self.count, variables),
        ).tocsr()
        return LinearConstraint(matrix, np.concatenate(self.lo), np.concatenate(self.hi))


def solve_medea(
    problem: BatchProblem, *, hard: bool = False, penalty: float = VIOLATION_PENALTY
) -> tuple[IntArray | None, dict[str, Any]]:
    """Build and solve the ILP; (matrix or None when no solution was found, facts)."""
    n, apps, cap = problem.nodes, problem.apps, problem.capacity
    rules = problem.rules
    nr = len(rules)
    x0, y0, u0, v0 = 0, n * apps, 2 * n * apps, 2 * n * apps + n
    total = v0 + n * nr

    def xi(node: IntArray, app: int | IntArray) -> IntArray:
        return x0 + node * apps + app

    def yi(node: IntArray, app: int | IntArray) -> IntArray:
        return y0 + node * apps + app

    nodes = np.arange(n)
    rows = _Rows()
    for a in range(apps):  # every container placed exactly once
        rows.add_sum(xi(nodes, a), float(problem.batch[a]), float(problem.batch[a]))
    node_rep = np.repeat(nodes, apps)
    app_rep = np.tile(np.arange(apps), n)
    rows.add([(xi(node_rep, app_rep), 1.0), (yi(node_rep, app_rep), -1.0)], 0.0, np.inf)
    rows.add([(xi(node_rep, app_rep), 1.0), (yi(node_rep, app_rep), -float(cap))], -np.inf, 0.0)
    # capacity, on used nodes only
    cap_terms: list[tuple[IntArray, float | np.ndarray[Any, np.dtype[np.float64]]]] = [
        (xi(nodes, a), 1.0) for a in range(apps)
    ]
    cap_terms.append((u0 + nodes, -float(cap)))
    rows.add(cap_terms, -np.inf, 0.0)
    if n > 1:  # symmetry: used nodes first
        rows.add([(u0 + nodes[:-1], 1.0), (u0 + nodes[1:], -1.0)], 0.0, np.inf)
        # and in order of non-increasing load
        heavier = [(xi(nodes[:-1], a), 1.0) for a in range(apps)]
        lighter = [(xi(nodes[1:], a), -1.0) for a in range(apps)]
        rows.add(heavier + lighter, 0.0, np.inf)
    for r, rule in enumerate(rules):
        slack = v0 + nodes * nr + r
        t = float(rule.threshold)
        if rule.kind == "at_most":
            # x[n,c] + C·y[n,s] - v <= t + C
            rows.add(
                [(xi(nodes, rule.app_c), 1.0), (yi(nodes, rule.app_s), float(cap)), (slack, -1.0)],
                -np.inf,
                t + cap,
            )
        else:
            # x[n,c] - t·y[n,s] + v >= 0
            rows.add(
                [(xi(nodes, rule.app_c), 1.0), (yi(nodes, rule.app_s), -t), (slack, 1.0)],
                0.0,
                np.inf,
            )
    cost = np.zeros(total)
    cost[u0 : u0 + n] = 1.0
    cost[v0:] = penalty
    lower = np.zeros(total)
    upper = np.ones(total)
    upper[x0:y0] = cap
    upper[v0:] = 0.0 if hard else float(cap)
    integrality = np.ones(total)
    integrality[v0:] = 0
    result = milp(
        c=cost,
        constraints=[rows.constraint(total)],
        integrality=integrality,
        bounds=Bounds(lower, upper),
        options={"time_limit": problem.time_limit_s},
    )
    facts: dict[str, Any] = {
        "ilp_status": int(result.status),
        "ilp_message": str(result.message),
        "hit_time_limit": int(result.status) == 1,
        "optimal": int(result.status) == 0,
        "variables": total,
        "constraints": rows.count,
    }
    if result.x is None:
        return None, facts
    matrix = np.rint(result.x[x0:y0]).astype(np.int64).reshape(n, apps)
    facts["nodes_used"] = int((matrix.sum(axis=1) > 0).sum())
    facts["objective"] = float(result.fun)
    return matrix, facts


@register_policy("medea")
def medea(problem: BatchProblem) -> tuple[IntArray, dict[str, Any]]:
    """Medea's ILP with soft rules; round-robin if no solution is found in time."""
    matrix, facts = solve_medea(problem)
    if matrix is None:
        facts["fallback"] = "round-robin"
        matrix, _ = round_robin(problem)
    return matrix, facts


@register_policy("medea-hard")
def medea_hard(problem: BatchProblem) -> tuple[IntArray, dict[str, Any]]:
    """Medea's ILP with the rules as hard constraints; an error if none can hold."""
    matrix, facts = solve_medea(problem, hard=True)
    if matrix is None:
        what = "infeasible" if facts["ilp_status"] == 2 else "no solution within the time limit"
        raise InputError(
            [FieldError("rules", f"hard interference rules: {what}")], "medea-hard placement"
        )
    return matrix, facts


__all__ = ["VIOLATION_PENALTY", "medea", "medea_hard", "solve_medea"]
