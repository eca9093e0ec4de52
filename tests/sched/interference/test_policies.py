"""The placement policies on hand-made tables: capacity and exactly-once for every policy,
optimality of ``interference`` against brute force, its fallback search, the Medea ILP's
hard rules, and Paragon's scores."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from harmonia.model import InputError
from harmonia.sched.interference.data import Rule
from harmonia.sched.interference.medea import solve_medea
from harmonia.sched.interference.paragon import interference_scores
from harmonia.sched.interference.placement import make_problem, modelled_throughput, place
from harmonia.sched.interference.search import greedy, local_search
from harmonia.sched.interference.table import InterferenceTable, configurations

POLICIES = ["round-robin", "paragon", "medea", "medea-hard", "interference"]


def synthetic_table(capacity: int = 4) -> InterferenceTable:
    """3 apps: ``a`` is hurt by everything, ``b`` hogs (hurts others), ``c`` gains beside a
    ``b``; and every app slows as the node fills."""
    configs = configurations(3, capacity)
    x = configs.astype(float)
    load = x.sum(axis=1, keepdims=True)
    solo = np.array([1.0, 0.8, 0.6])
    hurt = np.array([[0.10, 0.25, 0.05], [0.02, 0.05, 0.02], [0.03, -0.10, 0.04]])
    others = x[:, None, :] - np.eye(3)[None, :, :]  # co-runners seen by one of each app
    slowdown = (others * hurt[None, :, :]).sum(axis=2) + 0.02 * (load - 1)
    per_container = np.clip(solo * (1 - slowdown), 0.05, None) * (x > 0)
    measured = np.ones(len(configs), dtype=bool)
    return InterferenceTable(configs, per_container, measured, capacity, ("a", "b", "c"))


def brute_force_best(table: InterferenceTable, batch: list[int], nodes: int) -> float:
    best = -1.0
    for combo in itertools.combinations_with_replacement(range(len(table.configs)), nodes):
        x = table.configs[list(combo)]
        if (x.sum(axis=0) == batch).all():
            best = max(best, modelled_throughput(x, table))
    return best


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("batch", "nodes"), [([3, 2, 2], 3), ([5, 4, 6], 5), ([1, 0, 0], 2)])
def test_every_policy_respects_capacity_and_places_each_container_once(
    policy: str, batch: list[int], nodes: int
) -> None:
    table = synthetic_table()
    result = place(batch, nodes, 4, policy, table=table, time_limit_s=5)
    assert result.matrix.shape == (nodes, 3)
    assert (result.matrix >= 0).all()
    assert (result.matrix.sum(axis=1) <= 4).all()
    assert result.matrix.sum(axis=0).tolist() == batch


def test_policies_respect_a_smaller_capacity_than_the_table() -> None:
    table = synthetic_table()
    for policy in POLICIES:
        result = place([3, 3, 3], 5, 2, policy, table=table, time_limit_s=5)
        assert result.matrix.sum(axis=1).max() <= 2, policy


@pytest.mark.parametrize(("batch", "nodes"), [([3, 2, 2], 3), ([4, 3, 1], 3), ([2, 2, 2], 4)])
def test_interference_is_optimal_and_beats_the_baselines(batch: list[int], nodes: int) -> None:
    table = synthetic_table()
    best = brute_force_best(table, batch, nodes)
    ours = place(batch, nodes, 4, "interference", table=table)
    assert ours.modelled_throughput == pytest.approx(best)
    assert ours.info["method"] == "configuration-ip"
    for other in ("round-robin", "paragon", "medea"):
        theirs = place(batch, nodes, 4, other, table=table)
        assert ours.modelled_throughput >= theirs.modelled_throughput - 1e-12, other


def test_greedy_and_local_search_improve_to_the_optimum_on_a_small_case() -> None:
    table = synthetic_table()
    problem = make_problem([3, 2, 2], 3, 4, table=table)
    start = greedy(problem)
    assert start.sum(axis=0).tolist() == [3, 2, 2]
    assert (start.sum(axis=1) <= 4).all()
    improved, _ = local_search(problem, start, time.monotonic() + 5)
    assert improved.sum(axis=0).tolist() == [3, 2, 2]
    assert (improved.sum(axis=1) <= 4).all()
    assert modelled_throughput(improved, table) >= modelled_throughput(start, table)
    # a deliberately bad start (everything stacked) is repaired
    bad = np.array([[3, 1, 0], [0, 1, 2], [0, 0, 0]])
    repaired, steps = local_search(problem, bad, time.monotonic() + 5)
    assert steps > 0
    assert modelled_throughput(repaired, table) > modelled_throughput(bad, table)
    assert repaired.sum(axis=0).tolist() == [3, 2, 2]


def test_medea_hard_rules_are_honoured() -> None:
    table = synthetic_table()
    # a must not share with b; c needs a b beside it
    rules = [Rule(0, 1, "at_most", 0), Rule(2, 1, "at_least", 1)]
    result = place([2, 2, 2], 3, 4, "medea-hard", table=table, rules=rules)
    x = result.matrix
    assert result.violations == 0
    assert not ((x[:, 0] > 0) & (x[:, 1] > 0)).any()
    assert ((x[:, 2] == 0) | (x[:, 1] >= 1)).all()
    assert result.info["optimal"]
    # round-robin breaks them, which is what makes the check meaningful
    assert place([2, 2, 2], 3, 4, "round-robin", table=table, rules=rules).violations > 0


def test_medea_soft_rules_minimize_violations_and_nodes() -> None:
    table = synthetic_table()
    rules = [Rule(0, 1, "at_most", 0)]
    problem = make_problem([2, 2, 0], 4, 4, table=table, rules=rules)
    matrix, facts = solve_medea(problem)
    assert matrix is not None and facts["optimal"]
    # no violation needed, and the fewest nodes: a's together, b's together
    assert sorted(map(tuple, matrix.tolist())) == [(0, 0, 0), (0, 0, 0), (0, 2, 0), (2, 0, 0)]


def test_medea_hard_rules_that_cannot_hold_are_an_input_error() -> None:
    table = synthetic_table()
    rules = [Rule(0, 0, "at_most", 1)]  # at most one a per node
    with pytest.raises(InputError, match="infeasible"):
        place([3, 0, 0], 2, 4, "medea-hard", table=table, rules=rules)


def test_paragon_scores_identify_victim_and_aggressor() -> None:
    effects, sensitivity, pressure = interference_scores(synthetic_table())
    assert effects.shape == (3, 3)
    assert int(np.argmax(sensitivity)) == 0  # a is hurt most
    assert int(np.argmax(pressure)) == 1  # b hurts most


def test_paragon_keeps_the_victim_away_from_the_aggressor() -> None:
    table = synthetic_table()
    result = place([2, 2, 0], 4, 4, "paragon", table=table)
    x = result.matrix
    assert not ((x[:, 0] > 0) & (x[:, 1] > 0)).any()


def test_interference_falls_back_to_greedy_and_local_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import harmonia.sched.interference.search as search

    monkeypatch.setattr(search, "_configuration_program", lambda problem, limit: (None, {}))
    table = synthetic_table()
    result = place([3, 2, 2], 3, 4, "interference", table=table, time_limit_s=5)
    assert result.info["method"] == "greedy+local-search"
    assert result.matrix.sum(axis=0).tolist() == [3, 2, 2]
    assert result.modelled_throughput == pytest.approx(brute_force_best(table, [3, 2, 2], 3))


def test_greedy_completes_a_partial_start() -> None:
    problem = make_problem([3, 2, 2], 3, 4, table=synthetic_table())
    start = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    x = greedy(problem, start=start)
    assert (x >= start).all()
    assert x.sum(axis=0).tolist() == [3, 2, 2]
    assert (x.sum(axis=1) <= 4).all()


def test_interference_measured_uses_only_profiled_configurations() -> None:
    table = synthetic_table()
    measured = table.configs.sum(axis=1) <= 2  # only configurations of up to 2 containers
    partial = InterferenceTable(table.configs, table.per_container, measured, 4, ("a", "b", "c"))
    result = place([3, 2, 2], 4, 4, "interference-measured", table=partial, time_limit_s=5)
    used = result.matrix[result.matrix.sum(axis=1) > 0]
    assert partial.measured[partial.index(used)].all()
    assert result.matrix.sum(axis=0).tolist() == [3, 2, 2]
    assert result.measured_throughput == pytest.approx(result.modelled_throughput)
    # Too few measured slots for the batch: it falls back to the whole table.
    fallback = place([4, 4, 4], 4, 4, "interference-measured", table=partial, time_limit_s=5)
    assert fallback.matrix.sum(axis=0).tolist() == [4, 4, 4]
    assert "too few" in str(fallback.info.get("method"))
