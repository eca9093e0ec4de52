"""Applications, services and instances through Oakestra's routes, with fake clusters."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from harmonia.control.root.store import ApplicationRow, InstanceRow, ServiceRow, TransitionRow
from tests.control.root.fakes import Root, example, small_cluster

pytestmark = pytest.mark.anyio


def states(transitions: list[dict[str, Any]]) -> list[str]:
    return [t["state"] for t in transitions]


async def test_application_lifecycle_on_two_clusters(root: Root) -> None:
    a = await root.join(small_cluster("a"))
    b = await root.join(small_cluster("b"))
    admin = await root.headers()

    created = await root.deploy(example(), admin)
    assert len(created) == 1
    app = created[0]
    assert app["application_name"] == "clientsrvr"
    assert app["userId"] == "admin"
    assert len(app["microservices"]) == 2

    listed = await root.instances(admin)
    assert [i["service"] for i in listed] == ["clientsrvr.curl", "clientsrvr.nginx"]
    assert {i["state"] for i in listed} == {"NODE_SCHEDULED"}
    assert all(i["cluster"] in ("a", "b") and i["node"] for i in listed)
    # Placed through the clusters, with what a node needs to run them.
    sent = {**a.placed, **b.placed}
    assert set(sent) == {i["instance_id"] for i in listed}
    nginx = next(spec for spec in sent.values() if spec.service == "clientsrvr.nginx")
    assert nginx.cmd == ("python3", "-m", "http.server", "6080")
    assert nginx.env == {"MODE": "demo"}
    assert nginx.runtime == "process"
    assert nginx.request.cpu_m == 1000 and nginx.request.memory_mib == 100

    for cluster in (a, b):
        await root.report(cluster)
    running = await root.instances(admin)
    assert {i["state"] for i in running} == {"RUNNING"}
    assert all(i["pid"] == 4242 for i in running)

    one = running[0]["instance_id"]
    detail = (await root.http.get(f"/api/instances/{one}", headers=admin)).json()
    assert states(detail["transitions"]) == [
        "REQUESTED",
        "CLUSTER_SCHEDULED",
        "NODE_SCHEDULED",
        "RUNNING",
    ]
    times = [t["at"] for t in detail["transitions"]]
    assert times == sorted(times)

    services = (await root.http.get(f"/api/services/{app['applicationID']}", headers=admin)).json()
    assert [s["microservice_name"] for s in services] == ["curl", "nginx"]
    assert services[0]["instance_list"][0]["state"] == "RUNNING"
    assert services[0]["virtualization"] == "container" and services[0]["vcpus"] == 1.0

    reply = await root.http.delete(f"/api/application/{app['applicationID']}", headers=admin)
    assert reply.status_code == 200
    assert reply.json() == {"deleted": app["applicationID"]}
    assert sorted(a.deletes + b.deletes) == sorted(i["instance_id"] for i in running)
    assert await root.instances(admin) == []
    gone = await root.http.get(f"/api/application/{app['applicationID']}", headers=admin)
    assert gone.status_code == 404
    with root.controller.store.session() as session:
        assert session.scalar(select(func.count()).select_from(ServiceRow)) == 0
        assert session.scalar(select(func.count()).select_from(TransitionRow)) == 0


async def test_responses_are_json_objects_not_encoded_strings(root: Root) -> None:
    await root.join(small_cluster("a"))
    admin = await root.headers()
    app = (await root.deploy(example(), admin))[0]
    service_id = app["microservices"][0]
    for path, kind in (
        ("/api/applications/", list),
        (f"/api/application/{app['applicationID']}", dict),
        (f"/api/services/{app['applicationID']}", list),
        (f"/api/service/{service_id}", dict),
        ("/api/instances/", list),
        (f"/api/instances/{service_id}.0", dict),
        ("/api/clusters/", list),
        ("/health", dict),
    ):
        reply = await root.http.get(path, headers=admin)
        assert reply.status_code == 200, path
        assert reply.headers["content-type"] == "application/json"
        assert isinstance(reply.json(), kind), path
    service = (await root.http.get(f"/api/service/{service_id}", headers=admin)).json()
    assert service["microserviceID"] == service_id
    assert service["applicationID"] == app["applicationID"]
    assert isinstance(service["instance_list"][0], dict)


async def test_requests_without_token_or_by_another_user_change_nothing(root: Root) -> None:
    cluster = await root.join(small_cluster("a"))
    owner = await root.user("olga", ["app_provider"])
    other = await root.user("mallory", ["app_provider"])
    infra = await root.user("ivan", ["infra_provider"])
    app = (await root.deploy(example(), owner))[0]
    app_id, service_id = app["applicationID"], app["microservices"][0]
    before = await root.instances(owner)
    posts = list(cluster.posts)

    mutations = [
        ("POST", "/api/application/", example()),
        ("PUT", f"/api/application/{app_id}", {"application_desc": "mine now"}),
        ("DELETE", f"/api/application/{app_id}", None),
        ("POST", "/api/service/", {"application_id": app_id, "microservice": {}}),
        ("DELETE", f"/api/service/{service_id}", None),
        ("POST", f"/api/service/{service_id}/instance", None),
        ("DELETE", f"/api/service/{service_id}/instance/0", None),
        ("PUT", f"/api/service/{service_id}/scale", {"replicas": 5}),
    ]
    for method, path, body in mutations:
        reply = await root.http.request(method, path, json=body)
        assert reply.status_code == 401, (method, path)
    for method, path, body in mutations[1:]:
        reply = await root.http.request(method, path, json=body, headers=other)
        assert reply.status_code == 403, (method, path, reply.text)
        assert "another user" in reply.json()["detail"]
    reads = [
        f"/api/application/{app_id}",
        f"/api/services/{app_id}",
        f"/api/service/{service_id}",
        f"/api/instances/{service_id}.0",
        f"/api/instances/?application_id={app_id}",
    ]
    for path in reads:
        assert (await root.http.get(path)).status_code == 401, path
        assert (await root.http.get(path, headers=other)).status_code == 403, path
    # Only their own things are listed to others.
    assert (await root.http.get("/api/applications/", headers=other)).json() == []
    assert await root.instances(other) == []
    # Deploying needs app_provider (or admin).
    refused = await root.http.post("/api/application/", json=example(), headers=infra)
    assert refused.status_code == 403

    assert await root.instances(owner) == before
    assert cluster.posts == posts
    assert (await root.http.get(f"/api/application/{app_id}", headers=owner)).json() == app
    # The admin may act on anyone's application.
    admin = await root.headers()
    assert (await root.http.get(f"/api/application/{app_id}", headers=admin)).status_code == 200


async def test_unknown_ids_are_404(root: Root) -> None:
    admin = await root.headers()
    for method, path in (
        ("GET", "/api/application/nope"),
        ("PUT", "/api/application/nope"),
        ("DELETE", "/api/application/nope"),
        ("GET", "/api/services/nope"),
        ("GET", "/api/service/nope"),
        ("DELETE", "/api/service/nope"),
        ("POST", "/api/service/nope/instance"),
        ("DELETE", "/api/service/nope/instance/0"),
        ("GET", "/api/instances/nope.0"),
        ("GET", "/api/instances/nope.0/logs"),
        ("GET", "/api/clusters/nope"),
    ):
        body = {"application_desc": "x"} if method == "PUT" else None
        reply = await root.http.request(method, path, json=body, headers=admin)
        assert reply.status_code == 404, (method, path, reply.text)
        assert "nope" in reply.json()["detail"]
    reply = await root.http.post(
        "/api/service/", json={"application_id": "nope", "microservice": {}}, headers=admin
    )
    assert reply.status_code == 404


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"memory": -5}, "applications[0].microservices[0].memory: must be > 0"),
        ({"cmd": []}, "applications[0].microservices[0].cmd: needs a command to run"),
        ({"virtualization": "unikernel"}, "applications[0].microservices[0].virtualization:"),
        ({"environment": ["no equals sign"]}, "applications[0].microservices[0].environment[0]:"),
        ({"vtpus": 1}, "applications[0].microservices[0].vtpus: TPUs are not schedulable"),
        ({"colour": "red"}, "applications[0].microservices[0].colour: unknown field"),
    ],
)
async def test_malformed_descriptor_is_refused_naming_the_field_and_nothing_is_stored(
    root: Root, change: dict[str, Any], expected: str
) -> None:
    cluster = await root.join(small_cluster("a"))
    admin = await root.headers()
    reply = await root.http.post("/api/application/", json=example(**change), headers=admin)
    assert reply.status_code == 422, reply.text
    assert any(line.startswith(expected) for line in reply.json()["detail"]), reply.json()
    with root.controller.store.session() as session:
        for table in (ApplicationRow, ServiceRow, InstanceRow, TransitionRow):
            assert session.scalar(select(func.count()).select_from(table)) == 0
    assert cluster.posts == []


async def test_descriptor_that_is_not_an_object_or_not_json_is_422(root: Root) -> None:
    admin = await root.headers()
    reply = await root.http.post("/api/application/", json=["not", "an", "object"], headers=admin)
    assert reply.status_code == 422
    reply = await root.http.post(
        "/api/application/",
        content=b"{not json",
        headers={**admin, "content-type": "application/json"},
    )
    assert reply.status_code == 422
    assert isinstance(reply.json()["detail"], list)


async def test_every_problem_is_reported_at_once(root: Root) -> None:
    admin = await root.headers()
    descriptor = example(memory=0, cmd=[])
    descriptor["applications"][0]["microservices"][1]["vcpus"] = "many"
    reply = await root.http.post("/api/application/", json=descriptor, headers=admin)
    assert reply.status_code == 422
    paths = {line.split(":")[0] for line in reply.json()["detail"]}
    assert {
        "applications[0].microservices[0].memory",
        "applications[0].microservices[1].vcpus",
    } <= paths


async def test_the_same_application_name_twice_is_a_conflict(root: Root) -> None:
    admin = await root.headers()
    await root.deploy(example(), admin)
    reply = await root.http.post("/api/application/", json=example(), headers=admin)
    assert reply.status_code == 409
    assert reply.json()["detail"].startswith("applications[0].application_name:")
    assert len((await root.http.get("/api/applications/", headers=admin)).json()) == 1


async def test_local_root_filesystem_runs_as_oci(root: Root) -> None:
    cluster = await root.join(small_cluster("a"))
    admin = await root.headers()
    await root.deploy(example(code="/srv/images/busybox", cmd=["/bin/sleep", "60"]), admin)
    spec = next(s for s in cluster.placed.values() if s.service == "clientsrvr.curl")
    assert (spec.runtime, spec.image, spec.cmd) == (
        "oci",
        "/srv/images/busybox",
        ("/bin/sleep", "60"),
    )


async def test_scale_up_and_down_and_single_instances(root: Root) -> None:
    cluster = await root.join(small_cluster("a", nodes=4))
    admin = await root.headers()
    app = (await root.deploy(example(), admin))[0]
    service_id = app["microservices"][0]

    up = await root.http.put(
        f"/api/service/{service_id}/scale", json={"replicas": 3}, headers=admin
    )
    assert up.status_code == 200
    assert up.json()["replicas"] == 3
    assert [i["number"] for i in up.json()["instance_list"]] == [0, 1, 2]
    assert all(i["state"] == "NODE_SCHEDULED" for i in up.json()["instance_list"])

    down = await root.http.put(
        f"/api/service/{service_id}/scale", json={"replicas": 1}, headers=admin
    )
    assert [i["number"] for i in down.json()["instance_list"]] == [0]
    assert sorted(cluster.deletes) == [f"{service_id}.1", f"{service_id}.2"]

    added = await root.http.post(f"/api/service/{service_id}/instance", headers=admin)
    assert added.status_code == 201
    # Numbers are never reused, so each instance's history stays its own.
    assert added.json()["number"] == 3
    assert added.json()["instance_id"] == f"{service_id}.3"
    assert states(added.json()["transitions"]) == [
        "REQUESTED",
        "CLUSTER_SCHEDULED",
        "NODE_SCHEDULED",
    ]

    removed = await root.http.delete(f"/api/service/{service_id}/instance/0", headers=admin)
    assert removed.status_code == 200
    service = (await root.http.get(f"/api/service/{service_id}", headers=admin)).json()
    assert service["replicas"] == 1
    assert [i["number"] for i in service["instance_list"]] == [3]
    assert (
        await root.http.delete(f"/api/service/{service_id}/instance/0", headers=admin)
    ).status_code == 404

    for bad in ({"replicas": -1}, {"replicas": "2"}, {"replicas": 2, "extra": 1}, {}):
        reply = await root.http.put(f"/api/service/{service_id}/scale", json=bad, headers=admin)
        assert reply.status_code == 422, bad
    assert (await root.http.get(f"/api/service/{service_id}", headers=admin)).json() == service


async def test_add_and_delete_a_service(root: Root) -> None:
    cluster = await root.join(small_cluster("a"))
    admin = await root.headers()
    app = (await root.deploy(example(), admin))[0]
    microservice = dict(example()["applications"][0]["microservices"][0])
    microservice.update(microservice_name="worker", replicas=2)

    reply = await root.http.post(
        "/api/service/",
        json={"application_id": app["applicationID"], "microservice": microservice},
        headers=admin,
    )
    assert reply.status_code == 201, reply.text
    service = reply.json()
    assert service["microservice_name"] == "worker"
    assert len(service["instance_list"]) == 2
    application = (
        await root.http.get(f"/api/application/{app['applicationID']}", headers=admin)
    ).json()
    assert application["microservices"][-1] == service["microserviceID"]

    broken = dict(microservice, microservice_name="broken", memory=0)
    reply = await root.http.post(
        "/api/service/",
        json={"application_id": app["applicationID"], "microservice": broken},
        headers=admin,
    )
    assert reply.status_code == 422
    assert reply.json()["detail"] == ["microservice.memory: must be > 0"]
    duplicate = await root.http.post(
        "/api/service/",
        json={"application_id": app["applicationID"], "microservice": microservice},
        headers=admin,
    )
    assert duplicate.status_code == 422
    assert duplicate.json()["detail"][0].startswith("microservice.microservice_name: duplicate")

    reply = await root.http.delete(f"/api/service/{service['microserviceID']}", headers=admin)
    assert reply.status_code == 200
    assert {f"{service['microserviceID']}.0", f"{service['microserviceID']}.1"} <= set(
        cluster.deletes
    )
    assert (
        await root.http.get(f"/api/service/{service['microserviceID']}", headers=admin)
    ).status_code == 404


async def test_rename_application(root: Root) -> None:
    await root.join(small_cluster("a"))
    admin = await root.headers()
    app = (await root.deploy(example(), admin))[0]
    other = example()
    other["applications"][0]["application_name"] = "other"
    await root.deploy(other, admin)
    path = f"/api/application/{app['applicationID']}"

    reply = await root.http.put(
        path, json={"application_name": "shop", "application_desc": "d"}, headers=admin
    )
    assert reply.status_code == 200
    assert (reply.json()["application_name"], reply.json()["application_desc"]) == ("shop", "d")
    instances = await root.instances(admin)
    assert {i["service"] for i in instances if i["application_id"] == app["applicationID"]} == {
        "shop.curl",
        "shop.nginx",
    }
    taken = await root.http.put(path, json={"application_name": "other"}, headers=admin)
    assert taken.status_code == 409
    invalid = await root.http.put(path, json={"application_name": "not valid!"}, headers=admin)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0].startswith("application_name:")
    assert (await root.http.get(path, headers=admin)).json()["application_name"] == "shop"


async def test_logs_are_proxied_to_the_instance_cluster(root: Root) -> None:
    await root.join(small_cluster("a"))
    admin = await root.headers()
    app = (await root.deploy(example(), admin))[0]
    instance_id = f"{app['microservices'][0]}.0"
    reply = await root.http.get(
        f"/api/instances/{instance_id}/logs?stream=stderr&tail=5", headers=admin
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text == f"{instance_id} stderr tail=5\n"
    bad = await root.http.get(f"/api/instances/{instance_id}/logs?stream=stdin", headers=admin)
    assert bad.status_code == 422
    assert bad.json()["detail"][0].startswith("stream:")


async def test_instance_that_no_cluster_takes_waits_with_the_reason(root: Root) -> None:
    admin = await root.headers()
    app = (await root.deploy(example(), admin))[0]
    instances = await root.instances(admin)
    assert {i["state"] for i in instances} == {"REQUESTED"}
    assert all("no active cluster" in i["detail"] for i in instances)
    reply = await root.http.get(f"/api/instances/{app['microservices'][0]}.0/logs", headers=admin)
    assert reply.status_code == 409

    cluster = await root.join(small_cluster("a"))
    await root.controller.tick()  # the background loop's round
    placed = await root.instances(admin)
    assert {i["state"] for i in placed} == {"NODE_SCHEDULED"}
    assert all(i["cluster"] == "a" and i["detail"] == "" for i in placed)
    assert len(cluster.placed) == 2
