"""Clusters: join tokens, registration, reports, root-level placement and lost clusters."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import update

from harmonia.control.protocol import InstanceStatus
from harmonia.control.root.store import InstanceRow, JoinTokenRow
from harmonia.model import InstanceState
from tests.control.root.fakes import Clusters, Root, example, make_root, root_config, small_cluster

pytestmark = pytest.mark.anyio


def one_service(name: str, vcpus: float, replicas: int = 1) -> dict[str, Any]:
    descriptor = example(vcpus=vcpus, replicas=replicas, memory=64)
    app = descriptor["applications"][0]
    app["application_name"] = name
    app["microservices"] = app["microservices"][:1]
    return descriptor


async def new_token(root: Root, ttl_s: int = 600) -> str:
    reply = await root.http.post(
        "/api/clusters/tokens", json={"ttl_s": ttl_s}, headers=await root.headers()
    )
    assert reply.status_code == 201
    assert reply.json()["expires_at"] == pytest.approx(time.time() + ttl_s, abs=5)
    return str(reply.json()["token"])


async def register(root: Root, name: str, token: str) -> Any:
    return await root.http.post(
        "/api/clusters/register",
        json={"name": name, "url": f"http://{name}.test", "join_token": token},
    )


async def test_join_token_registers_one_cluster_once(root: Root) -> None:
    token = await new_token(root)
    first = await register(root, "a", token)
    assert first.status_code == 200
    assert set(first.json()) == {"id", "secret"}

    other = await register(root, "b", token)
    assert other.status_code == 401
    assert other.json()["detail"] == "join_token: already used by another cluster"

    # The same cluster, restarted without its state, gets its id back and a new secret.
    again = await register(root, "a", token)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["secret"] != first.json()["secret"]
    stale = await root.http.post(
        f"/api/clusters/{first.json()['id']}/report",
        json={"name": "a", "nodes": [], "instances": []},
        headers={"Authorization": f"Bearer {first.json()['secret']}"},
    )
    assert stale.status_code == 401

    assert (await register(root, "c", "x" * 32)).status_code == 401
    assert (await register(root, "c", "short")).status_code == 422
    clusters = (await root.http.get("/api/clusters/", headers=await root.headers())).json()
    assert [c["name"] for c in clusters] == ["a"]


async def test_expired_join_token_is_refused(root: Root) -> None:
    token = await new_token(root, ttl_s=1)
    with root.controller.store.session() as session:
        session.execute(update(JoinTokenRow).values(expires_at=time.time() - 1))
    reply = await register(root, "a", token)
    assert reply.status_code == 401
    assert "expired" in reply.json()["detail"]


async def test_only_admins_create_join_tokens(root: Root) -> None:
    infra = await root.user("ivan", ["infra_provider"])
    assert (await root.http.post("/api/clusters/tokens", headers=infra)).status_code == 403
    assert (await root.http.post("/api/clusters/tokens")).status_code == 401
    default = await root.http.post("/api/clusters/tokens", headers=await root.headers())
    assert default.status_code == 201
    assert default.json()["expires_at"] == pytest.approx(time.time() + 3600, abs=5)
    bad = await root.http.post(
        "/api/clusters/tokens", json={"ttl_s": 0}, headers=await root.headers()
    )
    assert bad.status_code == 422
    assert bad.json()["detail"] == ["ttl_s: must be > 0"]


async def test_cluster_list_shows_health_and_capacity(root: Root) -> None:
    a = await root.join(small_cluster("a", nodes=2, cpu_m=2000, memory_mib=1024))
    viewer = await root.user("vera", ["infra_provider"])
    assert (await root.http.get("/api/clusters/")).status_code == 401
    clusters = (await root.http.get("/api/clusters/", headers=viewer)).json()
    assert clusters == [
        {
            "id": a.id,
            "name": "a",
            "url": "http://a.test",
            "status": "active",
            "last_report_age_s": clusters[0]["last_report_age_s"],
            "nodes": 2,
            "healthy_nodes": 2,
            "capacity": {"cpu_m": 4000, "memory_mib": 2048},
            "free": {"cpu_m": 4000, "memory_mib": 2048},
            "instances": 0,
        }
    ]
    assert 0 <= clusters[0]["last_report_age_s"] < 5
    one = (await root.http.get(f"/api/clusters/{a.id}", headers=viewer)).json()
    assert one == clusters[0] | {"last_report_age_s": one["last_report_age_s"]}


async def test_reports_are_authenticated_and_validated(root: Root) -> None:
    a = await root.join(small_cluster("a"))
    b = await root.join(small_cluster("b"))
    body = a.report()
    path = f"/api/clusters/{a.id}/report"
    assert (await root.http.post(path, json=body)).status_code == 401
    wrong = {"Authorization": f"Bearer {b.secret}"}
    assert (await root.http.post(path, json=body, headers=wrong)).status_code == 401
    unknown = await root.http.post(
        "/api/clusters/nope/report", json=body, headers={"Authorization": f"Bearer {a.secret}"}
    )
    assert unknown.status_code == 401
    own = {"Authorization": f"Bearer {a.secret}"}
    renamed = await root.http.post(path, json=b.report(), headers=own)
    assert renamed.status_code == 422
    assert renamed.json()["detail"].startswith("name:")
    malformed = await root.http.post(path, json={**body, "bogus": 1}, headers=own)
    assert malformed.status_code == 422
    assert malformed.json()["detail"] == ["bogus: unknown field"]


async def test_reports_apply_states_and_reconcile_instances(root: Root) -> None:
    a = await root.join(small_cluster("a"))
    admin = await root.headers()
    await root.deploy(one_service("web", 0.5, replicas=2), admin)
    first, second = sorted(a.placed)

    stray = InstanceStatus(instance_id="gone.0", state=InstanceState.RUNNING, node="a-node-1")
    reply = await root.report(a, states={second: InstanceState.FAILED}, extra=[stray])
    assert reply == {"stop": ["gone.0"], "start": []}
    by_id = {i["instance_id"]: i for i in await root.instances(admin)}
    assert by_id[first]["state"] == "RUNNING"
    assert by_id[second]["state"] == "FAILED"

    # The cluster lost `first` (a manager restarted without its state): once its reports
    # have lacked it for two intervals, the reply asks for it again.
    del a.placed[first], a.where[first]
    assert (await root.report(a))["start"] == []  # placed moments ago: maybe in flight
    with root.controller.store.session() as session:
        session.execute(update(InstanceRow).values(placed_at=time.time() - 60))
    reply = await root.report(a)
    assert [spec["instance_id"] for spec in reply["start"]] == [first]
    assert reply["start"][0]["cmd"] == ["sh", "-c", "echo client up; sleep 3600"]


async def test_quick_deploys_do_not_over_commit_a_small_cluster(root: Root) -> None:
    # One node with two cores; no report arrives between the deploys.
    small = await root.join(small_cluster("small", nodes=1, cpu_m=2000))
    admin = await root.headers()
    for name in ("one", "two", "three"):
        await root.deploy(one_service(name, 0.8), admin)
    placed = [i for i in await root.instances(admin) if i["state"] != "REQUESTED"]
    waiting = [i for i in await root.instances(admin) if i["state"] == "REQUESTED"]
    assert [i["application"] for i in placed] == ["one", "two"]
    assert [i["application"] for i in waiting] == ["three"]
    assert "no node with cpu_m 800m free" in waiting[0]["detail"]
    # The root refused the third itself: the cluster was never asked to over-commit.
    assert len(small.posts) == 2

    # A report that accounts for the two does not count them twice: 0.4 cores are left.
    await root.report(small)
    await root.deploy(one_service("four", 0.4), admin)
    four = [i for i in await root.instances(admin) if i["application"] == "four"]
    assert four[0]["state"] == "NODE_SCHEDULED"

    # A second cluster joins: the waiting one goes there on the next round.
    await root.join(small_cluster("big", nodes=1, cpu_m=8000))
    await root.controller.tick()
    three = [i for i in await root.instances(admin) if i["application"] == "three"]
    assert (three[0]["state"], three[0]["cluster"]) == ("NODE_SCHEDULED", "big")


async def test_refusing_or_unreachable_cluster_makes_the_next_one_be_asked(root: Root) -> None:
    a = await root.join(small_cluster("a", cpu_m=8000))
    b = await root.join(small_cluster("b", cpu_m=1000))
    admin = await root.headers()
    a.refuse = True
    await root.deploy(one_service("x", 0.5), admin)
    (instance,) = await root.instances(admin)
    assert a.posts == [instance["instance_id"]]  # the larger cluster was asked first
    assert (instance["cluster"], instance["state"]) == ("b", "NODE_SCHEDULED")

    a.refuse, a.down = False, True
    await root.deploy(one_service("y", 0.5), admin)
    y = next(i for i in await root.instances(admin) if i["application"] == "y")
    assert y["cluster"] == "b"

    a.down, b.refuse, a.refuse = False, True, True
    await root.deploy(one_service("z", 0.25), admin)
    z = next(i for i in await root.instances(admin) if i["application"] == "z")
    assert z["state"] == "REQUESTED"
    assert "cluster a: full" in z["detail"] and "cluster b: full" in z["detail"]

    a.refuse = False
    await root.controller.tick()
    z = next(i for i in await root.instances(admin) if i["application"] == "z")
    assert (z["state"], z["cluster"], z["detail"]) == ("NODE_SCHEDULED", "a", "")


async def test_lost_cluster_instances_move_and_its_copies_are_stopped_on_return(
    root: Root,
) -> None:
    a = await root.join(small_cluster("a"))
    admin = await root.headers()
    await root.deploy(example(), admin)
    await root.report(a)
    moved = {i["instance_id"] for i in await root.instances(admin)}
    assert {i["cluster"] for i in await root.instances(admin)} == {"a"}
    b = await root.join(small_cluster("b"))

    # `a` goes silent for longer than cluster_timeout_s.
    root.controller.clusters[a.id].last_seen -= root.config.cluster_timeout_s + 1
    await root.controller.tick()
    clusters = {c["name"]: c for c in (await root.http.get("/api/clusters/", headers=admin)).json()}
    assert clusters["a"]["status"] == "lost"
    now = {i["instance_id"]: i for i in await root.instances(admin)}
    assert {i["cluster"] for i in now.values()} == {"b"}
    assert set(b.placed) == moved
    history = (await root.http.get(f"/api/instances/{min(moved)}", headers=admin)).json()
    assert [t["state"] for t in history["transitions"]] == [
        "REQUESTED",
        "CLUSTER_SCHEDULED",
        "NODE_SCHEDULED",
        "RUNNING",
        "REQUESTED",
        "CLUSTER_SCHEDULED",
        "NODE_SCHEDULED",
    ]
    assert history["transitions"][4]["detail"] == "cluster a lost"

    # `a` comes back still running its copies: it is told to stop them.
    reply = await root.report(a)
    assert sorted(reply["stop"]) == sorted(moved)
    clusters = {c["name"]: c for c in (await root.http.get("/api/clusters/", headers=admin)).json()}
    assert clusters["a"]["status"] == "active"
    assert {i["cluster"] for i in await root.instances(admin)} == {"b"}


async def test_waiting_instance_a_returning_cluster_still_runs_is_kept(root: Root) -> None:
    a = await root.join(small_cluster("a"))
    admin = await root.headers()
    await root.deploy(one_service("solo", 0.5), admin)
    root.controller.clusters[a.id].last_seen -= root.config.cluster_timeout_s + 1
    await root.controller.tick()  # lost; no other cluster to take the instance
    (waiting,) = await root.instances(admin)
    assert waiting["state"] == "REQUESTED"

    reply = await root.report(a)
    assert reply["stop"] == []
    (kept,) = await root.instances(admin)
    assert (kept["state"], kept["cluster"]) == ("RUNNING", "a")


async def test_restarted_root_keeps_everything_and_gives_clusters_time(tmp_path: Path) -> None:
    config = root_config(tmp_path / "root", cluster_timeout_s=5)
    clusters = Clusters()
    first = make_root(config, clusters)
    a = await first.join(small_cluster("a"))
    admin = await first.headers()
    await first.deploy(example(), admin)
    await first.report(a)
    before = await first.instances(admin)
    await first.close()

    second = make_root(config, clusters)
    try:
        await second.controller.tick()  # the cluster's silence while the root was down
        assert await second.instances(admin) == before
        listed = (await second.http.get("/api/clusters/", headers=admin)).json()
        assert [(c["name"], c["status"], c["instances"]) for c in listed] == [("a", "active", 2)]
        # The view is rebuilt from the stored report: the next deploy is placed at once.
        await second.deploy(one_service("more", 0.5), admin)
        more = [i for i in await second.instances(admin) if i["application"] == "more"]
        assert more[0]["state"] == "NODE_SCHEDULED"
        assert (await second.report(a))["stop"] == []
    finally:
        await second.close()


async def test_background_loop_places_waiting_instances(tmp_path: Path) -> None:
    root = make_root(root_config(tmp_path / "root"), tick_s=0.05)
    try:
        async with root.app.router.lifespan_context(root.app):
            admin = await root.headers()
            await root.deploy(one_service("late", 0.5), admin)
            await root.join(small_cluster("a"))
            deadline = time.monotonic() + 5
            while (await root.instances(admin))[0]["state"] == "REQUESTED":
                assert time.monotonic() < deadline, "not placed by the background loop"
                await anyio.sleep(0.02)
    finally:
        await root.close()


async def test_cluster_lost_while_being_asked_is_not_given_the_instance(root: Root) -> None:
    a = await root.join(small_cluster("a", cpu_m=8000))
    b = await root.join(small_cluster("b", cpu_m=1000))
    admin = await root.headers()
    controller = root.controller
    handle = a.handle

    def lost_meanwhile(request: Any) -> Any:
        # The root's loop declares `a` lost while its answer is on the way.
        controller.clusters[a.id].lost = True
        controller.view.remove_cluster(a.id)
        return handle(request)

    a.handle = lost_meanwhile  # type: ignore[method-assign]
    await root.deploy(one_service("x", 0.5), admin)
    (instance,) = await root.instances(admin)
    assert a.posts == [instance["instance_id"]]
    assert (instance["cluster"], instance["state"]) == ("b", "NODE_SCHEDULED")
    a.handle = handle  # type: ignore[method-assign]
    assert (await root.report(a))["stop"] == [instance["instance_id"]]
    assert b.placed.keys() == {instance["instance_id"]}
