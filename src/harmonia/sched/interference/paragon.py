"""``paragon``: interference classification after Paragon (Delimitrou & Kozyrakis,
"Paragon: QoS-Aware Scheduling for Heterogeneous Datacenters", ASPLOS'13), the baseline
Metis (SC'20) compares against.

Paragon characterizes each workload by two scores per shared resource: its *sensitivity*
(how much interference it tolerates before its performance drops) and the *pressure* it
causes on co-runners, and greedily assigns each arriving workload to the server whose
current co-runners cause the least interference it is sensitive to, and which it hurts
least in turn. It does not model the joint effect of a whole configuration.

Derivation here, from the table's *measured* configurations (all of them if none is
marked measured): for application ``a`` with solo throughput ``s_a`` (one container alone
on a node), each measured configuration ``k`` holding ``a`` gives its slowdown
``1 - per_container[k, a] / s_a``. A non-negative least-squares fit explains it as a sum
of per-co-runner effects, ``slowdown ≈ Σ_b P[a, b] · others_b`` where ``others_b`` is the
number of ``b`` containers beside it (``c[k, b]``, minus one for ``b == a``). Then, as
Paragon's two scores, the sensitivity of ``a`` is ``S_a = mean_b P[a, b]`` (the
interference it suffers per co-runner) and its caused pressure ``Q_b = mean_a P[a, b]``.

Placement: containers are placed one at a time, most sensitive applications first; a
container of ``a`` goes to the node (with room) of least cost
``S_a · Σ_b x[n, b] Q_b + Q_a · Σ_b x[n, b] S_b`` — the pressure of its future
co-runners weighed by its sensitivity, plus its pressure weighed by theirs — ties broken
by fewer containers, then node order. Costs are vectorized over nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls

from harmonia.sched.interference.placement import (
    BatchProblem,
    FloatArray,
    IntArray,
    register_policy,
)
from harmonia.sched.interference.table import InterferenceTable


def interference_scores(table: InterferenceTable) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(pairwise effects ``P`` (apps, apps), sensitivity ``S``, pressure ``Q``) fitted on the
    table's measured configurations (see module doc)."""
    apps = table.apps
    rows = table.measured if table.measured.any() else np.ones_like(table.measured)
    configs = table.configs[rows]
    values = table.per_container[rows]
    solo_rows = table.index(np.eye(apps, dtype=np.int64))
    solo = table.per_container[solo_rows, np.arange(apps)]
    effects = np.zeros((apps, apps))
    for a in range(apps):
        has = configs[:, a] > 0
        if solo[a] <= 0 or has.sum() < 2:
            continue
        others = configs[has].astype(float)
        others[:, a] -= 1
        slowdown = 1.0 - values[has, a] / solo[a]
        coef, _ = nnls(others, np.clip(slowdown, 0.0, None))
        effects[a] = coef
    sensitivity: FloatArray = effects.mean(axis=1)
    pressure: FloatArray = effects.mean(axis=0)
    return effects, sensitivity, pressure


@register_policy("paragon")
def paragon(problem: BatchProblem) -> tuple[IntArray, dict[str, Any]]:
    """Greedy classification-based placement (see module doc)."""
    _, sens, press = interference_scores(problem.table)
    n = problem.nodes
    x = np.zeros((n, problem.apps), dtype=np.int64)
    load = np.zeros(n, dtype=np.int64)
    node_pressure = np.zeros(n)  # Σ_b x[n, b] Q_b
    node_sensitivity = np.zeros(n)  # Σ_b x[n, b] S_b
    tie = np.arange(n) * 1e-12  # node order as the last tie-break
    for app in np.argsort(-sens, kind="stable"):
        for _ in range(int(problem.batch[app])):
            cost = sens[app] * node_pressure + press[app] * node_sensitivity
            key = np.where(load < problem.capacity, cost + load * 1e-9 + tie, np.inf)
            node = int(np.argmin(key))
            x[node, app] += 1
            load[node] += 1
            node_pressure[node] += press[app]
            node_sensitivity[node] += sens[app]
    info = {
        "sensitivity": [round(float(v), 6) for v in sens],
        "pressure": [round(float(v), 6) for v in press],
    }
    return x, info


__all__ = ["interference_scores", "paragon"]
