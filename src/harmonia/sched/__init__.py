"""Harmonia's scheduling core: ``ClusterState``, the plugin framework, plugins, policies.

Knows nothing of whether it runs in the simulator, the control plane or the Kubernetes
adapter: hosts hand it a state and requests, and apply the decisions it returns. Hosts
build their scheduler with :func:`scheduler_for`, which delegates root → cluster → node
for the delegated policies (``rom``, ``ldp``; :mod:`harmonia.sched.hierarchy`).
"""

from harmonia.sched.decision import Decision, Eviction, Migration, NodeScore, Plan, Rejection
from harmonia.sched.framework import Code, CycleState, Profile, ProfileError, Status
from harmonia.sched.hierarchy import DelegatingScheduler, scheduler_for
from harmonia.sched.policies import (
    ENTRY_POINT_GROUP,
    DelegatedProfile,
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
    "DelegatedProfile",
    "DelegatingScheduler",
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
    "scheduler_for",
]
