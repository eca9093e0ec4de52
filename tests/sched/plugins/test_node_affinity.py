"""NodeAffinity: required labels filter (match_labels, In/NotIn/Exists/DoesNotExist) and
preferred terms scored and normalized so the best feasible node gets 100."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import LabelExpression, NodeAffinityConstraint, PreferredTerm
from harmonia.model.constraints import LabelOperator
from harmonia.sched import Code
from harmonia.sched.plugins import NodeAffinity
from harmonia.sched.state import ClusterState
from tests.builders import make_cycle, make_node, make_request, make_state

LABELS = [
    {"zone": "a", "disk": "ssd"},  # n0
    {"zone": "b"},  # n1
    {},  # n2
    {"zone": "a", "gpu": "true"},  # n3
]


def labelled_state() -> ClusterState:
    return make_state([make_node(f"n{i}", labels=labels) for i, labels in enumerate(LABELS)])


def expr(key: str, operator: str, *values: str) -> LabelExpression:
    return LabelExpression(key=key, operator=LabelOperator(operator), values=values)


def affinity(
    match_labels: dict[str, str] | None = None,
    *expressions: LabelExpression,
    preferred: tuple[PreferredTerm, ...] = (),
) -> NodeAffinityConstraint:
    return NodeAffinityConstraint(
        match_labels=match_labels or {}, expressions=expressions, preferred=preferred
    )


def required_mask(*constraints: NodeAffinityConstraint) -> list[bool]:
    state = labelled_state()
    cycle = make_cycle(state, make_request(constraints=constraints))
    plugin = NodeAffinity()
    assert plugin.pre_filter(state, cycle).ok
    return plugin.filter(state, cycle).tolist()


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        (affinity({"zone": "a"}), [True, False, False, True]),
        (affinity({"zone": "a", "disk": "ssd"}), [True, False, False, False]),
        (affinity({"zone": "c"}), [False, False, False, False]),  # unknown value
        (affinity({"rack": "r1"}), [False, False, False, False]),  # unknown key
        (affinity(None, expr("zone", "In", "a", "b")), [True, True, False, True]),
        (affinity(None, expr("zone", "In", "c")), [False, False, False, False]),
        (affinity(None, expr("rack", "In", "r1")), [False, False, False, False]),
        # NotIn passes nodes without the label, as in Kubernetes
        (affinity(None, expr("zone", "NotIn", "a")), [False, True, True, False]),
        (affinity(None, expr("rack", "NotIn", "r1")), [True, True, True, True]),
        (affinity(None, expr("gpu", "Exists")), [False, False, False, True]),
        (affinity(None, expr("rack", "Exists")), [False, False, False, False]),
        (affinity(None, expr("zone", "DoesNotExist")), [False, False, True, False]),
        (affinity(None, expr("rack", "DoesNotExist")), [True, True, True, True]),
        # every pair and every expression must hold
        (
            affinity({"zone": "a"}, expr("gpu", "DoesNotExist"), expr("disk", "In", "ssd")),
            [True, False, False, False],
        ),
    ],
)
def test_required_terms(constraint: NodeAffinityConstraint, expected: list[bool]) -> None:
    assert required_mask(constraint) == expected
    # The vectorized mask agrees with the model's own per-node matching.
    per_node = [
        all(labels.get(k) == v for k, v in constraint.match_labels.items())
        and all(e.matches(labels) for e in constraint.expressions)
        for labels in LABELS
    ]
    assert per_node == expected


def test_several_constraints_must_all_hold() -> None:
    assert required_mask(affinity({"zone": "a"}), affinity(None, expr("gpu", "Exists"))) == [
        False,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    "constraints",
    [
        (),
        (affinity(preferred=(PreferredTerm(weight=5, match_labels={"zone": "a"}),)),),
    ],
)
def test_pre_filter_skips_without_required_terms(
    constraints: tuple[NodeAffinityConstraint, ...],
) -> None:
    state = labelled_state()
    cycle = make_cycle(state, make_request(constraints=constraints))
    assert NodeAffinity().pre_filter(state, cycle).code is Code.SKIP


def test_explain_lists_unmatched_labels() -> None:
    state = labelled_state()
    constraint = affinity({"zone": "a", "disk": "ssd"}, expr("gpu", "Exists"))
    cycle = make_cycle(state, make_request(constraints=[constraint]))
    assert NodeAffinity().explain(state, cycle, np.array([1, 3])) == [
        "node labels do not match zone=a, disk=ssd, gpu Exists",
        "node labels do not match disk=ssd",
    ]


def test_explain_shows_value_lists_of_in_and_not_in() -> None:
    state = labelled_state()
    constraint = affinity(None, expr("zone", "In", "a"), expr("disk", "NotIn", "ssd"))
    cycle = make_cycle(state, make_request(constraints=[constraint]))
    assert NodeAffinity().explain(state, cycle, np.array([0, 1])) == [
        "node labels do not match disk NotIn ['ssd']",
        "node labels do not match zone In ['a']",  # got "... zone In ['a'"
    ]


# -- preferred terms ------------------------------------------------------------------------


def preferred_scores(terms: tuple[PreferredTerm, ...], feasible: list[bool]) -> list[float | None]:
    """Normalized preferred scores of the feasible nodes (None for the others)."""
    state = labelled_state()
    cycle = make_cycle(state, make_request(constraints=[affinity(preferred=terms)]))
    plugin = NodeAffinity()
    mask = np.array(feasible)
    assert plugin.pre_score(state, cycle, mask).ok
    raw = plugin.score(state, cycle, mask)
    scores = plugin.normalize(state, cycle, raw, mask).tolist()
    return [score if ok else None for score, ok in zip(scores, feasible, strict=True)]


ZONE_A_30 = PreferredTerm(weight=30, match_labels={"zone": "a"})
ZONE_A_OR_B_10 = PreferredTerm(weight=10, expressions=(expr("zone", "In", "a", "b"),))
SSD_10 = PreferredTerm(weight=10, expressions=(expr("disk", "In", "ssd"),))
ALL = [True] * 4


@pytest.mark.parametrize(
    ("terms", "feasible", "expected"),
    [
        # docstring: terms of weight 30 and 10; n0 and n3 match both (40), n1 the second
        # (10): 40 → 100, n1 = 10*100//40 = 25, n2 matches none → 0
        ((ZONE_A_30, ZONE_A_OR_B_10), ALL, [100, 25, 0, 100]),
        # n0 = 30+10 = 40 → 100; n3 = 30 → 30*100//40 = 75
        ((ZONE_A_30, SSD_10), ALL, [100, 0, 0, 75]),
        # the maximum is over feasible nodes: n0 (40) is out, so n3 (30) is the best
        ((ZONE_A_30, SSD_10), [False, True, True, True], [None, 0, 0, 100]),
        # no feasible node matches: all 0
        ((SSD_10,), [False, True, True, True], [None, 0, 0, 0]),
    ],
)
def test_preferred_terms_are_normalized_to_the_best_feasible_node(
    terms: tuple[PreferredTerm, ...], feasible: list[bool], expected: list[float | None]
) -> None:
    assert preferred_scores(terms, feasible) == expected


def test_preferred_scores_floor() -> None:
    # zone a 20, zone b 30 (max 30): n0 = n3 = 20*100//30 = 66, n1 = 100
    terms = (
        PreferredTerm(weight=20, match_labels={"zone": "a"}),
        PreferredTerm(weight=30, match_labels={"zone": "b"}),
    )
    assert preferred_scores(terms, ALL) == [66, 100, 0, 66]


def test_pre_score_skips_without_preferred_terms() -> None:
    state = labelled_state()
    cycle = make_cycle(state, make_request(constraints=[affinity({"zone": "a"})]))
    assert NodeAffinity().pre_score(state, cycle, state.schedulable).code is Code.SKIP


def test_enforces_the_node_affinity_constraint() -> None:
    assert NodeAffinity.constraint_types == ("node_affinity",)
