"""The cluster manager's HTTP API: what the root and the node engines call.

Routes and messages follow :mod:`harmonia.control.protocol`. Three kinds of callers, three
credentials, all compared in constant time:

- the root: ``Authorization: Bearer <cluster secret>``, the secret the root issued when
  this cluster registered (:mod:`.root_link`);
- node engines registering: the cluster's node join token in the body;
- node engines afterwards: ``Authorization: Bearer <node secret>``, issued at registration.

Every handler is ``async`` so that it runs on the event loop, like the background loops:
the manager's model is then only ever touched by one thread, and a decision and its
reservation can never interleave with another request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from harmonia.control.cluster.dispatch import INSTANCE_ID_RULE, Dispatcher, valid_instance_id
from harmonia.control.cluster.manager import (
    ClusterManager,
    NodeAuthError,
    UnknownNodeError,
)
from harmonia.control.cluster.root_link import RootLink
from harmonia.control.cluster.store import ClusterStore
from harmonia.control.config import ClusterConfig, sqlite_url
from harmonia.control.protocol import (
    Heartbeat,
    HeartbeatReply,
    InstanceSpec,
    NodeRegistration,
    PlaceReply,
    Registered,
    Usage,
)
from harmonia.control.transport import TIMEOUT_S, PeerError
from harmonia.model import Resources

log = logging.getLogger("harmonia.control.cluster")

RESTART_DELAY_S = 1.0
MAX_LOG_TAIL = 100_000


class NodeView(BaseModel):
    """One node as ``GET /api/nodes`` shows it."""

    name: str
    url: str
    healthy: bool
    last_seen_s: float
    usage: Usage | None
    capacity: Resources
    free: Resources
    instances: int


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise HTTPException(
            401,
            "Authorization header missing: expected 'Bearer <secret>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            "Authorization header must be 'Bearer <secret>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def create_app(
    config: ClusterConfig,
    *,
    client: httpx.AsyncClient | None = None,
    url: str | None = None,
) -> FastAPI:
    """The cluster manager for ``config``, reachable by the root at ``url``.

    ``client`` carries every outgoing call (to the root and to node engines); tests pass
    one with a mock transport. Without it the app makes and closes its own."""
    store = ClusterStore(config.database_url or sqlite_url(config.state_dir, "cluster.db"))
    try:
        manager = ClusterManager(
            config.name,
            policy=config.policy,
            heartbeat_interval_s=config.heartbeat_interval_s,
            missed_heartbeats=config.missed_heartbeats,
            store=store,
        )
    except Exception:
        store.close()
        raise
    http = client if client is not None else httpx.AsyncClient(timeout=TIMEOUT_S)
    dispatcher = Dispatcher(manager, http)
    root_link = RootLink(
        config,
        manager,
        dispatcher,
        http,
        url or f"http://{config.host}:{config.port}",
        store,
    )
    manager.on_change = root_link.poke
    manager.on_capacity = dispatcher.capacity_changed

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(_supervised("root link", root_link.run)),
            asyncio.create_task(_supervised("node watch", dispatcher.watch_nodes)),
            asyncio.create_task(_supervised("retries", dispatcher.retry_waiting)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await dispatcher.close()
            if client is None:
                await http.aclose()
            store.close()

    app = FastAPI(
        title=f"Harmonia cluster manager {config.name}",
        description="Places instances on this cluster's node engines (called by the root) "
        "and receives node registrations and heartbeats.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.manager = manager
    app.state.dispatcher = dispatcher
    app.state.root_link = root_link
    app.state.store = store

    async def from_root(authorization: Annotated[str | None, Header()] = None) -> None:
        token = _bearer(authorization)
        secret = root_link.secret
        if secret is None:
            raise HTTPException(503, "this cluster is not registered with the root yet")
        if not _same(token, secret):
            raise HTTPException(401, "wrong cluster secret", headers={"WWW-Authenticate": "Bearer"})

    RootCaller = Depends(from_root)

    @app.get("/health")
    async def health() -> dict[str, int | str]:
        return manager.health()

    # -- node engines ------------------------------------------------------------------

    @app.post("/api/nodes/register")
    async def register_node(registration: NodeRegistration) -> Registered:
        if not _same(registration.join_token, config.node_join_token):
            raise HTTPException(401, "join_token: not this cluster's node join token")
        secret = manager.register_node(registration.node, registration.url)
        log.info("node %s registered at %s", registration.node.name, registration.url)
        return Registered(id=registration.node.name, secret=secret)

    # The hot path: every node, every heartbeat interval (1,000 nodes at 1 Hz on one
    # manager). The body is parsed and the reply written by pydantic directly, skipping
    # FastAPI's generic parameter and response-model machinery, which cost more than the
    # manager's own work; credentials are still checked before the body is parsed.
    @app.post(
        "/api/nodes/{name}/heartbeat",
        response_model=HeartbeatReply,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": Heartbeat.model_json_schema()}},
            }
        },
    )
    async def heartbeat(name: str, request: Request) -> Response:
        token = _bearer(request.headers.get("authorization"))
        try:
            manager.authenticate_node(name, token)
        except UnknownNodeError as exc:
            raise HTTPException(404, f"{exc}; register again") from None
        except NodeAuthError as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        try:
            beat = Heartbeat.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(
                [
                    {**error, "loc": ("body", *error["loc"])}
                    for error in exc.errors(include_url=False)
                ]
            ) from None
        reply = manager.heartbeat(name, beat)
        return Response(reply.model_dump_json(), media_type="application/json")

    @app.get("/api/nodes", dependencies=[RootCaller])
    async def list_nodes() -> list[NodeView]:
        now = time.monotonic()
        return [
            NodeView(
                name=record.name,
                url=record.url,
                healthy=record.healthy,
                last_seen_s=round(now - record.last_seen, 3),
                usage=record.usage,
                capacity=record.node.capacity,
                free=manager.free_of(record.name),
                instances=sum(
                    1 for i in record.instances if manager.instances[i].holds_reservation
                ),
            )
            for record in manager.nodes.values()
        ]

    # -- instances, called by the root ----------------------------------------------------

    @app.post(
        "/api/instances",
        dependencies=[RootCaller],
        response_model=PlaceReply,
        responses={409: {"model": PlaceReply, "description": "no node fits"}},
    )
    async def place_instance(spec: InstanceSpec) -> PlaceReply | JSONResponse:
        if not valid_instance_id(spec.instance_id):
            raise HTTPException(422, f"instance_id: {INSTANCE_ID_RULE}")
        reply = await dispatcher.place(spec)
        if not reply.placed:
            return JSONResponse(reply.model_dump(mode="json"), status_code=409)
        return reply

    @app.delete("/api/instances/{instance_id}", status_code=204, dependencies=[RootCaller])
    async def delete_instance(instance_id: str) -> Response:
        await dispatcher.delete(instance_id)
        return Response(status_code=204)

    @app.get("/api/instances/{instance_id}/logs", dependencies=[RootCaller])
    async def instance_logs(
        instance_id: Annotated[str, Path()],
        stream: Literal["stdout", "stderr"] = "stdout",
        tail: Annotated[int, Query(ge=0, le=MAX_LOG_TAIL)] = 100,
    ) -> Response:
        instance = manager.instances.get(instance_id)
        if instance is None:
            raise HTTPException(404, f"instance {instance_id!r} is not in this cluster")
        if instance.node is None:
            raise HTTPException(
                409, f"instance {instance_id!r} has no node yet ({instance.state.value})"
            )
        try:
            answer = await dispatcher.logs(instance, stream, tail)
        except PeerError as exc:
            raise HTTPException(502, f"node {instance.node} unreachable: {exc}") from None
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type", "text/plain; charset=utf-8"),
        )

    return app


async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run a background loop; a bug that ends it is logged and the loop restarted."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop %r failed; restarting it", name)
            await asyncio.sleep(RESTART_DELAY_S)


__all__ = ["NodeView", "create_app"]
