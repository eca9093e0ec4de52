"""Services and their instances: what runs, how many times, and under which constraints.

A :class:`ServiceSpec` is one service (an SLA descriptor's microservice, a trace's job,
a function): its QoS class, per-instance resources, replica count, constraints and SLO.
Each replica becomes an :class:`Instance`, and each instance to place is a
:class:`~harmonia.model.request.PlacementRequest`. Services are named within their
application; :attr:`ServiceSpec.key` (``application.name``) is unique across
applications and is what the scheduling core counts instances by.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from harmonia.model.constraints import Constraint
from harmonia.model.node import Toleration
from harmonia.model.qos import QoSClass
from harmonia.model.request import PlacementRequest
from harmonia.model.resources import Resources

MAX_REPLICAS = 100_000


class ServiceSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    application: str = ""
    qos_class: QoSClass = QoSClass.BE
    resources: Resources = Field(description="per instance")
    replicas: int = Field(1, ge=1, le=MAX_REPLICAS)
    priority: int = 0
    slo_ms: float | None = Field(None, gt=0, description="latency objective of LC services")
    labels: dict[str, str] = Field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    @property
    def key(self) -> str:
        """``application.name``, or ``name`` alone outside an application."""
        return f"{self.application}.{self.name}" if self.application else self.name

    def request(self, index: int) -> PlacementRequest:
        """The placement request of instance ``index``."""
        if not 0 <= index < self.replicas:
            raise IndexError(f"{self.key} has instances 0..{self.replicas - 1}, not {index}")
        return PlacementRequest(
            id=f"{self.key}.{index}",
            service=self.key,
            application=self.application,
            qos_class=self.qos_class,
            priority=self.priority,
            **self.resources.model_dump(),  # the request's resource fields share these names
            labels=dict(self.labels),
            constraints=self.constraints,
            tolerations=self.tolerations,
        )

    def requests(self) -> list[PlacementRequest]:
        """One request per replica, ids ``key.0`` .. ``key.{replicas-1}``."""
        return [self.request(i) for i in range(self.replicas)]


class InstanceState(StrEnum):
    """Lifecycle of an instance in the control plane: REQUESTED → CLUSTER_SCHEDULED →
    NODE_SCHEDULED → RUNNING, then FAILED or STOPPED (Oakestra's states, without its
    intermediate ones). The root persists every transition with its time."""

    REQUESTED = "REQUESTED"  # accepted by the root, no cluster chosen yet
    CLUSTER_SCHEDULED = "CLUSTER_SCHEDULED"  # a cluster took it, no node chosen yet
    NODE_SCHEDULED = "NODE_SCHEDULED"  # a node is chosen, not yet running
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def ended(self) -> bool:
        return self in (InstanceState.FAILED, InstanceState.STOPPED)


class Instance(BaseModel):
    """One replica of a service and where it is."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, description="the service's key")
    index: int = Field(ge=0)
    node: str | None = None
    state: InstanceState = InstanceState.REQUESTED

    @property
    def id(self) -> str:
        return f"{self.service}.{self.index}"
