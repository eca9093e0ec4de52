"""Harmonia's built-in scheduling plugins; each module holds one concept."""

from harmonia.sched.plugins.allocation import (
    AllocationConfig,
    LeastAllocated,
    MostAllocated,
    RatioConfig,
    RequestedToCapacityRatio,
    ShapePoint,
)
from harmonia.sched.plugins.balanced import BalancedAllocation
from harmonia.sched.plugins.cloud_first import CloudFirst
from harmonia.sched.plugins.direct import Direct
from harmonia.sched.plugins.failover import (
    FailoverReservation,
    InstanceKey,
    failover_planner,
    schedule_instance,
)
from harmonia.sched.plugins.geo import Geo
from harmonia.sched.plugins.interference import InterferenceScore
from harmonia.sched.plugins.latency import Latency, LatencyConfig
from harmonia.sched.plugins.node_affinity import NodeAffinity
from harmonia.sched.plugins.node_schedulable import NodeSchedulable
from harmonia.sched.plugins.resource_fit import NodeResourcesFit
from harmonia.sched.plugins.simple import RandomScore, RoundRobin
from harmonia.sched.plugins.spread import ServiceAntiAffinity, ServiceSpread
from harmonia.sched.plugins.taints import TaintToleration

__all__ = [
    "AllocationConfig",
    "BalancedAllocation",
    "CloudFirst",
    "Direct",
    "FailoverReservation",
    "Geo",
    "InstanceKey",
    "InterferenceScore",
    "Latency",
    "LatencyConfig",
    "LeastAllocated",
    "MostAllocated",
    "NodeAffinity",
    "NodeResourcesFit",
    "NodeSchedulable",
    "RandomScore",
    "RatioConfig",
    "RequestedToCapacityRatio",
    "RoundRobin",
    "ServiceAntiAffinity",
    "ServiceSpread",
    "ShapePoint",
    "TaintToleration",
    "failover_planner",
    "schedule_instance",
]
