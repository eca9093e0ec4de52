"""ClusterState: columns built from nodes, reserve/release in place, masks, utilization,
RTT attachment, node views, the change log and independent copies."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import NodeRole, Resources
from harmonia.sched import StateError
from harmonia.sched import state as state_module
from tests.builders import make_node, make_request, make_state, place, taint

# -- building ---------------------------------------------------------------------------


def test_columns_hold_capacity_allocatable_and_free_in_resource_order() -> None:
    state = make_state(
        [
            make_node("a", cpu=4000, mem=8192, gpu=1),
            make_node(
                "b",
                cpu=2000,
                mem=4096,
                allocatable=Resources(cpu_m=1500, memory_mib=3072),
            ),
        ]
    )

    assert state.names == ["a", "b"]
    assert len(state) == 2
    # RESOURCE_NAMES order: cpu_m, memory_mib, gpu, storage_mib, bw in, bw out
    assert state.capacity.tolist() == [[4000, 8192, 1, 0, 0, 0], [2000, 4096, 0, 0, 0, 0]]
    # allocatable defaults to capacity when a node does not set it
    assert state.allocatable.tolist() == [[4000, 8192, 1, 0, 0, 0], [1500, 3072, 0, 0, 0, 0]]
    assert state.free.tolist() == state.allocatable.tolist()
    assert not state.allocated.any()
    assert state.max_allocatable.tolist() == [4000, 8192, 1, 0, 0, 0]


def test_resource_columns_are_column_major() -> None:
    state = make_state(3)
    for column in (state.capacity, state.allocatable, state.allocated, state.free):
        assert column.flags.f_contiguous
        assert column.dtype == np.int64


def test_duplicate_node_name_is_refused() -> None:
    with pytest.raises(StateError, match="duplicate node name 'a'"):
        make_state([make_node("a"), make_node("b"), make_node("a")])


def test_empty_state_has_no_rows_and_zero_max_allocatable() -> None:
    state = make_state([])
    assert len(state) == 0
    assert state.max_allocatable.tolist() == [0] * 6
    assert state.utilization().tolist() == [0.0] * 6


def test_clusters_are_coded_in_sorted_name_order() -> None:
    state = make_state(
        [make_node("a", cluster="zeta"), make_node("b", cluster="alpha"), make_node("c")]
    )
    assert state.cluster_names == ["alpha", "c0", "zeta"]
    assert state.num_clusters == 3
    assert state.cluster_id.tolist() == [2, 0, 1]


def test_unschedulable_nodes_start_cordoned_and_all_start_healthy() -> None:
    state = make_state([make_node("a"), make_node("b", unschedulable=True)])
    assert state.healthy.tolist() == [True, True]
    assert state.cordoned.tolist() == [False, True]
    assert state.schedulable.tolist() == [True, False]


def test_node_index_of_unknown_name_raises() -> None:
    state = make_state(2)
    assert state.node_index("n1") == 1
    with pytest.raises(StateError, match="unknown node 'nope'"):
        state.node_index("nope")


# -- reserve and release ------------------------------------------------------------------


def test_reserve_and_release_change_one_row_in_place() -> None:
    state = make_state(3)
    allocated, free = state.allocated, state.free
    request = make_request("r1", cpu=1500, mem=1024, service="web")

    state.reserve(1, request)

    assert state.allocated is allocated and state.free is free  # same arrays, updated
    assert state.allocated[1].tolist() == [1500, 1024, 0, 0, 0, 0]
    assert state.free[1].tolist() == [4000 - 1500, 8192 - 1024, 0, 0, 0, 0]
    assert not state.allocated[[0, 2]].any()
    assert state.counts_of("web").tolist() == [0, 1, 0]
    assert state.cluster_counts_of("web").tolist() == [1]

    state.release(1, request)

    assert not state.allocated.any()
    assert state.free.tolist() == state.allocatable.tolist()
    assert state.counts_of("web").tolist() == [0, 0, 0]
    assert state.cluster_counts_of("web").tolist() == [0]


def test_reserve_with_requested_columns_equals_whole_row_update() -> None:
    request = make_request(cpu=700, mem=300, gpu=1)
    whole, columns = make_state(2), make_state(2)
    whole.reserve(0, request)
    # cpu_m, memory_mib and gpu are the non-zero columns 0, 1 and 2
    columns.reserve(0, request, np.array([700, 300, 1, 0, 0, 0]), requested=(0, 1, 2))
    assert columns.allocated.tolist() == whole.allocated.tolist()
    assert columns.free.tolist() == whole.free.tolist()


def test_service_counts_per_node_and_per_cluster() -> None:
    state = make_state(
        [make_node("a", cluster="x"), make_node("b", cluster="x"), make_node("c", cluster="y")]
    )
    for node in ("a", "b", "b", "c"):
        place(state, node, make_request(service="web"))
    place(state, "c", make_request(service="db"))

    assert state.counts_of("web").tolist() == [1, 2, 1]
    assert state.cluster_counts_of("web").tolist() == [3, 1]  # x = 1 + 2, y = 1
    assert state.counts_of("db").tolist() == [0, 0, 1]
    assert state.counts_of("none").tolist() == [0, 0, 0]
    assert state.cluster_counts_of("none").tolist() == [0, 0]


def test_host_log_lists_nodes_newly_running_a_service_and_counts_those_that_stop() -> None:
    state = make_state(3)
    first, second, third = (make_request(f"r{i}", service="web") for i in range(3))
    state.reserve(1, first)
    state.reserve(1, second)  # a second instance on n1: not a new host
    state.reserve(2, third)
    place(state, "n0", make_request("other", service="db"))
    assert state.hosts_added("web") == [1, 2]
    assert state.hosts_added("db") == [0]
    assert (state.hosts_added("none"), state.hosts_lost("web")) == ([], 0)

    state.release(1, first)  # n1 still runs one
    assert state.hosts_lost("web") == 0
    state.release(1, second)
    assert state.hosts_lost("web") == 1
    state.reserve(1, first)  # back on n1: listed again
    assert state.hosts_added("web") == [1, 2, 1]

    state.invalidate()  # a new epoch starts both over
    assert (state.hosts_added("web"), state.hosts_lost("web")) == ([], 0)
    assert state.copy().hosts_added("db") == []


def test_request_without_service_counts_no_instance() -> None:
    state = make_state(1)
    place(state, "n0", make_request(cpu=100))
    assert state.service_counts == {}


def test_release_of_more_than_allocated_is_refused_and_changes_nothing() -> None:
    state = make_state(1)
    place(state, "n0", make_request(cpu=1000))
    before = (state.allocated.copy(), state.free.copy())

    with pytest.raises(StateError, match="release of 'big' on 'n0' exceeds what is allocated"):
        state.release(0, make_request("big", cpu=1001))

    assert state.allocated.tolist() == before[0].tolist()
    assert state.free.tolist() == before[1].tolist()


def test_release_of_a_service_without_instance_is_refused_and_changes_nothing() -> None:
    state = make_state(1)
    place(state, "n0", make_request(cpu=1000, service="web"))

    with pytest.raises(StateError, match="no instance of 'db' on 'n0'"):
        state.release(0, make_request(cpu=500, service="db"))

    assert state.allocated[0].tolist() == [1000, 0, 0, 0, 0, 0]  # got [500, ...]


def test_health_and_cordon_update_schedulable() -> None:
    state = make_state(3)
    state.set_healthy("n0", False)
    state.set_cordoned("n2", True)
    assert state.schedulable.tolist() == [False, True, False]
    state.set_healthy("n0", True)
    state.set_cordoned("n2", False)
    assert state.schedulable.tolist() == [True, True, True]
    with pytest.raises(StateError):
        state.set_healthy("nope", False)
    with pytest.raises(StateError):
        state.set_cordoned("nope", True)


# -- masks and aggregates -------------------------------------------------------------------


def test_label_masks() -> None:
    state = make_state(
        [
            make_node("a", labels={"zone": "z1", "disk": "ssd"}),
            make_node("b", labels={"zone": "z2"}),
            make_node("c"),
        ]
    )
    assert state.label_mask("zone", "z1").tolist() == [True, False, False]
    assert state.label_mask("zone", "z3").tolist() == [False, False, False]  # unknown value
    assert state.label_mask("rack", "r1").tolist() == [False, False, False]  # unknown key
    zone = state.labels["zone"]
    assert zone.exists().tolist() == [True, True, False]
    assert zone.isin(["z2", "z9"]).tolist() == [False, True, False]
    assert zone.isin(["z9"]).tolist() == [False, False, False]


def test_cluster_masks() -> None:
    state = make_state(
        [make_node("a", cluster="x"), make_node("b", cluster="y"), make_node("c", cluster="x")]
    )
    assert state.cluster_mask("x").tolist() == [True, False, True]
    assert state.cluster_mask("y").tolist() == [False, True, False]
    assert state.cluster_mask("nope").tolist() == [False, False, False]


def test_taints_are_masks_per_distinct_taint() -> None:
    gpu, spot = taint("gpu", "true"), taint("spot", effect="PreferNoSchedule")
    state = make_state(
        [make_node("a", taints=[gpu]), make_node("b", taints=[gpu, spot]), make_node("c")]
    )
    assert set(state.taints) == {gpu, spot}
    assert state.taints[gpu].tolist() == [True, True, False]
    assert state.taints[spot].tolist() == [False, True, False]
    assert state.node_taints(1) == (gpu, spot)


def test_utilization_is_allocated_over_allocatable_per_resource() -> None:
    state = make_state([make_node("a", cpu=4000, mem=8192), make_node("b", cpu=4000, mem=8192)])
    place(state, "a", make_request(cpu=3000, mem=2048))
    place(state, "b", make_request(cpu=1000))
    # cpu (3000+1000)/8000 = 0.5; mem 2048/16384 = 0.125; gpu etc. have no allocatable: 0
    assert state.utilization().tolist() == [0.5, 0.125, 0.0, 0.0, 0.0, 0.0]


# -- RTT ------------------------------------------------------------------------------------


def test_attach_rtt_reorders_rows_and_columns_to_state_order() -> None:
    state = make_state([make_node("a"), make_node("b"), make_node("c")])
    # The matrix lists nodes as c, a, b; rtt[x][y] = 10*row + column to tell entries apart.
    names = ["c", "a", "b"]
    matrix = [[0, 1, 2], [10, 11, 12], [20, 21, 22]]

    state.attach_rtt(names, matrix)

    assert state.rtt_ms is not None
    assert state.rtt_ms.dtype == np.float32
    # a→a = 11, a→b = 12, a→c = 10; b→a = 21, ...; c→a = 1, ...
    assert state.rtt_ms.tolist() == [[11, 12, 10], [21, 22, 20], [1, 2, 0]]


def test_attach_rtt_may_cover_more_nodes_than_the_state() -> None:
    state = make_state([make_node("b")])
    state.attach_rtt(["a", "b"], [[0, 5], [6, 7]])
    assert state.rtt_ms is not None
    assert state.rtt_ms.tolist() == [[7]]


def test_attach_rtt_rejects_missing_nodes_and_bad_shapes() -> None:
    state = make_state([make_node("a"), make_node("b")])
    with pytest.raises(StateError, match="RTT matrix lacks nodes: b"):
        state.attach_rtt(["a", "x"], [[0, 1], [1, 0]])
    with pytest.raises(StateError, match="must be 2x2"):
        state.attach_rtt(["a", "b"], [[0, 1, 2], [1, 0, 2]])
    with pytest.raises(StateError, match="must be 3x3"):
        state.attach_rtt(["a", "b", "c"], [[0, 1], [1, 0]])
    assert state.rtt_ms is None


# -- views ----------------------------------------------------------------------------------


def test_node_view_round_trips_the_node() -> None:
    node = make_node(
        "edge-1",
        cpu=1500,
        mem=2048,
        cluster="munich",
        gpu=1,
        storage=10_000,
        labels={"zone": "z1", "disk": "ssd"},
        taints=[taint("gpu", "true"), taint("spot", effect="PreferNoSchedule")],
        allocatable=Resources(cpu_m=1200, memory_mib=1536, gpu=1, storage_mib=9000),
        role=NodeRole.EDGE,
        location=(48.1351, 11.582),
        node_class="jetson-nano",
    )
    state = make_state([make_node("other", cluster="berlin"), node])

    assert state.node(1) == node
    assert state.node_labels(1) == {"zone": "z1", "disk": "ssd"}


def test_node_view_fills_in_allocatable_and_reflects_cordon() -> None:
    node = make_node("a", cpu=1000, mem=512)  # allocatable not set: defaults to capacity
    state = make_state([node])
    view = state.node(0)
    assert view.allocatable_or_capacity == node.allocatable_or_capacity
    assert view.model_copy(update={"allocatable": None}) == node
    assert view.location is None

    state.set_cordoned("a", True)
    assert state.node(0).unschedulable is True


def test_node_labels_returns_a_copy() -> None:
    state = make_state([make_node("a", labels={"zone": "z1"})])
    state.node_labels(0)["zone"] = "changed"
    assert state.node_labels(0) == {"zone": "z1"}


def test_row_is_python_numbers_and_refreshes_after_a_change() -> None:
    state = make_state([make_node("a", cpu=4000, mem=0)])
    row = state.row(0)
    assert row.node == 0
    assert row.free == [4000, 0, 0, 0, 0, 0]
    assert row.allocatable == [4000, 0, 0, 0, 0, 0]
    assert row.divisor == [4000, 1, 1, 1, 1, 1]  # zero allocatable divides by 1
    assert row.schedulable is True
    assert state.row(0) is row  # memoized

    place(state, "a", make_request(cpu=1000))
    assert state.row(0).free[0] == 3000
    assert state.row(0).allocated[0] == 1000

    state.set_healthy("a", False)
    assert state.row(0).schedulable is False


def test_rows_follow_every_placement_and_copies_keep_their_own() -> None:
    state = make_state([make_node("a", cpu=4000, mem=4096), make_node("b", cpu=2000, mem=2048)])
    web = make_request("w", cpu=500, mem=256)
    state.reserve(0, web)
    state.reserve(1, web, state.allocatable[1] // 2)  # a whole vector, not per column
    clone = state.copy()
    state.release(0, web)
    for s in (state, clone):
        for i in range(len(s)):
            assert s.row(i).free == s.free[i].tolist()
            assert s.row(i).allocated == s.allocated[i].tolist()
            assert all(type(v) is int for v in s.row(i).free)
    assert clone.row(0).allocated[0] == 500  # the release did not reach the copy
    assert state.row(0).allocated[0] == 0


# -- change log and copies --------------------------------------------------------------------


def test_change_log_lists_changed_rows_in_order() -> None:
    state = make_state(3)
    request = make_request(cpu=10)
    state.reserve(2, request)
    state.set_healthy("n0", False)
    state.release(2, request)
    state.set_cordoned("n1", True)
    assert state.changes == [2, 0, 2, 1]
    assert state.epoch == 0

    state.invalidate()
    assert state.changes == []
    assert state.epoch == 1


def test_change_log_past_its_limit_starts_a_new_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "CHANGE_LOG_LIMIT", 3)
    state = make_state(1)
    for _ in range(3):
        place(state, "n0", make_request(cpu=1))
    assert (state.changes, state.epoch) == ([0, 0, 0], 0)
    place(state, "n0", make_request(cpu=1))  # the fourth change drops the log
    assert (state.changes, state.epoch) == ([0], 1)


def test_copy_is_independent() -> None:
    state = make_state([make_node("a", cluster="x"), make_node("b", cluster="y")])
    place(state, "a", make_request(cpu=1000, service="web"))
    clone = state.copy()
    assert clone.changes == [] and clone.epoch == 0

    place(clone, "b", make_request(cpu=500, service="web"))
    clone.release(0, make_request(cpu=1000, service="web"))
    clone.set_healthy("a", False)
    clone.set_cordoned("b", True)

    # The original is as it was before the copy ...
    assert state.allocated[:, 0].tolist() == [1000, 0]
    assert state.free[:, 0].tolist() == [3000, 4000]
    assert state.counts_of("web").tolist() == [1, 0]
    assert state.cluster_counts_of("web").tolist() == [1, 0]
    assert state.schedulable.tolist() == [True, True]
    assert state.changes == [0]
    assert state.row(0).free[0] == 3000
    # ... and the copy has its own changes.
    assert clone.allocated[:, 0].tolist() == [0, 500]
    assert clone.counts_of("web").tolist() == [0, 1]
    assert clone.cluster_counts_of("web").tolist() == [0, 1]
    assert clone.schedulable.tolist() == [False, False]
    assert clone.changes == [1, 0, 0, 1]


def test_copy_after_a_new_service_appears_keeps_counts_apart() -> None:
    state = make_state(2)
    clone = state.copy()
    place(clone, "n0", make_request(service="db"))
    assert state.counts_of("db").tolist() == [0, 0]
    place(state, "n1", make_request(service="db"))
    assert clone.counts_of("db").tolist() == [1, 0]


@pytest.mark.parametrize(
    "clusters",
    [
        ["x", "x", "y", "y", "y"],  # grouped by cluster: expanded block by block
        ["y", "x", "y", "x", "x"],  # interleaved: gathered through cluster_id
        ["x"],
    ],
)
def test_per_node_expands_a_per_cluster_vector(clusters: list[str]) -> None:
    state = make_state([make_node(f"n{i}", cluster=c) for i, c in enumerate(clusters)])
    per_cluster = np.array([10.0, 20.0])[: state.num_clusters]  # x = 10, y = 20
    expected = [10.0 if c == "x" else 20.0 for c in clusters]
    assert state.per_node(per_cluster).tolist() == expected


def test_per_node_of_an_empty_state() -> None:
    assert make_state([]).per_node(np.zeros(0)).tolist() == []


def test_service_maxima_follow_reserve_and_release() -> None:
    state = make_state(
        [make_node("a", cluster="c0"), make_node("b", cluster="c0"), make_node("c", cluster="c1")]
    )
    web = make_request("w", cpu=1, service="web")
    assert state.max_count_of("web") == 0 and state.max_cluster_count_of("web") == 0
    state.reserve(0, web)
    state.reserve(0, web)
    state.reserve(1, web)
    state.reserve(2, web)
    assert state.max_count_of("web") == 2  # node a
    assert state.max_cluster_count_of("web") == 3  # cluster c0: a + b
    state.release(0, web)
    assert state.max_count_of("web") == 1
    assert state.max_cluster_count_of("web") == 2
    state.release(1, web)
    state.release(0, web)
    assert state.max_count_of("web") == 1  # node c
    assert state.max_cluster_count_of("web") == 1  # cluster c1
    assert state.copy().max_count_of("web") == 1
