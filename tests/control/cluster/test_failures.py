"""Lost nodes: detection after missed heartbeats, moving their instances exactly once,
backoff while nothing fits, and reconciling a node that comes back."""

from __future__ import annotations

from harmonia.control.protocol import InstanceState, InstanceStatus

from .conftest import Start
from .fakes import ROOT_AUTH, FakeNetwork, FakeNode, beat, place, register, spec, wait_for
from .harness import RunningApp

FAST = {"heartbeat_interval_s": 0.05, "missed_heartbeats": 3, "report_interval_s": 0.1}


def state_of(tc: RunningApp, instance_id: str) -> tuple[str | None, InstanceState, str]:
    def read() -> tuple[str | None, InstanceState, str]:
        record = tc.app.state.manager.instances[instance_id]
        return record.node, record.state, record.detail

    return tc.on_loop(read)


def keep_alive(tc: RunningApp, *nodes: FakeNode) -> None:
    for node in nodes:
        beat(tc, node)


def test_instances_of_a_dead_node_move_once_and_it_is_told_to_stop_them(
    start: Start, net: FakeNetwork
) -> None:
    doomed = net.add_node("doomed", cpu_m=8000, memory_mib=8192)
    survivor = net.add_node("survivor", cpu_m=2000, memory_mib=2048)
    with start(**FAST) as tc:
        register(tc, doomed)
        for n in range(2):
            assert place(tc, spec(f"svc1.{n}", cpu_m=500)).json()["node"] == "doomed"
        register(tc, survivor)
        keep_alive(tc, doomed, survivor)

        # ``doomed`` falls silent; ``survivor`` keeps beating.
        wait_for(
            lambda: survivor.posts_of("svc1.0") and survivor.posts_of("svc1.1"),
            between=lambda: keep_alive(tc, survivor),
            timeout_s=3.0,
            message="instances moved to the survivor",
        )
        assert state_of(tc, "svc1.0")[0] == "survivor"
        health = tc.get("/health").json()
        assert (health["nodes"], health["healthy_nodes"]) == (2, 1)
        views = {v["name"]: v for v in tc.get("/api/nodes", headers=ROOT_AUTH).json()}
        assert views["doomed"]["healthy"] is False
        assert views["doomed"]["free"]["cpu_m"] == 8000  # released
        assert views["survivor"]["free"]["cpu_m"] == 1000

        # More detection rounds pass: nothing is moved again.
        for _ in range(10):
            keep_alive(tc, survivor)
            tc.on_loop(tc.app.state.manager.detect_dead)
        assert survivor.posts_of("svc1.0") == 1 and survivor.posts_of("svc1.1") == 1
        assert doomed.posts_of("svc1.0") == 1

        # The dead node comes back still running both: it must stop them.
        reply = beat(tc, doomed)
        assert sorted(reply["stop"]) == ["svc1.0", "svc1.1"]
        assert reply["start"] == []
        assert tc.get("/health").json()["healthy_nodes"] == 2
        assert state_of(tc, "svc1.0")[0] == "survivor"


def test_waits_with_backoff_while_nothing_fits_and_places_when_capacity_returns(
    start: Start, net: FakeNetwork
) -> None:
    big = net.add_node("big", cpu_m=4000)
    small = net.add_node("small", cpu_m=1000)
    with start(**FAST) as tc:
        register(tc, big)
        register(tc, small)
        assert place(tc, spec("svc1.0", cpu_m=3000)).json()["node"] == "big"
        wait_for(
            lambda: state_of(tc, "svc1.0")[0] is None,
            between=lambda: keep_alive(tc, small),
            message="instance taken off the dead node",
        )

        def attempts() -> int:
            return int(tc.on_loop(lambda: tc.app.state.dispatcher._attempts.get("svc1.0", 0)))

        wait_for(
            lambda: attempts() >= 2,
            between=lambda: keep_alive(tc, small),
            message="two placement attempts",
        )
        node, state, detail = state_of(tc, "svc1.0")
        assert (node, state) == (None, InstanceState.REQUESTED)
        assert "cpu_m" in detail, detail
        due = tc.on_loop(tc.app.state.dispatcher.waiting)
        assert "svc1.0" in due
        assert small.posted == []
        # The root sees it waiting, with the reason.
        wait_for(
            lambda: any(
                s.instance_id == "svc1.0" and s.state is InstanceState.REQUESTED and s.node is None
                for s in net.root.reports[-1][2].instances
            ),
            between=lambda: keep_alive(tc, small),
            message="REQUESTED reported",
        )

        # Capacity returns: a new node registers; the instance is placed at once, not
        # after its (growing) backoff.
        roomy = net.add_node("roomy", cpu_m=4000)
        register(tc, roomy)
        wait_for(
            lambda: roomy.posts_of("svc1.0") == 1,
            between=lambda: keep_alive(tc, small, roomy),
            timeout_s=2.0,
            message="placement on the new node",
        )
        assert state_of(tc, "svc1.0")[:2] == ("roomy", InstanceState.RUNNING)
        assert tc.on_loop(tc.app.state.dispatcher.waiting) == {}


def test_a_lost_node_that_returns_before_a_move_keeps_its_instance(
    start: Start, net: FakeNetwork
) -> None:
    only = net.add_node("only", cpu_m=2000)
    with start(**FAST) as tc:
        register(tc, only)
        place(tc, spec("svc1.0", cpu_m=500))
        wait_for(lambda: state_of(tc, "svc1.0")[0] is None, message="instance taken off the node")
        # Back, still running it: it is adopted again, not stopped and started twice.
        reply = beat(tc, only)
        assert reply == {"stop": [], "start": []}
        assert state_of(tc, "svc1.0")[:2] == ("only", InstanceState.RUNNING)
        views = tc.get("/api/nodes", headers=ROOT_AUTH).json()
        assert views[0]["free"]["cpu_m"] == 1500
        assert only.posts_of("svc1.0") == 1


def test_an_instance_the_node_does_not_report_is_sent_again(start: Start, net: FakeNetwork) -> None:
    node = net.add_node("n1")
    with start(heartbeat_interval_s=0.05, missed_heartbeats=1000) as tc:
        register(tc, node)
        place(tc, spec("svc1.0"))
        node.running.clear()  # the engine lost it (say, restarted with an empty state)
        first = beat(tc, node)
        assert first["start"] == []  # sent a moment ago: give the node time to report it
        wait_for(
            lambda: beat(tc, node)["start"],
            message="the spec sent again after two heartbeat intervals",
        )
        # Sent once per two intervals, not on every heartbeat.
        assert beat(tc, node)["start"] == []


def test_instances_deleted_while_the_node_was_unreachable_are_stopped(
    start: Start, net: FakeNetwork
) -> None:
    node = net.add_node("n1")
    with start() as tc:
        register(tc, node)
        place(tc, spec("svc1.0"))
        node.reachable = False
        assert tc.delete("/api/instances/svc1.0", headers=ROOT_AUTH).status_code == 204
        assert node.deleted == []  # not delivered
        node.reachable = True
        node.running["stray.0"] = InstanceStatus(
            instance_id="stray.0", state=InstanceState.RUNNING, node="n1"
        )
        assert sorted(beat(tc, node)["stop"]) == ["stray.0", "svc1.0"]
        assert tc.get("/health").json()["instances"] == 0
