"""Placement constraints a service or request can carry.

- ``direct``: only the named cluster and/or nodes (Oakestra's ``direct`` constraint;
  nodes given as a ``;``-separated list).
- ``latency``: within ``threshold_ms`` RTT of an area, a reference node or service, or a
  user location.
- ``geo``: within ``threshold_km`` great-circle distance of a position.
- ``node_affinity``: required and preferred node labels (Kubernetes node affinity).
- ``anti_affinity``: at most ``max_per_domain`` instances of a service per node or cluster.

Constraints are a tagged union on ``type``; the scheduling core maps each type to the
plugin that enforces it and refuses a request whose constraint no plugin of the policy
enforces, rather than ignoring it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harmonia.model.errors import register_union_tags
from harmonia.model.node import GeoPoint


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DirectConstraint(_Frozen):
    type: Literal["direct"] = "direct"
    cluster: str | None = None
    nodes: tuple[str, ...] = ()

    @field_validator("nodes", mode="before")
    @classmethod
    def _split_node_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(";") if part.strip())
        return value

    @model_validator(mode="after")
    def _needs_target(self) -> DirectConstraint:
        if not self.cluster and not self.nodes:
            raise ValueError("direct constraint needs a cluster or a node list")
        return self


class LatencyConstraint(_Frozen):
    type: Literal["latency"] = "latency"
    threshold_ms: float = Field(gt=0)
    area: str | None = None
    target: str | None = Field(None, description="a node name or a service name")
    location: GeoPoint | None = None

    @model_validator(mode="after")
    def _needs_reference(self) -> LatencyConstraint:
        if self.area is None and self.target is None and self.location is None:
            raise ValueError("latency constraint needs an area, a target or a location")
        return self


class GeoConstraint(_Frozen):
    type: Literal["geo"] = "geo"
    location: GeoPoint
    threshold_km: float = Field(gt=0)


class LabelOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelExpression(_Frozen):
    """One Kubernetes-style label selector requirement."""

    key: str = Field(min_length=1)
    operator: LabelOperator
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelExpression:
        needs_values = self.operator in (LabelOperator.IN, LabelOperator.NOT_IN)
        if needs_values and not self.values:
            raise ValueError(f"operator {self.operator.value} needs at least one value")
        if not needs_values and self.values:
            raise ValueError(f"operator {self.operator.value} takes no values")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.operator is LabelOperator.EXISTS:
            return present
        if self.operator is LabelOperator.DOES_NOT_EXIST:
            return not present
        if self.operator is LabelOperator.IN:
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


class PreferredTerm(_Frozen):
    """A soft node-affinity term: nodes matching all of it gain ``weight``."""

    weight: int = Field(ge=1, le=100)
    match_labels: dict[str, str] = Field(default_factory=dict)
    expressions: tuple[LabelExpression, ...] = ()


class NodeAffinityConstraint(_Frozen):
    type: Literal["node_affinity"] = "node_affinity"
    match_labels: dict[str, str] = Field(default_factory=dict)
    expressions: tuple[LabelExpression, ...] = ()
    preferred: tuple[PreferredTerm, ...] = ()


class AntiAffinityConstraint(_Frozen):
    type: Literal["anti_affinity"] = "anti_affinity"
    scope: Literal["node", "cluster"] = "node"
    max_per_domain: int = Field(1, ge=1)
    service: str | None = Field(None, description="whose instances count; default: own service")


Constraint = Annotated[
    DirectConstraint
    | LatencyConstraint
    | GeoConstraint
    | NodeAffinityConstraint
    | AntiAffinityConstraint,
    Field(discriminator="type"),
]

CONSTRAINT_TYPES: tuple[str, ...] = ("direct", "latency", "geo", "node_affinity", "anti_affinity")
register_union_tags(CONSTRAINT_TYPES)
