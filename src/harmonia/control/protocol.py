"""Messages between the tiers of the control plane, and the routes that carry them.

Every message is a pydantic model, validated on receipt; nothing received is unpickled or
passed to a shell. Unknown fields are rejected so that a version mismatch between tiers
shows as a clear 422, not as silently dropped data.

Routes (all JSON; ``Authorization: Bearer <secret>`` on every route but registration):

Root, called by cluster managers (secret: the cluster's, issued at registration):

- ``POST /api/clusters/register``  :class:`ClusterRegistration` → :class:`Registered`
  (authenticated by the one-time join token in the body, created by an admin with
  ``POST /api/clusters/tokens``);
- ``POST /api/clusters/{cluster_id}/report``  :class:`ClusterReport` → :class:`ReportReply`.

Cluster manager, called by the root (secret: the same cluster secret):

- ``POST /api/instances``  :class:`InstanceSpec` → :class:`PlaceReply` (409 with
  :class:`PlaceReply` ``placed=false`` and reasons when no node fits);
- ``DELETE /api/instances/{instance_id}`` → 204 (idempotent);
- ``GET /api/instances/{instance_id}/logs?stream=stdout|stderr&tail=N`` → text.

Cluster manager, called by node engines (secret: the node's, issued at registration):

- ``POST /api/nodes/register``  :class:`NodeRegistration` → :class:`Registered`
  (authenticated by the cluster's node join token in the body);
- ``POST /api/nodes/{name}/heartbeat``  :class:`Heartbeat` → :class:`HeartbeatReply`.

Node engine, called by its cluster manager (secret: the same node secret):

- ``POST /api/instances``  :class:`InstanceSpec` → 202 :class:`InstanceStatus`
  (idempotent: an instance already known is not started twice);
- ``DELETE /api/instances/{instance_id}`` → 204 (stops it; idempotent);
- ``GET /api/instances/{instance_id}/logs?stream=stdout|stderr&tail=N`` → text.

State reaches upward in the periodic messages (heartbeat, report); a tier that was
unreachable re-syncs from the next one: heartbeats and reports carry the full list of
instances, and their replies say which instances the receiver no longer wants run
(``stop``) or expects to run but were not reported (``start``).
"""

from __future__ import annotations

import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from harmonia.model import InstanceState, Node, PlacementRequest, Resources

NAME_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Runtime(StrEnum):
    PROCESS = "process"
    OCI = "oci"


class RestartPolicy(StrEnum):
    NEVER = "never"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


class InstanceSpec(Message):
    """Everything a cluster needs to place an instance and a node to run it."""

    instance_id: str = Field(min_length=1, description="unique: '<service_id>.<number>'")
    service_id: str = Field(min_length=1)
    application_id: str = Field(min_length=1)
    service: str = Field(min_length=1, description="'<application>.<service>' name")
    number: int = Field(ge=0)
    runtime: Runtime = Runtime.PROCESS
    cmd: tuple[str, ...] = Field(min_length=1, description="argv; never run through a shell")
    env: dict[str, str] = Field(default_factory=dict)
    image: str = Field("", description="oci: local root filesystem directory or image archive")
    restart: RestartPolicy = RestartPolicy.ON_FAILURE
    max_restarts: int = Field(5, ge=0)
    request: PlacementRequest = Field(description="what the scheduling core places")

    @property
    def resources(self) -> Resources:
        return self.request.resources


class InstanceStatus(Message):
    """An instance as its node (or cluster) last saw it."""

    instance_id: str
    state: InstanceState
    at: float = Field(default_factory=time.time, description="unix time of the transition")
    node: str | None = None
    cluster: str | None = None
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = Field(None, description="unix time it last became RUNNING")
    detail: str = ""


class Registered(Message):
    """Reply to a registration: the identity and the secret for every later call."""

    id: str
    secret: str


class ClusterRegistration(Message):
    name: str = Field(pattern=NAME_PATTERN)
    url: str = Field(description="where the root reaches this cluster manager")
    join_token: str = Field(min_length=16)
    location: tuple[float, float] | None = Field(None, description="(lat, long)")


class NodeReport(Message):
    """One node as its cluster manager knows it."""

    node: Node
    free: Resources
    healthy: bool


class ClusterReport(Message):
    name: str
    nodes: list[NodeReport]
    instances: list[InstanceStatus]
    sent_at: float = Field(default_factory=time.time)


class ReportReply(Message):
    stop: list[str] = Field(default_factory=list, description="instances the root dropped")
    start: list[InstanceSpec] = Field(
        default_factory=list, description="instances the root placed here but not reported"
    )


class PlaceReply(Message):
    placed: bool
    instance_id: str
    node: str | None = None
    reasons: list[str] = Field(default_factory=list)


class NodeRegistration(Message):
    node: Node = Field(description="name, capacity, labels, role and location of the node")
    url: str = Field(description="where the cluster manager reaches this node engine")
    join_token: str = Field(min_length=16)


class Usage(Message):
    cpu_percent: float = Field(ge=0)
    memory_used_mib: int = Field(ge=0)
    memory_total_mib: int = Field(ge=0)


class Heartbeat(Message):
    usage: Usage
    instances: list[InstanceStatus]
    sent_at: float = Field(default_factory=time.time)


class HeartbeatReply(Message):
    stop: list[str] = Field(default_factory=list)
    start: list[InstanceSpec] = Field(default_factory=list)


__all__ = [
    "ClusterRegistration",
    "ClusterReport",
    "Heartbeat",
    "HeartbeatReply",
    "InstanceSpec",
    "InstanceState",
    "InstanceStatus",
    "Message",
    "NodeRegistration",
    "NodeReport",
    "PlaceReply",
    "Registered",
    "ReportReply",
    "RestartPolicy",
    "Runtime",
    "Usage",
]
