"""The root's scheduling view: reported usage, pending placements, exclusions, names."""

from __future__ import annotations

import pytest

from harmonia.control.protocol import NodeReport
from harmonia.control.root.placement import Choice, Refusal, SchedulingView
from harmonia.model import Node, PlacementRequest, Resources


def report(
    name: str, cluster: str, cpu_m: int, free_cpu_m: int, healthy: bool = True
) -> NodeReport:
    capacity = Resources(cpu_m=cpu_m, memory_mib=4096)
    return NodeReport(
        node=Node(name=name, cluster=cluster, capacity=capacity),
        free=Resources(cpu_m=free_cpu_m, memory_mib=4096),
        healthy=healthy,
    )


def request(instance_id: str, cpu_m: int) -> PlacementRequest:
    return PlacementRequest(id=instance_id, service="app.web", cpu_m=cpu_m, memory_mib=10)


@pytest.mark.parametrize("policy", ["rom", "ldp", "default"])
def test_reported_usage_and_pending_placements_are_both_counted(policy: str) -> None:
    view = SchedulingView(policy)
    view.set_cluster("c1", "one", [report("n1", "one", 2000, free_cpu_m=1000)])
    assert view.choose(request("i0", 600)) == Choice("c1", "n1")
    refusal = view.choose(request("i1", 600))  # 1000 free, 600 pending
    assert isinstance(refusal, Refusal)
    # The cluster reports i0 with its usage counted: no longer pending, not counted twice.
    view.set_cluster("c1", "one", [report("n1", "one", 2000, free_cpu_m=400)])
    view.settle("c1", ["i0"])
    assert view.pending() == {}
    assert view.choose(request("i1", 400)) == Choice("c1", "n1")


def test_cancel_releases_and_exclusion_skips_a_cluster() -> None:
    view = SchedulingView("rom")
    view.set_cluster("c1", "one", [report("n1", "one", 4000, 4000)])
    view.set_cluster("c2", "two", [report("n2", "two", 1000, 1000)])
    first = view.choose(request("i0", 800))
    assert first == Choice("c1", "n1")
    second = view.choose(request("i0", 800), exclude={"c1"})  # re-placing i0 elsewhere
    assert second == Choice("c2", "n2")
    assert view.pending() == {"i0": "c2"}
    assert isinstance(view.choose(request("i1", 800), exclude={"c1"}), Refusal)
    view.cancel("i0")
    assert view.choose(request("i1", 800), exclude={"c1"}) == Choice("c2", "n2")
    everything = view.choose(request("i2", 10), exclude={"c1", "c2"})
    assert isinstance(everything, Refusal)
    assert everything.reasons == ["every active cluster refused this instance"]


def test_same_node_names_in_two_clusters_stay_apart() -> None:
    view = SchedulingView("rom")
    view.set_cluster("c1", "one", [report("node-1", "one", 1000, 1000)])
    view.set_cluster("c2", "two", [report("node-1", "two", 1000, 1000)])
    chosen = {view.choose(request(f"i{k}", 1000)) for k in range(2)}
    assert chosen == {Choice("c1", "node-1"), Choice("c2", "node-1")}


def test_confirm_moves_the_reservation_to_the_node_the_cluster_chose() -> None:
    view = SchedulingView("default")
    view.set_cluster(
        "c1", "one", [report("n1", "one", 1000, 1000), report("n2", "one", 1000, 1000)]
    )
    choice = view.choose(request("i0", 1000))
    assert isinstance(choice, Choice)
    other = "n2" if choice.node == "n1" else "n1"
    view.confirm("i0", other)
    assert view.choose(request("i1", 1000)) == Choice("c1", choice.node)


def test_unhealthy_nodes_and_lost_clusters_are_not_chosen() -> None:
    view = SchedulingView("rom")
    view.set_cluster("c1", "one", [report("n1", "one", 8000, 8000, healthy=False)])
    view.set_cluster("c2", "two", [report("n2", "two", 1000, 1000)])
    assert view.choose(request("i0", 500)) == Choice("c2", "n2")
    view.remove_cluster("c2")
    assert view.pending() == {}
    assert isinstance(view.choose(request("i1", 500)), Refusal)
    view.remove_cluster("c1")
    assert view.choose(request("i1", 500)) == Refusal(["no active cluster has nodes"])


@pytest.mark.parametrize("policy", ["rom", "default"])
def test_usage_reports_update_the_state_in_place_exactly_as_a_rebuild(policy: str) -> None:
    view = SchedulingView(policy)
    view.set_cluster(
        "c1", "one", [report("n1", "one", 4000, 4000), report("n2", "one", 4000, 4000)]
    )
    view.set_cluster("c2", "two", [report("n3", "two", 2000, 2000)])
    placed = [view.choose(request(f"i{k}", 700)) for k in range(4)]
    assert all(isinstance(choice, Choice) for choice in placed)
    built = view._built
    assert built is not None

    # c1 reports i0 and its usage went up on n1; n2 became unhealthy.
    view.set_cluster(
        "c1", "one", [report("n1", "one", 4000, 2500), report("n2", "one", 4000, 4000, False)]
    )
    view.settle("c1", ["i0"])
    assert view._built is built  # updated in place, not rebuilt
    allocated, healthy = built.state.allocated.copy(), built.state.healthy.copy()
    counts = built.state.counts_of("app.web").copy()

    view._built = None
    rebuilt = view._build()
    assert rebuilt is not None and rebuilt is not built
    assert (rebuilt.state.allocated == allocated).all()
    assert (rebuilt.state.healthy == healthy).all()
    assert (rebuilt.state.counts_of("app.web") == counts).all()

    # A node that joins rebuilds the view.
    view.set_cluster("c2", "two", [report("n3", "two", 2000, 2000), report("n4", "two", 1, 1)])
    assert view._built is None
