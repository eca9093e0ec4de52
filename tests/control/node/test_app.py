"""The node engine's HTTP API, in process (ASGI), with a fake cluster manager behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from harmonia.control.node.__main__ import main
from harmonia.control.node.app import create_app
from tests.control.node.fakes import (
    NODE_URL,
    FakeCluster,
    eventually,
    eventually_async,
    node_config,
    pid_alive,
    spec,
)

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(state_dir: Path, cluster: FakeCluster) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (the engine started), and a client for it that
    holds the node's secret once the node has registered."""
    app = create_app(node_config(state_dir), url=NODE_URL, client=cluster.client())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://node.test") as client,
    ):
        await eventually(lambda: cluster.registrations, what="registration")
        client.headers["Authorization"] = f"Bearer {cluster.secret}"
        yield client


@pytest.fixture
async def api(tmp_path: Path, cluster: FakeCluster) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(tmp_path, cluster) as client:
        yield client


def body(instance_id: str, *cmd: str, **overrides: object) -> dict[str, object]:
    return spec(instance_id, *cmd, **overrides).model_dump(mode="json")


async def state_of(api: httpx.AsyncClient, instance_id: str) -> str:
    response = await api.get(f"/api/instances/{instance_id}")
    assert response.status_code == 200
    state: str = response.json()["state"]
    return state


async def test_health_needs_no_token(api: httpx.AsyncClient) -> None:
    response = await api.get("/health", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "node": "node-a",
        "registered": True,
        "cluster_reachable": True,
        "instances": 0,
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/instances"),
        ("GET", "/api/instances/web.0"),
        ("DELETE", "/api/instances/web.0"),
        ("GET", "/api/instances/web.0/logs"),
        ("POST", "/api/instances"),
    ],
)
@pytest.mark.parametrize("authorization", ["", "Bearer wrong-secret", "Basic secret-1", "Bearer"])
async def test_every_route_needs_the_nodes_secret(
    api: httpx.AsyncClient, method: str, path: str, authorization: str
) -> None:
    json = body("web.0", "sleep", "30") if method == "POST" else None
    response = await api.request(method, path, json=json, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert "secret" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await api.get("/api/instances")).json() == []


async def test_no_secret_is_valid_before_the_node_registered(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    cluster.down = True
    app = create_app(node_config(tmp_path), url=NODE_URL, client=cluster.client())
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://node.test") as client,
    ):
        health = (await client.get("/health")).json()
        assert health["registered"] is False
        for secret in ("", "None", "secret-0"):
            response = await client.get(
                "/api/instances", headers={"Authorization": f"Bearer {secret}"}
            )
            assert response.status_code == 401


async def test_start_list_logs_and_stop_an_instance(api: httpx.AsyncClient) -> None:
    script = "echo one; echo two; echo three; echo err >&2; sleep 30"
    response = await api.post("/api/instances", json=body("web.0", "sh", "-c", script))
    assert response.status_code == 202
    assert response.json()["instance_id"] == "web.0"
    assert response.json()["state"] in ("NODE_SCHEDULED", "RUNNING")

    async def running() -> bool:
        return await state_of(api, "web.0") == "RUNNING"

    await eventually_async(running)
    again = await api.post("/api/instances", json=body("web.0", "sh", "-c", script))
    assert again.status_code == 202 and again.json()["state"] == "RUNNING"
    listed = (await api.get("/api/instances")).json()
    assert [item["instance_id"] for item in listed] == ["web.0"]
    assert listed[0]["pid"] == again.json()["pid"] and listed[0]["node"] == "node-a"
    pid = listed[0]["pid"]
    assert pid_alive(pid)

    async def logs(**params: str | int) -> str:
        response = await api.get("/api/instances/web.0/logs", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    async def three_lines() -> bool:
        return await logs() == "one\ntwo\nthree\n"

    await eventually_async(three_lines, what="three lines of output")
    assert await logs(tail=2) == "two\nthree\n"
    assert await logs(stream="stderr") == "err\n"
    assert await logs(stream="stdout", tail=0) == ""

    assert (await api.delete("/api/instances/web.0")).status_code == 204
    assert not pid_alive(pid)
    assert (await api.delete("/api/instances/web.0")).status_code == 204
    assert (await api.delete("/api/instances/never-known")).status_code == 204
    # The stop is reported, then the instance forgotten; its logs outlive it.
    assert await logs(stream="stderr") == "err\n"


async def test_bad_requests_are_refused_naming_the_field(api: httpx.AsyncClient) -> None:
    no_cmd = body("web.0", "sleep", "1")
    no_cmd["cmd"] = []
    response = await api.post("/api/instances", json=no_cmd)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "cmd"]

    unknown_field = body("web.0", "sleep", "1") | {"shell": True}
    assert (await api.post("/api/instances", json=unknown_field)).status_code == 422

    escape = await api.post("/api/instances", json=body("../../etc", "sleep", "1"))
    assert escape.status_code == 422
    assert escape.json()["detail"].startswith("instance_id:")

    no_image = await api.post("/api/instances", json=body("c.0", "sh", runtime="oci"))
    assert no_image.status_code == 422
    assert no_image.json()["detail"].startswith("image:")

    bad_stream = await api.get("/api/instances/web.0/logs", params={"stream": "stdin"})
    assert bad_stream.status_code == 422
    assert bad_stream.json()["detail"][0]["loc"] == ["query", "stream"]
    bad_tail = await api.get("/api/instances/web.0/logs", params={"tail": -1})
    assert bad_tail.status_code == 422

    # Nothing was started by any of these.
    assert (await api.get("/api/instances")).json() == []
    unknown = await api.get("/api/instances/web.0/logs")
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("instance_id:")
    assert (await api.get("/api/instances/web.0")).status_code == 404
    assert (await api.get("/api/instances/..%2F..%2Fetc/logs")).status_code == 404


async def test_shutting_down_stops_the_instances(tmp_path: Path, cluster: FakeCluster) -> None:
    async with serving(tmp_path, cluster) as api:
        await api.post("/api/instances", json=body("web.0", "sleep", "30"))

        async def running() -> bool:
            return await state_of(api, "web.0") == "RUNNING"

        await eventually_async(running)
        pid = (await api.get("/api/instances/web.0")).json()["pid"]
        assert pid_alive(pid)
    assert not pid_alive(pid)


def test_main_reports_a_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "node.json"
    config.write_text('{"state_dir": "x", "cluster_url": "http://c", "join_token": "short"}')
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harmonia node: ") and "join_token" in err and "node" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["--config", str(tmp_path / "missing.json")]) == 2
    assert "no such configuration file" in capsys.readouterr().err
