"""Harmonia's scheduling core: ``ClusterState``, the plugin framework, plugins, policies.

Knows nothing of whether it runs in the simulator, the control plane or the Kubernetes
adapter: hosts hand it a state and requests, and apply the decisions it returns.
"""

from harmonia.sched.decision import Decision, Eviction, Migration, NodeScore, Plan, Rejection
from harmonia.sched.framework import Code, CycleState, Profile, ProfileError, Status
from harmonia.sched.policies import (
    ENTRY_POINT_GROUP,
    UnknownPolicyError,
    get_policy,
    policy_names,
    register_policy,
)
from harmonia.sched.scheduler import Scheduler
from harmonia.sched.state import ClusterState, StateError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ClusterState",
    "Code",
    "CycleState",
    "Decision",
    "Eviction",
    "Migration",
    "NodeScore",
    "Plan",
    "Profile",
    "ProfileError",
    "Rejection",
    "Scheduler",
    "StateError",
    "Status",
    "UnknownPolicyError",
    "get_policy",
    "policy_names",
    "register_policy",
]
