"""Harmonia's domain model: resources, nodes, clusters, topology, services, constraints,
placement requests and the SLA descriptor.

Pure data and validation; no I/O and nothing of the scheduling core. Everything above
(`sched`, `sim`, `control`, `k8s`, `cli`) speaks these types.
"""

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
from harmonia.model.generate import generate_clusters, generate_nodes, generate_nodes_from
from harmonia.model.node import Cluster, GeoPoint, Node, NodeRole, Taint, TaintEffect, Toleration
from harmonia.model.qos import QoSClass
from harmonia.model.request import PlacementRequest
from harmonia.model.resources import RESOURCE_NAMES, Resources
from harmonia.model.service import Instance, InstanceState, ServiceSpec
from harmonia.model.sla import SLADescriptor, parse_sla, parse_sla_text
from harmonia.model.topology import Topology, UnknownNodeError, haversine_km

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
