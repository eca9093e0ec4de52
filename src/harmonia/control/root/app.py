"""The root's FastAPI app: :func:`create_app` wires the store, auth, controller and routes.

Routes follow Oakestra's root API (``/api/application/``, ``/api/service/``, ...; see
:mod:`harmonia.control.root.routes`) plus the control-plane messages of
:mod:`harmonia.control.protocol`. Errors are JSON ``{"detail": ...}`` with a 4xx status:
``detail`` is one sentence, or a list of ``"path: problem"`` lines for invalid input,
naming the field at fault. OpenAPI docs are served at ``/docs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from harmonia.control.config import RootConfig, sqlite_url
from harmonia.control.root.auth import Authenticator, bootstrap_admin, load_signing_key
from harmonia.control.root.controller import ApiError, RootController
from harmonia.control.root.routes import router
from harmonia.control.root.store import Store
from harmonia.model import HarmoniaError
from harmonia.model.errors import from_pydantic
from harmonia.sched import get_policy

log = logging.getLogger("harmonia.control.root")

# Where a request's value came from; dropped from error paths (the rest names the field).
_REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


def create_app(
    config: RootConfig,
    *,
    client: httpx.AsyncClient | None = None,
    tick_s: float = 1.0,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """The root's app over ``config.state_dir``.

    ``client`` carries every call to cluster managers (tests inject one with a mock
    transport; by default the app opens its own). ``tick_s`` paces the background loop
    that loses silent clusters and retries unplaced instances; ``authenticator`` replaces
    the default (argon2 defaults, key from ``state_dir/signing.key``). The first start
    creates the admin user (see :func:`~harmonia.control.root.auth.bootstrap_admin`).
    Raises :class:`HarmoniaError` for an unusable configuration (e.g. unknown policy).
    """
    get_policy(config.policy)  # UnknownPolicyError names the known ones
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config.database_url or sqlite_url(config.state_dir, "root.db"))
    auth = authenticator or Authenticator(
        load_signing_key(config.state_dir),
        access_ttl_s=config.access_ttl_s,
        refresh_ttl_s=config.refresh_ttl_s,
    )
    password = bootstrap_admin(store, auth, config.admin_password_file)
    if password is not None:
        # Printed once: only its hash is kept.
        print(f"harmonia root: created user admin with password {password}", flush=True)
    own_client = client is None
    http = client or httpx.AsyncClient(limits=httpx.Limits(max_connections=200))
    controller = RootController(config, store, auth, http)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        background = asyncio.create_task(controller.run(tick_s), name="root-background")
        try:
            yield
        finally:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
            if own_client:
                await http.aclose()
            await controller.close()

    app = FastAPI(
        title="Harmonia root",
        description="Applications, services, instances and clusters of a Harmonia system.",
        version="1",
        lifespan=lifespan,
    )
    app.state.controller = controller
    app.include_router(router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HarmoniaError, _harmonia_error)
    return app


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)


async def _harmonia_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


class _Located:
    """A validation error with the request part (``body``, ``query``) cut off its paths,
    in the shape :func:`~harmonia.model.errors.from_pydantic` reads."""

    def __init__(self, errors: Any) -> None:
        self._errors = [
            {
                **e,
                "loc": tuple(e["loc"][1:])
                if e["loc"][:1] and e["loc"][0] in _REQUEST_PARTS
                else tuple(e["loc"]),
            }
            for e in errors
        ]

    def errors(self, **_: Any) -> list[dict[str, Any]]:
        return self._errors


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = from_pydantic(_Located(exc.errors())).errors
    detail = [str(p) if p.path else f"body: {p.message}" for p in problems]
    return JSONResponse({"detail": detail}, status_code=422)


__all__ = ["create_app"]
