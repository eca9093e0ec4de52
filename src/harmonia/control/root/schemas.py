"""Request and response bodies of the root API (what ``/docs`` shows).

Responses keep the field names Oakestra's users know (``applicationID``,
``microserviceID``, ``instance_list``); every response is a JSON object or a list of
them, never a JSON-encoded string. Requests reject unknown fields, so a typo is a 422
that names it instead of a silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from harmonia.control.root.auth import MIN_PASSWORD_LENGTH, USERNAME_PATTERN, Role
from harmonia.model import InstanceState
from harmonia.model.service import MAX_REPLICAS
from harmonia.model.sla import SLAName

MAX_TOKEN_TTL_S = 10 * 365 * 24 * 3600
MAX_LOG_TAIL = 100_000


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- auth and users ---------------------------------------------------------------------


class Login(Request):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Refresh(Request):
    refresh_token: str = Field(min_length=1)


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds the access token stays valid")


class NewUser(Request):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    roles: list[Role] = Field(min_length=1)


class UserOut(BaseModel):
    username: str
    roles: list[str]
    created_at: float


# -- applications, services, instances --------------------------------------------------


class ApplicationUpdate(Request):
    application_name: SLAName | None = None
    application_namespace: SLAName | None = None
    application_desc: str | None = Field(None, max_length=10_000)


class ApplicationOut(BaseModel):
    applicationID: str  # Oakestra's field names, camel case
    application_name: str
    application_namespace: str
    application_desc: str
    userId: str
    microservices: list[str] = Field(description="service ids")


class NewService(Request):
    application_id: str = Field(min_length=1)
    microservice: dict[str, Any] = Field(description="one microservice of an SLA descriptor")


class Scale(Request):
    replicas: Annotated[int, Field(strict=True, ge=0, le=MAX_REPLICAS)]


class TransitionOut(BaseModel):
    state: InstanceState
    at: float
    detail: str


class InstanceOut(BaseModel):
    instance_id: str
    service_id: str
    service: str = Field(description="'<application>.<service>'")
    application_id: str
    application: str
    number: int
    cluster: str | None = Field(description="the cluster's name")
    cluster_id: str | None
    node: str | None
    state: InstanceState
    pid: int | None
    restarts: int
    started_at: float | None
    updated_at: float
    detail: str


class InstanceDetail(InstanceOut):
    transitions: list[TransitionOut]


class ServiceOut(BaseModel):
    microserviceID: str
    applicationID: str
    microservice_name: str
    microservice_namespace: str
    virtualization: str
    cmd: list[str]
    memory: int
    vcpus: float
    replicas: int
    instance_list: list[InstanceOut]


# -- clusters ---------------------------------------------------------------------------


class NewJoinToken(Request):
    ttl_s: int = Field(3600, gt=0, le=MAX_TOKEN_TTL_S)


class JoinToken(BaseModel):
    token: str
    expires_at: float


class Amounts(BaseModel):
    cpu_m: int
    memory_mib: int


class ClusterOut(BaseModel):
    id: str
    name: str
    url: str
    status: str = Field(description="active or lost")
    last_report_age_s: float | None
    nodes: int
    healthy_nodes: int
    capacity: Amounts = Field(description="summed over every reported node")
    free: Amounts = Field(description="summed over the healthy nodes")
    instances: int = Field(description="instances the root assigned to this cluster")


class Health(BaseModel):
    status: str = "ok"


__all__ = [
    "MAX_LOG_TAIL",
    "Amounts",
    "ApplicationOut",
    "ApplicationUpdate",
    "ClusterOut",
    "Health",
    "InstanceDetail",
    "InstanceOut",
    "JoinToken",
    "Login",
    "NewJoinToken",
    "NewService",
    "NewUser",
    "Refresh",
    "Scale",
    "ServiceOut",
    "Tokens",
    "TransitionOut",
    "UserOut",
]
