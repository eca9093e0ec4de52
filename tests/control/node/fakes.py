"""A fake cluster manager for node engine tests, specs and configs, and helpers that wait
for a condition with a deadline instead of fixed sleeps."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from harmonia.control.config import NodeConfig
from harmonia.control.node.engine import Engine
from harmonia.control.protocol import (
    Heartbeat,
    HeartbeatReply,
    InstanceSpec,
    InstanceStatus,
    NodeRegistration,
    Registered,
)
from harmonia.model import Node, PlacementRequest, Resources

JOIN_TOKEN = "node-join-token-0123456789"
NODE_URL = "http://127.0.0.1:9"


class FakeCluster:
    """Answers registrations and heartbeats like a cluster manager, over a MockTransport.

    ``down``: every call fails to connect; ``forget``: heartbeats are answered 404 (the
    manager restarted), until the node registers again; ``replies``: the next heartbeat
    replies, one per heartbeat."""

    def __init__(self) -> None:
        self.registrations: list[NodeRegistration] = []
        self.heartbeats: list[Heartbeat] = []
        self.replies: list[HeartbeatReply] = []
        self.down = False
        self.forget = False
        self.secret = "secret-0"

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/api/nodes/register":
            registration = NodeRegistration.model_validate_json(request.content)
            if registration.join_token != JOIN_TOKEN:
                return httpx.Response(401, json={"detail": "join_token: invalid"})
            self.registrations.append(registration)
            self.secret = f"secret-{len(self.registrations)}"
            self.forget = False
            body = Registered(id=registration.node.name, secret=self.secret)
            return httpx.Response(200, content=body.model_dump_json())
        if request.url.path.endswith("/heartbeat"):
            if self.forget:
                return httpx.Response(404, json={"detail": "name: unknown node"})
            if request.headers.get("authorization") != f"Bearer {self.secret}":
                return httpx.Response(401, json={"detail": "bad secret"})
            self.heartbeats.append(Heartbeat.model_validate_json(request.content))
            reply = self.replies.pop(0) if self.replies else HeartbeatReply()
            return httpx.Response(200, content=reply.model_dump_json())
        return httpx.Response(404, json={"detail": "no such route"})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def last_status(self, instance_id: str) -> InstanceStatus | None:
        for heartbeat in reversed(self.heartbeats):
            for status in heartbeat.instances:
                if status.instance_id == instance_id:
                    return status
        return None


def node_config(state_dir: Path, **overrides: Any) -> NodeConfig:
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "node": Node(name="node-a", capacity=Resources(cpu_m=2000, memory_mib=2048)),
        "cluster_url": "http://cluster.test",
        "join_token": JOIN_TOKEN,
        "heartbeat_interval_s": 0.2,
        "use_cgroups": False,
    }
    values.update(overrides)
    return NodeConfig.model_validate(values)


def spec(instance_id: str, *cmd: str, **overrides: Any) -> InstanceSpec:
    service_id = instance_id.rsplit(".", 1)[0]
    values: dict[str, Any] = {
        "instance_id": instance_id,
        "service_id": service_id,
        "application_id": "app",
        "service": "app.web",
        "number": 0,
        "cmd": cmd,
        "request": PlacementRequest(id=instance_id),
    }
    values.update(overrides)
    return InstanceSpec.model_validate(values)


async def eventually(
    predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def eventually_async(
    predicate: Callable[[], Awaitable[object]], timeout: float = 5.0, what: str = "condition"
) -> None:
    """:func:`eventually` for a predicate that must be awaited (an HTTP call)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running_engine(
    state_dir: Path,
    cluster: FakeCluster,
    *,
    config: dict[str, Any] | None = None,
    **engine_options: Any,
) -> AsyncIterator[Engine]:
    """A started engine talking to ``cluster``; closed (its instances stopped) on exit."""
    engine = Engine(
        node_config(state_dir, **(config or {})), NODE_URL, cluster.client(), **engine_options
    )
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()
        await engine.client.aclose()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it has exited all the same.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
