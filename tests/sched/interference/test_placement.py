"""Batch placement: the metric by hand, measured throughput, rule violations, input checks
and round-robin — on hand-made tables, never the Metis data."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import InputError
from harmonia.sched.interference.data import Rule
from harmonia.sched.interference.placement import (
    make_problem,
    measured_throughput,
    modelled_throughput,
    place,
    policy_names,
    rule_violations,
)
from harmonia.sched.interference.table import InterferenceTable, configurations


def two_app_table() -> InterferenceTable:
    """2 apps, capacity 2: hand-set per-container throughput of every configuration."""
    configs = configurations(2, 2)  # (0,0) (0,1) (0,2) (1,0) (1,1) (2,0)
    values: dict[tuple[int, ...], tuple[float, float]] = {
        (0, 1): (0.0, 0.9),
        (0, 2): (0.0, 0.6),
        (1, 0): (1.0, 0.0),
        (1, 1): (0.8, 0.7),
        (2, 0): (0.5, 0.0),
    }
    per_container = np.array([values.get(tuple(int(v) for v in c), (0.0, 0.0)) for c in configs])
    measured = np.array([tuple(c) != (0, 2) for c in configs])
    return InterferenceTable(configs, per_container, measured, 2, ("a", "b"))


def test_throughput_by_hand_on_two_nodes() -> None:
    table = two_app_table()
    # node 0: one a + one b → 0.8 + 0.7 = 1.5; node 1: two a → 2 × 0.5 = 1.0
    x = np.array([[1, 1], [2, 0]])
    assert modelled_throughput(x, table) == pytest.approx((1.5 + 1.0) / 4)
    # node 0: a alone → 1.0; node 1: b alone → 0.9; then (1.0 + 0.9) / 2
    assert modelled_throughput([[1, 0], [0, 1]], table) == pytest.approx(0.95)
    # an empty node adds nothing
    assert modelled_throughput([[1, 0], [0, 0]], table) == pytest.approx(1.0)


def test_measured_throughput_only_when_every_used_configuration_was_measured() -> None:
    table = two_app_table()
    assert measured_throughput([[1, 1], [0, 0]], table) == pytest.approx(1.5 / 2)
    assert measured_throughput([[0, 2], [1, 0]], table) is None  # (0, 2) was predicted


def test_rule_violations_count_node_rule_pairs() -> None:
    rules = [Rule(0, 1, "at_most", 0), Rule(1, 0, "at_least", 1)]
    # node 0 holds a and b: the at_most rule breaks (a sees one b); node 1 b alone: the
    # at_least rule breaks (b wants an a); node 2 empty: nothing.
    x = np.array([[1, 1], [0, 1], [0, 0]])
    assert rule_violations(x, rules) == 2
    assert rule_violations([[1, 0], [1, 1]], [Rule(1, 0, "at_least", 1)]) == 0


def test_place_reports_metric_and_violations() -> None:
    table = two_app_table()
    result = place([2, 1], 2, 2, "round-robin", table=table, rules=[Rule(0, 1, "at_most", 0)])
    # containers a, a, b → nodes 0, 1, 0
    assert result.matrix.tolist() == [[1, 1], [1, 0]]
    assert result.modelled_throughput == pytest.approx((1.5 + 1.0) / 3)
    assert result.measured_throughput == pytest.approx(result.modelled_throughput)
    assert result.violations == 1
    assert result.seconds >= 0


def test_round_robin_spreads_evenly() -> None:
    table = InterferenceTable(
        configurations(3, 4),
        np.ones((len(configurations(3, 4)), 3)),
        np.zeros(len(configurations(3, 4)), dtype=bool),
        4,
        ("a", "b", "c"),
    )
    result = place([5, 3, 2], 4, 4, "round-robin", table=table)
    loads = result.matrix.sum(axis=1)
    assert loads.max() - loads.min() <= 1
    assert result.matrix.sum(axis=0).tolist() == [5, 3, 2]


@pytest.mark.parametrize(
    ("batch", "nodes", "capacity", "field"),
    [
        ([3, 3], 1, 2, "batch"),  # 6 containers, 2 slots
        ([1, 1, 1], 2, 2, "batch"),  # wrong length
        ([-1, 1], 2, 2, "batch"),
        ([1, 1], 0, 2, "nodes"),
        ([1, 1], 2, 3, "capacity"),  # above the table's
    ],
)
def test_bad_inputs_name_the_field(batch: list[int], nodes: int, capacity: int, field: str) -> None:
    with pytest.raises(InputError) as info:
        make_problem(batch, nodes, capacity, table=two_app_table())
    assert field in {e.path for e in info.value.errors}


def test_unknown_policy_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown policy"):
        place([1, 1], 2, 2, "nope", table=two_app_table())


def test_builtin_policies_are_registered() -> None:
    assert {"round-robin", "paragon", "medea", "interference"} <= set(policy_names())
