"""A root app in process, fake cluster managers behind a mock transport, and helpers.

The root's outgoing calls go through an ``httpx.AsyncClient`` whose transport routes
each request by host to a :class:`FakeCluster`, which places instances on its nodes
first-fit, records what it was asked, and builds the reports a real manager would send.
Tests talk to the root through ``httpx.ASGITransport``: no sockets, no threads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher
from fastapi import FastAPI

from harmonia.control.config import RootConfig
from harmonia.control.protocol import (
    ClusterReport,
    InstanceSpec,
    InstanceStatus,
    NodeReport,
    PlaceReply,
)
from harmonia.control.root.app import create_app
from harmonia.control.root.auth import Authenticator, load_signing_key
from harmonia.control.root.controller import RootController
from harmonia.model import InstanceState, Node, Resources

# Cheap hashing for tests that log in often; one test checks the production defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

EXAMPLE = {
    "sla_version": "v2.0",
    "customerID": "Admin",
    "applications": [
        {
            "applicationID": "",
            "application_name": "clientsrvr",
            "application_namespace": "test",
            "application_desc": "curl client and a server",
            "microservices": [
                {
                    "microserviceID": "",
                    "microservice_name": "curl",
                    "microservice_namespace": "test",
                    "virtualization": "container",
                    "cmd": ["sh", "-c", "echo client up; sleep 3600"],
                    "memory": 100,
                    "vcpus": 1,
                    "code": "docker.io/curlimages/curl:7.82.0",
                    "port": "9080",
                },
                {
                    "microserviceID": "",
                    "microservice_name": "nginx",
                    "microservice_namespace": "test",
                    "virtualization": "container",
                    "cmd": ["python3", "-m", "http.server", "6080"],
                    "memory": 100,
                    "vcpus": 1,
                    "code": "docker.io/library/nginx:latest",
                    "port": "6080:60/tcp",
                    "environment": ["MODE=demo"],
                },
            ],
        }
    ],
}


def example(**changes: Any) -> dict[str, Any]:
    """A copy of :data:`EXAMPLE`; ``changes`` replace fields of its first microservice."""
    data: dict[str, Any] = json.loads(json.dumps(EXAMPLE))
    data["applications"][0]["microservices"][0].update(changes)
    return data


class ClusterDown(Exception):
    pass


@dataclass
class FakeCluster:
    """A cluster manager as the root sees it."""

    name: str
    nodes: dict[str, Resources]  # node name -> allocatable
    id: str = ""
    secret: str = ""
    refuse: bool = False
    down: bool = False
    placed: dict[str, InstanceSpec] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # instance -> node
    posts: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.name}.test"

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.headers.get("authorization") != f"Bearer {self.secret}":
            return httpx.Response(401, json={"detail": "wrong secret"})
        path = request.url.path
        if request.method == "POST" and path == "/api/instances":
            spec = InstanceSpec.model_validate_json(request.content)
            self.posts.append(spec.instance_id)
            node = self._fit(spec)
            if self.refuse or node is None:
                reply = PlaceReply(placed=False, instance_id=spec.instance_id, reasons=["full"])
                return httpx.Response(409, json=reply.model_dump(mode="json"))
            self.placed[spec.instance_id] = spec
            self.where[spec.instance_id] = node
            reply = PlaceReply(placed=True, instance_id=spec.instance_id, node=node)
            return httpx.Response(201, json=reply.model_dump(mode="json"))
        if request.method == "DELETE" and path.startswith("/api/instances/"):
            instance_id = path.rsplit("/", 1)[1]
            self.deletes.append(instance_id)
            found = self.placed.pop(instance_id, None)
            self.where.pop(instance_id, None)
            return httpx.Response(204 if found else 404)
        if request.method == "GET" and path.endswith("/logs"):
            instance_id = path.split("/")[3]
            params = request.url.params
            return httpx.Response(
                200, text=f"{instance_id} {params['stream']} tail={params['tail']}\n"
            )
        return httpx.Response(404, json={"detail": "no such route"})

    def _fit(self, spec: InstanceSpec) -> str | None:
        for node in self.nodes:
            if spec.resources.fits_in(self.free(node)):
                return node
        return None

    def free(self, node: str) -> Resources:
        allocatable = self.nodes[node].as_tuple()
        used = [0] * len(allocatable)
        for instance_id, where in self.where.items():
            if where == node:
                amounts = self.placed[instance_id].resources.as_tuple()
                used = [u + a for u, a in zip(used, amounts, strict=True)]
        return Resources.from_tuple([a - u for a, u in zip(allocatable, used, strict=True)])

    def report(
        self,
        states: dict[str, InstanceState] | None = None,
        *,
        extra: list[InstanceStatus] | None = None,
    ) -> dict[str, Any]:
        """A report of every placed instance (RUNNING unless ``states`` says otherwise)."""
        states = states or {}
        statuses = [
            InstanceStatus(
                instance_id=instance_id,
                state=states.get(instance_id, InstanceState.RUNNING),
                node=self.where[instance_id],
                cluster=self.name,
                pid=4242,
                started_at=1.0,
            )
            for instance_id in self.placed
        ]
        report = ClusterReport(
            name=self.name,
            nodes=[
                NodeReport(
                    node=Node(name=node, cluster=self.name, capacity=allocatable),
                    free=self.free(node),
                    healthy=True,
                )
                for node, allocatable in self.nodes.items()
            ],
            instances=[*statuses, *(extra or [])],
        )
        return report.model_dump(mode="json")


def small_cluster(
    name: str, nodes: int = 2, cpu_m: int = 2000, memory_mib: int = 2048
) -> FakeCluster:
    return FakeCluster(
        name,
        {
            f"{name}-node-{n + 1}": Resources(cpu_m=cpu_m, memory_mib=memory_mib)
            for n in range(nodes)
        },
    )


class Clusters:
    """Routes the root's outgoing requests to fake clusters by host."""

    def __init__(self) -> None:
        self.by_host: dict[str, FakeCluster] = {}

    def add(self, cluster: FakeCluster) -> FakeCluster:
        self.by_host[f"{cluster.name}.test"] = cluster
        return cluster

    def handle(self, request: httpx.Request) -> httpx.Response:
        cluster = self.by_host.get(request.url.host)
        if cluster is None:
            raise httpx.ConnectError("no such host", request=request)
        return cluster.handle(request)


@dataclass
class Root:
    """A root app in process and a client to it."""

    app: FastAPI
    http: httpx.AsyncClient
    config: RootConfig
    clusters: Clusters
    admin_password: str

    @property
    def controller(self) -> RootController:
        controller = self.app.state.controller
        assert isinstance(controller, RootController)
        return controller

    async def token(self, username: str = "admin", password: str | None = None) -> str:
        reply = await self.http.post(
            "/api/auth/login",
            json={"username": username, "password": password or self.admin_password},
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    async def headers(self, username: str = "admin", password: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(username, password)}"}

    async def user(self, username: str, roles: list[str]) -> dict[str, str]:
        """Create a user (as admin) and return its auth headers."""
        password = f"{username}-password-1"
        reply = await self.http.post(
            "/api/users",
            json={"username": username, "password": password, "roles": roles},
            headers=await self.headers(),
        )
        assert reply.status_code == 201, reply.text
        return await self.headers(username, password)

    async def join(self, cluster: FakeCluster) -> FakeCluster:
        """Register ``cluster`` with a fresh join token and send its first report."""
        reply = await self.http.post(
            "/api/clusters/tokens", json={"ttl_s": 600}, headers=await self.headers()
        )
        assert reply.status_code == 201, reply.text
        registration = {
            "name": cluster.name,
            "url": cluster.url,
            "join_token": reply.json()["token"],
        }
        reply = await self.http.post("/api/clusters/register", json=registration)
        assert reply.status_code == 200, reply.text
        cluster.id, cluster.secret = reply.json()["id"], reply.json()["secret"]
        self.clusters.add(cluster)
        await self.report(cluster)
        return cluster

    async def report(self, cluster: FakeCluster, **kwargs: Any) -> dict[str, Any]:
        reply = await self.http.post(
            f"/api/clusters/{cluster.id}/report",
            json=cluster.report(**kwargs),
            headers={"Authorization": f"Bearer {cluster.secret}"},
        )
        assert reply.status_code == 200, reply.text
        result: dict[str, Any] = reply.json()
        return result

    async def deploy(self, descriptor: dict[str, Any], headers: dict[str, str]) -> list[Any]:
        reply = await self.http.post("/api/application/", json=descriptor, headers=headers)
        assert reply.status_code == 201, reply.text
        created: list[Any] = reply.json()
        return created

    async def instances(self, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        reply = await self.http.get("/api/instances/", headers=headers or await self.headers())
        assert reply.status_code == 200, reply.text
        found: list[dict[str, Any]] = reply.json()
        return found

    async def close(self) -> None:
        await self.http.aclose()
        await self.controller.client.aclose()
        await self.controller.close()


def root_config(state_dir: Path, **changes: Any) -> RootConfig:
    settings: dict[str, Any] = {"admin_password_file": state_dir / "admin.json", **changes}
    return RootConfig(state_dir=state_dir, **settings)


def make_root(config: RootConfig, clusters: Clusters | None = None, *, tick_s: float = 1.0) -> Root:
    clusters = clusters or Clusters()
    outgoing = httpx.AsyncClient(transport=httpx.MockTransport(clusters.handle))
    authenticator = Authenticator(
        load_signing_key(config.state_dir),
        access_ttl_s=config.access_ttl_s,
        refresh_ttl_s=config.refresh_ttl_s,
        hasher=FAST_HASHER,
    )
    app = create_app(config, client=outgoing, authenticator=authenticator, tick_s=tick_s)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://root.test")
    password = ""
    if config.admin_password_file is not None and config.admin_password_file.exists():
        password = json.loads(config.admin_password_file.read_text())["password"]
    return Root(app, http, config, clusters, password)
