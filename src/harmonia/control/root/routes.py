"""HTTP routes of the root: who may call what, then one call into the controller.

Every ``/api`` route needs a bearer token except login and refresh (they issue tokens)
and the two routes cluster managers call (a join token, then the cluster's secret). Any
logged-in user may read clusters; applications, services and instances are read and
changed by their owner or an admin (others get 403, unknown ids 404). Users and join
tokens are an admin's business.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from harmonia.control.protocol import ClusterRegistration, ClusterReport, Registered, ReportReply
from harmonia.control.root.auth import Principal, Role, TokenError, TokenType, principal_of
from harmonia.control.root.controller import ApiError, ClusterInfo, RootController
from harmonia.control.root.schemas import (
    MAX_LOG_TAIL,
    ApplicationOut,
    ApplicationUpdate,
    ClusterOut,
    Health,
    InstanceDetail,
    InstanceOut,
    JoinToken,
    Login,
    NewJoinToken,
    NewService,
    NewUser,
    Refresh,
    Scale,
    ServiceOut,
    Tokens,
    UserOut,
)
from harmonia.control.root.store import UserRow

router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="an access token, or a cluster's secret")


async def controller_of(request: Request) -> RootController:
    controller = request.app.state.controller
    assert isinstance(controller, RootController)
    return controller


Controller = Annotated[RootController, Depends(controller_of)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def current_user(controller: Controller, credentials: Credentials) -> Principal:
    if credentials is None:
        raise ApiError(401, "missing bearer token (Authorization: Bearer <access_token>)")
    try:
        username = controller.auth.verify(credentials.credentials, TokenType.ACCESS)
    except TokenError as exc:
        raise ApiError(401, str(exc)) from None
    with controller.store.session() as session:
        user = session.get(UserRow, username)
        if user is None:
            raise ApiError(401, "the token's user no longer exists")
        return principal_of(user)


User = Annotated[Principal, Depends(current_user)]


async def admin(user: User) -> Principal:
    if not user.is_admin:
        raise ApiError(403, "needs the role admin")
    return user


Admin = Annotated[Principal, Depends(admin)]


async def calling_cluster(
    cluster_id: str, controller: Controller, credentials: Credentials
) -> ClusterInfo:
    return controller.authenticate_cluster(
        cluster_id, credentials.credentials if credentials is not None else None
    )


Cluster = Annotated[ClusterInfo, Depends(calling_cluster)]


# -- health and auth ---------------------------------------------------------------------


@router.get("/health", tags=["health"])
async def health() -> Health:
    return Health()


@router.post("/api/auth/login", tags=["auth"])
async def login(body: Login, controller: Controller) -> Tokens:
    pair = await controller.login(body.username, body.password)
    return Tokens(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/api/auth/refresh", tags=["auth"])
async def refresh(body: Refresh, controller: Controller) -> Tokens:
    pair = controller.refresh(body.refresh_token)
    return Tokens(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/api/users", status_code=201, tags=["users"])
async def create_user(body: NewUser, _: Admin, controller: Controller) -> UserOut:
    return await controller.create_user(body)


@router.get("/api/users", tags=["users"])
async def list_users(_: Admin, controller: Controller) -> list[UserOut]:
    return controller.users()


# -- applications ------------------------------------------------------------------------


@router.post("/api/application/", status_code=201, tags=["applications"])
@router.post("/api/application", status_code=201, include_in_schema=False)
async def deploy(
    descriptor: Annotated[dict[str, Any], Body(description="an SLA descriptor (v2)")],
    user: User,
    controller: Controller,
) -> list[ApplicationOut]:
    return await controller.deploy(user, descriptor)


@router.get("/api/applications/", tags=["applications"])
@router.get("/api/applications", include_in_schema=False)
async def list_applications(user: User, controller: Controller) -> list[ApplicationOut]:
    return controller.applications(user)


@router.get("/api/application/{app_id}", tags=["applications"])
async def get_application(app_id: str, user: User, controller: Controller) -> ApplicationOut:
    return controller.application(user, app_id)


@router.put("/api/application/{app_id}", tags=["applications"])
async def update_application(
    app_id: str, body: ApplicationUpdate, user: User, controller: Controller
) -> ApplicationOut:
    return controller.update_application(user, app_id, body)


@router.delete("/api/application/{app_id}", tags=["applications"])
async def delete_application(app_id: str, user: User, controller: Controller) -> dict[str, str]:
    await controller.delete_application(user, app_id)
    return {"deleted": app_id}


# -- services ----------------------------------------------------------------------------


@router.post("/api/service/", status_code=201, tags=["services"])
@router.post("/api/service", status_code=201, include_in_schema=False)
async def add_service(body: NewService, user: User, controller: Controller) -> ServiceOut:
    return await controller.add_service(user, body.application_id, body.microservice)


@router.get("/api/service/{service_id}", tags=["services"])
async def get_service(service_id: str, user: User, controller: Controller) -> ServiceOut:
    return controller.service(user, service_id)


@router.delete("/api/service/{service_id}", tags=["services"])
async def delete_service(service_id: str, user: User, controller: Controller) -> dict[str, str]:
    await controller.delete_service(user, service_id)
    return {"deleted": service_id}


@router.get("/api/services/{app_id}", tags=["services"])
async def list_services(app_id: str, user: User, controller: Controller) -> list[ServiceOut]:
    return controller.services(user, app_id)


@router.post("/api/service/{service_id}/instance", status_code=201, tags=["services"])
async def add_instance(service_id: str, user: User, controller: Controller) -> InstanceDetail:
    return await controller.add_instance(user, service_id)


@router.delete("/api/service/{service_id}/instance/{number}", tags=["services"])
async def delete_instance(
    service_id: str, number: int, user: User, controller: Controller
) -> dict[str, str]:
    await controller.delete_instance(user, service_id, number)
    return {"deleted": f"{service_id}.{number}"}


@router.put("/api/service/{service_id}/scale", tags=["services"])
async def scale(service_id: str, body: Scale, user: User, controller: Controller) -> ServiceOut:
    return await controller.scale(user, service_id, body.replicas)


# -- instances ---------------------------------------------------------------------------


@router.get("/api/instances/", tags=["instances"])
@router.get("/api/instances", include_in_schema=False)
async def list_instances(
    user: User, controller: Controller, application_id: str | None = None
) -> list[InstanceOut]:
    return controller.instances(user, application_id)


@router.get("/api/instances/{instance_id}", tags=["instances"])
async def get_instance(instance_id: str, user: User, controller: Controller) -> InstanceDetail:
    return controller.instance(user, instance_id)


@router.get(
    "/api/instances/{instance_id}/logs", response_class=PlainTextResponse, tags=["instances"]
)
async def instance_logs(
    instance_id: str,
    user: User,
    controller: Controller,
    stream: Literal["stdout", "stderr"] = "stdout",
    tail: Annotated[int, Query(ge=0, le=MAX_LOG_TAIL)] = 100,
) -> PlainTextResponse:
    text = await controller.logs(user, instance_id, stream, tail)
    return PlainTextResponse(text)


# -- clusters ----------------------------------------------------------------------------


@router.post("/api/clusters/tokens", status_code=201, tags=["clusters"])
async def create_join_token(
    user: Admin, controller: Controller, body: Annotated[NewJoinToken | None, Body()] = None
) -> JoinToken:
    return controller.create_join_token(user, (body or NewJoinToken()).ttl_s)


@router.post("/api/clusters/register", tags=["clusters"])
async def register_cluster(body: ClusterRegistration, controller: Controller) -> Registered:
    return controller.register(body)


@router.post("/api/clusters/{cluster_id}/report", tags=["clusters"])
async def report(body: ClusterReport, cluster: Cluster, controller: Controller) -> ReportReply:
    return controller.report(cluster, body)


@router.get("/api/clusters/", tags=["clusters"])
@router.get("/api/clusters", include_in_schema=False)
async def list_clusters(_: User, controller: Controller) -> list[ClusterOut]:
    return controller.cluster_list()


@router.get("/api/clusters/{cluster_id}", tags=["clusters"])
async def get_cluster(cluster_id: str, _: User, controller: Controller) -> ClusterOut:
    return controller.cluster(cluster_id)


__all__ = ["Role", "current_user", "router"]
