"""A placement request: one instance of a service that needs a node.

This is the unit every scheduling policy decides on, whether it came from an SLA
descriptor (one per replica of a microservice), a JSON request list, a trace event or a
Kubernetes pod.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from harmonia.model.constraints import Constraint
from harmonia.model.node import Toleration
from harmonia.model.qos import QoSClass
from harmonia.model.resources import MAX_AMOUNT, RESOURCE_NAMES, Resources

# kubernetes-edge-scheduler's delay labels: ``delay_<node or service>: "<ms>"``.
DELAY_LABEL_PREFIX = "delay_"


class PlacementRequest(BaseModel):
    """One instance to place. Unknown fields are rejected so typos do not pass silently."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    service: str = Field("", description="service (microservice) name; instances share it")
    application: str = ""
    qos_class: QoSClass = QoSClass.BE
    priority: int = 0
    cpu_m: int = Field(0, ge=0, le=MAX_AMOUNT)
    memory_mib: int = Field(0, ge=0, le=MAX_AMOUNT)
    gpu: int = Field(0, ge=0, le=MAX_AMOUNT)
    storage_mib: int = Field(0, ge=0, le=MAX_AMOUNT)
    bandwidth_in_kbps: int = Field(0, ge=0, le=MAX_AMOUNT)
    bandwidth_out_kbps: int = Field(0, ge=0, le=MAX_AMOUNT)
    labels: dict[str, str] = Field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    @property
    def resources(self) -> Resources:
        return Resources.model_validate({name: getattr(self, name) for name in RESOURCE_NAMES})

    @property
    def constraint_kinds(self) -> frozenset[str]:
        """The constraint types this request carries; delay labels count as ``latency``."""
        kinds = {c.type for c in self.constraints}
        if any(key.startswith(DELAY_LABEL_PREFIX) for key in self.labels):
            kinds.add("latency")
        return frozenset(kinds)
