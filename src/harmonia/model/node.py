"""Nodes and clusters of the hierarchical edge-cloud infrastructure (root → clusters → nodes).

A :class:`Node` is what an operator writes in a node list or what a node engine reports:
its cluster, role (``edge``/``cloud``), labels, taints, capacity, allocatable share and
geo position. The scheduling core copies nodes into columns once; these objects are not
its storage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harmonia.model.resources import Resources

NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="DNS-like name")]


class NodeRole(StrEnum):
    EDGE = "edge"
    CLOUD = "cloud"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Taint(BaseModel):
    """A Kubernetes-style taint: only requests that tolerate it may land on the node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1)
    value: str = ""
    effect: TaintEffect = TaintEffect.NO_SCHEDULE


class Toleration(BaseModel):
    """Tolerates taints with ``key`` (any key when empty and operator ``Exists``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = ""
    operator: str = Field("Equal", pattern="^(Equal|Exists)$")
    value: str = ""
    effect: TaintEffect | None = None

    def tolerates(self, taint: Taint) -> bool:
        if self.effect is not None and self.effect != taint.effect:
            return False
        if self.operator == "Exists":
            return self.key in ("", taint.key)
        return self.key == taint.key and self.value == taint.value


class GeoPoint(BaseModel):
    """A WGS84 position in degrees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90, le=90)
    long: float = Field(ge=-180, le=180)


class Cluster(BaseModel):
    """A cluster of nodes under one cluster manager, e.g. one edge site or one cloud region."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    location: GeoPoint | None = None
    description: str = ""


class Node(BaseModel):
    """One machine that runs instances."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    cluster: Name = "default"
    role: NodeRole = NodeRole.CLOUD
    node_class: str = Field("", description="hardware class, e.g. rpi4, jetson-nano, server")
    labels: dict[str, str] = Field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    capacity: Resources
    allocatable: Resources | None = Field(
        None, description="share of capacity open to instances; defaults to capacity"
    )
    location: GeoPoint | None = None
    unschedulable: bool = False

    @model_validator(mode="after")
    def _allocatable_within_capacity(self) -> Node:
        if self.allocatable is not None and not self.allocatable.fits_in(self.capacity):
            raise ValueError("allocatable must not exceed capacity in any resource")
        return self

    @property
    def allocatable_or_capacity(self) -> Resources:
        return self.allocatable if self.allocatable is not None else self.capacity
