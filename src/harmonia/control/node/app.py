"""The node engine's HTTP API, called by its cluster manager (FastAPI).

Every route but ``/health`` needs ``Authorization: Bearer <secret>``, the secret the
cluster manager issued when this node registered; until the node has registered, no
secret is valid. The routes and messages are those of :mod:`harmonia.control.protocol`:

- ``POST /api/instances`` :class:`InstanceSpec` → 202 :class:`InstanceStatus`
  (idempotent on ``instance_id``);
- ``GET /api/instances`` → list of :class:`InstanceStatus`;
- ``GET /api/instances/{instance_id}`` → :class:`InstanceStatus` (404 when unknown);
- ``DELETE /api/instances/{instance_id}`` → 204 (idempotent);
- ``GET /api/instances/{instance_id}/logs?stream=stdout|stderr&tail=N`` → text/plain;
- ``GET /health`` → ``{"status": "ok", "node", "registered", "cluster_reachable",
  "instances"}``.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import PlainTextResponse

from harmonia.control.config import NodeConfig
from harmonia.control.node.engine import MAX_TAIL_LINES, Engine
from harmonia.control.protocol import InstanceSpec, InstanceStatus


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def authenticated(request: Request) -> Engine:
    """The engine, when the caller presents the node's secret; 401 otherwise."""
    engine = engine_of(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    secret = engine.secret
    if (
        scheme.lower() != "bearer"
        or not token
        or secret is None
        or not hmac.compare_digest(token.encode(), secret.encode())
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Authorization: a bearer token with this node's secret is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return engine


AuthEngine = Annotated[Engine, Depends(authenticated)]


def create_app(
    config: NodeConfig,
    *,
    url: str,
    client: httpx.AsyncClient | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """The node engine's app; the engine starts and stops with the app's lifespan.

    ``url`` is where the cluster manager reaches this app; ``client`` (tests: a fake
    cluster) carries the calls to the cluster manager; ``engine`` replaces the default
    one (tests: fake runtimes or limits)."""
    node_engine = engine if engine is not None else Engine(config, url, client)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await node_engine.start()
        try:
            yield
        finally:
            await node_engine.close()

    app = FastAPI(
        title=f"Harmonia node engine {config.node.name}",
        description="Runs the node's instances for its cluster manager.",
        lifespan=lifespan,
    )
    app.state.engine = node_engine

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        current = engine_of(request)
        return {
            "status": "ok",
            "node": current.name,
            "registered": current.secret is not None,
            "cluster_reachable": current.reachable,
            "instances": len(current.instances),
        }

    @app.post("/api/instances", status_code=status.HTTP_202_ACCEPTED)
    async def start_instance(spec: InstanceSpec, current: AuthEngine) -> InstanceStatus:
        problem = current.problem(spec)
        if problem:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problem)
        return current.submit(spec)

    @app.get("/api/instances")
    async def list_instances(current: AuthEngine) -> list[InstanceStatus]:
        return current.statuses()

    @app.get("/api/instances/{instance_id}")
    async def get_instance(instance_id: str, current: AuthEngine) -> InstanceStatus:
        found = current.status(instance_id)
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"instance_id: no instance {instance_id!r}"
            )
        return found

    @app.delete("/api/instances/{instance_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def stop_instance(instance_id: str, current: AuthEngine) -> Response:
        await current.stop(instance_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.get("/api/instances/{instance_id}/logs", response_class=PlainTextResponse)
    async def instance_logs(
        instance_id: str,
        current: AuthEngine,
        stream: Literal["stdout", "stderr"] = "stdout",
        tail: Annotated[int, Query(ge=0, le=MAX_TAIL_LINES)] = 100,
    ) -> PlainTextResponse:
        text = current.logs(instance_id, stream, tail)
        if text is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"instance_id: no instance {instance_id!r}"
            )
        return PlainTextResponse(text)

    return app


__all__ = ["create_app"]
