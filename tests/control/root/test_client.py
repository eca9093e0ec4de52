"""RootClient (the CLI's client) against a root served by uvicorn in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from harmonia.control import serve
from harmonia.control.root.client import RootClient, RootError
from tests.control.root.fakes import (
    Clusters,
    FakeCluster,
    Root,
    example,
    make_root,
    root_config,
    small_cluster,
)


@dataclass
class Served:
    url: str
    root: Root
    clusters: Clusters


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    clusters = Clusters()
    root = make_root(root_config(tmp_path / "root"), clusters)
    sock = serve.bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(root.app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the root did not start"
        time.sleep(0.01)
    try:
        yield Served(serve.url_of(sock), root, clusters)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        asyncio.run(root.close())


def join(served: Served, client: RootClient, cluster: FakeCluster) -> None:
    token = client.create_cluster_token()
    reply = httpx.post(
        f"{served.url}/api/clusters/register",
        json={"name": cluster.name, "url": cluster.url, "join_token": token},
    )
    cluster.id, cluster.secret = reply.json()["id"], reply.json()["secret"]
    served.clusters.add(cluster)
    reply = httpx.post(
        f"{served.url}/api/clusters/{cluster.id}/report",
        json=cluster.report(),
        headers={"Authorization": f"Bearer {cluster.secret}"},
    )
    assert reply.status_code == 200


def test_client_drives_a_whole_deployment(served: Served) -> None:
    with RootClient(served.url) as client:
        tokens = client.login("admin", served.root.admin_password)
        assert tokens["token_type"] == "bearer"
        join(served, client, small_cluster("a", nodes=3))

        (app,) = client.deploy(example())
        app_id = app["applicationID"]
        assert [a["applicationID"] for a in client.applications()] == [app_id]
        assert client.application(app_id)["application_name"] == "clientsrvr"
        services = client.services(app_id)
        curl = services[0]["microserviceID"]
        assert client.service(curl)["microservice_name"] == "curl"

        scaled = client.scale(curl, 2)
        assert [i["number"] for i in scaled["instance_list"]] == [0, 1]
        assert len(client.instances()) == 3
        assert len(client.instances(application_id=app_id)) == 3
        assert client.instance(f"{curl}.1")["transitions"][0]["state"] == "REQUESTED"
        assert client.logs(f"{curl}.0", "stdout", 10) == f"{curl}.0 stdout tail=10\n"
        assert [c["name"] for c in client.clusters()] == ["a"]

        assert client.delete_application(app_id) == {"deleted": app_id}
        assert client.instances() == []


def test_client_errors_carry_the_root_detail_and_status(served: Served) -> None:
    with RootClient(served.url) as anonymous:
        with pytest.raises(RootError) as refused:
            anonymous.applications()
        assert refused.value.status == 401
        with pytest.raises(RootError) as bad_login:
            anonymous.login("admin", "wrong")
        assert bad_login.value.detail == "invalid username or password"

    with RootClient(served.url) as client:
        client.login("admin", served.root.admin_password)
        with pytest.raises(RootError) as invalid:
            client.deploy(example(memory=0))
        assert invalid.value.status == 422
        assert "applications[0].microservices[0].memory: must be > 0" in str(invalid.value)
        with pytest.raises(RootError) as missing:
            client.scale("nope", 1)
        assert missing.value.status == 404


def test_client_renews_an_expired_access_token_once(served: Served) -> None:
    with RootClient(served.url) as client:
        client.login("admin", served.root.admin_password)
        client.token = "expired-or-garbage"
        assert client.clusters() == []
        assert client.token != "expired-or-garbage"
        assert client.refresh()["access_token"]


def test_unreachable_root_is_a_root_error_without_status() -> None:
    sock = serve.bind("127.0.0.1", 0)
    url = serve.url_of(sock)
    sock.close()  # nothing listens there now
    with RootClient(url, timeout_s=2) as client, pytest.raises(RootError) as unreachable:
        client.clusters()
    assert unreachable.value.status is None
    assert "unreachable" in str(unreachable.value)
