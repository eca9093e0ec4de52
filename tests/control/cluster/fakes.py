"""Fake peers of a cluster manager: a root and node engines behind an httpx mock transport.

The cluster manager under test gets ``httpx.AsyncClient(transport=network.transport())``;
every outgoing call lands in :meth:`FakeNetwork.handle`, which routes it by host to the
:class:`FakeRoot` (``root.test``) or a :class:`FakeNode` (``<name>.node.test``). A peer
marked unreachable raises ``httpx.ConnectError``, as a dead process's port would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harmonia.control.config import ClusterConfig
from harmonia.control.protocol import (
    ClusterRegistration,
    ClusterReport,
    Heartbeat,
    InstanceSpec,
    InstanceState,
    InstanceStatus,
    Registered,
    ReportReply,
    Usage,
)
from harmonia.model import Node, PlacementRequest, Resources

from .harness import RunningApp

ROOT_URL = "http://root.test"
ROOT_TOKEN = "root-join-token-0123456789"
NODE_TOKEN = "node-join-token-0123456789"
CLUSTER_SECRET = "cluster-secret-from-the-root"


def node_url(name: str) -> str:
    return f"http://{name}.node.test"


@dataclass
class FakeRoot:
    reachable: bool = True
    registrations: list[ClusterRegistration] = field(default_factory=list)
    reports: list[tuple[str, str, ClusterReport]] = field(default_factory=list)  # id, bearer
    replies: list[ReportReply] = field(default_factory=list)  # given out one per report

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/clusters/register":
            registration = ClusterRegistration.model_validate_json(request.content)
            if registration.join_token != ROOT_TOKEN:
                return httpx.Response(401, json={"detail": "bad join token"})
            if self.registrations:
                return httpx.Response(401, json={"detail": "join token already used"})
            self.registrations.append(registration)
            return httpx.Response(
                200, json=Registered(id="cluster-1", secret=CLUSTER_SECRET).model_dump()
            )
        if path.startswith("/api/clusters/") and path.endswith("/report"):
            cluster_id = path.split("/")[3]
            report = ClusterReport.model_validate_json(request.content)
            self.reports.append((cluster_id, request.headers.get("authorization", ""), report))
            reply = self.replies.pop(0) if self.replies else ReportReply()
            return httpx.Response(200, json=reply.model_dump(mode="json"))
        return httpx.Response(404, json={"detail": f"no route {path}"})

    def last_report(self) -> ClusterReport | None:
        return self.reports[-1][2] if self.reports else None


@dataclass
class FakeNode:
    """A node engine: answers POST/DELETE/logs as the protocol says; beats on request."""

    name: str
    cpu_m: int = 4000
    memory_mib: int = 4096
    reachable: bool = True
    secret: str = ""
    answer_state: InstanceState = InstanceState.RUNNING
    delay_s: float = 0.0  # how long a POST takes, to overlap placements
    posted: list[InstanceSpec] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bearers: list[str] = field(default_factory=list)
    running: dict[str, InstanceStatus] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return node_url(self.name)

    def model(self, **changes: object) -> Node:
        return Node(
            name=self.name,
            capacity=Resources(cpu_m=self.cpu_m, memory_mib=self.memory_mib),
            **changes,  # type: ignore[arg-type]
        )

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.bearers.append(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != f"Bearer {self.secret}":
            return httpx.Response(401, json={"detail": "wrong node secret"})
        path = request.url.path
        if request.method == "POST" and path == "/api/instances":
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            spec = InstanceSpec.model_validate_json(request.content)
            self.posted.append(spec)
            status = InstanceStatus(
                instance_id=spec.instance_id,
                state=self.answer_state,
                node=self.name,
                pid=4242,
                started_at=time.time(),
            )
            self.running[spec.instance_id] = status
            return httpx.Response(202, json=status.model_dump(mode="json"))
        if request.method == "DELETE" and path.startswith("/api/instances/"):
            instance_id = path.rsplit("/", 1)[1]
            self.deleted.append(instance_id)
            self.running.pop(instance_id, None)
            return httpx.Response(204)
        if request.method == "GET" and path.endswith("/logs"):
            instance_id = path.split("/")[3]
            stream = request.url.params.get("stream")
            tail = request.url.params.get("tail")
            return httpx.Response(200, text=f"{instance_id} {stream} tail={tail}\n")
        return httpx.Response(404, json={"detail": f"no route {path}"})

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            usage=Usage(cpu_percent=1.0, memory_used_mib=100, memory_total_mib=self.memory_mib),
            instances=list(self.running.values()),
        )

    def posts_of(self, instance_id: str) -> int:
        return sum(1 for spec in self.posted if spec.instance_id == instance_id)


class FakeNetwork:
    def __init__(self) -> None:
        self.root = FakeRoot()
        self.nodes: dict[str, FakeNode] = {}

    def add_node(self, name: str, **kwargs: object) -> FakeNode:
        node = FakeNode(name, **kwargs)  # type: ignore[arg-type]
        self.nodes[name] = node
        return node

    async def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == "root.test":
            if not self.root.reachable:
                raise httpx.ConnectError("connection refused", request=request)
            return self.root.handle(request)
        name = host.removesuffix(".node.test")
        node = self.nodes.get(name)
        if node is None or not node.reachable:
            raise httpx.ConnectError("connection refused", request=request)
        return await node.handle(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))


def cluster_config(state_dir: Path, **changes: object) -> ClusterConfig:
    values: dict[str, object] = {
        "state_dir": state_dir,
        "name": "c1",
        "root_url": ROOT_URL,
        "root_join_token": ROOT_TOKEN,
        "node_join_token": NODE_TOKEN,
        # Long by default so that nodes never die in tests that are not about failures.
        "heartbeat_interval_s": 5.0,
        "report_interval_s": 0.2,
    }
    values.update(changes)
    return ClusterConfig.model_validate(values)


def spec(
    instance_id: str = "svc1.0", cpu_m: int = 500, memory_mib: int = 256, **changes: object
) -> InstanceSpec:
    service_id = instance_id.rsplit(".", 1)[0]
    values: dict[str, object] = {
        "instance_id": instance_id,
        "service_id": service_id,
        "application_id": "app1",
        "service": "app.web",
        "number": int(instance_id.rsplit(".", 1)[1]),
        "cmd": ["sleep", "60"],
        "request": PlacementRequest(
            id=instance_id, service="app.web", cpu_m=cpu_m, memory_mib=memory_mib
        ),
    }
    values.update(changes)
    return InstanceSpec.model_validate(values)


ROOT_AUTH = {"Authorization": f"Bearer {CLUSTER_SECRET}"}


def register(tc: RunningApp, node: FakeNode, **changes: object) -> None:
    response = tc.post(
        "/api/nodes/register",
        json={
            "node": json.loads(node.model(**changes).model_dump_json()),
            "url": node.url,
            "join_token": NODE_TOKEN,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == node.name
    node.secret = response.json()["secret"]


def beat(tc: RunningApp, node: FakeNode) -> dict[str, list[object]]:
    response = tc.post(
        f"/api/nodes/{node.name}/heartbeat",
        content=node.heartbeat().model_dump_json(),
        headers={"Authorization": f"Bearer {node.secret}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    reply: dict[str, list[object]] = response.json()
    return reply


def place(tc: RunningApp, instance: InstanceSpec) -> httpx.Response:
    return tc.post(
        "/api/instances",
        content=instance.model_dump_json(),
        headers={**ROOT_AUTH, "Content-Type": "application/json"},
    )


def wait_for(
    condition: Callable[[], object],
    *,
    timeout_s: float = 5.0,
    between: Callable[[], object] | None = None,
    message: str = "condition",
) -> None:
    """Poll ``condition`` until true (``between`` runs each round, e.g. heartbeats)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        if between is not None:
            between()
        time.sleep(0.01)
