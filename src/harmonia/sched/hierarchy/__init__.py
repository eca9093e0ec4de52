"""Hierarchical (delegated) scheduling: the root picks a cluster, the cluster picks a node.

After Oakestra (Bartolomeo et al., "Oakestra: A Lightweight Hierarchical Orchestration
Framework for Edge Computing", USENIX ATC'23), whose root scheduler places a service on a
cluster — ROM, resource-only matching, or LDP, latency- and distance-aware placement —
and whose cluster scheduler then places it on a node with the same constraints. Harmonia's
versions fix what Oakestra's implementation gets wrong:

- CPU requests read from the wrong key: amounts here come from the request's own fields,
  every resource compared with its own column (:mod:`~harmonia.sched.hierarchy.rows`);
- a request compared with a cluster's *summed* free capacity: here with the largest free
  amount of any single schedulable node, a necessary condition, and the next cluster is
  tried when the chosen one refuses (up to three);
- distances in degrees compared with kilometres: the ``Geo`` and ``Latency`` plugins'
  kilometres and milliseconds, reduced per cluster (:mod:`~harmonia.sched.hierarchy.root`);
- "first cluster in the list" instead of a score: clusters are ranked (LeastAllocated;
  for LDP, the closest node on offer first);
- no reservation between decisions: each placement is reserved in the cluster's state and
  the global state at once (:mod:`~harmonia.sched.hierarchy.delegating`).

Policies ``rom`` and ``ldp`` (:class:`~harmonia.sched.policies.DelegatedProfile`) run
``default`` and ``latency`` on the nodes. :func:`scheduler_for` gives a host the right
scheduler for any policy name; a flat policy over all nodes stays the reference the
simulator compares delegation with.
"""

from harmonia.sched.hierarchy.delegating import (
    MAX_CLUSTERS_TRIED,
    DelegatingScheduler,
    scheduler_for,
)
from harmonia.sched.hierarchy.root import ROOT_POLICIES, Ldp, Rom, RootPolicy, RootView
from harmonia.sched.hierarchy.rows import NO_NODE, ClusterRows
from harmonia.sched.hierarchy.substates import ClusterScope, SubStates
from harmonia.sched.hierarchy.wrappers import GlobalFilter, GlobalScore, RootContext

__all__ = [
    "MAX_CLUSTERS_TRIED",
    "NO_NODE",
    "ROOT_POLICIES",
    "ClusterRows",
    "ClusterScope",
    "DelegatingScheduler",
    "GlobalFilter",
    "GlobalScore",
    "Ldp",
    "Rom",
    "RootContext",
    "RootPolicy",
    "RootView",
    "SubStates",
    "scheduler_for",
]
