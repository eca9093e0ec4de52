"""What the cluster manager tells the root and what it keeps: report contents, the root's
replies, restarts from the store, concurrent placements, and 1,000 nodes' heartbeats."""

from __future__ import annotations

import asyncio
from pathlib import Path

from harmonia.control.cluster.dispatch import Dispatcher, backoff_delay
from harmonia.control.cluster.manager import ClusterManager
from harmonia.control.protocol import (
    Heartbeat,
    InstanceState,
    InstanceStatus,
    ReportReply,
    Usage,
)
from harmonia.model import Node, Resources

from .conftest import Start
from .fakes import ROOT_AUTH, FakeNetwork, beat, place, register, spec, wait_for


def test_report_carries_nodes_and_instances_and_the_reply_is_applied(
    start: Start, net: FakeNetwork
) -> None:
    node = net.add_node("n1", cpu_m=4000, memory_mib=4096)
    with start() as tc:
        register(tc, node, labels={"zone": "a"})
        place(tc, spec("svc1.0", cpu_m=1000, memory_mib=512))
        place(tc, spec("svc1.1", cpu_m=500, memory_mib=256))
        # The next report's reply drops svc1.0 and asks for svc2.0, which the root
        # placed here but this cluster never heard of.
        net.root.replies.append(ReportReply(stop=["svc1.0"], start=[spec("svc2.0", cpu_m=250)]))
        reports_before = len(net.root.reports)
        wait_for(lambda: node.posts_of("svc2.0") == 1, message="svc2.0 started from the reply")
        assert node.deleted == ["svc1.0"]

        report = net.root.reports[reports_before][2]
        assert report.name == "c1"
        [node_report] = report.nodes
        assert node_report.node.name == "n1"
        assert node_report.node.cluster == "c1"
        assert node_report.node.labels == {"zone": "a"}
        assert node_report.healthy is True
        assert node_report.free == Resources(cpu_m=2500, memory_mib=3328)
        statuses = {s.instance_id: s for s in report.instances}
        assert set(statuses) == {"svc1.0", "svc1.1"}
        for status in statuses.values():
            assert (status.node, status.cluster, status.state) == ("n1", "c1", "RUNNING")
            assert status.pid == 4242

        wait_for(
            lambda: (
                {s.instance_id for s in net.root.reports[-1][2].instances} == {"svc1.1", "svc2.0"}
            ),
            message="report after the reply",
        )
        assert net.root.reports[-1][2].nodes[0].free.cpu_m == 4000 - 500 - 250


def test_keeps_working_while_the_root_is_away_and_resyncs(start: Start, net: FakeNetwork) -> None:
    node = net.add_node("n1")
    with start() as tc:
        register(tc, node)
        place(tc, spec("svc1.0"))
        net.root.reachable = False
        node.answer_state = InstanceState.NODE_SCHEDULED
        node.running["svc1.0"] = InstanceStatus(
            instance_id="svc1.0", state=InstanceState.FAILED, node="n1", restarts=1
        )
        assert beat(tc, node) == {"stop": [], "start": []}
        reports = len(net.root.reports)
        net.root.reachable = True
        wait_for(lambda: len(net.root.reports) > reports, timeout_s=3.0, message="report")
        [status] = net.root.reports[-1][2].instances
        assert (status.state, status.restarts) == (InstanceState.FAILED, 1)
        # Failed with restarts left: still reserved on its node.
        assert tc.get("/api/nodes", headers=ROOT_AUTH).json()[0]["free"]["cpu_m"] == 3500
        node.running["svc1.0"] = InstanceStatus(
            instance_id="svc1.0", state=InstanceState.FAILED, node="n1", restarts=5
        )
        beat(tc, node)
        # No restart left: it has ended and its capacity is free, but the root still sees it.
        assert tc.get("/api/nodes", headers=ROOT_AUTH).json()[0]["free"]["cpu_m"] == 4000
        assert tc.get("/health").json()["instances"] == 1


def test_a_restarted_manager_reloads_everything_and_stops_nothing(
    start: Start, net: FakeNetwork, tmp_path: Path
) -> None:
    node = net.add_node("n1", cpu_m=2000)
    with start() as tc:
        register(tc, node)
        assert place(tc, spec("svc1.0", cpu_m=1500)).status_code == 200
        beat(tc, node)
    assert node.deleted == []
    assert (tmp_path / "cluster.db").stat().st_mode & 0o077 == 0  # holds secrets

    with start() as tc:
        assert tc.get("/health").json() == {
            "status": "ok",
            "nodes": 1,
            "healthy_nodes": 1,
            "instances": 1,
        }
        # The node's secret survived; it still runs the instance: nothing to stop or start.
        assert beat(tc, node) == {"stop": [], "start": []}
        # The reservation was rebuilt: what would over-commit the node is refused.
        assert place(tc, spec("svc1.1", cpu_m=1000)).status_code == 409
        assert place(tc, spec("svc1.0", cpu_m=1500)).json()["node"] == "n1"  # idempotent
        wait_for(lambda: net.root.reports, message="report")
        [status] = net.root.reports[-1][2].instances
        assert (status.instance_id, status.node, status.state) == ("svc1.0", "n1", "RUNNING")
    assert node.deleted == [] and node.posts_of("svc1.0") == 1


def test_two_concurrent_placements_never_over_commit_a_node() -> None:
    net = FakeNetwork()
    manager = ClusterManager("c1")
    for name in ("a", "b"):
        fake = net.add_node(name, cpu_m=1000, delay_s=0.05)  # both POSTs overlap
        fake.secret = manager.register_node(fake.model(), fake.url)

    async def scenario() -> list[str | None]:
        async with net.client() as client:
            dispatcher = Dispatcher(manager, client)
            replies = await asyncio.gather(
                *(dispatcher.place(spec(f"svc1.{n}", cpu_m=600)) for n in range(3))
            )
        return [reply.node for reply in replies]

    nodes = asyncio.run(scenario())
    assert sorted(n for n in nodes if n) == ["a", "b"]
    assert nodes.count(None) == 1
    assert manager.state.free[:, 0].tolist() == [400, 400]


def test_backoff_doubles_to_a_cap() -> None:
    assert [backoff_delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_a_thousand_nodes_beating(start: Start, net: FakeNetwork) -> None:
    count = 1000
    with start() as tc:
        manager: ClusterManager = tc.app.state.manager
        secrets = tc.on_loop(
            lambda: {
                f"n{i:04d}": manager.register_node(
                    Node(name=f"n{i:04d}", capacity=Resources(cpu_m=2000, memory_mib=2048)),
                    f"http://n{i:04d}.node.test",
                )
                for i in range(count)
            }
        )
        for i in range(count):
            fake = net.add_node(f"n{i:04d}", cpu_m=2000, memory_mib=2048)
            fake.secret = secrets[fake.name]
        for i in range(20):
            assert place(tc, spec(f"svc1.{i}", cpu_m=100)).status_code == 200
        placed = tc.on_loop(lambda: {i.instance_id: i.node for i in manager.instances.values()})
        idle = Heartbeat(
            usage=Usage(cpu_percent=3.0, memory_used_mib=300, memory_total_mib=2048),
            instances=[],
        ).model_dump_json()
        running = {
            name: Heartbeat(
                usage=Usage(cpu_percent=3.0, memory_used_mib=300, memory_total_mib=2048),
                instances=[
                    InstanceStatus(instance_id=i, state=InstanceState.RUNNING, node=name, pid=7)
                    for i, on in placed.items()
                    if on == name
                ],
            ).model_dump_json()
            for name in set(placed.values())
        }

        async def beat_all() -> list[dict[str, list[object]]]:
            replies = []
            for name, secret in secrets.items():
                response = await tc.client.post(
                    f"/api/nodes/{name}/heartbeat",
                    content=running.get(name, idle),
                    headers={
                        "Authorization": f"Bearer {secret}",
                        "Content-Type": "application/json",
                    },
                )
                assert response.status_code == 200
                replies.append(response.json())
            return replies

        replies = tc.run(beat_all())
        assert all(reply == {"stop": [], "start": []} for reply in replies)
        assert tc.get("/health").json() == {
            "status": "ok",
            "nodes": count,
            "healthy_nodes": count,
            "instances": 20,
        }
        states = tc.on_loop(lambda: {i.state for i in manager.instances.values()})
        assert states == {InstanceState.RUNNING}
        usage = tc.on_loop(lambda: manager.nodes["n0999"].usage)
        assert usage is not None and usage.memory_used_mib == 300


def test_ended_instances_release_their_node_when_no_restart_can_follow() -> None:
    manager = ClusterManager("c1")
    manager.register_node(
        Node(name="n1", capacity=Resources(cpu_m=1000, memory_mib=4096)), "http://n1"
    )

    def free() -> int:
        return int(manager.state.free[0, 0])

    def report(instance_id: str, state: InstanceState, restarts: int = 0, at: float = 0.0) -> None:
        status = InstanceStatus(instance_id=instance_id, state=state, restarts=restarts)
        if at:
            status = status.model_copy(update={"at": at})
        manager.apply_status(manager.instances[instance_id], status)

    manager.reserve_for(spec("never.0", cpu_m=100, restart="never"))
    manager.reserve_for(spec("always.0", cpu_m=200, restart="always", max_restarts=3))
    manager.reserve_for(spec("retry.0", cpu_m=300))  # on-failure, 5 restarts
    assert free() == 400

    report("never.0", InstanceState.FAILED)
    assert free() == 500  # never restarted: released at once
    report("always.0", InstanceState.STOPPED, restarts=1)
    assert free() == 500  # its node restarts it: still held
    report("always.0", InstanceState.RUNNING, restarts=2)
    report("always.0", InstanceState.STOPPED, restarts=3)
    assert free() == 700  # no restart left
    report("retry.0", InstanceState.FAILED, restarts=1)
    assert free() == 700
    assert manager.settle() == 0
    # Ended long ago (the node gave up sooner than the spec allows): released.
    report("retry.0", InstanceState.RUNNING, restarts=2)
    report("retry.0", InstanceState.FAILED, restarts=2, at=1.0)
    assert manager.settle() == 1
    assert free() == 1000
    # Running again after all (restarted by hand on the node): held again.
    report("retry.0", InstanceState.RUNNING, restarts=3)
    assert free() == 700
    assert manager.instances["retry.0"].holds_reservation


def test_a_late_answer_from_a_node_does_not_undo_a_newer_heartbeat() -> None:
    net = FakeNetwork()
    manager = ClusterManager("c1")
    fake = net.add_node("n1", answer_state=InstanceState.NODE_SCHEDULED)
    fake.secret = manager.register_node(fake.model(), fake.url)

    async def scenario() -> InstanceState:
        async with net.client() as client:
            dispatcher = Dispatcher(manager, client)
            manager.reserve_for(spec("svc1.0"))
            instance = manager.instances["svc1.0"]
            running = InstanceStatus(instance_id="svc1.0", state=InstanceState.RUNNING, pid=9)
            manager.heartbeat("n1", Heartbeat(usage=fake.heartbeat().usage, instances=[running]))
            late = InstanceStatus(instance_id="svc1.0", state=InstanceState.NODE_SCHEDULED)
            dispatcher._apply_reply(instance, late)
            return instance.state

    assert asyncio.run(scenario()) is InstanceState.RUNNING
