"""Harmonia's domain model: resources, nodes, clusters, topology, services, constraints,
placement requests and the SLA descriptor.

Pure data and validation; no I/O and nothing of the scheduling core. Everything above
(`sched`, `sim`, `control`, `k8s`, `cli`) speaks these types.

The node generator and the topology (RTT matrices) need numpy; they are imported on first
use, so a process that only speaks the types (a node engine) does not pay ~12 MB of RSS
for numpy.
"""

from typing import TYPE_CHECKING, Any

from harmonia.model.constraints import (
    AntiAffinityConstraint,
    Constraint,
    DirectConstraint,
    GeoConstraint,
    LabelExpression,
    LatencyConstraint,
    NodeAffinityConstraint,
    PreferredTerm,
)
from harmonia.model.errors import FieldError, HarmoniaError, InputError
from harmonia.model.node import Cluster, GeoPoint, Node, NodeRole, Taint, TaintEffect, Toleration
from harmonia.model.qos import QoSClass
from harmonia.model.request import PlacementRequest
from harmonia.model.resources import RESOURCE_NAMES, Resources
from harmonia.model.service import Instance, InstanceState, ServiceSpec
from harmonia.model.sla import SLADescriptor, parse_sla, parse_sla_text

if TYPE_CHECKING:
    from harmonia.model.generate import generate_clusters, generate_nodes, generate_nodes_from
    from harmonia.model.topology import Topology, UnknownNodeError, haversine_km

_LAZY = {
    "generate_clusters": "harmonia.model.generate",
    "generate_nodes": "harmonia.model.generate",
    "generate_nodes_from": "harmonia.model.generate",
    "Topology": "harmonia.model.topology",
    "UnknownNodeError": "harmonia.model.topology",
    "haversine_km": "harmonia.model.topology",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "RESOURCE_NAMES",
    "AntiAffinityConstraint",
    "Cluster",
    "Constraint",
    "DirectConstraint",
    "FieldError",
    "GeoConstraint",
    "GeoPoint",
    "HarmoniaError",
    "InputError",
    "Instance",
    "InstanceState",
    "LabelExpression",
    "LatencyConstraint",
    "Node",
    "NodeAffinityConstraint",
    "NodeRole",
    "PlacementRequest",
    "PreferredTerm",
    "QoSClass",
    "Resources",
    "SLADescriptor",
    "ServiceSpec",
    "Taint",
    "TaintEffect",
    "Toleration",
    "Topology",
    "UnknownNodeError",
    "generate_clusters",
    "generate_nodes",
    "generate_nodes_from",
    "haversine_km",
    "parse_sla",
    "parse_sla_text",
]
