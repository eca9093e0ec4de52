"""Explanations: top scores with each plugin's weighted share, a reason per rejected
node, and decisions that serialize to JSON."""

from __future__ import annotations

import json

import pytest

from harmonia.sched import Code, Decision, NodeScore, Rejection, Scheduler, policy_names
from harmonia.sched.state import ClusterState
from tests.builders import make_node, make_request, make_state, place, taint


def three_nodes() -> ClusterState:
    """n0 4000m/8192Mi, n1 8000m/8192Mi, n2 1000m (too small for 2000m)."""
    return make_state(
        [make_node("n0", cpu=4000), make_node("n1", cpu=8000), make_node("n2", cpu=1000)]
    )


def crowded_nodes() -> ClusterState:
    """three_nodes() with 7000m used on n1: 4000m, 1000m and 1000m free."""
    state = three_nodes()
    place(state, "n1", make_request(cpu=7000))
    return state


def test_top_scores_break_down_by_plugin() -> None:
    decision = Scheduler(three_nodes()).schedule(
        make_request("r1", cpu=2000, mem=2048), explain=True
    )

    # n1: LeastAllocated cpu 6000*100//8000 = 75, mem 6144*100//8192 = 75 → 75;
    #     BalancedAllocation shares 0.25, 0.25 → 100; total 175
    # n0: LeastAllocated cpu 2000*100//4000 = 50, mem 75 → 125//2 = 62;
    #     BalancedAllocation 0.5 vs 0.25 → std 0.125 → 87; total 149
    # ServiceSpread, NodeAffinity and TaintToleration skip: nothing to score.
    assert decision.node == "n1"
    assert decision.top_scores == [
        NodeScore("n1", 175.0, {"LeastAllocated": 75.0, "BalancedAllocation": 100.0}),
        NodeScore("n0", 149.0, {"LeastAllocated": 62.0, "BalancedAllocation": 87.0}),
    ]
    assert decision.node_reasons == {
        "n2": ["NodeResourcesFit: insufficient cpu_m 2000m > free 1000m"]
    }
    assert decision.rejections == [
        Rejection("NodeResourcesFit", 1, ("n2: insufficient cpu_m 2000m > free 1000m",))
    ]
    assert decision.nodes_feasible == 2


def test_breakdown_is_weighted_and_sums_to_the_total() -> None:
    state = make_state(
        [
            make_node("spot", taints=[taint("spot", effect="PreferNoSchedule")]),
            make_node("plain"),
            make_node("busy"),
            make_node("gone"),
        ]
    )
    place(state, "busy", make_request(service="web"))
    state.set_healthy("gone", False)

    decision = Scheduler(state).schedule(make_request("r", cpu=1000, service="web"), explain=True)

    # every node: LeastAllocated cpu 3000*100//4000 = 75, mem 100 → 87;
    # BalancedAllocation 0.25 vs 0 → std 0.125 → 87
    # plain: 87 + 87 + ServiceSpread 100×2 + TaintToleration 100×3 = 674
    # busy:  87 + 87 + 0 + 300 = 474;  spot: 87 + 87 + 200 + 0 = 374
    weights = {
        "LeastAllocated": 1,
        "BalancedAllocation": 1,
        "ServiceSpread": 2,
        "TaintToleration": 3,
    }
    assert [(s.node, s.total) for s in decision.top_scores] == [
        ("plain", 674),
        ("busy", 474),
        ("spot", 374),
    ]
    plain, busy, spot = decision.top_scores
    for score in decision.top_scores:
        assert set(score.by_plugin) == set(weights)
        assert sum(score.by_plugin.values()) == score.total
    # TaintToleration ×3: no soft taint → 100*3, one (the max) → 0
    assert (plain.by_plugin["TaintToleration"], spot.by_plugin["TaintToleration"]) == (300, 0)
    # ServiceSpread ×2: busy holds the only instance → 0, the others 100*2
    assert (plain.by_plugin["ServiceSpread"], busy.by_plugin["ServiceSpread"]) == (200, 0)
    assert decision.node_reasons == {"gone": ["NodeSchedulable: node is unhealthy"]}


@pytest.mark.parametrize("policy", policy_names())
def test_top_scores_are_sorted_and_agree_with_the_choice(policy: str) -> None:
    state = make_state([make_node(f"n{i}", cpu=1000 * (i + 1)) for i in range(8)])
    for i in range(8):
        place(state, f"n{i}", make_request(cpu=100 * i, service="web"))
    scheduler = Scheduler(state, policy, top_k=5)

    decision = scheduler.schedule(make_request("r", cpu=500, mem=100, service="web"), explain=True)

    totals = [s.total for s in decision.top_scores]
    assert len(totals) == 5
    assert totals == sorted(totals, reverse=True)
    assert decision.top_scores[0].node == decision.node
    for score in decision.top_scores:
        assert sum(score.by_plugin.values()) == score.total


def test_explaining_does_not_change_the_choice() -> None:
    state = three_nodes()
    plain = Scheduler(state.copy()).schedule_many(make_request(f"r{i}", cpu=700) for i in range(10))
    explained = Scheduler(state.copy()).schedule_many(
        (make_request(f"r{i}", cpu=700) for i in range(10)), explain=True
    )
    assert plain.placements == explained.placements


def test_ties_in_top_scores_keep_node_order() -> None:
    decision = Scheduler(make_state(4), top_k=3).schedule(make_request(cpu=100), explain=True)
    assert [s.node for s in decision.top_scores] == ["n0", "n1", "n2"]
    assert decision.node == "n0"


def test_unschedulable_explanation_gives_a_reason_per_rejected_node() -> None:
    state = make_state([make_node(f"n{i}", cpu=4000 if i == 3 else 1000) for i in range(5)])
    state.set_cordoned("n3", True)  # the one node large enough

    decision = Scheduler(state).schedule(make_request("r", cpu=2000), explain=True)

    assert decision.code is Code.UNSCHEDULABLE
    assert decision.top_scores == []
    assert decision.node_reasons == {
        "n3": ["NodeSchedulable: node is cordoned"],
        **{
            f"n{i}": ["NodeResourcesFit: insufficient cpu_m 2000m > free 1000m"]
            for i in (0, 1, 2, 4)
        },
    }
    fit = decision.rejections[1]
    assert (fit.plugin, fit.count, len(fit.examples)) == ("NodeResourcesFit", 4, 3)


def test_node_reasons_stop_at_the_limit() -> None:
    state = make_state([make_node(f"n{i}", cpu=1000) for i in range(10)] + [make_node("big")])
    state.set_healthy("big", False)

    decision = Scheduler(state, node_reason_limit=4).schedule(make_request(cpu=2000), explain=True)

    # NodeSchedulable's one rejection takes 1 of the 4, NodeResourcesFit's 10 the other 3
    assert list(decision.node_reasons) == ["big", "n0", "n1", "n2"]
    assert [(r.plugin, r.count) for r in decision.rejections] == [
        ("NodeSchedulable", 1),
        ("NodeResourcesFit", 10),
    ]


def test_without_explain_only_rejections_of_unschedulable_requests_are_kept() -> None:
    placed = Scheduler(three_nodes()).schedule(make_request(cpu=2000))
    assert placed.rejections == [] and placed.top_scores == [] and placed.node_reasons == {}
    refused = Scheduler(crowded_nodes()).schedule(make_request(cpu=4001))
    assert [r.count for r in refused.rejections] == [3]
    assert refused.node_reasons == {}  # per-node reasons only when asked


def test_to_dict_with_explain_is_json() -> None:
    decision = Scheduler(three_nodes()).schedule(
        make_request("r1", cpu=2000, mem=2048), explain=True
    )

    out = json.loads(json.dumps(decision.to_dict(explain=True)))

    assert out == {
        "request": "r1",
        "node": "n1",
        "status": "OK",
        "reasons": {
            "summary": [],
            "rejected": {
                "NodeResourcesFit": {
                    "count": 1,
                    "examples": ["n2: insufficient cpu_m 2000m > free 1000m"],
                }
            },
            "feasible": 2,
            "nodes": 3,
            "top_scores": [
                {
                    "node": "n1",
                    "total": 175.0,
                    "by_plugin": {"LeastAllocated": 75.0, "BalancedAllocation": 100.0},
                },
                {
                    "node": "n0",
                    "total": 149.0,
                    "by_plugin": {"LeastAllocated": 62.0, "BalancedAllocation": 87.0},
                },
            ],
            "by_node": {"n2": ["NodeResourcesFit: insufficient cpu_m 2000m > free 1000m"]},
        },
    }


def test_to_dict_of_an_unschedulable_decision_is_json() -> None:
    decision = Scheduler(crowded_nodes()).schedule(make_request("r", cpu=4001), explain=True)
    out = json.loads(json.dumps(decision.to_dict(explain=True)))
    assert out["status"] == "UNSCHEDULABLE"
    assert out["node"] is None
    assert out["reasons"]["summary"] == decision.reasons
    assert out["reasons"]["top_scores"] == []
    assert set(out["reasons"]["by_node"]) == {"n0", "n1", "n2"}


def test_to_dict_without_explain_is_short() -> None:
    decision = Decision("r", "n0", Code.OK, nodes_total=3, nodes_feasible=2)
    assert decision.to_dict() == {
        "request": "r",
        "node": "n0",
        "status": "OK",
        "reasons": {"summary": [], "rejected": {}},
    }
